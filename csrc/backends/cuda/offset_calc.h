// The strided N-d offset calculator of the CUDA elementwise launchers (launch.cuh), after
// PyTorch's OffsetCalculator: a linear element index of the iteration shape maps to one element
// offset per operand. The dims are coalesced first with the CPU's rules (backends/coalesce.h),
// so a contiguous or simply broadcast tensor is one dim and costs one multiply per operand.
// Plain C++ with CGAD_HD: built into the CUDA kernels, and tested on the CPU
// (tests/cpp/test_offset_calc.cpp).
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>
#include "backends/coalesce.h"
#include "core/error.h"
#include "core/hd.h"

namespace cgad::cuda {

// Dims left after coalescing that a launch can take; tensors in cgad have far fewer.
constexpr int kMaxDims = 16;

// One offset (in elements) per operand.
template <int N>
struct Offsets {
  int64_t o[N];
  CGAD_HD int64_t operator[](int k) const { return o[k]; }
};

// Passed to kernels by value: a fixed-size, trivially copyable struct.
template <int N>
struct OffsetCalc {
  int ndim = 1;
  int64_t sizes[kMaxDims] = {};          // innermost dim last, as in the tensor's shape
  int64_t strides[kMaxDims][N] = {};     // element strides per dim and operand

  // I is the index type: uint32_t when the iteration has under 2^32 elements (GPU integer
  // division is several times cheaper in 32 bits), uint64_t otherwise.
  template <typename I>
  CGAD_HD Offsets<N> get(I linear) const {
    Offsets<N> out{};
    for (int d = ndim - 1; d >= 0; --d) {
      const I size = I(sizes[d]);
      const I idx = d == 0 ? linear : linear % size;
      linear = d == 0 ? I(0) : linear / size;
      for (int k = 0; k < N; ++k) out.o[k] += int64_t(idx) * strides[d][k];
    }
    return out;
  }
};

// The calculator for iterating `shape` with operand k at element strides `strides[k]`
// (broadcast operands have stride 0); RuntimeError past kMaxDims coalesced dims.
template <int N>
OffsetCalc<N> make_offset_calc(std::vector<int64_t> shape, std::array<std::vector<int64_t>, size_t(N)> strides) {
  coalesce_dims(shape, strides);
  if (shape.size() > size_t(kMaxDims))
    throw RuntimeError(str("CUDA elementwise kernel: ", shape.size(), " non-mergeable dims, at most ", kMaxDims,
                           " are supported; call .contiguous() first"));
  OffsetCalc<N> c;
  c.ndim = int(shape.size());
  for (int d = 0; d < c.ndim; ++d) {
    c.sizes[d] = shape[size_t(d)];
    for (int k = 0; k < N; ++k) c.strides[d][k] = strides[size_t(k)][size_t(d)];
  }
  return c;
}

}  // namespace cgad::cuda
