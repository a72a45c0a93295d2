// The cuBLASLt context of each CUDA device: one handle and one workspace, created on first use
// and kept for the life of the process (tensors, and so GEMMs, may outlive static destructors,
// and the CUDA context may already be gone when they run). Every GEMM of the backend runs
// through it on the device's one stream (runtime.h), so the workspace is never used by two
// GEMMs at once.
#pragma once
#include <cublasLt.h>
#include <cstddef>

namespace cgad::cuda {

// Throws RuntimeError("cuBLAS error <name> (<string>) at <file>:<line>: <expr>") unless s is
// CUBLAS_STATUS_SUCCESS.
void check_cublas(cublasStatus_t s, const char* expr, const char* file, int line);

struct LtContext {
  cublasLtHandle_t handle = nullptr;
  void* workspace = nullptr;  // 256-byte aligned, from the device's allocator
  size_t workspace_bytes = 0;
};

// The context of `device`, created (thread-safely) on the first call.
const LtContext& lt_context(int device);

}  // namespace cgad::cuda

#define CGAD_CUBLAS_CHECK(expr) ::cgad::cuda::check_cublas((expr), #expr, __FILE__, __LINE__)
