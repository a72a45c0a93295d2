// The fused nn ops behind cgad.nn.functional (argument defaults live in Python).
#include "bindings/common.h"

namespace cgad::bind {

void bind_nn(py::module_& m) {
  m.def("softmax", &softmax);
  m.def("log_softmax", &log_softmax);
  m.def("gelu", &gelu);
  m.def("layer_norm", [](const Tensor& x, const Shape& ns, std::optional<Tensor> w, std::optional<Tensor> b, double eps) {
    return layer_norm(x, ns, w ? *w : Tensor(), b ? *b : Tensor(), eps);
  });
  m.def("embedding", &embedding);
  m.def("cross_entropy", &cross_entropy);
  m.def("scaled_dot_product_attention", &scaled_dot_product_attention);
  m.def("dropout", &dropout);
}

}  // namespace cgad::bind
