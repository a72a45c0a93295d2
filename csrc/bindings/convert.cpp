// Python values to engine values: dtypes, devices, numbers as operands, numpy arrays.
#include <cstring>
#include "bindings/common.h"

namespace cgad::bind {

DType dtype_from(py::handle h) {
  if (py::isinstance<DType>(h)) return h.cast<DType>();
  std::string name;
  if (py::isinstance<py::str>(h)) {
    name = h.cast<std::string>();
  } else if (py::hasattr(h, "kind") && py::hasattr(h, "itemsize") && py::hasattr(h, "name")) {
    name = py::str(h.attr("name")).cast<std::string>();  // a numpy dtype
  } else if (py::isinstance<py::type>(h)) {
    try {
      name = py::str(py::module_::import("numpy").attr("dtype")(h).attr("name")).cast<std::string>();
    } catch (py::error_already_set&) {
      throw TypeError(str("expected a dtype, got ", py::str(h).cast<std::string>()));
    }
  } else {
    throw TypeError(str("expected a dtype (cgad.float32, 'float32', ...), got ", py::str(py::type::of(h).attr("__name__")).cast<std::string>()));
  }
  if (name.rfind("cgad.", 0) == 0) name = name.substr(5);
  if (name == "float32" || name == "float") return DType::Float32;
  if (name == "float64" || name == "double") return DType::Float64;
  if (name == "bfloat16") return DType::BFloat16;
  if (name == "int32" || name == "int") return DType::Int32;
  if (name == "int64" || name == "long") return DType::Int64;
  if (name == "bool") return DType::Bool;
  throw TypeError(str("unsupported dtype '", name, "': cgad supports float32, float64, bfloat16, int32, int64 and bool"));
}

Device device_from(py::handle h) {
  if (py::isinstance<Device>(h)) return h.cast<Device>();
  if (py::isinstance<py::str>(h)) return Device::parse(h.cast<std::string>());
  throw TypeError(str("expected a device ('cpu', 'cuda', 'cuda:N'), got ", py::str(py::type::of(h).attr("__name__")).cast<std::string>()));
}

Tensor operand(const Tensor& self, py::handle other, const char* op) {
  if (py::isinstance<Tensor>(other)) return other.cast<Tensor>();
  Scalar s;
  if (py::isinstance<py::bool_>(other) || py::isinstance(other, py::module_::import("numpy").attr("bool_"))) {
    s.is_bool = true;
    s.is_float = false;
    s.value = other.cast<bool>() ? 1.0 : 0.0;
  } else if (py::isinstance<py::int_>(other) || py::isinstance(other, py::module_::import("numpy").attr("integer"))) {
    // Exact: an int64 tensor gets the int itself, not its nearest double; one its integer result
    // dtype cannot hold is a ValueError (a float result takes any int).
    s.is_float = false;
    bool overflow = false;
    const long long v = int_value(other, &overflow);
    const DType dt = result_type(self, s);
    if (is_integral(dt)) {
      if (overflow || (dt == DType::Int32 && (v < INT32_MIN || v > INT32_MAX)))
        throw ValueError(str(op, ": the Python int ", py::str(other).cast<std::string>(), " does not fit in ", dtype_name(dt)));
      // ints a double holds exactly are filled on the device; larger ones go through a host copy
      if (v >= -(1LL << 53) && v <= (1LL << 53)) return full({}, double(v), dt, self.device());
      Tensor t = empty({}, dt, Device{});
      if (dt == DType::Int32) *t.data<int32_t>() = int32_t(v);
      else *t.data<int64_t>() = int64_t(v);
      return to_device(t, self.device());
    }
    s.value = double(v);
    if (overflow) {
      auto f = py::reinterpret_steal<py::object>(PyNumber_Float(other.ptr()));
      if (!f) {
        PyErr_Clear();
        throw ValueError(str(op, ": the Python int ", py::str(other).cast<std::string>(), " is too large for ", dtype_name(dt)));
      }
      s.value = f.cast<double>();
    }
  } else if (py::isinstance<py::float_>(other) || py::isinstance(other, py::module_::import("numpy").attr("floating"))) {
    s.value = other.cast<double>();
  } else {
    throw TypeError(str(op, ": unsupported operand type ", py::str(py::type::of(other).attr("__name__")).cast<std::string>(),
                        " (expected a Tensor or a Python number)"));
  }
  return scalar_tensor(s, result_type(self, s), self.device());
}

long long int_value(py::handle h, bool* overflow) {
  auto i = py::reinterpret_steal<py::object>(PyNumber_Index(h.ptr()));
  if (!i) throw py::error_already_set();
  int of = 0;
  const long long v = PyLong_AsLongLongAndOverflow(i.ptr(), &of);
  *overflow = of != 0;
  return v;
}

int64_t dim_arg(py::handle h, const char* op) {
  if (py::isinstance<py::bool_>(h) || !(py::isinstance<py::int_>(h) || py::isinstance(h, py::module_::import("numpy").attr("integer"))))
    throw TypeError(str(op, ": dim must be an int, got ", py::str(py::type::of(h).attr("__name__")).cast<std::string>()));
  bool overflow = false;
  const long long v = int_value(h, &overflow);
  if (overflow) throw IndexError(str(op, ": dim ", py::str(h).cast<std::string>(), " is out of range"));
  return v;
}

Tensor from_numpy(py::array arr) {
  DType dt = dtype_from(arr.dtype());
  if (dt == DType::BFloat16) throw TypeError("from_numpy: numpy has no bfloat16");
  // ascontiguousarray would turn a 0-d array into a 1-d one; a C-order copy keeps the shape.
  // Big-endian (non-native) data is converted to native order, or its bytes would be misread.
  py::array c = arr.dtype().attr("isnative").cast<bool>() ? arr.attr("copy")("C")
                                                           : arr.attr("astype")(arr.dtype().attr("newbyteorder")("="), "C");
  Shape shape(c.shape(), c.shape() + c.ndim());
  Tensor t = empty(shape, dt, Device{});
  if (t.numel() > 0) std::memcpy(t.raw_data(), c.data(), size_t(t.numel()) * itemsize(dt));
  return t;
}

const char* numpy_dtype_name(DType d, const char* op) {
  switch (d) {
    case DType::Float32: return "float32";
    case DType::Float64: return "float64";
    case DType::Int32: return "int32";
    case DType::Int64: return "int64";
    case DType::Bool: return "bool";
    default: throw TypeError(str(op, ": numpy has no ", dtype_name(d)));
  }
}

py::array to_numpy(const Tensor& t) {
  Tensor c = to_device(contiguous_data(t.dtype() == DType::BFloat16 ? cast(t, DType::Float32) : t).detach(), Device{});
  py::array out(py::dtype(numpy_dtype_name(c.dtype(), "numpy")), c.shape());
  if (c.numel() > 0) std::memcpy(out.mutable_data(), c.raw_data(), size_t(c.numel()) * itemsize(c.dtype()));
  return out;
}

}  // namespace cgad::bind
