// Dimension coalescing for strided N-d iteration, shared by the CPU loops (backends/cpu/loops.h)
// and the CUDA offset calculator (backends/cuda/offset_calc.h), so both backends walk a tensor
// with the same merged dims. Host code only, no CUDA or OpenMP.
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace cgad {

// Merges dim d into the dim before it where every operand's strides allow it (the outer stride
// is the inner one times the inner size) and drops size-1 dims. `strides[k]` are operand k's
// element strides over `shape`. An empty result becomes one dim of size 1 with stride 0.
template <size_t N>
void coalesce_dims(std::vector<int64_t>& shape, std::array<std::vector<int64_t>, N>& strides) {
  std::vector<int64_t> ns;
  std::array<std::vector<int64_t>, N> nst;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) continue;
    if (!ns.empty()) {
      bool ok = true;
      for (size_t k = 0; k < N; ++k) ok = ok && nst[k].back() == strides[k][d] * shape[d];
      if (ok) {
        ns.back() *= shape[d];
        for (size_t k = 0; k < N; ++k) nst[k].back() = strides[k][d];
        continue;
      }
    }
    ns.push_back(shape[d]);
    for (size_t k = 0; k < N; ++k) nst[k].push_back(strides[k][d]);
  }
  if (ns.empty()) {
    ns.push_back(1);
    for (size_t k = 0; k < N; ++k) nst[k].push_back(0);
  }
  shape = std::move(ns);
  strides = std::move(nst);
}

}  // namespace cgad
