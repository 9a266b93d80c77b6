# The site configuration, gyrus.toml (docs/site-config.md), through the real binary:
# where it is found (--config, then beside the experiment, then $XDG_CONFIG_HOME/gyrus/),
# named data roots in an experiment (root(...)), the default run store, and that the
# stage hashes do not depend on the site file: the same experiment under two site files
# whose roots point at two copies of the same data hashes the same.
#   cmake -DGYRUS=<gyrus> -DWORK=<scratch dir> -P SiteConfig.cmake

file(REMOVE_RECURSE "${WORK}")
file(MAKE_DIRECTORY "${WORK}/exp" "${WORK}/xdg/gyrus" "${WORK}/home")

function(gyrus_site out_rc out_stdout out_stderr)
  execute_process(COMMAND ${CMAKE_COMMAND} -E env NO_COLOR=1 XDG_CONFIG_HOME=${WORK}/xdg HOME=${WORK}/home
                          ${GYRUS} ${ARGN}
                  RESULT_VARIABLE rc OUTPUT_VARIABLE stdout ERROR_VARIABLE stderr)
  set(${out_rc} "${rc}" PARENT_SCOPE)
  set(${out_stdout} "${stdout}" PARENT_SCOPE)
  set(${out_stderr} "${stderr}" PARENT_SCOPE)
endfunction()

# Two copies of one small FOMO60K tree.
execute_process(COMMAND ${GYRUS} synth --out "${WORK}/a/fomo60k" --layout fomo60k --subjects 4 --size 16 --seed 3
                RESULT_VARIABLE rc OUTPUT_QUIET ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "gyrus synth exited ${rc}: ${err}")
endif()
file(COPY "${WORK}/a/fomo60k" DESTINATION "${WORK}/b")

file(WRITE "${WORK}/exp/site.gy" [=[
// The corpus lies wherever the site configuration's root "fomo60k" says.
dataset corpus = fomo60k(root("fomo60k"))

pretrain base {
  data      = corpus |> crop(16^3) >> zscore()
  encoder   = unet(width = 4, stages = 2)
  objective = mae()
  epochs    = 1
  batch     = 2
}
]=])
file(WRITE "${WORK}/a.toml" "store = \"${WORK}/store-a\"\n\n[roots]\nfomo60k = \"${WORK}/a/fomo60k\"\n")
file(WRITE "${WORK}/b.toml" "[roots]\nfomo60k = \"${WORK}/b/fomo60k\"\n")
set(exp "${WORK}/exp/site.gy")

# 1. No site file anywhere: root("fomo60k") is an [unknown-root] error that says where
#    gyrus looked.
gyrus_site(rc out err check "${exp}")
if(NOT rc EQUAL 1 OR NOT err MATCHES "no data root named \"fomo60k\" \\[unknown-root\\]"
   OR NOT err MATCHES "looked for ${WORK}/exp/gyrus.toml, ${WORK}/xdg/gyrus/gyrus.toml")
  message(FATAL_ERROR "without a site file: exit ${rc}\n${err}")
endif()

# 2. $XDG_CONFIG_HOME/gyrus/gyrus.toml is found.
file(COPY_FILE "${WORK}/a.toml" "${WORK}/xdg/gyrus/gyrus.toml")
gyrus_site(rc out err check "${exp}")
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "the site file in \$XDG_CONFIG_HOME/gyrus was not used: exit ${rc}\n${err}")
endif()

# 3. A gyrus.toml beside the experiment comes first (this one is broken, so its error
#    shows which file was read, at its line and column).
file(WRITE "${WORK}/exp/gyrus.toml" "jobs = 0\n\n[roots]\nfomo60k = \"${WORK}/b/fomo60k\"\n")
gyrus_site(rc out err check "${exp}")
if(NOT rc EQUAL 1 OR NOT err MATCHES "${WORK}/exp/gyrus.toml:1:8: error: 'jobs' must be 1 to 256; got 0 \\[site-value\\]")
  message(FATAL_ERROR "the experiment's own gyrus.toml was not read first: exit ${rc}\n${err}")
endif()

# 4. --config names the file instead of both.
gyrus_site(rc out err check "${exp}" --config "${WORK}/b.toml")
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "--config did not replace the found site files: exit ${rc}\n${err}")
endif()
gyrus_site(rc out err check "${exp}" --config "${WORK}/none.toml")
if(NOT rc EQUAL 1 OR NOT err MATCHES "--config '${WORK}/none.toml': no such file \\[io-error\\]")
  message(FATAL_ERROR "a missing --config file: exit ${rc}\n${err}")
