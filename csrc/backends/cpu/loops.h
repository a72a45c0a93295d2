// Strided N-d iteration for up to a few operands: the one loop behind elementwise ops, copies
// and dtype conversions. Dims that are contiguous for every operand are merged first, so a
// contiguous tensor is walked as a flat array and the inner loop vectorizes.
#pragma once
#include <algorithm>
#include <array>
#include "backends/coalesce.h"
#include "backends/cpu/parallel.h"
#include "core/tensor.h"

namespace cgad::cpu {

template <size_t N>
struct StridedIter {
  Shape shape;
  std::array<Shape, N> strides;  // element strides of each operand over `shape`

  // Merges dims that are contiguous for every operand (backends/coalesce.h).
  void coalesce() { coalesce_dims(shape, strides); }

  // Calls f(offsets, n, inner_strides) for runs of n elements along the innermost dim.
  template <typename F>
  void run(F&& f) {
    coalesce();
    const int64_t nd = int64_t(shape.size());
    int64_t total = 1;
    for (auto s : shape) total *= s;
    if (total == 0) return;
    const int64_t inner = shape[nd - 1];
    std::array<int64_t, N> ist;
    for (size_t k = 0; k < N; ++k) ist[k] = strides[k][nd - 1];
    const int nthreads = threads_for(total);
    const int64_t nchunks = nthreads;
#pragma omp parallel for schedule(static) num_threads(nthreads) if (nthreads > 1)
    for (int64_t c = 0; c < nchunks; ++c) {
      int64_t pos = total * c / nchunks, end = total * (c + 1) / nchunks;
      if (pos >= end) continue;
      std::vector<int64_t> idx(nd);
      int64_t rem = pos;
      for (int64_t d = nd - 1; d >= 0; --d) { idx[d] = rem % shape[d]; rem /= shape[d]; }
      while (pos < end) {
        std::array<int64_t, N> offs{};
        for (int64_t d = 0; d < nd; ++d)
          for (size_t k = 0; k < N; ++k) offs[k] += idx[d] * strides[k][d];
        int64_t n = std::min(inner - idx[nd - 1], end - pos);
        f(offs, n, ist);
        pos += n;
        idx[nd - 1] += n;
        for (int64_t d = nd - 1; d > 0 && idx[d] == shape[d]; --d) { idx[d] = 0; idx[d - 1] += 1; }
      }
    }
  }
};

}  // namespace cgad::cpu
