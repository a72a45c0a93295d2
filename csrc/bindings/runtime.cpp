// dtypes, devices, threads, the RNG, grad mode and memory statistics.
#include "autograd/autocast.h"
#include "autograd/grad_mode.h"
#ifdef CGAD_HAVE_CUDA
#include "backends/cuda/runtime.h"
#endif
#include "bindings/common.h"
#include "core/allocator.h"
#include "core/rng.h"
#include "core/runtime.h"
#include "ops/autocast.h"
#include "ops/ops.h"

namespace cgad::bind {

constexpr int kMaxThreads = 4096;

void bind_runtime(py::module_& m) {
  py::enum_<DType>(m, "dtype")
      .value("bool", DType::Bool)
      .value("int32", DType::Int32)
      .value("int64", DType::Int64)
      .value("bfloat16", DType::BFloat16)
      .value("float32", DType::Float32)
      .value("float64", DType::Float64)
      .def_property_readonly("is_floating_point", [](DType d) { return is_floating(d); })
      .def_property_readonly("itemsize", [](DType d) { return itemsize(d); })
      .def("same_as", [](DType d, py::handle o) {  // dtype == "float32" (see python/cgad/__init__.py)
        try { return dtype_from(o) == d; } catch (const std::exception&) { return false; }
      });

  py::class_<Device>(m, "device")
      .def(py::init([](const std::string& s) { return Device::parse(s); }))
      .def_property_readonly("type", [](const Device& d) { return device_type_name(d.type); })
      .def_property_readonly("index", [](const Device& d) -> py::object {
        return d.type == DeviceType::CUDA ? py::object(py::int_(d.index)) : py::object(py::none());
      })
      .def("__str__", &Device::str)
      .def("__repr__", [](const Device& d) {
        return "device(type='" + std::string(device_type_name(d.type)) + "'" +
               (d.type == DeviceType::CUDA ? ", index=" + std::to_string(d.index) : "") + ")";
      })
      .def("__eq__", [](const Device& d, py::handle o) {
        try { return device_from(o) == d; } catch (...) { return false; }
      })
      .def("__hash__", [](const Device& d) { return int(d.type) * 1000 + d.index; });

  m.def("set_num_threads", [](py::handle h) {
    // libgomp sizes per-team arrays on the stack: 100000 threads overflowed it (a segfault at the
    // next parallel loop), so counts beyond any sensible machine are a ValueError.
    bool overflow = false;
    const long long n = int_value(h, &overflow);
    if (overflow || n < 1 || n > kMaxThreads)
      throw ValueError(str("set_num_threads: expected a thread count in [1, ", kMaxThreads, "], got ", py::str(h).cast<std::string>()));
    set_num_threads(int(n));
  }, "Sets the threads of both OpenMP loops and OpenBLAS.");
  m.def("get_num_threads", &get_num_threads);
  m.def("manual_seed", [](py::handle h) {  // any int in [-2**63, 2**64), as torch
    auto i = py::reinterpret_steal<py::object>(PyNumber_Index(h.ptr()));
    if (!i) throw py::error_already_set();
    const unsigned long long u = PyLong_AsUnsignedLongLong(i.ptr());
    if (!(u == (unsigned long long)-1 && PyErr_Occurred())) return Generator::global().manual_seed(uint64_t(u));
    PyErr_Clear();
    bool overflow = false;
    const long long s = int_value(i, &overflow);
    if (overflow) throw ValueError(str("manual_seed: seed ", py::str(h).cast<std::string>(), " is out of range [-2**63, 2**64)"));
    Generator::global().manual_seed(uint64_t(s));
  });
  m.def("seed_offset", [] { return Generator::global().offset; });
  m.def("get_rng_state", [] {
    auto s = Generator::global().get_state();
    py::array_t<uint8_t> a(py::ssize_t(s.size()));
    std::memcpy(a.mutable_data(), s.data(), s.size());
    return a;
  });
  m.def("set_rng_state", [](py::handle h) {
    // exactly a uint8 array: a cast (from floats, wider ints) would silently give another state
    if (!py::isinstance<py::array>(h) || !py::reinterpret_borrow<py::array>(h).dtype().is(py::dtype::of<uint8_t>()))
      throw TypeError(str("set_rng_state: expected a 1-D uint8 numpy array (from get_rng_state), got ",
                          py::str(py::isinstance<py::array>(h) ? h.attr("dtype") : py::type::of(h).attr("__name__")).cast<std::string>()));
    auto a = py::array_t<uint8_t, py::array::c_style>::ensure(h);
    if (a.ndim() != 1) throw ValueError("set_rng_state: expected a 1-D uint8 array");
    std::vector<uint8_t> s(a.data(), a.data() + a.size());
    Generator::global().set_state(s);
  });
  // The autocast state of a device type ("cpu", "cuda") on this thread: (enabled, dtype).
  m.def("get_autocast", [](py::handle device) {
    AutocastState s = Autocast::get(device_from(device).type);
    return py::make_tuple(s.enabled, s.dtype);
  });
  m.def("set_autocast", [](py::handle device, bool enabled, py::handle dtype) {
    Autocast::set(device_from(device).type, {enabled, dtype_from(dtype)});
  });
  // Called when the outermost autocast region exits: its bfloat16 parameter copies are dropped.
  m.def("clear_autocast_cache", &clear_autocast_cache);
  m.def("autocast_cache_size", &autocast_cache_size);  // for tests: parameters cast in this region
  m.def("bf16_gemm_impl", [](py::handle device) { return std::string(bf16_gemm_impl(device_from(device))); },
        py::arg("device") = "cpu");  // "avx512_bf16" or "fallback" on the CPU
  m.def("is_grad_enabled", &GradMode::is_enabled);
  m.def("set_grad_enabled", &GradMode::set_enabled);
  m.def("memory_stats", [](py::handle device) {
    MemoryStats s = allocator_for(device_from(device)).stats();
    py::dict out;
    out["os_allocs"] = s.os_allocs;
    out["os_bytes"] = s.os_bytes;
    out["cached_bytes"] = s.cached_bytes;
    out["allocated_bytes"] = s.allocated_bytes;
    out["peak_bytes"] = s.peak_bytes;
    return out;
  }, py::arg("device") = "cpu");
  m.def("reset_peak_memory_stats", [](py::handle device) { allocator_for(device_from(device)).reset_peak(); },
        py::arg("device") = "cpu");
  m.def("empty_cache", [](py::handle device) { allocator_for(device_from(device)).empty_cache(); }, py::arg("device") = "cpu");
#ifdef CGAD_HAVE_CUDA
  m.def("cuda_is_available", [] { return cuda::device_count() > 0; });
  m.def("cuda_device_count", &cuda::device_count);
  m.def("cuda_synchronize", [](int device) {
    py::gil_scoped_release nogil;
    cuda::synchronize(device);
  }, py::arg("device") = 0);
  m.def("cuda_tf32_enabled", &cuda::tf32_enabled);
  m.def("set_cuda_tf32_enabled", &cuda::set_tf32_enabled);
  m.attr("has_cuda") = true;
#else
  m.def("cuda_is_available", [] { return false; });
  m.def("cuda_device_count", [] { return 0; });
  m.def("cuda_synchronize", [](int) {
    throw RuntimeError("cuda_synchronize: cgad was built without CUDA");
  }, py::arg("device") = 0);
  // The setting is kept (as torch keeps it on CPU-only builds); nothing reads it.
  static bool tf32 = false;
  m.def("cuda_tf32_enabled", [] { return tf32; });
  m.def("set_cuda_tf32_enabled", [](bool on) { tf32 = on; });
  m.attr("has_cuda") = false;
#endif
}

}  // namespace cgad::bind
