// A growable scratch buffer whose data starts on a 64-byte boundary: the GEMMs' packed panels
// and partial sums. std::vector's data is only 16-byte aligned, so a 64-byte row of a packed
// panel (one AMX tile row, one AVX-512 vector) would straddle two cache lines: the AMX kernel
// ran at half speed on its packed operands (bench/gemm_bf16.py).
#pragma once
#include <cstddef>
#include <cstdlib>
#include <memory>
#include <new>

namespace cgad::cpu {

template <typename T>
class AlignedBuffer {
 public:
  // At least n elements, uninitialized (the old contents are not kept when it grows).
  T* get(size_t n) {
    if (n > capacity_) {
      const size_t bytes = (n * sizeof(T) + 63) / 64 * 64;
      data_.reset(static_cast<T*>(std::aligned_alloc(64, bytes)));
      if (!data_) {
        capacity_ = 0;
        throw std::bad_alloc();
      }
      capacity_ = n;
    }
    return data_.get();
  }

 private:
  struct Free {
    void operator()(T* p) const { std::free(p); }
  };
  std::unique_ptr<T, Free> data_;
  size_t capacity_ = 0;
};

}  // namespace cgad::cpu
