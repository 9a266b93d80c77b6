# Included by the scripts that run gyrus on every example (StageHashes.cmake,
# EmitPtx.cmake): copies examples/*.gy into ${WORK}/examples and makes the folders
# examples/folders.gy reads with `gyrus synth` (a 48-subject fomo60k corpus, a 64-subject
# task-1 set, 40^3), and those of examples/fomo25_synthetic.gy (synth/clinic/: the four
# layouts, 96 subjects each at sites a and c, as its header
# says). Needs GYRUS, SOURCE, WORK.
file(MAKE_DIRECTORY "${WORK}/examples")
file(GLOB examples "${SOURCE}/examples/*.gy")
foreach(example ${examples})
  file(COPY "${example}" DESTINATION "${WORK}/examples")
endforeach()
foreach(synth "fomo60k;fomo60k;48;40;1;a,b;100" "task1;fomo25-task1;64;40;2;a,b;100"
              "clinic/fomo60k;fomo60k;96;40;1;a,c;100" "clinic/fomo25-task1;fomo25-task1;96;40;2;a,c;100"
              "clinic/fomo25-task2;fomo25-task2;96;40;3;a,c;100" "clinic/fomo25-task3;fomo25-task3;96;40;4;a,c;100")
  list(GET synth 0 out)
  list(GET synth 1 layout)
  list(GET synth 2 subjects)
  list(GET synth 3 size)
  list(GET synth 4 seed)
  list(GET synth 5 sites)
  list(GET synth 6 contrast)
  execute_process(COMMAND ${GYRUS} synth --out "${WORK}/examples/synth/${out}" --layout ${layout}
                          --subjects ${subjects} --size ${size} --seed ${seed} --sites ${sites}
                          --lesion-contrast ${contrast}
                  RESULT_VARIABLE rc OUTPUT_QUIET ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "gyrus synth exited ${rc}: ${err}")
  endif()
endforeach()
