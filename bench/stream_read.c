/* The machine's streaming read bandwidth: the ceiling of batch-1 decoding, which reads every
 * weight once per token. Sums a 512 MiB float array (far beyond the caches) on every thread, each
 * thread its static share, and prints the best GB/s of several passes; bench/generate.py compiles
 * and runs it to relate tok/s to bytes of weights per token.
 * Build: cc -O2 -march=native -fopenmp stream_read.c -o stream_read; run: ./stream_read THREADS */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>

typedef float vec __attribute__((vector_size(64)));
enum { CHAINS = 4 }; /* independent sums so the adds never wait on each other */

int main(int argc, char** argv) {
  int threads = argc > 1 ? atoi(argv[1]) : 1;
  const long n = (512L << 20) / sizeof(vec);
  vec* a = aligned_alloc(64, n * sizeof(vec));
  if (!a) return 1;
#pragma omp parallel for num_threads(threads) schedule(static)
  for (long i = 0; i < n; i++) /* first touch on the thread that reads it later */
    for (int l = 0; l < 16; l++) a[i][l] = 1.0f;
  double best = 0;
  float sink = 0;
  for (int rep = 0; rep < 10; rep++) {
    double t = omp_get_wtime();
#pragma omp parallel num_threads(threads) reduction(+ : sink)
    {
      vec acc[CHAINS] = {{0}};
#pragma omp for schedule(static)
      for (long i = 0; i < n; i += CHAINS)
        for (int c = 0; c < CHAINS; c++) acc[c] += a[i + c];
      for (int c = 0; c < CHAINS; c++)
        for (int l = 0; l < 16; l++) sink += acc[c][l];
    }
    t = omp_get_wtime() - t;
    double gbs = n * sizeof(vec) / t / 1e9;
    if (gbs > best) best = gbs;
  }
  printf("%.2f\n", best);
  fprintf(stderr, "checksum %.0f\n", sink); /* keeps the reads alive */
  free(a);
  return 0;
}
