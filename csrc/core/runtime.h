// Backend-neutral runtime settings. The host thread count is implemented by the CPU backend
// (backends/cpu/parallel.cpp: OpenMP, with OpenBLAS single-threaded inside it).
#pragma once

namespace cgad {

void set_num_threads(int n);  // ValueError for n < 1
int get_num_threads();

}  // namespace cgad
