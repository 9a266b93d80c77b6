# Included by the scripts that run gyrus on every example (StageHashes.cmake,
# EmitPtx.cmake): copies examples/*.gy into ${WORK}/examples and makes the folders
# examples/folders.gy reads with `gyrus synth` (a 48-subject fomo60k corpus, a 64-subject
# task-1 set, 40^3). Needs GYRUS, SOURCE, WORK.
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
