// The decode step of cached generation: argument checks and the kernel calls (kernels/decode.h).
// Generation runs under no_grad and these ops write into buffers that are not part of any
// graph, so they record nothing. Checks are the whole cost of these functions, and they run
// 14 times per token, so they are plain shape comparisons.
#include "ops/decode.h"
#include "kernels/decode.h"
#include "ops/nn_common.h"

namespace cgad {

CGAD_DEFINE_KERNEL(decode_embed_kernel,
                   void(const Tensor&, const Tensor&, const Tensor&, const Tensor&, int64_t));
CGAD_DEFINE_KERNEL(decode_block_kernel, void(const Tensor&, const DecodeBlockWeights&, const Tensor&,
                                             const Tensor&, int64_t, int64_t, double, const Tensor&));
CGAD_DEFINE_KERNEL(decode_logits_kernel, void(const Tensor&, const Tensor&, const Tensor&, const Tensor&,
                                              const Tensor&, double, const Tensor&));

namespace {

// t on `like`'s device, contiguous, with exactly `shape`.
void check_layout(const Tensor& t, const Tensor& like, const Shape& shape, const char* op, const char* what) {
  check_same_device(t, like, op);
  if (t.shape() != shape)
    throw ValueError(str(op, ": expected ", what, " of shape ", shape_str(shape), ", got ", shape_str(t.shape())));
  if (!t.is_contiguous()) throw ValueError(str(op, ": ", what, " must be contiguous"));
}

// t must be a contiguous tensor of `like`'s dtype and device with exactly `shape`.
void check_operand(const Tensor& t, const Tensor& like, const Shape& shape, const char* op, const char* what) {
  check_floating(t, op, what);
  check_same_dtype(t, like, op);
  check_layout(t, like, shape, op, what);
}

// A weight matrix: like check_operand, but bfloat16 is allowed where x is float32.
void check_matrix(const Tensor& t, const Tensor& x, const Shape& shape, const char* op, const char* what) {
  check_floating(t, op, what, /*allow_bf16=*/true);
  if (t.dtype() != DType::BFloat16) check_same_dtype(t, x, op);
  else if (x.dtype() != DType::Float32)
    throw TypeError(str(op, ": a bfloat16 ", what, " needs a float32 x, got ", dtype_name(x.dtype())));
  check_layout(t, x, shape, op, what);
}

void check_work(const Tensor& work, const Tensor& like, int64_t need, const char* op) {
  check_floating(work, op, "work");
  check_same_dtype(work, like, op);
  check_same_device(work, like, op);
  if (work.dim() != 1 || !work.is_contiguous() || work.numel() < need)
    throw ValueError(str(op, ": work must be a contiguous 1-D buffer of at least ", need, " elements, got ",
                         shape_str(work.shape())));
}

void check_x(const Tensor& x, const char* op) {
  check_floating(x, op, "x");
  if (x.dim() != 2 || !x.is_contiguous())
    throw ValueError(str(op, ": expected a contiguous x (B, C), got ", shape_str(x.shape())));
}

}  // namespace

int64_t decode_work_size(int64_t B, int64_t C, int64_t n_head, int64_t S, int64_t threads) {
  if (B < 1 || C < 1 || n_head < 1 || S < 1 || threads < 1 || C % n_head)
    throw ValueError(str("decode_work_size: bad sizes B=", B, " C=", C, " n_head=", n_head, " S=", S,
                         " threads=", threads));
  return decode_work_numel(B, C, n_head, S, threads);
}

bool decode_supported(Device device) {
  return decode_embed_kernel().has(device.type) && decode_block_kernel().has(device.type) &&
         decode_logits_kernel().has(device.type);
}

void decode_embed_(const Tensor& x, const Tensor& ids, const Tensor& wte, const Tensor& wpe, int64_t pos) {
  const char* op = "decode_embed_";
  check_x(x, op);
  const int64_t B = x.size(0), C = x.size(1);
  if (ids.dtype() != DType::Int64 && ids.dtype() != DType::Int32)
    throw TypeError(str(op, ": expected int64 or int32 ids, got ", dtype_name(ids.dtype())));
  check_same_device(ids, x, op);
  if (ids.numel() != B || ids.dim() < 1 || ids.dim() > 2 || ids.size(0) != B)
    throw ValueError(str(op, ": expected ids (B,) or (B, 1) with B=", B, ", got ", shape_str(ids.shape())));
  if (wte.dim() != 2 || wpe.dim() != 2) throw ValueError(str(op, ": expected 2-D wte and wpe"));
  check_operand(wte, x, {wte.size(0), C}, op, "wte");
  check_operand(wpe, x, {wpe.size(0), C}, op, "wpe");
  if (pos < 0 || pos >= wpe.size(0))
    throw IndexError(str(op, ": position ", pos, " is outside wpe's ", wpe.size(0), " positions"));
  Tensor flat = contiguous_data(cast(ids, DType::Int64));
  decode_embed_kernel()(x.device(), x, flat, wte, wpe, pos);
}

void decode_block_(const Tensor& x, const std::vector<Tensor>& weights, const Tensor& k_cache,
                   const Tensor& v_cache, int64_t pos, int64_t n_head, double eps, const Tensor& work) {
  const char* op = "decode_block_";
  check_x(x, op);
  const int64_t B = x.size(0), C = x.size(1);
  if (weights.size() != 12) throw ValueError(str(op, ": expected 12 block weights, got ", weights.size()));
  if (n_head < 1 || C % n_head) throw ValueError(str(op, ": n_head ", n_head, " does not divide C ", C));
  const DecodeBlockWeights w{weights[0], weights[1], weights[2],  weights[3],  weights[4],  weights[5],
                             weights[6], weights[7], weights[8], weights[9], weights[10], weights[11]};
  check_operand(w.ln1_w, x, {C}, op, "ln_1.weight");
  check_operand(w.ln1_b, x, {C}, op, "ln_1.bias");
  check_matrix(w.attn_w, x, {3 * C, C}, op, "attn.c_attn.weight");
  check_operand(w.attn_b, x, {3 * C}, op, "attn.c_attn.bias");
  check_matrix(w.attn_proj_w, x, {C, C}, op, "attn.c_proj.weight");
  check_operand(w.attn_proj_b, x, {C}, op, "attn.c_proj.bias");
  check_operand(w.ln2_w, x, {C}, op, "ln_2.weight");
  check_operand(w.ln2_b, x, {C}, op, "ln_2.bias");
  check_matrix(w.fc_w, x, {4 * C, C}, op, "mlp.c_fc.weight");
  check_operand(w.fc_b, x, {4 * C}, op, "mlp.c_fc.bias");
  check_matrix(w.mlp_proj_w, x, {C, 4 * C}, op, "mlp.c_proj.weight");
  check_operand(w.mlp_proj_b, x, {C}, op, "mlp.c_proj.bias");
  for (const Tensor* m : {&w.attn_proj_w, &w.fc_w, &w.mlp_proj_w})
    if (m->dtype() != w.attn_w.dtype())
      throw TypeError(str(op, ": expected the block's four weight matrices in one dtype, got ",
                          dtype_name(w.attn_w.dtype()), " and ", dtype_name(m->dtype())));
  if (k_cache.dim() != 4) throw ValueError(str(op, ": expected k_cache (B, NH, S, HS), got ", shape_str(k_cache.shape())));
  const int64_t S = k_cache.size(2);
  check_operand(k_cache, x, {B, n_head, S, C / n_head}, op, "k_cache");
  check_operand(v_cache, x, {B, n_head, S, C / n_head}, op, "v_cache");
  if (pos < 0 || pos >= S) throw IndexError(str(op, ": position ", pos, " is outside the cache's ", S, " positions"));
  check_work(work, x, decode_work_numel(B, C, n_head, S, 1), op);
  decode_block_kernel()(x.device(), x, w, k_cache, v_cache, pos, n_head, eps, work);
}

void decode_logits_(const Tensor& logits, const Tensor& x, const Tensor& ln_w, const Tensor& ln_b,
                    const Tensor& wte, double eps, const Tensor& work) {
  const char* op = "decode_logits_";
  check_x(x, op);
  const int64_t B = x.size(0), C = x.size(1);
  if (wte.dim() != 2) throw ValueError(str(op, ": expected a 2-D wte (V, C), got ", shape_str(wte.shape())));
  const int64_t V = wte.size(0);
  check_matrix(wte, x, {V, C}, op, "wte");
  check_operand(logits, x, {B, V}, op, "logits");
  check_operand(ln_w, x, {C}, op, "ln_f.weight");
  check_operand(ln_b, x, {C}, op, "ln_f.bias");
  check_work(work, x, B * C, op);
  decode_logits_kernel()(x.device(), logits, x, ln_w, ln_b, wte, eps, work);
}

}  // namespace cgad
