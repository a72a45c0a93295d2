// The decode step of cached generation (ops/decode.h), called by GPT.generate_tokens.
#include "bindings/common.h"
#include "ops/decode.h"

namespace cgad::bind {

void bind_decode(py::module_& m) {
  m.def("decode_work_size", &decode_work_size);
  m.def("decode_supported", [](py::handle device) { return decode_supported(device_from(device)); },
        py::arg("device"));
  m.def("decode_embed_", &decode_embed_);
  m.def("decode_block_", &decode_block_);
  m.def("decode_logits_", &decode_logits_);
}

}  // namespace cgad::bind
