# Golden diagnostics: runs `gyrus check` on every fail_*.gy in DIR and compares its
# stderr with fail_*.expected and its exit code with 1. Files named fail_* must fail.
# Each file also states what it expects inline (`// expect-error@+1 [kind]`), checked
# with `gyrus check --verify`: a test fails for the stated reason or not at all.
# A first line `// args: ...` adds command-line arguments (e.g. --set).
# Set GYRUS_UPDATE_GOLDEN=1 in the environment to rewrite the .expected files (then
# read the diff before committing it).
file(GLOB inputs RELATIVE ${DIR} ${DIR}/fail_*.gy)
list(SORT inputs)
set(failures 0)
foreach(input ${inputs})
  string(REGEX REPLACE "\\.gy$" ".expected" expected_file ${input})
  file(STRINGS ${DIR}/${input} first_line LIMIT_COUNT 1)
  set(extra_args "")
  if(first_line MATCHES "^// args: (.*)$")
    separate_arguments(extra_args UNIX_COMMAND "${CMAKE_MATCH_1}")
  endif()
  execute_process(
    COMMAND ${CMAKE_COMMAND} -E env NO_COLOR=1 ${GYRUS} check ${input} ${extra_args}
    WORKING_DIRECTORY ${DIR}
    RESULT_VARIABLE code
    OUTPUT_VARIABLE out
    ERROR_VARIABLE err)
  if(NOT code EQUAL 1)
    message(SEND_ERROR "${input}: expected exit code 1, got '${code}'\n${err}")
    math(EXPR failures "${failures} + 1")
    continue()
  endif()
  execute_process(
    COMMAND ${GYRUS} check --verify ${input} ${extra_args}
    WORKING_DIRECTORY ${DIR}
    RESULT_VARIABLE verify_code
    ERROR_VARIABLE verify_err)
  if(NOT verify_code EQUAL 0)
    message(SEND_ERROR "${input}: inline expectations not met:\n${verify_err}")
    math(EXPR failures "${failures} + 1")
    continue()
  endif()
  if(DEFINED ENV{GYRUS_UPDATE_GOLDEN})
    file(WRITE ${DIR}/${expected_file} "${err}")
    message(STATUS "updated ${expected_file}")
    continue()
  endif()
  if(NOT EXISTS ${DIR}/${expected_file})
    message(SEND_ERROR "${input}: missing ${expected_file} (run with GYRUS_UPDATE_GOLDEN=1)")
    math(EXPR failures "${failures} + 1")
    continue()
  endif()
  file(READ ${DIR}/${expected_file} want)
  if(NOT err STREQUAL want)
    message(SEND_ERROR "${input}: diagnostics differ from ${expected_file}\n--- expected\n${want}--- got\n${err}")
    math(EXPR failures "${failures} + 1")
  endif()
endforeach()
list(LENGTH inputs total)
if(failures GREATER 0)
  message(FATAL_ERROR "${failures} of ${total} golden files failed")
endif()
message(STATUS "${total} golden files match")
