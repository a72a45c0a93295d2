// Kernel stubs of the reductions (ops/reduce.cpp). The op lays the data out as a contiguous
// (rows, cols) matrix; the kernels reduce each row (or, for column_sums, each column).
#pragma once
#include "core/dispatch.h"
#include "core/tensor.h"

namespace cgad {

// out[r] = sum of row r of the contiguous (nrows, ncols) src, accumulated in double (floating)
// or wrapping uint64 (integers); out has src's dtype.
CGAD_DECLARE_KERNEL(sum_rows_kernel, void(const Tensor& out, const Tensor& src, int64_t nrows, int64_t ncols));
// out[c] = sum over rows of column c of the contiguous (rows, cols) src.
CGAD_DECLARE_KERNEL(column_sums_kernel, void(const Tensor& out, const Tensor& src, int64_t rows, int64_t cols));
// Per row of the contiguous (nrows, ncols) src: its max (NaN counts as largest) and first index.
CGAD_DECLARE_KERNEL(max_rows_kernel, void(const Tensor& values, const Tensor& indices, const Tensor& src,
                                          int64_t nrows, int64_t ncols));
// The grad of max over a dim: grad_in (outer, n, inner), zeroed, gets g (outer, inner) at
// the argmax indices (outer, inner).
CGAD_DECLARE_KERNEL(max_backward_kernel, void(const Tensor& grad_in, const Tensor& g, const Tensor& indices,
                                              int64_t outer, int64_t n, int64_t inner));
// Per row of the contiguous (nrows, n) src: the k largest values and their indices, largest
// first, ties by lower index.
CGAD_DECLARE_KERNEL(topk_rows_kernel, void(const Tensor& values, const Tensor& indices, const Tensor& src,
                                           int64_t nrows, int64_t n, int64_t k));

}  // namespace cgad
