// The host-side logic of the CUDA launchers, run on the CPU: the offset calculator (coalesced
// dims, 32- and 64-bit index math) against naive row-major index arithmetic on random shapes
// with permuted, sliced and broadcast operands, and the multi-tensor chunk map.
#include <algorithm>
#include <array>
#include <numeric>
#include <random>
#include <vector>
#include "backends/cuda/chunk_map.h"
#include "backends/cuda/offset_calc.h"
#include "check.h"

using cgad::cuda::ChunkMap;
using cgad::cuda::kChunk;
using cgad::cuda::make_offset_calc;
using Dims = std::vector<int64_t>;

namespace {

// Strides of a random layout for `shape`: contiguous, a permutation of a contiguous buffer, a
// slice of a larger one, or broadcast (stride 0) in some dims.
Dims random_strides(const Dims& shape, std::mt19937& g) {
  const size_t nd = shape.size();
  std::vector<size_t> order(nd);
  std::iota(order.begin(), order.end(), 0);
  if (g() % 2) std::shuffle(order.begin(), order.end(), g);
  Dims st(nd, 0);
  int64_t s = 1;
  for (size_t k = nd; k-- > 0;) {
    const size_t d = order[k];
    st[d] = s;
    s *= shape[d] + int64_t(g() % 3 == 0);  // sometimes padded: a slice of a larger buffer
  }
  for (size_t d = 0; d < nd; ++d)
    if (g() % 5 == 0) st[d] = 0;
  return st;
}

template <int N>
void check_case(const Dims& shape, const std::array<Dims, N>& strides) {
  const auto calc = make_offset_calc<N>(shape, strides);
  int64_t total = 1;
  for (int64_t s : shape) total *= s;
  Dims idx(shape.size(), 0);
  for (int64_t i = 0; i < total; ++i) {
    const auto o32 = calc.get(uint32_t(i));
    const auto o64 = calc.get(uint64_t(i));
    for (int k = 0; k < N; ++k) {
      int64_t want = 0;
      for (size_t d = 0; d < shape.size(); ++d) want += idx[d] * strides[size_t(k)][d];
      CHECK(o32[k] == want);
      CHECK(o64[k] == want);
    }
    for (size_t d = shape.size(); d-- > 0;) {
      if (++idx[d] < shape[d]) break;
      idx[d] = 0;
    }
  }
}

void test_offsets(std::mt19937& g) {
  for (int trial = 0; trial < 300; ++trial) {
    const size_t nd = g() % 6;
    Dims shape(nd);
    for (auto& s : shape) s = 1 + int64_t(g() % 4);
    check_case<1>(shape, {random_strides(shape, g)});
    check_case<3>(shape, {random_strides(shape, g), random_strides(shape, g), random_strides(shape, g)});
  }
}

void test_coalescing() {
  // a contiguous (2, 3, 4) tensor and one broadcast along the middle dim
  const auto c1 = make_offset_calc<1>({2, 3, 4}, {Dims{12, 4, 1}});
  CHECK(c1.ndim == 1 && c1.sizes[0] == 24 && c1.strides[0][0] == 1);
  const auto c2 = make_offset_calc<2>({2, 3, 4}, {Dims{12, 4, 1}, Dims{4, 0, 1}});
  CHECK(c2.ndim == 3);
  // size-1 dims vanish; a 0-d tensor is one element
  const auto c3 = make_offset_calc<1>({1, 5, 1}, {Dims{5, 1, 1}});
  CHECK(c3.ndim == 1 && c3.sizes[0] == 5);
  const auto c4 = make_offset_calc<1>({}, {Dims{}});
  CHECK(c4.ndim == 1 && c4.sizes[0] == 1 && c4.get(uint32_t(0))[0] == 0);
  // more non-mergeable dims than a launch takes: a RuntimeError, not a wrong offset
  Dims big(cgad::cuda::kMaxDims + 1, 2), st(cgad::cuda::kMaxDims + 1);
  for (size_t d = 0; d < st.size(); ++d) st[d] = int64_t(1) << (2 * (st.size() - 1 - d));  // gaps everywhere
  CHECK_THROWS(cgad::RuntimeError, make_offset_calc<1>(big, {st}));
}

void test_chunk_map() {
  ChunkMap m;
  const int64_t sizes[] = {1, 0, kChunk, kChunk + 1, 3 * kChunk - 1};
  for (int64_t s : sizes) CHECK(m.add(s));
  CHECK(m.blocks() == 1 + 0 + 1 + 2 + 3);
  const int want[] = {0, 2, 3, 3, 4, 4, 4};  // tensor 1 has no elements, so no block
  for (int64_t b = 0; b < m.blocks(); ++b) CHECK(m.find(b) == want[b]);
  while (m.count < cgad::cuda::kListMax) CHECK(m.add(1));
  CHECK(!m.add(1));
}

}  // namespace

int main() {
  std::mt19937 g(7);
  test_offsets(g);
  test_coalescing();
  test_chunk_map();
  return cgad_test::finish("test_offset_calc");
}
