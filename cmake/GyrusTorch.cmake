# LibTorch for the runtime: the PyPI `torch==2.11.0` wheel (CUDA 13.0 build), installed by
# scripts/install-deps.sh into a virtual environment outside the clone, so every clone
# on a machine shares one copy (about 4.7 GB with its nvidia-* wheels).
#
#   GYRUS_TORCH_VENV   the virtual environment (default ~/.cache/gyrus/torch-2.11.0;
#                      also read from the environment variable of the same name)
#   Torch_DIR          set it to use another LibTorch 2.11.0 instead (a CUDA build: the
#                      runtime asks LibTorch's CUDA libraries for device names and memory)
#
# Torch's CMake configuration of a CUDA build needs a CUDA toolkit (nvcc) even though
# gyrus has no .cu files of its own: /usr/local/cuda is used when nothing else is set.
set(GYRUS_TORCH_VERSION 2.11.0)

if(DEFINED ENV{GYRUS_TORCH_VENV} AND NOT "$ENV{GYRUS_TORCH_VENV}" STREQUAL "")
  set(_gyrus_venv_default "$ENV{GYRUS_TORCH_VENV}")
else()
  set(_gyrus_venv_default "$ENV{HOME}/.cache/gyrus/torch-${GYRUS_TORCH_VERSION}")
endif()
set(GYRUS_TORCH_VENV "${_gyrus_venv_default}" CACHE PATH
    "Virtual environment holding the torch==${GYRUS_TORCH_VERSION} wheel")

# A build folder configured before the switch (Debian's LibTorch 1.13 in /usr) forgets it.
if(Torch_DIR MATCHES "^/usr/(lib|share)/")
  message(STATUS "LibTorch: leaving Debian's ${Torch_DIR} for the pinned wheel")
  foreach(_var Torch_DIR Caffe2_DIR TORCH_LIBRARY c10_LIBRARY)
    unset(${_var} CACHE)
  endforeach()
endif()

if(NOT Torch_DIR)
  set(_gyrus_python "${GYRUS_TORCH_VENV}/bin/python")
  if(NOT EXISTS "${_gyrus_python}")
    message(FATAL_ERROR
      "LibTorch ${GYRUS_TORCH_VERSION} not found: ${_gyrus_python} does not exist.\n"
      "Run `bash scripts/install-deps.sh` (it creates that environment), or set "
      "GYRUS_TORCH_VENV to an environment with torch==${GYRUS_TORCH_VERSION}, or "
      "configure with -DGYRUS_BUILD_RUNTIME=OFF to build the compiler alone.")
  endif()
  execute_process(
    COMMAND "${_gyrus_python}" -c
            "import torch, torch.utils; print(torch.__version__.split('+')[0]); print(torch.utils.cmake_prefix_path)"
    OUTPUT_VARIABLE _gyrus_torch_out
    ERROR_VARIABLE _gyrus_torch_err
    RESULT_VARIABLE _gyrus_torch_rc
    OUTPUT_STRIP_TRAILING_WHITESPACE)
  if(NOT _gyrus_torch_rc EQUAL 0)
    message(FATAL_ERROR "LibTorch: `${_gyrus_python} -c 'import torch'` failed:\n"
                        "${_gyrus_torch_err}\nRun `bash scripts/install-deps.sh`.")
  endif()
  string(REPLACE "\n" ";" _gyrus_torch_out "${_gyrus_torch_out}")
  list(GET _gyrus_torch_out 0 _gyrus_torch_found)
  list(GET _gyrus_torch_out 1 _gyrus_torch_prefix)
  if(NOT _gyrus_torch_found VERSION_EQUAL GYRUS_TORCH_VERSION)
    message(FATAL_ERROR "LibTorch: ${GYRUS_TORCH_VENV} has torch ${_gyrus_torch_found}, "
                        "gyrus pins ${GYRUS_TORCH_VERSION}. Run `bash scripts/install-deps.sh`.")
  endif()
  list(PREPEND CMAKE_PREFIX_PATH "${_gyrus_torch_prefix}")
  # TorchConfig looks for its libraries in the system paths before its own folder, so a
  # Debian libtorch-dev (1.13) on the same machine would be linked beside the wheel's.
  # Find them in the wheel first; TorchConfig then keeps these cached paths.
  get_filename_component(_gyrus_torch_lib "${_gyrus_torch_prefix}/../../lib" ABSOLUTE)
  foreach(_lib torch c10 torch_cpu torch_cuda c10_cuda caffe2_nvrtc)
    if(_lib STREQUAL "torch")
      set(_var TORCH_LIBRARY)
    elseif(_lib STREQUAL "caffe2_nvrtc")
      set(_var CAFFE2_NVRTC_LIBRARY)
    elseif(_lib STREQUAL "c10_cuda")
      set(_var C10_CUDA_LIBRARY)
    else()
      set(_var ${_lib}_LIBRARY)
    endif()
    find_library(${_var} ${_lib} PATHS "${_gyrus_torch_lib}" NO_DEFAULT_PATH)
  endforeach()
endif()

if(NOT CMAKE_CUDA_COMPILER AND NOT DEFINED ENV{CUDACXX} AND EXISTS /usr/local/cuda/bin/nvcc)
  set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc CACHE FILEPATH "CUDA compiler")
endif()

# CMake 3.25 does not know nvcc 13's default dialect; gyrus's own CUDA code (none yet in
# the runtime) is C++17 like Torch's. Without an architecture list Torch's configuration
# probes the GPUs of the build machine (none here); sm_90 is the H200 of the GPU host.
if(NOT DEFINED CMAKE_CUDA_STANDARD)
  set(CMAKE_CUDA_STANDARD 17)
  set(CMAKE_CUDA_EXTENSIONS OFF)
endif()
if(NOT DEFINED ENV{TORCH_CUDA_ARCH_LIST} AND NOT TORCH_CUDA_ARCH_LIST)
  set(TORCH_CUDA_ARCH_LIST "9.0" CACHE STRING "CUDA architectures for gyrus's own kernels")
endif()

# (Torch's configuration warns "library kineto not found": the wheel links its profiler
# into libtorch_cpu and ships no separate library; nothing is missing.)
# GLOBAL: Torch's imported targets are then visible to the test directories too, which
# need not find it again.
find_package(Torch ${GYRUS_TORCH_VERSION} EXACT REQUIRED GLOBAL)
message(STATUS "LibTorch ${Torch_VERSION} from ${Torch_DIR}")
