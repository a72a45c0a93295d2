// One move-only RAII buffer: the only owner of raw tensor memory. Memory comes from and goes
// back to the caching allocator of its device.
#pragma once
#include <cstddef>
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

 private:
  void* data_ = nullptr;
  size_t nbytes_ = 0;
  Device device_;
  Allocator* allocator_ = nullptr;
};

}  // namespace cgad
