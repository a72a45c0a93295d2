// Autocast state, beside grad mode: per thread and per device type, whether ops in a
// cgad.autocast region compute in lower precision and in which dtype. The ops that cast
// (matmul, linear, attention; the float32-only ones) read it; Python's cgad.autocast sets it.
#pragma once
#include "core/device.h"
#include "core/dtype.h"

namespace cgad {

struct AutocastState {
  bool enabled = false;
  DType dtype = DType::BFloat16;
};

struct Autocast {
  static AutocastState get(DeviceType t);
  static void set(DeviceType t, AutocastState s);
};

// Sets a device type's autocast state for a scope and restores the previous one.
class AutocastGuard {
 public:
  AutocastGuard(DeviceType t, AutocastState s) : type_(t), prev_(Autocast::get(t)) { Autocast::set(t, s); }
  ~AutocastGuard() { Autocast::set(type_, prev_); }
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  DeviceType type_;
  AutocastState prev_;
};

}  // namespace cgad
