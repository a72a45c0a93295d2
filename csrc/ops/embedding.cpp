// embedding: rows of a (V, C) table gathered by integer ids, with its VJP (a scatter-add into
// the table's grad). Ids are checked against V where Python calls in (IndexError).
#include <cstring>
#include "ops/nn_common.h"

namespace cgad {

namespace {

// ids as int64 (N,), whatever the input's integer dtype.
std::vector<int64_t> read_ids(const Tensor& idx_in, int64_t V) {
  Tensor idx = contiguous_data(cast(idx_in, DType::Int64));
  const int64_t* p = idx.data<int64_t>();
  std::vector<int64_t> ids(p, p + idx.numel());
  for (int64_t i : ids)
    if (i < 0 || i >= V)
      throw IndexError(str("embedding: index ", i, " is out of range for a table of ", V, " rows (ids ",
                           shape_str(idx_in.shape()), ")"));
  return ids;
}

struct EmbeddingBackward : Node {
  std::vector<int64_t> ids;  // (N,)
  Shape wshape;              // (V, C)
  const char* name() const override { return "EmbeddingBackward"; }
  bool release_saved() override { bool had = !ids.empty(); ids.clear(); ids.shrink_to_fit(); return had; }
  std::vector<Tensor> backward(const Tensor& g_in) override {
    Tensor g = contiguous_data(g_in);  // (N, C)
    Tensor dw = zeros(wshape, g.dtype(), g.device());
    const int64_t C = wshape[1], N = int64_t(ids.size());
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
          T* row = pw + ids[size_t(i)] * C;
          const T* gr = pg + i * C;
          for (int64_t c = c0; c < c1; ++c) row[c] += gr[c];
        }
      }
    });
    return {Tensor(), dw};
  }
};

}  // namespace

Tensor embedding(const Tensor& idx, const Tensor& w) {
  if (idx.dtype() != DType::Int64 && idx.dtype() != DType::Int32)
    throw TypeError(str("embedding: expected int64 or int32 ids, got ", dtype_name(idx.dtype())));
  check_floating(w, "embedding", "weight");
  check_same_device(idx, w, "embedding");
  if (w.dim() != 2) throw ValueError(str("embedding: expected a 2-D weight (V, C), got ", shape_str(w.shape())));
  const int64_t V = w.size(0), C = w.size(1);
  std::vector<int64_t> ids = read_ids(idx, V);
  Tensor wc = contiguous_data(w);
  Shape oshape = idx.shape();
  oshape.push_back(C);
  Tensor out = empty(oshape, w.dtype(), w.device());
  const size_t row_bytes = size_t(C) * itemsize(w.dtype());
  const char* src = static_cast<const char*>(wc.raw_data());
  char* dst = static_cast<char*>(out.raw_data());
  parallel_rows(int64_t(ids.size()), int64_t(ids.size()) * C,
                [&](int64_t i) { std::memcpy(dst + size_t(i) * row_bytes, src + size_t(ids[size_t(i)]) * row_bytes, row_bytes); });
  if (auto n = record<EmbeddingBackward>(out, {&idx, &w})) {
    n->ids = std::move(ids);
    n->wshape = w.shape();
  }
  return out;
}

}  // namespace cgad
