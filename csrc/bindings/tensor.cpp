// The Tensor class: properties, autograd entry points, Python operators and indexing. Argument
// juggling that torch allows (reshape(2, 3) or reshape((2, 3))) lives in python/cgad/_tensor.py.
#include "autograd/node.h"
#include "bindings/common.h"
#include "core/shape.h"

namespace cgad::bind {

namespace {

py::tuple shape_tuple(const Shape& s) {
  py::tuple t(s.size());
  for (size_t i = 0; i < s.size(); ++i) t[i] = py::int_(s[i]);
  return t;
}

// t[...] with ints, slices (positive steps), None and Ellipsis; tensor indices are a TypeError.
Tensor index(const Tensor& self, py::handle idx) {
  std::vector<py::handle> items;
  py::tuple tup;
  if (py::isinstance<py::tuple>(idx)) {
    tup = py::reinterpret_borrow<py::tuple>(idx);
    for (auto h : tup) items.push_back(h);
  } else {
    items.push_back(idx);
  }
  auto np_integer = py::module_::import("numpy").attr("integer");
  int64_t consumed = 0, ellipses = 0;
  for (auto h : items) {
    if (h.is_none()) continue;
    if (h.ptr() == Py_Ellipsis) { ++ellipses; continue; }
    ++consumed;
  }
  if (ellipses > 1) throw IndexError("an index can only have a single ellipsis ('...')");
  if (consumed > self.dim())
    throw IndexError(str("too many indices for tensor of dimension ", self.dim(), " (got ", consumed, ")"));
  Tensor t = self;
  int64_t d = 0;  // current dim of t
  for (auto h : items) {
    if (h.is_none()) {
      t = unsqueeze(t, d);
      ++d;
    } else if (h.ptr() == Py_Ellipsis) {
      d += self.dim() - consumed;
    } else if (py::isinstance<py::bool_>(h)) {
      throw TypeError("indexing with a bool is not supported");
    } else if (py::isinstance<py::int_>(h) || py::isinstance(h, np_integer)) {
      bool overflow = false;
      const long long i = int_value(h, &overflow);
      if (overflow)
        throw IndexError(str("index ", py::str(h).cast<std::string>(), " is out of bounds for dim ", d, " with size ", t.shape()[size_t(d)]));
      t = select(t, d, i);
    } else if (py::isinstance<py::slice>(h)) {
      // Bounds beyond int64 clamp, as for Python sequences; the step must be positive.
      py::object step = h.attr("step");
      if (!step.is_none() && py::isinstance<py::int_>(step) && step <= py::int_(0))
        throw ValueError(str("slice step must be positive, got ", py::str(step).cast<std::string>()));
      Py_ssize_t start = 0, stop = 0, st = 1;
      if (PySlice_Unpack(h.ptr(), &start, &stop, &st) < 0) throw py::error_already_set();
      t = slice(t, d, start, stop, st);
      ++d;
    } else if (py::isinstance<Tensor>(h) || py::hasattr(h, "__array__") || py::isinstance<py::list>(h)) {
      throw TypeError("indexing with tensors, arrays or lists is not supported; use ints, slices, None and ...");
    } else {
      throw TypeError(str("invalid index of type ", py::str(py::type::of(h).attr("__name__")).cast<std::string>()));
    }
  }
  return t;
}

// tensor ** Python int: a negative exponent of an integer tensor is a ValueError, as in torch
// (a tensor exponent follows torch's integer pow instead).
void check_int_pow(const Tensor& a, const Tensor& b, py::handle o) {
  if (!py::isinstance<py::int_>(o) || py::isinstance<py::bool_>(o) || !is_integral(result_type(a, b))) return;
  if (o < py::int_(0)) throw ValueError(str("pow: integers to negative integer powers are not allowed (exponent ", py::str(o).cast<std::string>(), ")"));
}

template <typename F>
auto binop(const char* name, F f) {
  return [name, f](const Tensor& a, py::handle o) -> py::object {
    Tensor b;
    try {
      b = operand(a, o, name);
    } catch (const TypeError&) {
      return py::reinterpret_borrow<py::object>(Py_NotImplemented);
    }
    return py::cast(f(a, b));
  };
}

Tensor tensor_arg(py::handle h, const char* op, const char* name) {
  if (!py::isinstance<Tensor>(h))
    throw TypeError(str(op, ": ", name, " must be a cgad.Tensor, got ", py::str(py::type::of(h).attr("__name__")).cast<std::string>()));
  return h.cast<Tensor>();
}

bool bool_arg(py::handle h, const char* op) {
  if (!py::isinstance<py::bool_>(h) && !py::isinstance(h, py::module_::import("numpy").attr("bool_")))
    throw TypeError(str(op, ": expected a bool, got ", py::str(py::type::of(h).attr("__name__")).cast<std::string>()));
  return h.cast<bool>();
}

double number_arg(py::handle h, const char* op, const char* name) {
  if (py::isinstance<Tensor>(h) || !(py::isinstance<py::int_>(h) || py::isinstance<py::float_>(h) ||
                                     py::isinstance(h, py::module_::import("numpy").attr("number"))))
    throw TypeError(str(op, ": ", name, " must be a number, got ", py::str(py::type::of(h).attr("__name__")).cast<std::string>()));
  auto f = py::reinterpret_steal<py::object>(PyNumber_Float(h.ptr()));
  if (!f) {
    PyErr_Clear();
    throw ValueError(str(op, ": ", name, " ", py::str(h).cast<std::string>(), " is too large for a float"));
  }
  return f.cast<double>();
}

}  // namespace

void bind_tensor(py::module_& m) {
  py::class_<Tensor>(m, "Tensor", py::dynamic_attr())
      .def(py::init([](const Tensor& t) { return t; }), "A new handle sharing t's data and autograd state.")
      .def_property_readonly("shape", [](const Tensor& t) { return shape_tuple(t.shape()); })
      .def_property_readonly("dtype", &Tensor::dtype)
      .def_property_readonly("device", &Tensor::device)
      .def_property_readonly("ndim", &Tensor::dim)
      .def_property_readonly("is_leaf", &Tensor::is_leaf)
      .def_property("requires_grad", &Tensor::requires_grad, [](Tensor& t, py::handle r) { t.set_requires_grad(bool_arg(r, "requires_grad")); })
      .def_property("grad",
                    [](const Tensor& t) -> py::object { return t.grad().defined() ? py::cast(t.grad()) : py::none(); },
                    [](Tensor& t, py::object g) {
                      if (!g.is_none() && !py::isinstance<Tensor>(g))
                        throw TypeError(str("grad: expected a Tensor or None, got ", py::str(py::type::of(g).attr("__name__")).cast<std::string>()));
                      t.set_grad(g.is_none() ? Tensor() : g.cast<Tensor>());
                    })
      .def_property_readonly("grad_fn", [](const Tensor& t) -> py::object {
        return t.grad_fn() ? py::cast(std::string(t.grad_fn()->name())) : py::none();
      })
      .def_property_readonly("_version", &Tensor::version, "The storage's in-place write count (as torch's _version).")
      .def("dim", &Tensor::dim)
      .def("numel", &Tensor::numel)
      .def("stride", [](const Tensor& t) { return shape_tuple(t.strides()); })
      .def("is_contiguous", &Tensor::is_contiguous)
      .def("element_size", [](const Tensor& t) { return itemsize(t.dtype()); })
      .def("data_ptr", [](const Tensor& t) { return reinterpret_cast<uintptr_t>(t.address()); })
      .def("__len__", [](const Tensor& t) {
        if (t.dim() == 0) throw TypeError("len() of a 0-d tensor");
        return t.shape()[0];
      })
      .def("__hash__", [](py::handle self) { return reinterpret_cast<intptr_t>(self.ptr()); })
      .def("backward", [](const Tensor& t, py::object grad, bool retain_graph) {
        run_backward(t, grad.is_none() ? Tensor() : tensor_arg(grad, "backward", "grad"), retain_graph);
      }, py::arg("grad") = py::none(), py::arg("retain_graph") = false,
         "Back-propagates from this tensor into the .grad of every leaf that requires grad.")
      .def("detach", &Tensor::detach,
           "A tensor sharing this data with no autograd history: one of the two ways out of the graph.")
      .def("requires_grad_", [](Tensor& t, py::handle r) { t.set_requires_grad(bool_arg(r, "requires_grad_")); return t; },
           py::arg("requires_grad") = true)
      .def("contiguous", [](const Tensor& t) { return contiguous(t); })
      .def("clone", [](const Tensor& t) { return clone(t); })
      .def("numpy", &to_numpy, "A host copy as a numpy array (not part of the graph); bfloat16 comes out as float32.")
      .def("__getitem__", &index)
      .def("__add__", binop("add", [](const Tensor& a, const Tensor& b) { return add(a, b); }))
      .def("__radd__", binop("add", [](const Tensor& a, const Tensor& b) { return add(b, a); }))
      .def("__sub__", binop("sub", [](const Tensor& a, const Tensor& b) { return sub(a, b); }))
      .def("__rsub__", binop("sub", [](const Tensor& a, const Tensor& b) { return sub(b, a); }))
      .def("__mul__", binop("mul", [](const Tensor& a, const Tensor& b) { return mul(a, b); }))
      .def("__rmul__", binop("mul", [](const Tensor& a, const Tensor& b) { return mul(b, a); }))
      .def("__truediv__", binop("div", [](const Tensor& a, const Tensor& b) { return div(a, b); }))
      .def("__rtruediv__", binop("div", [](const Tensor& a, const Tensor& b) { return div(b, a); }))
      .def("__pow__", [](const Tensor& a, py::handle o) -> py::object {
        Tensor b;
        try {
          b = operand(a, o, "pow");
        } catch (const TypeError&) {
          return py::reinterpret_borrow<py::object>(Py_NotImplemented);
        }
        check_int_pow(a, b, o);
        return py::cast(pow(a, b));
      })
      .def("__rpow__", binop("pow", [](const Tensor& a, const Tensor& b) { return pow(b, a); }))
      .def("__matmul__", [](const Tensor& a, py::handle b) { return matmul(a, tensor_arg(b, "matmul", "other")); })
      .def("__eq__", binop("eq", [](const Tensor& a, const Tensor& b) { return compare(a, b, CompareOp::EQ); }))
      .def("__ne__", binop("ne", [](const Tensor& a, const Tensor& b) { return compare(a, b, CompareOp::NE); }))
      .def("__lt__", binop("lt", [](const Tensor& a, const Tensor& b) { return compare(a, b, CompareOp::LT); }))
      .def("__le__", binop("le", [](const Tensor& a, const Tensor& b) { return compare(a, b, CompareOp::LE); }))
      .def("__gt__", binop("gt", [](const Tensor& a, const Tensor& b) { return compare(a, b, CompareOp::GT); }))
      .def("__ge__", binop("ge", [](const Tensor& a, const Tensor& b) { return compare(a, b, CompareOp::GE); }))
      .def("__neg__", [](const Tensor& a) { return neg(a); })
      .def("__abs__", [](const Tensor& a) { return abs(a); })
      .def("neg", [](const Tensor& a) { return neg(a); })
      .def("abs", [](const Tensor& a) { return abs(a); })
      .def("exp", [](const Tensor& a) { return exp(a); })
      .def("log", [](const Tensor& a) { return log(a); })
      .def("tanh", [](const Tensor& a) { return tanh(a); })
      .def("sqrt", [](const Tensor& a) { return sqrt(a); })
      .def("rsqrt", [](const Tensor& a) { return rsqrt(a); })
      .def("pow", [](const Tensor& a, py::handle o) {
        Tensor b = operand(a, o, "pow");
        check_int_pow(a, b, o);
        return pow(a, b);
      })
      .def("matmul", [](const Tensor& a, py::handle b) { return matmul(a, tensor_arg(b, "matmul", "other")); })
      .def("masked_fill", [](const Tensor& t, py::handle mask, py::handle v) {
        const Tensor m = tensor_arg(mask, "masked_fill", "mask");
        const bool big_int = py::isinstance<py::int_>(v) && !py::isinstance<py::bool_>(v) && is_integral(t.dtype()) &&
                             (v > py::int_(1LL << 53) || v < py::int_(-(1LL << 53)));
        // such an int fills an integer tensor exactly (not through a double), or is a ValueError
        if (big_int && m.dtype() == DType::Bool && broadcast_shapes(t.shape(), m.shape(), "masked_fill") == t.shape())
          return where(m, operand(t, v, "masked_fill"), t);
        return masked_fill(t, m, number_arg(v, "masked_fill", "value"));
      })
      .def("transpose", [](const Tensor& t, py::handle a, py::handle b) {
        return transpose(t, dim_arg(a, "transpose"), dim_arg(b, "transpose"));
      }, py::arg("dim0"), py::arg("dim1"))
      .def("unsqueeze", [](const Tensor& t, py::handle d) { return unsqueeze(t, dim_arg(d, "unsqueeze")); }, py::arg("dim"))
      .def("squeeze", [](const Tensor& t, py::handle d) {
        return squeeze(t, d.is_none() ? std::nullopt : std::optional<int64_t>(dim_arg(d, "squeeze")));
      }, py::arg("dim") = py::none());
}

}  // namespace cgad::bind
