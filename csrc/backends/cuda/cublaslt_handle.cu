#include "backends/cuda/cublaslt_handle.cuh"
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include "backends/cuda/runtime.h"
#include "core/allocator.h"
#include "core/error.h"

namespace cgad::cuda {

namespace {

// cuBLASLt's own recommendation for Hopper is 32 MiB (smaller on older GPUs suffices, but
// larger does no harm): split-K and stream-K algorithms need it for large GEMMs.
constexpr size_t kWorkspaceBytes = size_t(32) << 20;
constexpr size_t kWorkspaceAlign = 256;

// Acquires the handle and the workspace; releases neither (see the header).
std::unique_ptr<LtContext> make_context(int device) {
  DeviceGuard guard(device);
  auto ctx = std::make_unique<LtContext>();
  CGAD_CUBLAS_CHECK(cublasLtCreate(&ctx->handle));
  // The allocator promises 64-byte alignment; cuBLASLt wants 256, so over-allocate and round up.
  void* raw = allocator_for(Device{DeviceType::CUDA, device}).allocate(kWorkspaceBytes + kWorkspaceAlign);
  const uintptr_t p = reinterpret_cast<uintptr_t>(raw);
  ctx->workspace = reinterpret_cast<void*>((p + kWorkspaceAlign - 1) / kWorkspaceAlign * kWorkspaceAlign);
  ctx->workspace_bytes = kWorkspaceBytes;
  return ctx;
}

}  // namespace

void check_cublas(cublasStatus_t s, const char* expr, const char* file, int line) {
  if (s == CUBLAS_STATUS_SUCCESS) return;
  throw RuntimeError(str("cuBLAS error ", cublasLtGetStatusName(s), " (", cublasLtGetStatusString(s), ") at ", file,
                         ":", line, ": ", expr));
}

const LtContext& lt_context(int device) {
  static std::mutex mu;
  // Leaked on purpose, like the streams of runtime.h: never destroyed at exit.
  static auto& contexts = *std::make_unique<std::map<int, std::unique_ptr<LtContext>>>().release();
  std::lock_guard<std::mutex> lock(mu);
  auto& slot = contexts[device];
  if (!slot) slot = make_context(device);
  return *slot;
}

}  // namespace cgad::cuda