endif()
file(REMOVE "${WORK}/exp/gyrus.toml")

# 5. The same experiment under two site files whose roots are two copies of the data:
#    the same stages, the same hashes; the data's place differs.
foreach(site a b)
  gyrus_site(rc plan_${site} err plan "${exp}" --json --config "${WORK}/${site}.toml")
  gyrus_site(rc2 ir_${site} err2 emit "${exp}" --stage=ir --json --config "${WORK}/${site}.toml")
  if(NOT rc EQUAL 0 OR NOT rc2 EQUAL 0)
    message(FATAL_ERROR "plan/emit under ${site}.toml: exit ${rc}/${rc2}\n${err}${err2}")
  endif()
  string(JSON hash_${site} GET "${plan_${site}}" stages 0 hash)
  string(JSON root_${site} GET "${ir_${site}}" stages 0 pretrain data folder root)
endforeach()
if(NOT hash_a STREQUAL hash_b)
  message(FATAL_ERROR "the stage hash depends on the site file: ${hash_a} vs ${hash_b}")
endif()
if(NOT root_a STREQUAL "${WORK}/a/fomo60k" OR NOT root_b STREQUAL "${WORK}/b/fomo60k")
  message(FATAL_ERROR "the roots did not resolve to the two copies: ${root_a}, ${root_b}")
endif()

# 6. The site's store is `gyrus run`'s default: a stage finished in it is reported as
#    cached (no runtime is loaded), which it would not be in the default .gyrus/.
gyrus_site(rc out err plan "${exp}" --store "${WORK}/store-a" --config "${WORK}/a.toml")
file(GLOB dirs LIST_DIRECTORIES true "${WORK}/store-a/stages/*")
list(LENGTH dirs count)
if(NOT rc EQUAL 0 OR NOT count EQUAL 1)
  message(FATAL_ERROR "gyrus plan --store: exit ${rc}, ${count} stages\n${err}")
endif()
get_filename_component(hash "${dirs}" NAME)
file(WRITE "${dirs}/result.json" "{\"hash\": \"${hash}\", \"name\": \"base\", \"kind\": \"pretrain\", \"seconds\": 1, "
                                 "\"resumed\": false, \"metrics\": [{\"name\": \"final_loss\", \"value\": 0.25}]}")
gyrus_site(rc out err run "${exp}" --json)  # the site file in $XDG_CONFIG_HOME (a.toml)
if(NOT rc EQUAL 0 OR NOT out MATCHES "\"final_loss\"")
  message(FATAL_ERROR "gyrus run did not use the site's store: exit ${rc}\n${out}${err}")
endif()
if(EXISTS "${WORK}/exp/.gyrus")
  message(FATAL_ERROR "gyrus run wrote the default store although the site file names one")
endif()

# `gyrus runs` without --store: the site's store too.
gyrus_site(rc out err runs ls --json)
if(NOT rc EQUAL 0 OR NOT out MATCHES "${hash}")
  message(FATAL_ERROR "gyrus runs ls did not list the site's store: exit ${rc}\n${out}${err}")
endif()
gyrus_site(rc out err runs ls --config "${WORK}/b.toml")
if(NOT rc EQUAL 1 OR NOT err MATCHES "no run store: give --store DIR, or set `store` in the site configuration")
  message(FATAL_ERROR "gyrus runs ls with a site file without a store: exit ${rc}\n${err}")
endif()

# 7. ranks above 1 is a valid setting (data-parallel pretraining; what it does is tested
# by cli_ranks), and never changes a stage's hash.
file(WRITE "${WORK}/ranks.toml" "store = \"${WORK}/store-a\"\nranks = 2\n[roots]\nfomo60k = \"${WORK}/a/fomo60k\"\n")
gyrus_site(rc out err check "${exp}" --config "${WORK}/ranks.toml")
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "ranks = 2 should not stop gyrus check: exit ${rc}\n${err}")
endif()
gyrus_site(rc out err plan "${exp}" --json --config "${WORK}/ranks.toml")
if(NOT rc EQUAL 0 OR NOT out MATCHES "${hash_a}")
  message(FATAL_ERROR "ranks = 2 changed the plan's hash (${hash_a}): exit ${rc}\n${out}${err}")
endif()
message(STATUS "site configuration: lookup order, roots, store default, ranks; hash ${hash_a} under both sites")
