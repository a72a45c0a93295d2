#include "core/dispatch.h"

namespace cgad {

std::vector<const KernelStubBase*>& kernel_stubs() {
  static std::vector<const KernelStubBase*> stubs;  // filled during static initialisation only
  return stubs;
}

}  // namespace cgad
