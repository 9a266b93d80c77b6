# Golden stage hashes: every example's stages (name and hash, from `gyrus plan --json`)
# against tests/golden/stage_hashes.txt, so a change that alters results' identity (and
# makes every store recompute) is visible in review.
#   cmake -DGYRUS=<gyrus> -DSOURCE=<repo> -DWORK=<scratch> [-DUPDATE=ON] -P StageHashes.cmake
# With UPDATE=ON the file is rewritten instead (read the diff before committing it).
# examples/folders.gy runs on folders that `gyrus synth` makes, as its header says; their
# content is deterministic, so their fingerprints are too.

file(REMOVE_RECURSE "${WORK}")
file(MAKE_DIRECTORY "${WORK}/examples")
file(GLOB examples "${SOURCE}/examples/*.gy")
foreach(example ${examples})
  file(COPY "${example}" DESTINATION "${WORK}/examples")
endforeach()
foreach(synth "fomo60k;fomo60k;48;40;1" "task1;fomo25-task1;64;40;2")
  list(GET synth 0 out)
  list(GET synth 1 layout)
  list(GET synth 2 subjects)
  list(GET synth 3 size)
  list(GET synth 4 seed)
  execute_process(COMMAND ${GYRUS} synth --out "${WORK}/examples/synth/${out}" --layout ${layout}
                          --subjects ${subjects} --size ${size} --seed ${seed}
                  RESULT_VARIABLE rc OUTPUT_QUIET ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "gyrus synth exited ${rc}: ${err}")
  endif()
endforeach()

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
