// The CUDA runtime layer, allocator and copies (built only with CGAD_CUDA=ON). Without a GPU (CI's
// compile check builds it; this machine runs it): checked calls name the error, the call and the
// line, no device is 0 devices and never a crash, every device operation is a RuntimeError, and
// cuBLASLt loads from the folder the build found it in. With a GPU: the one stream, the guard,
// device memory from the cache, and a copy round trip through pinned staging.
#include <cublasLt.h>
#include <cstring>
#include <string>
#include <vector>
#include "backends/cuda/allocator.h"
#include "backends/cuda/runtime.h"
#include "check.h"
#include "core/allocator.h"
#include "core/error.h"
#include "core/tensor.h"
#include "ops/ops.h"

using namespace cgad;

namespace {

void checked_calls_name_the_error() {
  std::string msg;
  try {
    CGAD_CUDA_CHECK(cudaErrorInvalidValue);
  } catch (const RuntimeError& e) {
    msg = e.what();
  }
  CHECK(msg.find("cudaErrorInvalidValue") != std::string::npos);
  CHECK(msg.find("test_cuda_runtime.cpp:") != std::string::npos);
  const std::string expr = ": cudaErrorInvalidValue";  // the call, last
  CHECK(msg.size() > expr.size() && msg.compare(msg.size() - expr.size(), expr.size(), expr) == 0);
  CGAD_CUDA_CHECK(cudaSuccess);  // no throw
}

void tf32_switch() {
  CHECK(!cuda::tf32_enabled());
  cuda::set_tf32_enabled(true);
  CHECK(cuda::tf32_enabled());
  cuda::set_tf32_enabled(false);
}

// The extension and these binaries record libcublasLt.so.13 and find it through their run path.
void cublaslt_loads() { CHECK(cublasLtGetVersion() >= 130000); }

void without_a_gpu() {
  CHECK(cuda::device_count() == 0);
  CHECK(cuda::device_count() == 0);  // asked again: still no throw
  CHECK_THROWS(RuntimeError, cuda::stream(0));
  CHECK_THROWS(RuntimeError, cuda::synchronize(0));
  CHECK_THROWS(RuntimeError, cuda::DeviceGuard(0));
  CHECK_THROWS(RuntimeError, cuda::DeviceGuard(Device{}));
  CHECK_THROWS(RuntimeError, empty({4}, DType::Float32, Device::parse("cuda")));
  CHECK_THROWS(RuntimeError, to_device(empty({4}, DType::Float32, Device{}), Device::parse("cuda")));
  Allocator& a = allocator_for(Device::parse("cuda"));
  CHECK(a.stats().os_allocs == 0);
  a.empty_cache();  // nothing to free, no device needed
}

void with_a_gpu() {
  cudaStream_t s = cuda::stream(0);
  CHECK(s != nullptr && cuda::stream(0) == s);
  unsigned flags = 0;
  CGAD_CUDA_CHECK(cudaStreamGetFlags(s, &flags));
  CHECK(flags == cudaStreamNonBlocking);
  {
    cuda::DeviceGuard guard(Device::parse("cuda:0"));
    int d = -1;
    CGAD_CUDA_CHECK(cudaGetDevice(&d));
    CHECK(d == 0);
  }
  CHECK_THROWS(RuntimeError, cuda::stream(cuda::device_count()));
  Allocator& a = allocator_for(Device::parse("cuda"));
  a.empty_cache();
  const MemoryStats before = a.stats();
  {
    Tensor t = empty({1000}, DType::Float32, Device::parse("cuda"));
  }
  {
    Tensor t = empty({1000}, DType::Float32, Device::parse("cuda"));  // the cached block again
  }
  CHECK(a.stats().os_allocs == before.os_allocs + 1);
  CHECK(a.stats().allocated_bytes == before.allocated_bytes);
  // 10 MiB: three staging chunks; the CPU source dies as soon as its copy is queued
  std::vector<float> host(size_t(10) << 18);
  for (size_t i = 0; i < host.size(); ++i) host[i] = float(i % 1000);
  Tensor src = empty({int64_t(host.size())}, DType::Float32, Device{});
  std::memcpy(src.raw_data(), host.data(), host.size() * sizeof(float));
  Tensor on_gpu = to_device(src, Device::parse("cuda"));
  std::memset(src.raw_data(), 0, host.size() * sizeof(float));
  src = Tensor();
  Tensor back = to_device(on_gpu, Device{});
  CHECK(std::memcmp(back.raw_data(), host.data(), host.size() * sizeof(float)) == 0);
  CHECK(cuda::pinned_stats().os_bytes > 0);
  a.empty_cache();
  CHECK(a.stats().os_bytes == a.stats().allocated_bytes);
}

}  // namespace

int main() {
  checked_calls_name_the_error();
  tf32_switch();
  cublaslt_loads();
  if (cuda::device_count() == 0) without_a_gpu();
  else with_a_gpu();
  return cgad_test::finish("test_cuda_runtime");
}
