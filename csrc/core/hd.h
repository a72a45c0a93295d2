// CGAD_HD marks a function as callable from host and device code: the scalar math shared by the
// CPU loops and the CUDA kernels (elementwise ops, bf16 conversion, Philox, Adam's update) is
// written once with it. Outside nvcc it expands to nothing.
#pragma once

#ifdef __CUDACC__
#define CGAD_HD __host__ __device__
#else
#define CGAD_HD
#endif
