# The CUDA backend's switch and its toolchain: CGAD_CUDA = OFF / ON / AUTO (DESIGN.md).
#
# AUTO builds the backend when nvcc and cuBLAS are found, but only once the backend has passed
# bench/gpu_check.sh on a real GPU; until then it means OFF. ON requires both and fails the
# configure when either is missing. Sets CGAD_CUDA_ENABLED and, when it is on, the imported
# targets cgad_cublasLt / cgad_cublas and CGAD_CUBLAS_LIB_DIR (the folder the extension's RPATH
# names, so the versioned libcublas*.so.13 are found at run time).
#
# cuBLAS is not part of the CUDA 13 toolkit on every machine: it also comes as the nvidia-cublas
# wheel (include/ + lib/, versioned sonames only). Hints, in order: -DCGAD_CUBLAS_ROOT=<dir> (or
# the environment variable of that name), the build Python's nvidia-cublas wheel (torch installs
# one), the toolkit's own folders. -DCGAD_CUBLAS_INCLUDE_DIR=<dir> gives the headers alone, for a
# wheel installed without them.
set(CGAD_CUDA AUTO CACHE STRING "Build the CUDA backend: OFF, ON, or AUTO (on when nvcc and cuBLAS are found, once the backend has passed its GPU check)")
set_property(CACHE CGAD_CUDA PROPERTY STRINGS OFF ON AUTO)
set(CGAD_CUBLAS_ROOT "$ENV{CGAD_CUBLAS_ROOT}" CACHE PATH "A folder with cuBLAS's include/ and lib/ (e.g. an unpacked nvidia-cublas wheel's nvidia/cu13)")

# Turned ON by the commit that records bench/gpu_check.sh passing on a real GPU; while OFF the
# backend is experimental and AUTO leaves it out.
set(CGAD_CUDA_GPU_CHECK_PASSED OFF)

string(TOUPPER "${CGAD_CUDA}" _cgad_cuda_mode)
if(NOT _cgad_cuda_mode MATCHES "^(OFF|ON|AUTO)$")
  message(FATAL_ERROR "CGAD_CUDA must be OFF, ON or AUTO, got '${CGAD_CUDA}'")
endif()

set(CGAD_CUDA_ENABLED OFF)
if(_cgad_cuda_mode STREQUAL "OFF")
  return()
endif()
if(_cgad_cuda_mode STREQUAL "AUTO" AND NOT CGAD_CUDA_GPU_CHECK_PASSED)
  message(STATUS "cgad: the CUDA backend is experimental (it has not yet passed bench/gpu_check.sh on a GPU): "
                 "CGAD_CUDA=AUTO builds without it; -DCGAD_CUDA=ON builds it")
  return()
endif()

# Where cuBLAS's headers and libraries are: the explicit root, else the build Python's wheel.
function(_cgad_cublas_wheel_root out)
  execute_process(
    COMMAND "${Python_EXECUTABLE}" -c [=[
import os
try:
    import nvidia
except ImportError:
    raise SystemExit(1)
for base in nvidia.__path__:
    for sub in ("cu13", "cublas"):
        if os.path.isfile(os.path.join(base, sub, "lib", "libcublasLt.so.13")):
            print(os.path.join(base, sub))
            raise SystemExit(0)
raise SystemExit(1)
]=]
    OUTPUT_VARIABLE _root OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE _rc ERROR_QUIET)
  set(${out} "" PARENT_SCOPE)
  if(_rc EQUAL 0)
    set(${out} "${_root}" PARENT_SCOPE)
  endif()
endfunction()

include(CheckLanguage)
check_language(CUDA)
if(NOT CMAKE_CUDA_COMPILER)
  if(_cgad_cuda_mode STREQUAL "ON")
    message(FATAL_ERROR "CGAD_CUDA=ON but no CUDA compiler (nvcc) was found: put it on PATH or set CMAKE_CUDA_COMPILER")
  endif()
  message(STATUS "cgad: no nvcc found, building without CUDA")
  return()
endif()
find_package(CUDAToolkit QUIET)

set(_cublas_hints "${CGAD_CUBLAS_ROOT}")
if(NOT CGAD_CUBLAS_ROOT)
  _cgad_cublas_wheel_root(_wheel_root)
  set(_cublas_hints "${_wheel_root}")
endif()
find_path(CGAD_CUBLAS_INCLUDE_DIR cublasLt.h
  HINTS ${_cublas_hints} PATH_SUFFIXES include NO_DEFAULT_PATH)
