/* The machine's AMX-BF16 ceiling: `tdpbf16ps` on tiles already loaded (four accumulator tiles, two
 * A and two B tiles, as the GEMM's 32x32 blocks use them), on every thread. Each instruction is a
 * 16x32 by 32x16 bf16 product added into 16x16 float32: 16,384 FLOPs. The AMX kernel's counterpart
 * of bf16_peak.c; bench/gemm_bf16.py compiles and runs it.
 * Build: cc -O2 -mamx-tile -mamx-bf16 -fopenmp amx_peak.c -o amx_peak; run: ./amx_peak THREADS
 * (prints 0 on a CPU without AMX-BF16, or where Linux does not grant the tile state). */
#include <immintrin.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

struct __attribute__((aligned(64))) tile_config {
  uint8_t palette, start_row, reserved[14];
  uint16_t colsb[16];
  uint8_t rows[16];
};

int main(int argc, char** argv) {
  int threads = argc > 1 ? atoi(argv[1]) : 1;
  /* ARCH_REQ_XCOMP_PERM for XFEATURE_XTILEDATA: Linux keeps the tile state off until asked */
  if (!__builtin_cpu_supports("amx-bf16") || syscall(SYS_arch_prctl, 0x1023, 18) != 0) {
    puts("0");
    return 0;
  }
  static uint16_t src[4][16 * 32] __attribute__((aligned(64))); /* zeros: the values do not matter */
  const long loops = 2000000;
  double best = 0;
  for (int rep = 0; rep < 5; rep++) {
    double t = 0;
#pragma omp parallel num_threads(threads)
    {
      struct tile_config cfg = {0};
      cfg.palette = 1;
      for (int i = 0; i < 8; i++) {
        cfg.colsb[i] = 64;
        cfg.rows[i] = 16;
      }
      _tile_loadconfig(&cfg);
      _tile_zero(0);
      _tile_zero(1);
      _tile_zero(2);
      _tile_zero(3);
      _tile_loadd(4, src[0], 64);
      _tile_loadd(5, src[1], 64);
      _tile_loadd(6, src[2], 64);
      _tile_loadd(7, src[3], 64);
#pragma omp barrier
      double t0 = omp_get_wtime();
      for (long i = 0; i < loops; i++) {
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 4, 7);
        _tile_dpbf16ps(2, 5, 6);
        _tile_dpbf16ps(3, 5, 7);
      }
      float out[16 * 16] __attribute__((aligned(64)));
      _tile_stored(0, out, 64); /* the products are used */
#pragma omp barrier
#pragma omp master
      t = omp_get_wtime() - t0;
      _tile_release();
      if (out[0] == 42.0f) puts("");
    }
    double gflops = 4.0 * 16384.0 * (double)loops * threads / t / 1e9;
    if (gflops > best) best = gflops;
  }
  printf("%.1f\n", best);
  return 0;
}
