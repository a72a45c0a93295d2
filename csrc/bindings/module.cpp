// The cgad._C extension: tensors, ops, optimizers and runtime settings.
#include "bindings/common.h"

PYBIND11_MODULE(_C, m) {
  m.doc() = "cgad's compiled engine";
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const cgad::ValueError& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    } catch (const cgad::TypeError& e) {
      PyErr_SetString(PyExc_TypeError, e.what());
    } catch (const cgad::IndexError& e) {
      PyErr_SetString(PyExc_IndexError, e.what());
    } catch (const cgad::MemoryError& e) {
      PyErr_SetString(PyExc_MemoryError, e.what());
    } catch (const cgad::RuntimeError& e) {
      PyErr_SetString(PyExc_RuntimeError, e.what());
    }
  });
  cgad::bind::bind_runtime(m);
  cgad::bind::bind_tensor(m);
  cgad::bind::bind_ops(m);
  cgad::bind::bind_nn(m);
  cgad::bind::bind_optim(m);
  cgad::bind::bind_decode(m);
}
