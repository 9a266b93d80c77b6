# `gyrus run` takes its defaults from the site configuration (gyrus.toml) and its flags
# win over it, through the real binary and the runtime: the store, --jobs,
# --volume-cache and --device (loader_memory is read too; its effect is not observable here).
#   cmake -DGYRUS=<gyrus> -DWORK=<scratch dir> -P SiteRun.cmake

file(REMOVE_RECURSE "${WORK}")
file(MAKE_DIRECTORY "${WORK}/exp")
execute_process(COMMAND ${GYRUS} synth --out "${WORK}/data/fomo60k" --layout fomo60k --subjects 4 --size 16 --seed 5
                RESULT_VARIABLE rc OUTPUT_QUIET ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "gyrus synth exited ${rc}: ${err}")
endif()
file(WRITE "${WORK}/exp/two.gy" [=[
// Two independent pretrainings on a folder under the site's root "fomo60k".
dataset corpus = fomo60k(root("fomo60k"))
pipeline prep = crop(16^3) >> zscore()
pretrain a {
  data      = corpus |> prep
  encoder   = unet(width = 4, stages = 2)
  objective = mae(mask = 60%)
  epochs    = 1
  batch     = 2
}
pretrain b {
  data      = corpus |> prep
  encoder   = unet(width = 4, stages = 2)
  objective = mae(mask = 40%)
  epochs    = 1
  batch     = 2
}
]=])
# Relative folders are relative to the site file (here beside the experiment).
file(WRITE "${WORK}/exp/gyrus.toml" [=[
store = "../store"
jobs = 2
device = "cpu"
volume_cache = "../vcache"
loader_memory = "1GiB"
]=])
file(APPEND "${WORK}/exp/gyrus.toml" "\n[roots]\nfomo60k = \"${WORK}/data/fomo60k\"\n")

execute_process(COMMAND ${GYRUS} run "${WORK}/exp/two.gy" --threads 2 --json
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "gyrus run with the site's defaults exited ${rc}:\n${err}")
endif()
if(NOT err MATCHES "up to 2 stages at once")
  message(FATAL_ERROR "the site's jobs = 2 was not used:\n${err}")
endif()
file(GLOB results "${WORK}/store/stages/*/result.json")
list(LENGTH results n)
file(GLOB_RECURSE volumes "${WORK}/vcache/*.vol")
list(LENGTH volumes cached)
if(NOT n EQUAL 2 OR cached EQUAL 0 OR EXISTS "${WORK}/exp/.gyrus")
  message(FATAL_ERROR "the site's store and volume cache were not used: ${n} results, ${cached} cached volumes")
endif()

# Flags win: --store and --jobs 1 on the command line.
execute_process(COMMAND ${GYRUS} run "${WORK}/exp/two.gy" --threads 2 --jobs 1 --store "${WORK}/flag-store"
                RESULT_VARIABLE rc OUTPUT_QUIET ERROR_VARIABLE err)
file(GLOB results "${WORK}/flag-store/stages/*/result.json")
list(LENGTH results n)
if(NOT rc EQUAL 0 OR err MATCHES "stages at once" OR NOT n EQUAL 2)
  message(FATAL_ERROR "--store/--jobs 1 did not win over the site file: exit ${rc}, ${n} results\n${err}")
endif()

# The site's device reaches the runtime: one no machine has is refused there.
file(WRITE "${WORK}/device.toml" "store = \"${WORK}/device-store\"\ndevice = \"cuda:99\"\n")
file(APPEND "${WORK}/device.toml" "[roots]\nfomo60k = \"${WORK}/data/fomo60k\"\n")
execute_process(COMMAND ${GYRUS} run "${WORK}/exp/two.gy" --config "${WORK}/device.toml" --threads 2
                RESULT_VARIABLE rc OUTPUT_QUIET ERROR_VARIABLE err)
if(NOT rc EQUAL 1 OR NOT err MATCHES "the device 'cuda:99' is not usable here")
  message(FATAL_ERROR "the site's device = \"cuda:99\" did not reach the runtime: exit ${rc}\n${err}")
endif()
message(STATUS "gyrus run: store, jobs, volume cache and device from gyrus.toml; flags win")
