# The kernel compiler from the command line, through the real binary:
#   - `gyrus emit --stage=kernel` prints every stage's kernels (the ablation: a prefix and
#     views with the reconstruction target; shared kernels named once);
#   - `gyrus plan` says how the pipelines compile (every operation fused);
#   - `gyrus bench augment --json` has every documented key, with sensible values;
#   - `gyrus preview` writes a NIfTI and a PNG per sample, and says so when the pipeline
#     does not exist.
# Usage: cmake -DGYRUS=gyrus -DSOURCE=<source dir> -DWORK=<scratch dir> -P KernelCommands.cmake
file(REMOVE_RECURSE ${WORK})
file(MAKE_DIRECTORY ${WORK})

execute_process(COMMAND ${GYRUS} emit --stage=kernel ${SOURCE}/examples/ablation.gy
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "emit --stage=kernel exited ${rc}:\n${err}")
endif()
foreach(expected "// stage base\\[1\\], prefix: crop" "// stage base\\[1\\], views: flip.*with the reconstruction target"
                 "reduce image moments nonzero" "target = sample linear from image|target = sample linear"
                 ": as stage base\\[1\\], prefix")
  if(NOT out MATCHES "${expected}")
    message(FATAL_ERROR "emit --stage=kernel: no match for '${expected}' in:\n${out}")
  endif()
endforeach()

execute_process(COMMAND ${GYRUS} plan ${SOURCE}/examples/ablation.gy RESULT_VARIABLE rc OUTPUT_VARIABLE out)
if(NOT rc EQUAL 0 OR NOT out MATCHES "kernels: [0-9]+ fused programs? .*not fused: none")
  message(FATAL_ERROR "plan: exit ${rc}, no kernels line:\n${out}")
endif()

execute_process(COMMAND ${GYRUS} bench augment --patch 32 --seconds 0.2 --threads 2 --no-baseline --json
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "bench augment exited ${rc}:\n${err}\n${out}")
endif()
foreach(key fused_patches_per_s interp_patches_per_s eager_torch_patches_per_s copy_gb_per_s compile_ms_cold
            compile_ms_cached device threads)
  string(JSON value ERROR_VARIABLE missing GET "${out}" benchmarks 0 ${key})
  if(missing OR value STREQUAL "" OR value STREQUAL "null")
    message(FATAL_ERROR "bench augment: ${key} is missing or null:\n${out}")
  endif()
  set(v_${key} "${value}")
endforeach()
foreach(key fused_patches_per_s interp_patches_per_s eager_torch_patches_per_s copy_gb_per_s)
  if(NOT v_${key} GREATER 0)
    message(FATAL_ERROR "bench augment: ${key} = ${v_${key}} is not positive:\n${out}")
  endif()
endforeach()
string(JSON baseline TYPE "${out}" benchmarks 0 baseline_patches_per_s)
if(NOT v_device STREQUAL "cpu" OR NOT v_threads EQUAL 2 OR NOT baseline STREQUAL "NULL")
  message(FATAL_ERROR "bench augment: unexpected settings:\n${out}")
endif()

# preview: the ablation's views on a volume written by `gyrus synth`.
execute_process(COMMAND ${GYRUS} synth --out ${WORK}/corpus --layout fomo60k --subjects 1 --size 40
                RESULT_VARIABLE rc ERROR_VARIABLE err OUTPUT_QUIET)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "synth exited ${rc}:\n${err}")
endif()
file(GLOB_RECURSE volumes ${WORK}/corpus/*.nii.gz)
list(GET volumes 0 volume)
execute_process(COMMAND ${GYRUS} preview ${SOURCE}/examples/ablation.gy --pipeline views --input ${volume}
                        --out ${WORK}/preview --samples 2 --seed 3
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "preview exited ${rc}:\n${err}")
endif()
foreach(f sample_000.nii.gz sample_000.png sample_001.nii.gz sample_001.png)
  if(NOT EXISTS ${WORK}/preview/${f})
    message(FATAL_ERROR "preview did not write ${f}:\n${out}")
  endif()
endforeach()
file(READ ${WORK}/preview/sample_000.png magic LIMIT 8 HEX)
if(NOT magic STREQUAL "89504e470d0a1a0a")
  message(FATAL_ERROR "sample_000.png is not a PNG (${magic})")
endif()
if(NOT out MATCHES "sample_000.nii.gz  32x32x32 at")
  message(FATAL_ERROR "preview: unexpected output:\n${out}")
endif()
execute_process(COMMAND ${GYRUS} preview ${SOURCE}/examples/ablation.gy --pipeline nope --input ${volume}
                        --out ${WORK}/preview2 RESULT_VARIABLE rc ERROR_VARIABLE err)
if(NOT rc EQUAL 1 OR NOT err MATCHES "no pipeline 'nope'.*prep, views")
  message(FATAL_ERROR "preview --pipeline nope: exit ${rc}:\n${err}")
endif()
# A typo gets a suggestion; the file's other pipelines are not reported unused.
execute_process(COMMAND ${GYRUS} preview ${SOURCE}/examples/ablation.gy --pipeline veiws --input ${volume}
                        --out ${WORK}/preview3 RESULT_VARIABLE rc ERROR_VARIABLE err)
if(NOT rc EQUAL 1 OR NOT err MATCHES "did you mean 'views'" OR err MATCHES "never used")
  message(FATAL_ERROR "preview --pipeline veiws: exit ${rc}:\n${err}")
endif()
