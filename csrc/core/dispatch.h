// The per-device kernel table: the seam between an op (csrc/ops: checks, output allocation, the
// VJP) and its kernels (csrc/backends/<device>), after PyTorch's DECLARE_DISPATCH /
// REGISTER_DISPATCH. Each kernel is a named stub with one function pointer per device type;
// csrc/kernels/*.h declare the stubs (their signatures), the op files define them, and each
// backend fills its column at static initialisation. An op calls `stub()(device, args...)`; a
// device without a kernel is RuntimeError("<stub>: no <device> kernel").
#pragma once
#include <array>
#include <atomic>
#include <utility>
#include <vector>
#include "core/device.h"
#include "core/error.h"

namespace cgad {

// Memory of a device the host cannot read (the "test" device, CUDA) may be touched by kernels
// only. KernelScope marks the calls that run a kernel; Tensor::raw_data() checks it, so an op
// that reads device data on the host fails on "test" as it would crash on a GPU. A process-wide
// count (not thread-local) because a kernel's OpenMP workers read the data too.
class KernelScope {
 public:
  KernelScope() { depth_.fetch_add(1, std::memory_order_relaxed); }
  ~KernelScope() { depth_.fetch_sub(1, std::memory_order_relaxed); }
  KernelScope(const KernelScope&) = delete;
  KernelScope& operator=(const KernelScope&) = delete;
  static bool active() { return depth_.load(std::memory_order_relaxed) > 0; }

 private:
  static inline std::atomic<int> depth_{0};
};

struct KernelStubBase {
  explicit KernelStubBase(const char* n) : name(n) {}
  virtual ~KernelStubBase() = default;
  virtual bool has(DeviceType t) const = 0;
  const char* name;
};

// Every defined stub, for the table walk (tests/cpp/test_kernel_table.cpp).
std::vector<const KernelStubBase*>& kernel_stubs();

template <typename Sig> class KernelStub;

template <typename R, typename... Args>
class KernelStub<R(Args...)> final : public KernelStubBase {
 public:
  using fn_type = R (*)(Args...);
  explicit KernelStub(const char* n) : KernelStubBase(n) { kernel_stubs().push_back(this); }
  void set(DeviceType t, fn_type f) { fns_[size_t(t)] = f; }
  bool has(DeviceType t) const override { return fns_[size_t(t)] != nullptr; }

  template <typename... A>
  R operator()(Device d, A&&... args) const {
    fn_type f = fns_[size_t(d.type)];
    if (!f) throw RuntimeError(str(name, ": no ", device_type_name(d.type), " kernel"));
    if (d.host_readable()) return f(std::forward<A>(args)...);
    KernelScope scope;
    return f(std::forward<A>(args)...);
  }

 private:
  std::array<fn_type, kNumDeviceTypes> fns_{};
};

}  // namespace cgad

// In a kernels/*.h header: declares the stub accessor `name()` with signature `sig`.
#define CGAD_DECLARE_KERNEL(name, sig) ::cgad::KernelStub<sig>& name()

// In the op's .cpp: defines the stub (constructed on first use, so backends may register from
// any translation unit's static initialisers) and makes sure it is listed for the table walk.
#define CGAD_DEFINE_KERNEL(name, sig)                                    \
  ::cgad::KernelStub<sig>& name() {                                      \
    static ::cgad::KernelStub<sig> stub(#name);                          \
    return stub;                                                         \
  }                                                                      \
  [[maybe_unused]] static const bool name##_defined_ = (name(), true)

#define CGAD_KERNEL_CAT2(a, b) a##b
#define CGAD_KERNEL_CAT(a, b) CGAD_KERNEL_CAT2(a, b)
// In a backend's .cpp: registers fn as the kernel of `stub` for device type `type`.
#define CGAD_REGISTER_KERNEL(stub, type, fn)                                            \
  [[maybe_unused]] static const bool CGAD_KERNEL_CAT(stub##_##type##_registered_, __LINE__) = \
      (stub().set(::cgad::DeviceType::type, fn), true)
