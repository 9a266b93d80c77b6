# `gyrus run --jobs N` through the real binary: two pretrainings and their probes run as
# worker processes (`gyrus run-stage`), with the same results as one stage after another
# at the same threads per stage (1), every stage recorded in the store; a rerun reuses
# everything; a failing stage's dependents are skipped while the independent ones run.
# Usage: cmake -DGYRUS=gyrus -DFILE=<tests/cli/data/jobs.gy> -DWORK=<scratch> -P RunJobs.cmake
file(REMOVE_RECURSE ${WORK})
file(MAKE_DIRECTORY ${WORK})
execute_process(COMMAND ${GYRUS} run ${FILE} --store ${WORK}/seq --threads 1 --json
                RESULT_VARIABLE rc OUTPUT_VARIABLE seq ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "sequential run exited ${rc}:\n${err}")
endif()
execute_process(COMMAND ${GYRUS} run ${FILE} --store ${WORK}/par --threads 2 --jobs 2 --json
                RESULT_VARIABLE rc OUTPUT_VARIABLE par ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "--jobs 2 exited ${rc}:\n${err}")
endif()
if(NOT err MATCHES "up to 2 stages at once, 1 thread each" OR NOT err MATCHES "\\[a\\] pretrain a \\([0-9a-f]+\\) in worker [0-9]+")
  message(FATAL_ERROR "--jobs 2: no worker lines:\n${err}")
endif()
# The same stages, statuses and metrics (values to the last digit: one thread per stage both ways).
foreach(part stages metrics)
  string(JSON a GET "${seq}" ${part})
  string(JSON b GET "${par}" ${part})
  string(REGEX REPLACE "\"seconds\" *: *[0-9.e+-]+" "" a "${a}")
  string(REGEX REPLACE "\"seconds\" *: *[0-9.e+-]+" "" b "${b}")
  if(NOT a STREQUAL b)
    message(FATAL_ERROR "--jobs 2 differs from the sequential run in ${part}:\n${a}\n---\n${b}")
  endif()
endforeach()
file(GLOB results ${WORK}/par/stages/*/result.json)
list(LENGTH results n)
if(NOT n EQUAL 4)
  message(FATAL_ERROR "expected 4 result.json files in the store, found ${n}")
endif()
# A rerun: everything cached, no worker.
execute_process(COMMAND ${GYRUS} run ${FILE} --store ${WORK}/par --threads 2 --jobs 2 --json
                RESULT_VARIABLE rc OUTPUT_VARIABLE again ERROR_VARIABLE err)
if(NOT rc EQUAL 0 OR err MATCHES "in worker" OR NOT again MATCHES "\"status\": \"cached\"")
  message(FATAL_ERROR "rerun: exit ${rc}, workers started or nothing cached:\n${err}\n${again}")
endif()
# Workers that fail (no runtime module): the pretrainings fail with the reason, their
# probes are skipped, the run exits 2 (an installation problem, not the user's file).
execute_process(COMMAND ${CMAKE_COMMAND} -E env GYRUS_RUNTIME=/nonexistent/libgyrus_runtime.so
                        ${GYRUS} run ${FILE} --store ${WORK}/fail --threads 2 --jobs 2 --json
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 2 OR NOT out MATCHES "\"status\": \"failed\"" OR NOT out MATCHES "\"status\": \"skipped\""
   OR NOT err MATCHES "/nonexistent/libgyrus_runtime.so")
  message(FATAL_ERROR "failing workers: exit ${rc}:\n${err}\n${out}")
endif()

# On a terminal (a pseudo-terminal from util-linux's `script`): the live view redraws one
# line per running stage in place (ANSI cursor moves); each stage's end stays printed.
find_program(SCRIPT script)
if(SCRIPT)
  execute_process(COMMAND ${SCRIPT} -qec "${GYRUS} run ${FILE} --store ${WORK}/live --threads 2 --jobs 2" /dev/null
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  string(ASCII 27 esc)
  if(NOT rc EQUAL 0 OR NOT out MATCHES "${esc}\\[[0-9]+F${esc}\\[J")
    message(FATAL_ERROR "live view: exit ${rc}, no redraw in:\n${out}${err}")
  endif()
  foreach(stage a b a_lesion b_lesion)
    if(NOT out MATCHES "\\[${stage}\\] done in ")
      message(FATAL_ERROR "live view: no end line for ${stage}:\n${out}")
    endif()
  endforeach()
else()
  message(STATUS "no `script` (util-linux): the live view is not checked")
endif()
