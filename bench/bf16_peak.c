/* The machine's bfloat16 arithmetic ceiling: AVX512_BF16 `vdpbf16ps` from registers only, on every
 * thread (each instruction: 16 lanes x 2 bf16 products added into float32, 64 FLOPs). The bf16
 * GEMM's counterpart of fma_peak.c; bench/gemm_bf16.py and bench/train_step.py --dtype bfloat16
 * compile and run it.
 * Build: cc -O2 -mavx512f -mavx512bf16 -fopenmp bf16_peak.c -o bf16_peak; run: ./bf16_peak THREADS
 * (prints 0 on a CPU without AVX512_BF16). */
#include <immintrin.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>

enum { CHAINS = 12 }; /* independent accumulators: enough to cover the instruction's latency */

int main(int argc, char** argv) {
  int threads = argc > 1 ? atoi(argv[1]) : 1;
  if (!__builtin_cpu_supports("avx512bf16")) {
    puts("0");
    return 0;
  }
  const long loops = 10000000;
  double best = 0;
  for (int rep = 0; rep < 15; rep++) {
    float sink = 0;
    double t = omp_get_wtime();
#pragma omp parallel num_threads(threads) reduction(+ : sink)
    {
      __m512 acc[CHAINS];
      const __m512bh x = (__m512bh)_mm512_set1_epi32(0x3f7f3f7f); /* pairs of bf16 0.996 */
      const __m512bh y = (__m512bh)_mm512_set1_epi32(0x33d633d6); /* pairs of bf16 1e-7 */
      for (int c = 0; c < CHAINS; c++) acc[c] = _mm512_set1_ps(1.0f + 0.1f * c + omp_get_thread_num());
      for (long i = 0; i < loops; i++)
#pragma GCC unroll 12
        for (int c = 0; c < CHAINS; c++) acc[c] = _mm512_dpbf16_ps(acc[c], x, y);
      for (int c = 0; c < CHAINS; c++) sink += _mm512_reduce_add_ps(acc[c]);
    }
    t = omp_get_wtime() - t;
    double gflops = 64.0 * CHAINS * (double)loops * threads / t / 1e9;
    if (gflops > best) best = gflops;
    if (sink == 42.0f) puts(""); /* keeps the sums alive */
  }
  printf("%.1f\n", best);
  return 0;
}
