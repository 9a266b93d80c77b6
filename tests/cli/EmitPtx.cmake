# `gyrus emit --stage=ptx` on every example: each module it prints (one per distinct
# kernel program, after a `// kernel <hash> <stage> <role>` line) must assemble with
# ptxas for sm_90, the GPU host's H200. No GPU needed: NVRTC and ptxas run anywhere.
#   cmake -DGYRUS=<gyrus> -DSOURCE=<repo> -DWORK=<scratch> -DPTXAS=<ptxas or empty> -P EmitPtx.cmake
# Without ptxas the check prints "skipped: no ptxas" (the test's SKIP_REGULAR_EXPRESSION).
# Also: with NVRTC unloadable (GYRUS_NVRTC naming no file) the command fails with a
# diagnostic that names the path tried, not a crash; --stage=cuda still works.

file(REMOVE_RECURSE "${WORK}")
file(MAKE_DIRECTORY "${WORK}/examples")

execute_process(COMMAND ${CMAKE_COMMAND} -E env GYRUS_NVRTC=${WORK}/no-such/libnvrtc.so.13
                        ${GYRUS} emit --stage=ptx "${SOURCE}/examples/quickstart.gy"
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 1 OR NOT err MATCHES "error: --stage=ptx needs NVRTC" OR NOT err MATCHES "no-such/libnvrtc.so.13")
  message(FATAL_ERROR "without NVRTC: expected exit 1 and a diagnostic naming the path tried; got ${rc}:\n${err}")
endif()

# --stage=cuda needs no NVRTC: the generated source, one module per kernel program.
execute_process(COMMAND ${CMAKE_COMMAND} -E env GYRUS_NVRTC=${WORK}/no-such/libnvrtc.so.13
                        ${GYRUS} emit --stage=cuda "${SOURCE}/tests/kernel/every_op.gy"
                RESULT_VARIABLE rc OUTPUT_VARIABLE cuda ERROR_VARIABLE err)
string(REGEX MATCHALL "// kernel [0-9a-f]+ [^\n]*\n/[*] gyrus kernel [0-9a-f]+" modules "${cuda}")
list(LENGTH modules count)
# As many as --stage=kernel prints distinct kernels (a shared one says "as ...").
execute_process(COMMAND ${GYRUS} emit --stage=kernel "${SOURCE}/tests/kernel/every_op.gy"
                OUTPUT_VARIABLE kernels ERROR_QUIET)
string(REGEX MATCHALL "kernel [0-9a-f]+\n" distinct "${kernels}")
list(LENGTH distinct expected)
if(NOT rc EQUAL 0 OR NOT count EQUAL expected OR expected EQUAL 0)
  message(FATAL_ERROR "--stage=cuda of every_op.gy: expected exit 0 and ${expected} modules, got ${rc} and ${count}:\n${err}")
endif()

if(NOT PTXAS OR NOT EXISTS "${PTXAS}")
  message("skipped: no ptxas (a CUDA toolkit's bin/ptxas) to assemble the PTX")
  return()
endif()

include(${CMAKE_CURRENT_LIST_DIR}/ExampleTree.cmake)

set(files "")
file(GLOB examples RELATIVE "${WORK}/examples" "${WORK}/examples/*.gy")
list(SORT examples)
foreach(example ${examples})
  list(APPEND files "${WORK}/examples/${example}")
endforeach()
if(EXTRA)
  list(APPEND files ${EXTRA})
endif()

set(total 0)
foreach(file ${files})
  get_filename_component(name "${file}" NAME_WE)
  execute_process(COMMAND ${GYRUS} emit --stage=ptx "${file}"
                  RESULT_VARIABLE rc OUTPUT_VARIABLE ptx ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "gyrus emit --stage=ptx ${file} exited ${rc}: ${err}")
  endif()
  # Split at the header lines (string positions: PTX is full of semicolons, which CMake
  # lists would split on).
  set(rest "${ptx}")
  set(count 0)
  string(FIND "${rest}" "// kernel " start)
  if(NOT start EQUAL 0)
    message(FATAL_ERROR "${file}: the output does not start with a `// kernel` line:\n${ptx}")
  endif()
  while(NOT rest STREQUAL "")
    string(SUBSTRING "${rest}" 1 -1 tail)
    string(FIND "${tail}" "\n// kernel " next)
    if(next EQUAL -1)
      set(module "${rest}")
      set(rest "")
    else()
      math(EXPR cut "${next} + 2")
      string(SUBSTRING "${rest}" 0 ${cut} module)
      string(SUBSTRING "${rest}" ${cut} -1 rest)
    endif()
    math(EXPR count "${count} + 1")
    string(REGEX MATCH "^// kernel [^\n]*" header "${module}")
    if(NOT module MATCHES "\\.entry gyrus_p0_gather")
      message(FATAL_ERROR "${file}: ${header}: no gather kernel in the module")
    endif()
    set(path "${WORK}/${name}-${count}.ptx")
    file(WRITE "${path}" "${module}")
    execute_process(COMMAND ${PTXAS} -arch=sm_90 -o "${WORK}/${name}-${count}.cubin" "${path}"
                    RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
    if(NOT rc EQUAL 0)
      message(FATAL_ERROR "ptxas -arch=sm_90 rejected ${file}'s ${header} (${path}), exit ${rc}:\n${out}${err}")
    endif()
    message(STATUS "${name}: ${header}: assembled for sm_90")
  endwhile()
  if(count EQUAL 0)
    message(FATAL_ERROR "${file}: no kernel module")
  endif()
  math(EXPR total "${total} + ${count}")
endforeach()
message(STATUS "${total} modules assembled with ${PTXAS}")
