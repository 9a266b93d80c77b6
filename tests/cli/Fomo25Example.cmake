# examples/fomo25_synthetic.gy checks (on the folders its header makes), and
# `gyrus rank --store` ranks its evaluations FOMO25-style, each model against its
# from-scratch reference, from a store whose stages are already finished (so no runtime
# is loaded and nothing is trained):
#   cmake -DGYRUS=<gyrus> -DSOURCE=<repo> -DWORK=<scratch dir> -P Fomo25Example.cmake
cmake_policy(SET CMP0054 NEW)
file(REMOVE_RECURSE "${WORK}")
include(${CMAKE_CURRENT_LIST_DIR}/ExampleTree.cmake)
set(example "${WORK}/examples/fomo25_synthetic.gy")

execute_process(COMMAND ${GYRUS} check "${example}" RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "gyrus check examples/fomo25_synthetic.gy exited ${rc}: ${out}${err}")
endif()

execute_process(COMMAND ${GYRUS} plan "${example}" --store ${WORK}/store RESULT_VARIABLE rc OUTPUT_QUIET ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "gyrus plan --store exited ${rc}: ${err}")
endif()
# Finished stages with known figures: the pretrained model wins infarct, ties
# meningioma (better NSD, worse Dice) and brain age (better MAE, worse r) with scratch.
set(binary [=[[{"name": "auroc", "value": 0.7}, {"name": "auroc_std", "value": 0.05}, {"name": "auroc_ci_low", "value": 0.6}, {"name": "auroc_ci_high", "value": 0.8}, {"name": "auroc_scratch", "value": 0.6}]]=])
set(mask [=[[{"name": "dice", "value": 0.5}, {"name": "nsd", "value": 0.6}, {"name": "dice_scratch", "value": 0.55}, {"name": "nsd_scratch", "value": 0.4}]]=])
set(continuous [=[[{"name": "mae", "value": 10.0}, {"name": "mae_ci_low", "value": 8.5}, {"name": "mae_ci_high", "value": 11.5}, {"name": "pearson_r", "value": 0.3}, {"name": "mae_scratch", "value": 12.0}, {"name": "pearson_r_scratch", "value": 0.4}]]=])
file(GLOB dirs LIST_DIRECTORIES true "${WORK}/store/stages/*")
list(LENGTH dirs count)
if(NOT count EQUAL 4)
  message(FATAL_ERROR "gyrus plan --store wrote ${count} stage directories, not 4 (a pretraining, three tasks)")
endif()
foreach(dir ${dirs})
  get_filename_component(hash "${dir}" NAME)
  file(READ "${dir}/stage.json" ir)
  if(ir MATCHES "\"kind\": \"pretrain\"")
    set(metrics [=[[{"name": "final_loss", "value": 0.1}]]=])
    set(kind pretrain)
  elseif(ir MATCHES "\"label_kind\": \"binary\"")
    set(metrics "${binary}")
    set(kind evaluate)
  elseif(ir MATCHES "\"label_kind\": \"mask\"")
    set(metrics "${mask}")
    set(kind evaluate)
  else()
    set(metrics "${continuous}")
    set(kind evaluate)
  endif()
  file(WRITE "${dir}/result.json"
       "{\"hash\": \"${hash}\", \"name\": \"x\", \"kind\": \"${kind}\", \"seconds\": 1, \"resumed\": false, \"metrics\": ${metrics}}")
endforeach()

execute_process(COMMAND ${GYRUS} rank --store ${WORK}/store RESULT_VARIABLE rc OUTPUT_VARIABLE table ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "gyrus rank --store exited ${rc}: ${err}")
endif()
string(REGEX REPLACE "[ ]+" " " flat "${table}")
foreach(want "infarct base auroc 0.7000 [0.6000, 0.8000]\n" "infarct base_scratch auroc 0.6000 \n"
             "meningioma base_scratch nsd 0.4000 \n" "brain_age base mae 10.0000 [8.5000, 11.5000]\n"
             "1 base 1.333 1.000 1.500 1.500\n2 base_scratch 1.667 2.000 1.500 1.500\n")
  string(FIND "${flat}" "${want}" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "gyrus rank --store does not show '${want}':\n${table}")
  endif()
endforeach()
# JSON: the same ranking.
execute_process(COMMAND ${GYRUS} rank --store ${WORK}/store --json RESULT_VARIABLE rc OUTPUT_VARIABLE json)
string(JSON first GET "${json}" ranking 0 method)
string(JSON methods GET "${json}" methods)
if(NOT rc EQUAL 0 OR NOT first STREQUAL "base" OR NOT methods EQUAL 2)
  message(FATAL_ERROR "gyrus rank --store --json (exit ${rc}): ${json}")
endif()
# One evaluation named: only its task is present; a pretraining named is refused.
execute_process(COMMAND ${GYRUS} rank --store ${WORK}/store base RESULT_VARIABLE rc ERROR_VARIABLE err OUTPUT_QUIET)
if(rc EQUAL 0 OR NOT err MATCHES "is a pretrain stage")
  message(FATAL_ERROR "gyrus rank --store STORE base (a pretraining) exited ${rc}: ${err}")
endif()
# Errors: no store, a store without FOMO25 evaluations, neither files nor --store.
file(MAKE_DIRECTORY "${WORK}/empty/stages")
foreach(args "--store;${WORK}/nowhere" "--store;${WORK}/empty" "")
  execute_process(COMMAND ${GYRUS} rank ${args} RESULT_VARIABLE rc ERROR_VARIABLE err OUTPUT_QUIET)
  if(NOT rc EQUAL 1 OR NOT err MATCHES "error: ")
    message(FATAL_ERROR "gyrus rank ${args} exited ${rc} (not 1): ${err}")
  endif()
endforeach()
