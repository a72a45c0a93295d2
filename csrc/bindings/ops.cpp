// Free functions of the engine, called by python/cgad with arguments already normalized.
#include "bindings/common.h"

namespace cgad::bind {

void bind_ops(py::module_& m) {
  m.def("from_numpy", &from_numpy);
  m.def("empty", [](const Shape& s, py::handle dt, py::handle dev) { return empty(s, dtype_from(dt), device_from(dev)); });
  m.def("zeros", [](const Shape& s, py::handle dt, py::handle dev) { return zeros(s, dtype_from(dt), device_from(dev)); });
  m.def("full", [](const Shape& s, double v, py::handle dt, py::handle dev) { return full(s, v, dtype_from(dt), device_from(dev)); });
  m.def("randn", [](const Shape& s, py::handle dt, py::handle dev) { return randn(s, dtype_from(dt), device_from(dev)); });
  m.def("rand", [](const Shape& s, py::handle dt, py::handle dev) { return rand(s, dtype_from(dt), device_from(dev)); });
  m.def("arange", [](double a, double b, double step, py::handle dt, py::handle dev) {
    return arange(a, b, step, dtype_from(dt), device_from(dev));
  });
  m.def("to_dtype", [](const Tensor& t, py::handle dt) { return to_dtype(t, dtype_from(dt)); });
  m.def("device_of", [](py::handle dev) { return device_from(dev); });
  m.def("dtype_of", [](py::handle dt) { return dtype_from(dt); });
  m.def("scalar_like", [](const Tensor& ref, py::handle v, const char* op) { return operand(ref, v, op); });
  m.def("wrap_dim", &wrap_dim);
  // A numpy array over a contiguous CPU tensor's own memory (no copy; it keeps the tensor
  // alive): what MPI reads and writes in place for cgad.distributed.
  m.def("host_view", [](py::object obj) {
    const Tensor& t = obj.cast<const Tensor&>();
    if (!t.device().is_cpu()) throw RuntimeError(str("host_view: the tensor is on ", t.device().str(), ", not the CPU"));
    if (!t.is_contiguous()) throw ValueError("host_view: the tensor is not contiguous");
    return py::array(py::dtype(numpy_dtype_name(t.dtype(), "host_view")), t.shape(), {}, t.raw_data(), obj);
  });
  m.def("to_device", &to_device);
  m.def("move_to_device_", &move_to_device_);
  m.def("copy_", &copy_);
  m.def("fill_", &fill_);
  m.def("tril", &tril);
  m.def("multinomial", &multinomial);
  m.def("where", &where);
  m.def("sum", &sum);
  m.def("mean", &mean);
  m.def("max_all", &max_all);
  m.def("max_dim", &max_dim);
  m.def("argmax", &argmax);
  m.def("topk", &topk);
  m.def("reshape", &reshape);
  m.def("view", &view);
  m.def("permute", &permute);
  m.def("expand", &expand);
  m.def("narrow", &narrow);
  m.def("split", &split);
  m.def("cat", &cat);
  m.def("stack", &stack);
  m.def("linear", [](const Tensor& x, const Tensor& w, std::optional<Tensor> b) { return linear(x, w, b ? *b : Tensor()); },
        py::arg("x"), py::arg("w"), py::arg("b") = py::none());
}

}  // namespace cgad::bind
