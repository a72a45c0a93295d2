// The CUDA runtime layer (runtime.h): checked calls, the one stream per device, the device guard
// and the TF32 switch.
#include "backends/cuda/runtime.h"

#include <array>
#include <atomic>
#include <mutex>
#include "core/error.h"

namespace cgad::cuda {

namespace {

std::atomic<bool> g_tf32{false};

void check_index(int device) {
  const int n = device_count();
  if (device < 0 || device >= n)
    throw RuntimeError(str("CUDA device ", device, " is not available (", n, " visible device", n == 1 ? "" : "s", ")"));
}

int cuda_index(Device d) {
  CGAD_CHECK(d.type == DeviceType::CUDA, RuntimeError, "DeviceGuard: ", d.str(), " is not a CUDA device");
  return d.index;
}

}  // namespace

void check(cudaError_t e, const char* expr, const char* file, int line) {
  if (e == cudaSuccess) return;
  // Clears a non-sticky error so that the next call does not report it again; a sticky one (a
  // kernel fault) stays, as CUDA gives no way to clear it.
  cudaGetLastError();
  throw RuntimeError(str("CUDA error ", cudaGetErrorName(e), " (", cudaGetErrorString(e), ") at ", file, ":", line, ": ", expr));
}

int device_count() {
  // Asked once: the answer cannot change within a process, and without a driver the failing
  // query would otherwise be repeated (and its error left behind) at every call.
  static const int n = [] {
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess) {
      cudaGetLastError();
      return 0;
    }
    return count < kMaxDevices ? count : kMaxDevices;
  }();
  return n;
}

cudaStream_t stream(int device) {
  static std::array<std::once_flag, kMaxDevices> once;
  static std::array<cudaStream_t, kMaxDevices> streams{};
  check_index(device);
  std::call_once(once[size_t(device)], [device] {
    DeviceGuard guard(device);
    // Non-blocking: the legacy default stream (used by libraries behind our back) never
    // serializes with this one.
    CGAD_CUDA_CHECK(cudaStreamCreateWithFlags(&streams[size_t(device)], cudaStreamNonBlocking));
  });
  return streams[size_t(device)];
}

void synchronize(int device) { CGAD_CUDA_CHECK(cudaStreamSynchronize(stream(device))); }

bool tf32_enabled() { return g_tf32.load(std::memory_order_relaxed); }
void set_tf32_enabled(bool on) { g_tf32.store(on, std::memory_order_relaxed); }

DeviceGuard::DeviceGuard(Device d) : DeviceGuard(cuda_index(d)) {}

DeviceGuard::DeviceGuard(int index) {
  check_index(index);
  CGAD_CUDA_CHECK(cudaGetDevice(&prev_));
  if (prev_ != index) {
    CGAD_CUDA_CHECK(cudaSetDevice(index));
    changed_ = true;
  }
}

// A destructor must not throw: restoring the previous device can only fail if the context is
// already broken, and the next checked call reports that.
DeviceGuard::~DeviceGuard() {
  if (changed_ && cudaSetDevice(prev_) != cudaSuccess) cudaGetLastError();
}

}  // namespace cgad::cuda
