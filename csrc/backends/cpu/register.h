// CPU kernels register for two device types: the CPU, and the "test" device, which runs the same
// kernels on memory from its own pool (backends/test) to prove that ops are device-correct.
#pragma once
#include "core/dispatch.h"

#define CGAD_REGISTER_CPU_KERNEL(stub, fn) \
  CGAD_REGISTER_KERNEL(stub, CPU, fn);     \
  CGAD_REGISTER_KERNEL(stub, Test, fn)
