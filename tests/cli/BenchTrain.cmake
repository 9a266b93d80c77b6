# `gyrus bench train --json` through the real binary, both sides: gyrus's step and the
# PyTorch twin (bench/train_twin.py with the LibTorch environment's Python) on the
# quickstart's network; the twin must be the same network (same parameter count) and
# every documented key must be there with a sensible value.
# Usage: cmake -DGYRUS=gyrus -P BenchTrain.cmake
execute_process(COMMAND ${GYRUS} bench train --model quickstart --warmup 1 --steps 2 --threads 2 --json
                OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "gyrus bench train exited ${rc}:\n${err}\n${out}")
endif()
string(JSON n LENGTH "${out}" benchmarks)
if(NOT n EQUAL 1)
  message(FATAL_ERROR "expected one benchmark, got ${n}:\n${out}")
endif()
foreach(key model params batch patch device precision threads gyrus_step_ms pytorch_step_ms ratio
            gyrus_peak_mb pytorch_peak_mb)
  string(JSON value ERROR_VARIABLE missing GET "${out}" benchmarks 0 ${key})
  if(missing OR value STREQUAL "" OR value STREQUAL "null")
    message(FATAL_ERROR "benchmarks[0].${key} is missing or null:\n${out}")
  endif()
  set(v_${key} "${value}")
endforeach()
if(NOT v_model STREQUAL "quickstart" OR NOT v_params EQUAL 292849 OR NOT v_batch EQUAL 8 OR NOT v_patch EQUAL 32
   OR NOT v_device STREQUAL "cpu" OR NOT v_precision STREQUAL "fp32" OR NOT v_threads EQUAL 2)
  message(FATAL_ERROR "unexpected settings:\n${out}")
endif()
foreach(key gyrus_step_ms pytorch_step_ms ratio gyrus_peak_mb pytorch_peak_mb)
  if(NOT v_${key} GREATER 0)
    message(FATAL_ERROR "${key} = ${v_${key}} is not positive:\n${out}")
  endif()
endforeach()
string(JSON steps LENGTH "${out}" benchmarks 0 gyrus_step_ms_all)
string(JSON twinSteps LENGTH "${out}" benchmarks 0 pytorch_step_ms_all)
if(NOT steps EQUAL 2 OR NOT twinSteps EQUAL 2)
  message(FATAL_ERROR "expected 2 timed steps on each side:\n${out}")
endif()

# A model that does not exist is the user's error.
execute_process(COMMAND ${GYRUS} bench train --model unet_z --no-twin RESULT_VARIABLE rc ERROR_VARIABLE err)
if(NOT rc EQUAL 1 OR NOT err MATCHES "no benchmark model 'unet_z'")
  message(FATAL_ERROR "--model unet_z: exit ${rc}, ${err}")
endif()
