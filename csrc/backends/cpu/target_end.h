// Ends the target-pragma region a kernel file opened after its headers (`#pragma GCC
// push_options` + `target(...)` + a diagnostic push, or clang's `attribute push`): included
// last by gemm_bf16_avx512.cpp, gemm_bf16_amx.cpp and gelu_bf16_avx512.cpp. No include guard:
// each file that opens a region closes it once.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#pragma GCC pop_options
#elif defined(__clang__)
#pragma clang attribute pop
#endif
