# `gyrus runs ls|show|rm|gc` on a store made by `gyrus plan --store` (no runtime): the
# listing, a finished stage's details, removal by prefix, and collection of every stage
# no given file plans (a file that does not check removes nothing).
#   cmake -DGYRUS=<gyrus> -DWORK=<scratch dir> -P Runs.cmake
cmake_policy(SET CMP0054 NEW)  # quoted arguments of if() are strings, not variables
file(REMOVE_RECURSE "${WORK}")
file(MAKE_DIRECTORY "${WORK}")
file(WRITE "${WORK}/a.gy" [=[
dataset corpus = synthetic(subjects = 16, size = 32^3)
pretrain base {
  data      = corpus |> zscore()
  encoder   = unet(width = 4, stages = 3)
  objective = mae()
}
evaluate base on corpus.lesion (shots = 4)
]=])
# Another pretraining, from the prelude's presets: nothing of a.gy plans it.
file(WRITE "${WORK}/b.gy" [=[
dataset corpus = synthetic(subjects = 16, size = 32^3)
pretrain other { data = corpus, encoder = unet_b, objective = amaes }
]=])
file(WRITE "${WORK}/bad.gy" "dataset corpus = synthetic(subjects = 1)\n")

function(run_gyrus out)
  execute_process(COMMAND ${GYRUS} ${ARGN} WORKING_DIRECTORY ${WORK} RESULT_VARIABLE rc OUTPUT_VARIABLE text
                  ERROR_VARIABLE err)
  set(${out}_rc ${rc} PARENT_SCOPE)
  set(${out} "${text}" PARENT_SCOPE)
  set(${out}_err "${err}" PARENT_SCOPE)
endfunction()

run_gyrus(plan_a plan a.gy --store store --json)
run_gyrus(plan_b plan b.gy --store store)
string(JSON base GET "${plan_a}" stages 0 hash)
file(WRITE "${WORK}/store/stages/${base}/result.json"
     "{\"hash\": \"${base}\", \"name\": \"base\", \"kind\": \"pretrain\", \"seconds\": 2, \"resumed\": false, \"host\": \"node7\", \"device\": \"cpu\", \"metrics\": [{\"name\": \"final_loss\", \"value\": 0.25}]}")

run_gyrus(ls runs ls --store store --json)
string(JSON n LENGTH "${ls}" stages)
if(NOT ls_rc EQUAL 0 OR NOT n EQUAL 3)
  message(FATAL_ERROR "runs ls --json: exit ${ls_rc}, ${n} stages, want 3:\n${ls}${ls_err}")
endif()
set(finished 0)
foreach(i RANGE 2)
  string(JSON status GET "${ls}" stages ${i} status)
  string(JSON hash GET "${ls}" stages ${i} hash)
  if(hash STREQUAL base)
    string(JSON host GET "${ls}" stages ${i} host)
    if(NOT status STREQUAL "done" OR NOT host STREQUAL "node7")
      message(FATAL_ERROR "the finished stage is ${status} on ${host}:\n${ls}")
    endif()
    math(EXPR finished "${finished} + 1")
  elseif(NOT status STREQUAL "incomplete")
    message(FATAL_ERROR "a planned stage is ${status}, not incomplete:\n${ls}")
  endif()
endforeach()
if(NOT finished EQUAL 1)
  message(FATAL_ERROR "runs ls --json lists the finished stage ${finished} times:\n${ls}")
endif()

run_gyrus(table runs ls --store store)
string(REGEX REPLACE "[ ]+" " " table "${table}")
if(NOT table MATCHES "base pretrain done final_loss 0.2500")
  message(FATAL_ERROR "runs ls table:\n${table}")
endif()

string(SUBSTRING "${base}" 0 8 prefix)
run_gyrus(show runs show --store store ${prefix})
if(NOT show_rc EQUAL 0 OR NOT show MATCHES "name    base" OR NOT show MATCHES "final_loss" OR NOT show MATCHES "stage.json")
  message(FATAL_ERROR "runs show: exit ${show_rc}:\n${show}${show_err}")
endif()
run_gyrus(short runs show --store store ab)
if(NOT short_rc EQUAL 1 OR NOT short_err MATCHES "no stage named or hashed 'ab'")
  message(FATAL_ERROR "runs show with a 2-digit prefix: exit ${short_rc}: ${short_err}")
endif()
# By name, as export, predict, compare and rank take stages.
run_gyrus(named runs show --store store base)
if(NOT named_rc EQUAL 0 OR NOT named MATCHES "stage   ${base}")
  message(FATAL_ERROR "runs show by name: exit ${named_rc}:\n${named}${named_err}")
endif()

# gc: a file that does not check removes nothing; the dry run lists; then b's stage goes.
run_gyrus(gc_bad runs gc --store store a.gy bad.gy)
file(GLOB left LIST_DIRECTORIES true "${WORK}/store/stages/*")
list(LENGTH left count)
if(NOT gc_bad_rc EQUAL 1 OR NOT count EQUAL 3)
  message(FATAL_ERROR "gc with a bad file: exit ${gc_bad_rc}, ${count} stages left:\n${gc_bad_err}")
endif()
run_gyrus(dry runs gc --store store a.gy --dry-run)
file(GLOB left LIST_DIRECTORIES true "${WORK}/store/stages/*")
list(LENGTH left count)
if(NOT dry MATCHES "would remove 1 stage" OR NOT count EQUAL 3)
  message(FATAL_ERROR "gc --dry-run: ${count} stages left:\n${dry}")
endif()
run_gyrus(gc runs gc --store store a.gy)
file(GLOB left LIST_DIRECTORIES true "${WORK}/store/stages/*")
list(LENGTH left count)
if(NOT gc_rc EQUAL 0 OR NOT count EQUAL 2 OR NOT EXISTS "${WORK}/store/stages/${base}/result.json")
  message(FATAL_ERROR "gc: exit ${gc_rc}, ${count} stages left:\n${gc}${gc_err}")
endif()

# A mistyped name among good ones removes nothing.
run_gyrus(typo runs rm --store store ${prefix} nosuchstage)
if(NOT typo_rc EQUAL 1 OR NOT EXISTS "${WORK}/store/stages/${base}" OR NOT typo_err MATCHES "nothing was removed")
  message(FATAL_ERROR "runs rm with a bad name: exit ${typo_rc}:\n${typo}${typo_err}")
endif()
run_gyrus(rm runs rm --store store base)
if(NOT rm_rc EQUAL 0 OR EXISTS "${WORK}/store/stages/${base}")
  message(FATAL_ERROR "runs rm: exit ${rm_rc}:\n${rm}${rm_err}")
endif()
run_gyrus(none runs ls --store nowhere)
if(NOT none_rc EQUAL 1 OR NOT none_err MATCHES "is not a run store")
  message(FATAL_ERROR "runs ls on a missing store: exit ${none_rc}: ${none_err}")
endif()
message(STATUS "gyrus runs: ls, show, rm and gc")
