# Regression (issue 8, item 7): command-line mistakes are diagnostics like any other.
# A malformed --set is [bad-override] and an unreadable experiment file (missing, a
# directory) is [io-error]; with --diagnostics=json every line of stderr is JSON.
#   cmake -DGYRUS=<gyrus> -DWORK=<scratch dir> -P CliDiagnostics.cmake
file(REMOVE_RECURSE "${WORK}")
file(MAKE_DIRECTORY "${WORK}/folder.gy")
file(WRITE "${WORK}/ok.gy" "dataset corpus = synthetic(subjects = 16, size = 32^3)\n\npretrain base {\n  data = corpus\n  encoder = unet(width = 4, stages = 3)\n  objective = mae()\n}\n")
set(failures 0)

# expect(NAME KIND TEXT ARGS...): `gyrus check ARGS --diagnostics=json` exits 1, prints
# only JSON lines, one of them of KIND with TEXT in its message; the human form has
# "[KIND]" too. ARGS may start with another command (`emit`), checked the same way.
function(expect name kind text)
  set(args ${ARGN})
  set(command check)
  list(GET args 0 first)
  if(first STREQUAL "emit" OR first STREQUAL "plan")
    list(POP_FRONT args command)
  endif()
  execute_process(COMMAND ${GYRUS} ${command} ${args} --diagnostics=json WORKING_DIRECTORY ${WORK}
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  set(problem "")
  if(NOT rc EQUAL 1)
    string(APPEND problem "exit code ${rc}, expected 1; ")
  endif()
  string(REPLACE "\n" ";" lines "${err}")
  set(found FALSE)
  foreach(line ${lines})
    if(line STREQUAL "")
      continue()
    endif()
    string(JSON k ERROR_VARIABLE jerr GET "${line}" kind)
    if(jerr)
      string(APPEND problem "not JSON: '${line}'; ")
      continue()
    endif()
    string(JSON m GET "${line}" message)
    string(FIND "${m}" "${text}" at)
    if(k STREQUAL kind AND NOT at EQUAL -1)
      set(found TRUE)
    endif()
  endforeach()
  if(NOT found)
    string(APPEND problem "no [${kind}] diagnostic with '${text}'; ")
  endif()
  execute_process(COMMAND ${CMAKE_COMMAND} -E env NO_COLOR=1 ${GYRUS} ${command} ${args} WORKING_DIRECTORY ${WORK}
                  RESULT_VARIABLE rc2 ERROR_VARIABLE human)
  string(FIND "${human}" "[${kind}]" at)
  if(NOT rc2 EQUAL 1 OR at EQUAL -1)
    string(APPEND problem "human output lacks [${kind}] (exit ${rc2}): ${human}; ")
  endif()
  if(NOT problem STREQUAL "")
    message(SEND_ERROR "${name}: ${problem}\n--- stderr\n${err}")
    math(EXPR n "${failures} + 1")
    set(failures ${n} PARENT_SCOPE)
  endif()
endfunction()

expect(malformed_set bad-override "must have the form PATH=VALUE" ok.gy --set base.epochs)
expect(missing_file io-error "no such file" missing.gy)
expect(directory io-error "is a directory" folder.gy)
expect(missing_with_set io-error "no such file" missing.gy --set nonsense)
expect(emit_tokens_missing io-error "no such file" emit missing.gy --stage=tokens)
expect(plan_malformed_set bad-override "must have the form PATH=VALUE" plan ok.gy --set =2)

# gyrus fmt has no JSON form; its unreadable files are [io-error] too.
execute_process(COMMAND ${GYRUS} fmt missing.gy WORKING_DIRECTORY ${WORK} RESULT_VARIABLE rc ERROR_VARIABLE err)
string(FIND "${err}" "no such file [io-error]" at)
if(NOT rc EQUAL 1 OR at EQUAL -1)
  message(SEND_ERROR "fmt_missing: expected exit 1 and [io-error], got ${rc}: ${err}")
  math(EXPR failures "${failures} + 1")
endif()

# gyrus fmt through a symbolic link formats the file it points to, keeping the link and
# the file's permissions.
file(WRITE ${WORK}/real.gy "let x =   1\n")
file(CHMOD ${WORK}/real.gy PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE)
file(CREATE_LINK real.gy ${WORK}/link.gy SYMBOLIC)
execute_process(COMMAND ${GYRUS} fmt link.gy WORKING_DIRECTORY ${WORK} RESULT_VARIABLE rc ERROR_VARIABLE err)
file(READ ${WORK}/real.gy formatted)
execute_process(COMMAND stat -c %a ${WORK}/real.gy OUTPUT_VARIABLE mode OUTPUT_STRIP_TRAILING_WHITESPACE)
if(NOT rc EQUAL 0 OR NOT IS_SYMLINK ${WORK}/link.gy OR NOT formatted STREQUAL "let x = 1\n" OR NOT mode STREQUAL "750")
  message(SEND_ERROR "fmt through a link: exit ${rc} (${err}), link kept: ${WORK}/link.gy, real.gy '${formatted}', mode ${mode}")
  math(EXPR failures "${failures} + 1")
endif()

# --json is the serialised IR or plan; for another stage it is an error, not ignored.
execute_process(COMMAND ${GYRUS} emit ok.gy --stage=ast --json WORKING_DIRECTORY ${WORK}
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
string(FIND "${err}" "--json is the serialised form of --stage=ir or --stage=plan, not of --stage=ast" at)
if(NOT rc EQUAL 1 OR at EQUAL -1 OR NOT out STREQUAL "")
  message(SEND_ERROR "emit_ast_json: expected exit 1, no output and the message, got ${rc}: ${err}")
  math(EXPR failures "${failures} + 1")
endif()

if(failures GREATER 0)
  message(FATAL_ERROR "${failures} command-line diagnostic checks failed")
endif()
