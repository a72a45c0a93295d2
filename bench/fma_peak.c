/* The machine's float32 arithmetic ceiling: fused multiply-adds from registers only, on every
 * thread. No GEMM, however good, runs faster than this; bench/train_step.py compiles and runs it to
 * relate each engine's speed to the hardware as well as to OpenBLAS's sgemm.
 * Build: cc -O2 -march=native -fopenmp fma_peak.c -o fma_peak; run: ./fma_peak THREADS */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>

typedef float vec __attribute__((vector_size(64)));  /* one zmm, or two ymm without AVX-512 */
enum { CHAINS = 12 };  /* independent chains: enough to cover FMA latency on every FMA port */

int main(int argc, char** argv) {
  int threads = argc > 1 ? atoi(argv[1]) : 1;
  const long loops = 10000000;  /* about 0.1 s a repeat; the best of many rides out noisy neighbours */
  double best = 0;
  for (int rep = 0; rep < 15; rep++) {
    float sink = 0;
    double t = omp_get_wtime();
#pragma omp parallel num_threads(threads) reduction(+ : sink)
    {
      vec acc[CHAINS];
      vec x = {0}, y = {0};
      for (int l = 0; l < 16; l++) { x[l] = 0.9999999f; y[l] = 1e-7f; }
      /* distinct starting values so the compiler cannot merge the chains */
      for (int c = 0; c < CHAINS; c++)
        for (int l = 0; l < 16; l++) acc[c][l] = 1.0f + 0.1f * c + omp_get_thread_num();
      for (long i = 0; i < loops; i++)
#pragma GCC unroll 12
        for (int c = 0; c < CHAINS; c++) acc[c] = acc[c] * x + y;
      for (int c = 0; c < CHAINS; c++)
        for (int l = 0; l < 16; l++) sink += acc[c][l];
    }
    t = omp_get_wtime() - t;
    double gflops = 2.0 * 16 * CHAINS * (double)loops * threads / t / 1e9;
    if (gflops > best) best = gflops;
    if (sink == 42.0f) puts("");  /* keeps the sums alive */
  }
  printf("%.1f\n", best);
  return 0;
}