find_path(CGAD_CUBLAS_INCLUDE_DIR cublasLt.h HINTS ${CUDAToolkit_INCLUDE_DIRS})
# Unversioned names first (a toolkit install), then the wheel's versioned-only sonames.
set(_cublas_names_lt cublasLt libcublasLt.so.13)
set(_cublas_names cublas libcublas.so.13)
find_library(CGAD_CUBLASLT_LIBRARY NAMES ${_cublas_names_lt} HINTS ${_cublas_hints} PATH_SUFFIXES lib lib64 NO_DEFAULT_PATH)
find_library(CGAD_CUBLASLT_LIBRARY NAMES ${_cublas_names_lt} HINTS ${CUDAToolkit_LIBRARY_DIR})
find_library(CGAD_CUBLAS_LIBRARY NAMES ${_cublas_names} HINTS ${_cublas_hints} PATH_SUFFIXES lib lib64 NO_DEFAULT_PATH)
find_library(CGAD_CUBLAS_LIBRARY NAMES ${_cublas_names} HINTS ${CUDAToolkit_LIBRARY_DIR})

if(NOT CUDAToolkit_FOUND OR NOT CGAD_CUBLAS_INCLUDE_DIR OR NOT CGAD_CUBLASLT_LIBRARY OR NOT CGAD_CUBLAS_LIBRARY)
  set(_why "toolkit: ${CUDAToolkit_FOUND}, cublasLt.h: ${CGAD_CUBLAS_INCLUDE_DIR}, cublasLt: ${CGAD_CUBLASLT_LIBRARY}, cublas: ${CGAD_CUBLAS_LIBRARY}")
  if(_cgad_cuda_mode STREQUAL "ON")
    message(FATAL_ERROR "CGAD_CUDA=ON but the CUDA toolkit or cuBLAS was not found (${_why}); "
                        "give cuBLAS's folder (include/ + lib/) with -DCGAD_CUBLAS_ROOT=<dir>")
  endif()
  message(STATUS "cgad: CUDA toolkit or cuBLAS not found (${_why}), building without CUDA")
  return()
endif()

# Hopper (H100/H200) and Ampere (A100) unless the caller chose; set before the language is
# enabled, which would otherwise pick the compiler's default.
if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
  set(CMAKE_CUDA_ARCHITECTURES "80;90" CACHE STRING "GPU architectures of the CUDA backend")
endif()
enable_language(CUDA)
set(CMAKE_CUDA_STANDARD 17)
set(CMAKE_CUDA_STANDARD_REQUIRED ON)
# As for C++: -O3 with asserts kept, never --use_fast_math (IEEE semantics for masking and parity).
set(CMAKE_CUDA_FLAGS_RELEASE "-O3")

# The wheel ships libcublasLt.so.13 alone; the linker wants a plain name, so the build tree gets
# the unversioned links (the extension still records the versioned soname it finds inside).
set(_link_dir "${CMAKE_BINARY_DIR}/cublas-links")
file(MAKE_DIRECTORY "${_link_dir}")
foreach(_lib cublasLt cublas)
  if(_lib STREQUAL "cublasLt")
    set(_real "${CGAD_CUBLASLT_LIBRARY}")
  else()
    set(_real "${CGAD_CUBLAS_LIBRARY}")
  endif()
  get_filename_component(_real "${_real}" REALPATH)
  file(CREATE_LINK "${_real}" "${_link_dir}/lib${_lib}.so" SYMBOLIC)
  add_library(cgad_${_lib} SHARED IMPORTED GLOBAL)
  set_target_properties(cgad_${_lib} PROPERTIES
    IMPORTED_LOCATION "${_link_dir}/lib${_lib}.so"
    INTERFACE_INCLUDE_DIRECTORIES "${CGAD_CUBLAS_INCLUDE_DIR}")
endforeach()
get_filename_component(_lib_dir "${CGAD_CUBLASLT_LIBRARY}" DIRECTORY)
get_filename_component(CGAD_CUBLAS_LIB_DIR "${_lib_dir}" REALPATH)

set(CGAD_CUDA_ENABLED ON)
message(STATUS "cgad: CUDA backend ON (experimental): nvcc ${CMAKE_CUDA_COMPILER_VERSION}, "
               "architectures ${CMAKE_CUDA_ARCHITECTURES}, cuBLAS from ${CGAD_CUBLAS_LIB_DIR}")
