// Helpers shared by the binding files: Python values to dtypes, devices and operands.
#pragma once
#include <pybind11/pybind11.h>
#include <pybind11/numpy.h>
#include <pybind11/stl.h>
#include "ops/ops.h"

namespace py = pybind11;

namespace cgad::bind {

DType dtype_from(py::handle h);    // a cgad dtype, a name ("float32", "long", ...) or a numpy dtype
Device device_from(py::handle h);  // a cgad device or a string
// The other operand of a binary op: a tensor as is, a Python number as a 0-d tensor of the
// dtype torch.result_type gives; anything else is a TypeError naming the op.
Tensor operand(const Tensor& self, py::handle other, const char* op);
// A Python int (or numpy integer) as int64; *overflow is set when it does not fit.
long long int_value(py::handle h, bool* overflow);
// A dim argument: TypeError for a non-int, IndexError for an int beyond int64.
int64_t dim_arg(py::handle h, const char* op);
Tensor from_numpy(py::array arr);
const char* numpy_dtype_name(DType d, const char* op);  // TypeError naming op for bfloat16
py::array to_numpy(const Tensor& t);  // a host copy from any device

void bind_tensor(py::module_& m);
void bind_ops(py::module_& m);
void bind_runtime(py::module_& m);
void bind_nn(py::module_& m);
void bind_optim(py::module_& m);
void bind_decode(py::module_& m);

}  // namespace cgad::bind
