// embedding: rows of a (V, C) table gathered by integer ids, with its VJP (a scatter-add into
// the table's grad). Ids are checked against V by the kernel (IndexError). Kernels: kernels/nn.h.
#include "kernels/nn.h"
#include "ops/nn_common.h"

namespace cgad {

CGAD_DEFINE_KERNEL(embedding_forward_kernel, void(const Tensor&, const Tensor&, const Tensor&));
CGAD_DEFINE_KERNEL(embedding_backward_kernel, void(const Tensor&, const Tensor&, const Tensor&));

namespace {

struct EmbeddingBackward : Node {
  SavedTensor ids{this};    // the ids as int64, contiguous
  Shape wshape;  // (V, C)
  const char* name() const override { return "EmbeddingBackward"; }
  bool release_saved() override { bool had = ids.defined(); ids = Tensor(); return had; }
  std::vector<Tensor> backward(const Tensor& g_in) override {
    Tensor g = contiguous_data(g_in);  // ids' shape + (C,)
    Tensor dw = zeros(wshape, g.dtype(), g.device());
    embedding_backward_kernel()(g.device(), dw, g, ids);
    return {Tensor(), dw};
  }
};

}  // namespace

Tensor embedding(const Tensor& idx, const Tensor& w) {
  if (idx.dtype() != DType::Int64 && idx.dtype() != DType::Int32)
    throw TypeError(str("embedding: expected int64 or int32 ids, got ", dtype_name(idx.dtype())));
  check_floating(w, "embedding", "weight");
  check_same_device(idx, w, "embedding");
  if (w.dim() != 2) throw ValueError(str("embedding: expected a 2-D weight (V, C), got ", shape_str(w.shape())));
  Tensor ids = contiguous_data(cast(idx, DType::Int64));
  Tensor wc = contiguous_data(w);
  Shape oshape = idx.shape();
  oshape.push_back(w.size(1));
  Tensor out = empty(oshape, w.dtype(), w.device());
  embedding_forward_kernel()(w.device(), out, wc, ids);
  if (auto n = record<EmbeddingBackward>(out, {&idx, &w})) {
    n->ids = ids.detach();
    n->wshape = w.shape();
  }
  return out;
}

}  // namespace cgad
