// The C++ optimizers and clip_grad_norm_ behind cgad.optim and cgad.nn.utils.
#include "bindings/common.h"
#include "optim/adam.h"

namespace cgad::bind {

void bind_optim(py::module_& m) {
  py::class_<Adam>(m, "Adam")
      .def(py::init<bool>(), py::arg("decoupled_weight_decay"))
      .def("add_group", &Adam::add_group)
      .def("set_hyper", &Adam::set_hyper)
      .def("step", &Adam::step, py::call_guard<py::gil_scoped_release>())
      .def("set_alpha", &Adam::set_alpha)
      .def("get_alpha", &Adam::get_alpha)
      .def_property_readonly("num_params", &Adam::num_params)
      .def("get_state", [](const Adam& a, size_t i) -> py::object {
        const AdamState& s = a.state(i);
        if (!s.exp_avg.defined()) return py::none();
        return py::make_tuple(s.step, to_numpy(s.exp_avg), to_numpy(s.exp_avg_sq));
      })
      .def("set_state", &Adam::set_state);
  m.def("clip_grad_norm", &clip_grad_norm);
}

}  // namespace cgad::bind
