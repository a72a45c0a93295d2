// How a multi-tensor launch (multi_tensor.cuh) cuts its tensors into blocks. Plain C++ with
// CGAD_HD, so it is tested on the CPU (tests/cpp/test_offset_calc.cpp).
#pragma once
#include <cstdint>
#include "core/hd.h"

namespace cgad::cuda {

// Tensors per launch: keeps the largest argument struct (Adam's, float64) under the 4 KB
// kernel-parameter limit that every supported architecture has.
constexpr int kListMax = 24;
constexpr int64_t kChunk = 4096;  // elements per block

// Which tensor and element range each block of a multi-tensor launch covers.
struct ChunkMap {
  int count = 0;
  int64_t n[kListMax] = {};
  int64_t block_start[kListMax + 1] = {};  // block_start[t]: the first block of tensor t

  // Adds a tensor of n elements; false when the list is full.
  bool add(int64_t elems) {
    if (count == kListMax) return false;
    n[count] = elems;
    block_start[count + 1] = block_start[count] + (elems + kChunk - 1) / kChunk;
    ++count;
    return true;
  }
  int64_t blocks() const { return block_start[count]; }
  // The tensor of block b (tensors with no elements own no block and are never found).
  CGAD_HD int find(int64_t b) const {
    int t = 0;
    while (b >= block_start[t + 1]) ++t;
    return t;
  }
};

}  // namespace cgad::cuda
