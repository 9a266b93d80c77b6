# `gyrus run` reports an evaluation's declared metrics, in order, from a run store whose
# stages are already finished (so no runtime is loaded):
#   cmake -DGYRUS=<gyrus> -DWORK=<scratch dir> -P RunMetrics.cmake

file(REMOVE_RECURSE "${WORK}")
file(MAKE_DIRECTORY "${WORK}")
file(WRITE "${WORK}/metrics.gy" [=[
dataset corpus = synthetic(subjects = 16, size = 32^3)
dataset clinic = synthetic(subjects = 40, size = 32^3, seed = 2)

pretrain base {
  data      = corpus |> zscore()
  encoder   = unet(width = 4, stages = 3)
  objective = mae()
}

evaluate base on clinic.lesion (shots = 8)
evaluate base on clinic.age (shots = 8, metrics = [pearson_r, mae])
]=])
set(binary [=[[{"name": "auroc", "value": 0.7}, {"name": "auroc_std", "value": 0.05}, {"name": "auroc_random_encoder", "value": 0.5}]]=])
set(continuous [=[[{"name": "mae", "value": 9.1}, {"name": "mae_std", "value": 1.0}, {"name": "pearson_r", "value": 0.6},
  {"name": "pearson_r_std", "value": 0.1}, {"name": "mae_random_encoder", "value": 12.0}, {"name": "pearson_r_random_encoder", "value": 0.2}]]=])

# `gyrus plan --store` writes every stage's stage.json without running anything; each
# stage then gets a result.json with every figure the runtime computes for its label kind.
execute_process(COMMAND ${GYRUS} plan ${WORK}/metrics.gy --store ${WORK}/store
                RESULT_VARIABLE rc OUTPUT_QUIET ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "gyrus plan --store exited ${rc}: ${err}")
endif()
file(GLOB dirs LIST_DIRECTORIES true "${WORK}/store/stages/*")
list(LENGTH dirs count)
if(NOT count EQUAL 3)
  message(FATAL_ERROR "gyrus plan --store wrote ${count} stage directories, not 3")
endif()
# A damaged stage.json is written again by the next plan --store (or run).
list(GET dirs 0 first)
file(WRITE "${first}/stage.json" "{ torn")
execute_process(COMMAND ${GYRUS} plan ${WORK}/metrics.gy --store ${WORK}/store RESULT_VARIABLE rc OUTPUT_QUIET)
file(READ "${first}/stage.json" again)
string(JSON format ERROR_VARIABLE bad GET "${again}" format)
if(NOT rc EQUAL 0 OR NOT format STREQUAL "gyrus-stage")
  message(FATAL_ERROR "a damaged stage.json was not written again (exit ${rc}): ${again}")
endif()
foreach(dir ${dirs})
  get_filename_component(hash "${dir}" NAME)
  file(READ "${dir}/stage.json" ir)
  if(ir MATCHES "\"kind\": \"pretrain\"")
    set(metrics [=[[{"name": "final_loss", "value": 0.1}]]=])
    set(kind pretrain)
  elseif(ir MATCHES "\"label\": \"lesion\"")
    set(metrics "${binary}")
    set(kind evaluate)
  else()
    set(metrics "${continuous}")
    set(kind evaluate)
  endif()
  file(WRITE "${dir}/result.json"
       "{\"hash\": \"${hash}\", \"name\": \"x\", \"kind\": \"${kind}\", \"seconds\": 1, \"resumed\": false, \"metrics\": ${metrics}}")
endforeach()

execute_process(COMMAND ${GYRUS} run ${WORK}/metrics.gy --store ${WORK}/store
                RESULT_VARIABLE rc OUTPUT_VARIABLE table ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "gyrus run exited ${rc}: ${err}")
endif()
# The lesion probe shows AUROC only; brain age shows Pearson r before MAE, as declared.
string(REGEX REPLACE "[ ]+" " " table "${table}")
set(want "base_age evaluate cached - pearson_r 0.6000\n pearson_r_std 0.1000\n pearson_r_random_encoder 0.2000\n mae 9.1000\n mae_std 1.0000\n mae_random_encoder 12.0000\n")
string(FIND "${table}" "${want}" at)
if(at EQUAL -1)
  message(FATAL_ERROR "the summary does not list base_age's metrics in the declared order:\n${table}")
endif()
string(FIND "${table}" "base_lesion evaluate cached - auroc 0.7000\n auroc_std 0.0500\n auroc_random_encoder 0.5000\nbase_age" at)
if(at EQUAL -1)
  message(FATAL_ERROR "the summary does not list base_lesion's metrics:\n${table}")
endif()

execute_process(COMMAND ${GYRUS} run ${WORK}/metrics.gy --store ${WORK}/store --json
                RESULT_VARIABLE rc OUTPUT_VARIABLE json ERROR_VARIABLE err)
string(JSON n LENGTH "${json}" stages)
if(NOT n EQUAL 3)
  message(FATAL_ERROR "expected 3 stages in --json:\n${json}")
endif()
string(JSON pre ERROR_VARIABLE none GET "${json}" stages 0 metrics)
if(NOT none MATCHES "not found")
  message(FATAL_ERROR "a pretrain stage has no declared metrics:\n${json}")
endif()
string(JSON lesion GET "${json}" stages 1 metrics)
string(JSON age0 GET "${json}" stages 2 metrics 0)
string(JSON age1 GET "${json}" stages 2 metrics 1)
string(JSON figures LENGTH "${json}" metrics)
if(NOT lesion STREQUAL "[ \"auroc\" ]" OR NOT age0 STREQUAL "pearson_r" OR NOT age1 STREQUAL "mae" OR NOT figures EQUAL 10)
  message(FATAL_ERROR "unexpected declared metrics in --json (${lesion}; ${age0}, ${age1}; ${figures} figures):\n${json}")
endif()
message(STATUS "run summary and --json list the declared metrics")
