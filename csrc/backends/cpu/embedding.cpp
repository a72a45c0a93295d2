// CPU kernels of embedding: a row gather from the (V, C) table, and its VJP, a scatter-add into
// the table's grad.
#include <cstring>
#include "backends/cpu/parallel_rows.h"
#include "backends/cpu/register.h"
#include "kernels/nn.h"

namespace cgad::cpu {

namespace {

void forward(const Tensor& out, const Tensor& w, const Tensor& ids) {
  const int64_t V = w.size(0), C = w.size(1), N = ids.numel();
  const int64_t* id = ids.data<int64_t>();
  for (int64_t i = 0; i < N; ++i)  // on one thread: an exception may not leave an OpenMP region
    if (id[i] < 0 || id[i] >= V)
      throw IndexError(str("embedding: index ", id[i], " is out of range for a table of ", V, " rows (ids ",
                           shape_str(ids.shape()), ")"));
  const size_t row_bytes = size_t(C) * itemsize(w.dtype());
  const char* src = static_cast<const char*>(w.raw_data());
  char* dst = static_cast<char*>(out.raw_data());
  parallel_rows(N, N * C, [&](int64_t i) {
    std::memcpy(dst + size_t(i) * row_bytes, src + size_t(id[i]) * row_bytes, row_bytes);
  });
}

void backward(const Tensor& dw, const Tensor& g, const Tensor& ids) {
  const int64_t V = dw.size(0), C = dw.size(1), N = ids.numel();
  const int64_t* id = ids.data<int64_t>();
  // The forward checked these ids, but an id is a row written here: checked again (one pass, on
  // one thread, before the OpenMP region), so no path can turn into a write outside the table.
  for (int64_t i = 0; i < N; ++i)
    if (id[i] < 0 || id[i] >= V)
      throw IndexError(str("embedding backward: index ", id[i], " is out of range for a table of ", V, " rows"));
  dispatch_float(g.dtype(), "embedding", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* pg = g.data<T>();
    T* pw = dw.data<T>();
    // Each thread owns a column block of every row, so the adds of repeated ids happen in
    // token order whatever the thread count.
    const int nt = threads_for(N * C);
#pragma omp parallel num_threads(nt)
    {
      const int tid = omp_get_thread_num(), nth = omp_get_num_threads();
      const int64_t c0 = C * tid / nth, c1 = C * (tid + 1) / nth;
      for (int64_t i = 0; i < N; ++i) {
        T* row = pw + id[i] * C;
        const T* gr = pg + i * C;
        for (int64_t c = c0; c < c1; ++c) row[c] += gr[c];
      }
    }
  });
}

}  // namespace

CGAD_REGISTER_CPU_KERNEL(embedding_forward_kernel, forward);
CGAD_REGISTER_CPU_KERNEL(embedding_backward_kernel, backward);

}  // namespace cgad::cpu
