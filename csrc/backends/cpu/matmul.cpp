// CPU kernels of matmul and linear: OpenBLAS GEMMs (backends/cpu/gemm.h), one per batch index.
#include <cstring>
#include "backends/cpu/gemm.h"
#include "backends/cpu/gemm_bf16.h"
#include "backends/cpu/register.h"
#include "kernels/linalg.h"

namespace cgad::cpu {

namespace {

void gemm_batched(const Tensor& c, const Tensor& a, bool trans_a, const Tensor& b, bool trans_b, double alpha,
                  double beta) {
  const size_t nbatch = size_t(c.dim() - 2);
  const int64_t M = c.size(-2), N = c.size(-1), K = trans_a ? a.size(-2) : a.size(-1);
  const int64_t lda = a.strides()[nbatch], ldb = b.strides()[nbatch], ldc = c.strides()[nbatch];
  const Shape batch(c.shape().begin(), c.shape().end() - 2);
  const int64_t nb = numel_of(batch);
  dispatch_float<true>(c.dtype(), "matmul", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* pa = a.data<T>();
    const T* pb = b.data<T>();
    T* pc = c.data<T>();
    Shape idx(nbatch, 0);
    for (int64_t i = 0; i < nb; ++i) {
      int64_t oa = 0, ob = 0, oc = 0;
      for (size_t d = 0; d < nbatch; ++d) {
        oa += idx[d] * a.strides()[d];
        ob += idx[d] * b.strides()[d];
        oc += idx[d] * c.strides()[d];
      }
      if constexpr (std::is_same_v<T, bf16>)
        gemm_bf16<bf16>(trans_a, trans_b, M, N, K, float(alpha), pa + oa, lda, pb + ob, ldb, float(beta), pc + oc, ldc,
                        nullptr);
      else
        gemm<T>(trans_a, trans_b, M, N, K, T(alpha), pa + oa, lda, pb + ob, ldb, T(beta), pc + oc, ldc);
      for (size_t d = nbatch; d-- > 0;) {
        if (++idx[d] < batch[d]) break;
        idx[d] = 0;
      }
    }
  });
}

void linear_forward(const Tensor& out, const Tensor& x, const Tensor& w, const Tensor& b) {
  const int64_t rows = x.size(0), in_f = x.size(1), out_f = w.size(0);
  if (x.dtype() == DType::BFloat16) {  // the bias add is the GEMM's epilogue, before the one rounding
    gemm_bf16<bf16>(false, true, rows, out_f, in_f, 1.0f, x.data<bf16>(), in_f, w.data<bf16>(), in_f, 0.0f,
                    out.data<bf16>(), out_f, b.data_or_null<bf16>());
    return;
  }
  dispatch_float(x.dtype(), "linear", [&](auto tag) {
    using T = typename decltype(tag)::type;
    T* po = out.data<T>();
    T beta = T(0);
    if (b.defined()) {  // the bias rows seed C, and the GEMM adds into them (beta = 1)
      const T* pb = b.data<T>();
      for (int64_t r = 0; r < rows; ++r) std::memcpy(po + r * out_f, pb, size_t(out_f) * sizeof(T));
      beta = T(1);
    }
    gemm<T>(false, true, rows, out_f, in_f, T(1), x.data<T>(), in_f, w.data<T>(), in_f, beta, po, out_f);
  });
}

}  // namespace

CGAD_REGISTER_CPU_KERNEL(gemm_kernel, gemm_batched);
CGAD_REGISTER_CPU_KERNEL(linear_kernel, linear_forward);
CGAD_REGISTER_CPU_KERNEL(bf16_gemm_name_kernel, gemm_bf16_impl);

}  // namespace cgad::cpu
