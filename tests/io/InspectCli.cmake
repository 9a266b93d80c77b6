# `gyrus inspect` end to end: cmake -DGYRUS=<gyrus> -DDATA=<tests/data/real-mri> -P InspectCli.cmake
# Checks the JSON keys and values on a fixture (expected values: fixtures/nifti.json,
# from nibabel), the human output, and the exit codes and message of a bad file.

function(inspect_json file out_var)
  execute_process(COMMAND ${GYRUS} inspect ${DATA}/${file} --json ${ARGN}
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "gyrus inspect ${file} exited ${rc}: ${err}")
  endif()
  set(${out_var} "${out}" PARENT_SCOPE)
endfunction()

function(expect_equal what got expected)
  if(NOT "${got}" STREQUAL "${expected}")
    message(FATAL_ERROR "${what}: got '${got}', expected '${expected}'")
  endif()
endfunction()

# CMake has no floating-point arithmetic: compare the leading digits (gyrus keeps float32
# voxel values, nibabel float64, so they agree to about 7 significant digits).
function(expect_prefix what got prefix)
  string(FIND "${got}" "${prefix}" at)
  if(NOT at EQUAL 0)
    message(FATAL_ERROR "${what}: got '${got}', expected '${prefix}...'")
  endif()
endfunction()

# The IXI T1: PSR on disk, scl_slope 21.9125, 120x120x90 -> 90x120x120 in RAS order.
inspect_json(ixi_T1_brainage/IXI034-HH-1260-T1_ds.nii.gz j)
foreach(key shape spacing orientation datatype min max mean std)
  string(JSON type ERROR_VARIABLE missing TYPE "${j}" ${key})
  if(missing)
    message(FATAL_ERROR "key '${key}' missing from: ${j}")
  endif()
endforeach()
string(JSON s0 GET "${j}" shape 0)
string(JSON s1 GET "${j}" shape 1)
string(JSON s2 GET "${j}" shape 2)
expect_equal("shape" "${s0} ${s1} ${s2}" "90 120 120")
string(JSON o GET "${j}" orientation)
expect_equal("orientation" "${o}" "PSR")
string(JSON d GET "${j}" datatype)
expect_equal("datatype" "${d}" "uint8")
string(JSON sp GET "${j}" spacing 2)
expect_equal("spacing" "${sp}" "2.0")
string(JSON mx GET "${j}" max)
expect_prefix("max" "${mx}" "5587.68")  # nibabel: 5587.688083648682
string(JSON mean GET "${j}" mean)
expect_prefix("mean" "${mean}" "322.406")  # nibabel: 322.40600106619905

# The 4-D file, second volume.
inspect_json(edge_cases/nibabel_example4d.nii.gz j --volume 1)
string(JSON v GET "${j}" volumes)
expect_equal("volumes" "${v}" "2")
string(JSON mx GET "${j}" max)
expect_equal("max of volume 1" "${mx}" "1140.0")

# Human output.
execute_process(COMMAND ${GYRUS} inspect ${DATA}/stroke_cstar_T1_T2_FLAIR/T2.nii.gz
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
expect_equal("exit code" "${rc}" "0")
foreach(needle "124 x 160 x 140" "orientation  RAS" "datatype     uint8" "scaling      value * 2.007843")
  string(FIND "${out}" "${needle}" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "'${needle}' not in:\n${out}")
  endif()
endforeach()

# A bad file: exit 1, `error: <path>: <reason>` on stderr, nothing on stdout.
execute_process(COMMAND ${GYRUS} inspect ${DATA}/does-not-exist.nii.gz --json
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
expect_equal("exit code for a missing file" "${rc}" "1")
expect_equal("stdout for a missing file" "${out}" "")
expect_equal("stderr for a missing file" "${err}" "error: ${DATA}/does-not-exist.nii.gz: no such file\n")
# A volume that does not exist.
execute_process(COMMAND ${GYRUS} inspect ${DATA}/edge_cases/nibabel_anatomical_bigendian.nii --volume 3
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
expect_equal("exit code for a bad volume" "${rc}" "1")
string(FIND "${err}" "volume 3 does not exist: the file has 1 volume" at)
if(at EQUAL -1)
  message(FATAL_ERROR "unexpected message: ${err}")
endif()
# A negative volume: CLI11's range, in whole numbers (not a 300-digit double).
execute_process(COMMAND ${GYRUS} inspect ${DATA}/edge_cases/nibabel_anatomical_bigendian.nii --volume -1
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(rc EQUAL 0 OR NOT err MATCHES "not in range 0 to 32767" OR err MATCHES "000000")
  message(FATAL_ERROR "--volume -1: exit ${rc}: ${err}")
endif()
# The module cannot be found: an internal error (2).
execute_process(COMMAND ${CMAKE_COMMAND} -E env GYRUS_IO=/nonexistent/libgyrus_io.so
                        ${GYRUS} inspect ${DATA}/edge_cases/nibabel_anatomical_bigendian.nii
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
expect_equal("exit code without the module" "${rc}" "2")
message(STATUS "gyrus inspect: all checks passed")
