#include "core/storage.h"
#include "core/allocator.h"

namespace cgad {

Storage::Storage(size_t nbytes, Device device) : nbytes_(nbytes), device_(device) {
  if (!device.is_cpu()) throw RuntimeError("cgad was built without CUDA: cannot allocate on " + device.str());
  data_ = CpuAllocator::instance().allocate(nbytes);
}

Storage::~Storage() { CpuAllocator::instance().release(data_, nbytes_); }

}  // namespace cgad
