# gyrus run --ranks N (issue 10, data-parallel pretraining), through the real binary:
# two ranks on the CPU (Gloo) train to the weights of one process on the whole batch
# (each rank its half of every batch, the same views and masks; tolerance 1e-5 of each
# tensor's largest magnitude: only the order of float sums differs), report the same
# final loss, write only rank 0's files, and share the stage's hash with --ranks 1 (the
# ranks are not part of a stage's identity). A batch that the ranks do not divide, or
# more ranks than samples in a batch, is an error with a fix. A SimCLR term (its negatives
# are the whole batch: the ranks gather each other's embeddings) trains alike.
# Inputs: GYRUS, SOURCE (the repository), WORK.
cmake_policy(SET CMP0054 NEW)  # quoted strings are never variable names
file(REMOVE_RECURSE ${WORK})
file(MAKE_DIRECTORY ${WORK})
configure_file(${SOURCE}/tests/cli/data/ranks.gy ${WORK}/ranks.gy COPYONLY)

function(run_ok)
  execute_process(COMMAND ${ARGN} WORKING_DIRECTORY ${WORK} RESULT_VARIABLE code OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT code EQUAL 0)
    message(FATAL_ERROR "`${ARGN}` exited ${code}:\n${out}\n${err}")
  endif()
  set(out "${out}" PARENT_SCOPE)
  set(err "${err}" PARENT_SCOPE)
endfunction()

function(expect_fail needle)
  execute_process(COMMAND ${ARGN} WORKING_DIRECTORY ${WORK} RESULT_VARIABLE code OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT code EQUAL 1 OR NOT err MATCHES "${needle}")
    message(FATAL_ERROR "`${ARGN}`: expected exit 1 and '${needle}', got ${code}:\n${out}\n${err}")
  endif()
endfunction()

# 1. One process, then two ranks of one thread each.
run_ok(${GYRUS} run ranks.gy --store one --threads 1 --json)
set(one "${out}")
run_ok(${GYRUS} run ranks.gy --store two --threads 2 --ranks 2 --json)
set(two "${out}")
if(NOT err MATCHES "data-parallel: 2 ranks \\(1 thread each\\), batch 4 = 2 x 2" OR NOT err MATCHES "rank 0 of 2 \\(gloo\\)")
  message(FATAL_ERROR "--ranks 2: no launch lines:\n${err}")
endif()
string(JSON hash1 GET "${one}" stages 0 hash)
string(JSON hash2 GET "${two}" stages 0 hash)
if(NOT hash1 STREQUAL hash2)
  message(FATAL_ERROR "the stage's hash changed with --ranks 2: ${hash1} against ${hash2}")
endif()
string(JSON loss1 GET "${one}" metrics 0 value)
string(JSON loss2 GET "${two}" metrics 0 value)
run_ok(python3 -c "import sys; a, b = float(sys.argv[1]), float(sys.argv[2]); sys.exit(abs(a - b) > 1e-5 * abs(a))"
       ${loss1} ${loss2})
# The weights: both encoders exported, compared tensor by tensor.
run_ok(${GYRUS} export --store one base --format safetensors --out one.safetensors)
run_ok(${GYRUS} export --store two base --format safetensors --out two.safetensors)
run_ok(python3 ${SOURCE}/tests/cli/compare_safetensors.py one.safetensors two.safetensors 1e-5)
message(STATUS "--ranks 2 against one process: final loss ${loss1} / ${loss2}; ${out}")
# Rank 0's files alone in the stage directory (no rendezvous or rank results left).
file(GLOB left RELATIVE ${WORK}/two/stages/${hash2} ${WORK}/two/stages/${hash2}/*)
list(SORT left)
foreach(f IN LISTS left)
  if(f MATCHES "rank|rendezvous|result-")
    message(FATAL_ERROR "a rank's file stayed in the stage directory: ${f} (all: ${left})")
  endif()
endforeach()
# The history has one line per epoch (written by rank 0 alone).
file(STRINGS ${WORK}/two/stages/${hash2}/history.jsonl history)
list(LENGTH history lines)
if(NOT lines EQUAL 2)
  message(FATAL_ERROR "history.jsonl has ${lines} lines, not 2")
endif()
# A rerun with either rank count finds the result.
run_ok(${GYRUS} run ranks.gy --store two --threads 1 --json)
if(NOT out MATCHES "\"status\": \"cached\"")
  message(FATAL_ERROR "--ranks 1 on the --ranks 2 store did not reuse the stage:\n${out}")
endif()

# 2. MAE and SimCLR together: the contrastive term's negatives are the whole batch (the
#    ranks gather each other's embeddings); the same weights as one process.
file(READ ${WORK}/ranks.gy text)
string(REPLACE "mae(mask = 50%)" "mae(mask = 50%) + 0.5 * simclr()" text "${text}")
file(WRITE ${WORK}/both.gy "${text}")
run_ok(${GYRUS} run both.gy --store both1 --threads 1 --json)
set(one "${out}")
run_ok(${GYRUS} run both.gy --store both2 --threads 2 --ranks 2 --json)
set(two "${out}")
string(JSON loss1 GET "${one}" metrics 0 value)
string(JSON loss2 GET "${two}" metrics 0 value)
run_ok(python3 -c "import sys; a, b = float(sys.argv[1]), float(sys.argv[2]); sys.exit(abs(a - b) > 1e-5 * abs(a))"
       ${loss1} ${loss2})
run_ok(${GYRUS} export --store both1 base --format safetensors --out both1.safetensors)
run_ok(${GYRUS} export --store both2 base --format safetensors --out both2.safetensors)
run_ok(python3 ${SOURCE}/tests/cli/compare_safetensors.py both1.safetensors both2.safetensors 1e-5)
message(STATUS "MAE + SimCLR, --ranks 2 against one process: final loss ${loss1} / ${loss2}; ${out}")

# 3. Batches the ranks cannot split.
expect_fail("batch of 4 cannot be split evenly over 3 ranks: set batch = 3 or 6" ${GYRUS} run ranks.gy --store bad --ranks 3)
expect_fail("batch of 4 cannot be split evenly over 8 ranks: set batch = 8" ${GYRUS} run ranks.gy --store bad --ranks 8)
# The site file's ranks is honoured (no longer refused): the same error for 3 ranks.
file(WRITE ${WORK}/gyrus.toml "ranks = 3\n")
expect_fail("over 3 ranks" ${GYRUS} run ranks.gy --store bad --config ${WORK}/gyrus.toml)
