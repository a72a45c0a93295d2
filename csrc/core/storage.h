// One move-only RAII buffer: the only owner of raw tensor memory. Memory comes from and goes
// back to the caching allocator of its device.
#pragma once
#include <cstddef>
#include <cstdint>
#include "core/device.h"

namespace cgad {

class Allocator;

class Storage {
 public:
  Storage(size_t nbytes, Device device);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  void* data() const { return data_; }
  size_t nbytes() const { return nbytes_; }
  Device device() const { return device_; }
  // Bumped by every in-place write to this memory (through any view of it), so autograd can
  // tell that a tensor it saved for backward has changed since (SavedTensor, autograd/node.h).
  uint64_t version() const { return version_; }
  void bump_version() { ++version_; }

 private:
  void* data_ = nullptr;
  size_t nbytes_ = 0;
  Device device_;
  Allocator* allocator_ = nullptr;
  uint64_t version_ = 0;
};

}  // namespace cgad
