# Golden stage hashes: every example's stages (name and hash, from `gyrus plan --json`)
# against tests/golden/stage_hashes.txt, so a change that alters results' identity (and
# makes every store recompute) is visible in review.
#   cmake -DGYRUS=<gyrus> -DSOURCE=<repo> -DWORK=<scratch> [-DUPDATE=ON] -P StageHashes.cmake
# With UPDATE=ON the file is rewritten instead (read the diff before committing it).
# examples/folders.gy runs on folders that `gyrus synth` makes, as its header says; their
# content is deterministic, so their fingerprints are too.

file(REMOVE_RECURSE "${WORK}")
include(${CMAKE_CURRENT_LIST_DIR}/ExampleTree.cmake)

set(actual "# stage hashes of examples/*.gy (tests/cli/StageHashes.cmake; UPDATE=ON rewrites)\n")
file(GLOB examples RELATIVE "${WORK}/examples" "${WORK}/examples/*.gy")
list(SORT examples)
foreach(example ${examples})
  execute_process(COMMAND ${GYRUS} plan "${WORK}/examples/${example}" --json
                  RESULT_VARIABLE rc OUTPUT_VARIABLE plan ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "gyrus plan ${example} exited ${rc}: ${err}")
  endif()
  string(JSON count LENGTH "${plan}" stages)
  math(EXPR last "${count} - 1")
  foreach(i RANGE ${last})
    string(JSON name GET "${plan}" stages ${i} name)
    string(JSON hash GET "${plan}" stages ${i} hash)
    string(APPEND actual "${example} ${name} ${hash}\n")
  endforeach()
endforeach()

set(golden "${SOURCE}/tests/golden/stage_hashes.txt")
if(UPDATE)
  file(WRITE "${golden}" "${actual}")
  message(STATUS "wrote ${golden}")
  return()
endif()
file(READ "${golden}" expected)
if(NOT expected STREQUAL actual)
  file(WRITE "${WORK}/actual.txt" "${actual}")
  execute_process(COMMAND diff -u "${golden}" "${WORK}/actual.txt" OUTPUT_VARIABLE diff)
  message(FATAL_ERROR "stage hashes changed (a change of results' identity: every store recomputes these stages).\n"
                      "If intended, update with:\n  cmake -DGYRUS=${GYRUS} -DSOURCE=${SOURCE} -DWORK=${WORK} -DUPDATE=ON "
                      "-P ${CMAKE_CURRENT_LIST_FILE}\n${diff}")
endif()
