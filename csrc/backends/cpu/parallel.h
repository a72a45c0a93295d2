// Thread settings shared by every CPU kernel. OpenMP is the only pool that works: GEMMs run
// OpenBLAS single-threaded inside it (gemm.cpp), so two pools never fight over the cores. Static schedules keep results bit-identical for a given
// thread count (DESIGN.md habit 8).
#pragma once
#include <cstdint>
#include <omp.h>
#include "core/runtime.h"

namespace cgad {

// Elements below which a loop runs on one thread (thread wake-up costs more than the work).
constexpr int64_t kParallelGrain = 32768;

inline int threads_for(int64_t work) {
  return work >= kParallelGrain ? get_num_threads() : 1;
}

}  // namespace cgad
