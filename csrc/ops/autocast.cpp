#include "ops/autocast.h"
#include <unordered_map>
#include "autograd/autocast.h"
#include "autograd/grad_mode.h"
#include "ops/ops.h"

namespace cgad {

namespace {

struct CacheEntry {
  std::weak_ptr<TensorImpl> source;  // the parameter; a freed one's address may be reused
  std::shared_ptr<Storage> storage;  // its data when cast: a replaced .data invalidates the copy
  uint64_t version = 0;              // and an in-place write to it since (an update in the region)
  Tensor lowered;
};

// Per thread, as the autocast state is: the bfloat16 copies of the parameters used in the region.
thread_local std::unordered_map<const TensorImpl*, CacheEntry> g_cast_cache;

}  // namespace

bool autocast_enabled(Device d) { return Autocast::get(d.type).enabled; }

Tensor autocast_lower(const Tensor& t) {
  if (!t.defined() || t.dtype() != DType::Float32) return t;
  const AutocastState s = Autocast::get(t.device().type);
  if (!s.enabled) return t;
  // Only parameters are cached, and only with grad on: a copy cast under no_grad has no edge to
  // its parameter and would cut the graph if a later use in the region needed one.
  const bool cacheable = t.is_leaf() && t.requires_grad() && GradMode::is_enabled();
  if (!cacheable) return to_dtype(t, s.dtype);
  auto it = g_cast_cache.find(t.impl());
  if (it != g_cast_cache.end() && it->second.source.lock() == t.impl_ptr() &&
      it->second.storage == t.impl()->storage && it->second.version == t.version() &&
      it->second.lowered.dtype() == s.dtype)
    return it->second.lowered;
  Tensor lowered = to_dtype(t, s.dtype);
  g_cast_cache[t.impl()] = {t.impl_ptr(), t.impl()->storage, t.version(), lowered};
  return lowered;
}

Tensor autocast_float(const Tensor& t) {
  if (!t.defined() || t.dtype() != DType::BFloat16 || !autocast_enabled(t.device())) return t;
  return to_dtype(t, DType::Float32);
}

void clear_autocast_cache() { g_cast_cache.clear(); }
size_t autocast_cache_size() { return g_cast_cache.size(); }

}  // namespace cgad

namespace cgad {

Tensor as_float32(const Tensor& t) {
  return t.defined() && t.dtype() == DType::BFloat16 ? to_dtype(t, DType::Float32) : t;
}

Tensor bf16_result(const Tensor& y, bool float32_op) {
  return float32_op && autocast_enabled(y.device()) ? y : to_dtype(y, DType::BFloat16);
}

}  // namespace cgad
