// The CUDA backend's runtime layer, shared by every file in backends/cuda: checked CUDA calls,
// the one stream per device that all work runs on, and a guard that makes a tensor's device
// current for a kernel. Only built when CGAD_CUDA is on; nothing outside backends/cuda and the
// CUDA part of the bindings includes it.
#pragma once
#include <cuda_runtime.h>
#include "core/device.h"

namespace cgad::cuda {

// Throws RuntimeError("CUDA error <name> (<string>) at <file>:<line>: <expr>") unless e is
// cudaSuccess (the sticky error is cleared where CUDA allows it).
void check(cudaError_t e, const char* expr, const char* file, int line);

// Devices beyond this many are not used (per-device tables are fixed arrays of this size).
constexpr int kMaxDevices = 64;

// The number of visible devices (at most kMaxDevices); 0 (not an error) when there is no driver
// or no GPU.
int device_count();
// The single stream of `device` on which every kernel, copy and stream-ordered free runs
// (created on first use, never destroyed: tensors may outlive static destructors).
cudaStream_t stream(int device);
// Waits for all work on `device`'s stream (the host side of .numpy(), .item() and synchronize()).
void synchronize(int device);

// TF32 tensor cores for float32 GEMMs: off by default (float32 results match the CPU's to 1e-4);
// train/gpt2.py --tf32 turns it on. Read by the GEMM kernels at each call.
bool tf32_enabled();
void set_tf32_enabled(bool on);

// Makes d (a CUDA device) current for the scope and restores the previous device after.
class DeviceGuard {
 public:
  explicit DeviceGuard(Device d);
  explicit DeviceGuard(int index);
  ~DeviceGuard();
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int prev_ = 0;
  bool changed_ = false;
};

}  // namespace cgad::cuda

// Every CUDA runtime call goes through this, so a failure names the call, the file and the line.
#define CGAD_CUDA_CHECK(expr) ::cgad::cuda::check((expr), #expr, __FILE__, __LINE__)
// After a kernel launch: a bad launch configuration is reported here, not at the next sync.
#define CGAD_CUDA_CHECK_LAUNCH() CGAD_CUDA_CHECK(cudaGetLastError())
