#include "backends/cpu/parallel.h"
#include "core/error.h"

namespace cgad {

static int g_threads = 0;

void set_num_threads(int n) {
  if (n < 1) throw ValueError(str("set_num_threads: expected a positive thread count, got ", n));
  g_threads = n;
  omp_set_num_threads(n);
}

int get_num_threads() {
  if (g_threads == 0) g_threads = omp_get_max_threads();
  return g_threads;
}

}  // namespace cgad
