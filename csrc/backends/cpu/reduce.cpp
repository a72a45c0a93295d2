// CPU kernels of the reductions: row sums, column sums, max/argmax, max's backward, topk.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>
#include "backends/cpu/column_sums.h"
#include "backends/cpu/parallel.h"
#include "backends/cpu/register.h"
#include "kernels/elementwise_math.h"
#include "kernels/reduce.h"

namespace cgad::cpu {

namespace {

// integer sums wrap around on overflow, as torch's do (unsigned: defined behaviour)
template <typename T>
using SumAcc = std::conditional_t<std::is_floating_point_v<T> || std::is_same_v<T, bf16>, double, uint64_t>;

// Sums each row in Acc precision. One row splits across threads only when rows are few, with
// fixed chunk bounds and an ordered final add, so the result depends only on the thread count.
template <typename T, typename Acc>
void sum_rows_typed(const T* x, int64_t nrows, int64_t ncols, T* out) {
  const int nt = threads_for(nrows * ncols);
  if (nrows >= nt) {
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
    for (int64_t r = 0; r < nrows; ++r) {
      Acc s = 0;
      const T* row = x + r * ncols;
#pragma omp simd reduction(+ : s)
      for (int64_t c = 0; c < ncols; ++c) s += Acc(row[c]);
      out[r] = T(s);
    }
    return;
  }
  for (int64_t r = 0; r < nrows; ++r) {
    std::vector<Acc> part(size_t(nt), Acc(0));
    const T* row = x + r * ncols;
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
    for (int c = 0; c < nt; ++c) {
      Acc s = 0;
      const int64_t b = ncols * c / nt, e = ncols * (c + 1) / nt;
#pragma omp simd reduction(+ : s)
      for (int64_t i = b; i < e; ++i) s += Acc(row[i]);
      part[c] = s;
    }
    Acc s = 0;
    for (Acc v : part) s += v;
    out[r] = T(s);
  }
}

void sum_rows(const Tensor& out, const Tensor& src, int64_t nrows, int64_t ncols) {
  dispatch_numeric(src.dtype(), "sum", [&](auto tag) {
    using T = typename decltype(tag)::type;
    sum_rows_typed<T, SumAcc<T>>(src.data<T>(), nrows, ncols, out.data<T>());
  });
}

// bf16 columns (linear's bias grad under autocast) accumulate in float32, as torch's do: far
// below the bf16 rounding of the result, and 16 lanes wide where double ran scalar (13 ms of
// char's 490 ms bf16 step).
template <typename T>
using ColumnAcc = std::conditional_t<std::is_same_v<T, bf16>, float, SumAcc<T>>;

void column_sums_k(const Tensor& out, const Tensor& src, int64_t rows, int64_t cols) {
  dispatch_numeric<true>(src.dtype(), "sum", [&](auto tag) {
    using T = typename decltype(tag)::type;
    column_sums<T, ColumnAcc<T>>(src.data<T>(), out.data<T>(), rows, cols);
  });
}

void max_rows(const Tensor& values, const Tensor& indices, const Tensor& src, int64_t nrows, int64_t ncols) {
  dispatch_numeric(src.dtype(), "max", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* x = src.data<T>();
    T* v = values.data<T>();
    int64_t* ix = indices.data<int64_t>();
    for (int64_t r = 0; r < nrows; ++r) {
      const T* row = x + r * ncols;
      int64_t best = 0;
      for (int64_t c = 1; c < ncols; ++c)
        if (math::greater(row[c], row[best])) best = c;
      v[r] = row[best];
      ix[r] = best;
    }
  });
}

void max_backward(const Tensor& grad_in, const Tensor& g, const Tensor& indices, int64_t outer, int64_t n, int64_t inner) {
  const int64_t* ix = indices.data<int64_t>();
  for (int64_t j = 0; j < outer * inner; ++j)  // each index is a write: never outside the dim
    if (ix[j] < 0 || ix[j] >= n) throw IndexError(str("max backward: index ", ix[j], " is out of range for a dim of size ", n));
  dispatch_float(grad_in.dtype(), "max backward", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* pg = g.data<T>();
    T* po = grad_in.data<T>();
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t i = 0; i < inner; ++i) po[(o * n + ix[o * inner + i]) * inner + i] = pg[o * inner + i];
  });
}

void topk_rows(const Tensor& values, const Tensor& indices, const Tensor& src, int64_t nrows, int64_t n, int64_t k) {
  dispatch_numeric(src.dtype(), "topk", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* x = src.data<T>();
    T* pv = values.data<T>();
    int64_t* pi = indices.data<int64_t>();
    std::vector<int64_t> order(static_cast<size_t>(n));
    for (int64_t r = 0; r < nrows; ++r) {
      const T* row = x + r * n;
      std::iota(order.begin(), order.end(), 0);
      std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](int64_t a, int64_t b) {
        return math::greater(row[a], row[b]) || (!math::greater(row[b], row[a]) && a < b);
      });
      for (int64_t j = 0; j < k; ++j) { pv[r * k + j] = row[order[j]]; pi[r * k + j] = order[j]; }
    }
  });
}

}  // namespace

CGAD_REGISTER_CPU_KERNEL(sum_rows_kernel, sum_rows);
CGAD_REGISTER_CPU_KERNEL(column_sums_kernel, column_sums_k);
CGAD_REGISTER_CPU_KERNEL(max_rows_kernel, max_rows);
CGAD_REGISTER_CPU_KERNEL(max_backward_kernel, max_backward);
CGAD_REGISTER_CPU_KERNEL(topk_rows_kernel, topk_rows);

}  // namespace cgad::cpu
