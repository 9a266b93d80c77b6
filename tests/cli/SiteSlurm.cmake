# The site configuration's [slurm] table as the defaults of `gyrus run --executor slurm`'s
# flags, a flag given on the command line winning, and extra_sbatch lines in the batch
# script. No cluster: a stand-in `sbatch` first on PATH records its arguments and refuses
# the job (so nothing runs, and the stages are reported as not submitted).
#   cmake -DGYRUS=<gyrus> -DWORK=<scratch dir> -P SiteSlurm.cmake
file(REMOVE_RECURSE "${WORK}")
file(MAKE_DIRECTORY "${WORK}/bin" "${WORK}/xdg" "${WORK}/home")
file(WRITE "${WORK}/bin/sbatch" "#!/bin/sh\nprintf '%s\\n' \"$@\" >> \"${WORK}/sbatch.args\"\necho 'refused by the stand-in' >&2\nexit 1\n")
file(CHMOD "${WORK}/bin/sbatch" PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE)
file(WRITE "${WORK}/exp.gy" [=[
dataset corpus = synthetic(subjects = 8, size = 16^3)
pretrain base {
  data      = corpus |> zscore() >> flip()
  encoder   = unet(width = 4, stages = 2)
  objective = mae()
  epochs    = 1
}
]=])
file(WRITE "${WORK}/gyrus.toml" [=[
[slurm]
partition = "sitepart"
account = "siteacct"
time = "1:00:00"
extra_sbatch = ["#SBATCH --qos=sitequeue"]
]=])

function(submit)
  file(REMOVE "${WORK}/sbatch.args")
  execute_process(COMMAND ${CMAKE_COMMAND} -E env "PATH=${WORK}/bin:$ENV{PATH}" XDG_CONFIG_HOME=${WORK}/xdg
                          HOME=${WORK}/home ${GYRUS} run exp.gy --executor slurm --store st ${ARGN}
                  WORKING_DIRECTORY "${WORK}" RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(rc EQUAL 0 OR NOT err MATCHES "not submitted: sbatch refused it")
    message(FATAL_ERROR "expected the stand-in sbatch to refuse the job (exit 1), got ${rc}:\n${err}")
  endif()
  file(READ "${WORK}/sbatch.args" args)
  set(args "${args}" PARENT_SCOPE)
  set(err "${err}" PARENT_SCOPE)
endfunction()

submit()
foreach(want "--partition=sitepart" "--account=siteacct" "--time=1:00:00")
  string(FIND "${args}" "${want}\n" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "the site file's setting ${want} is not among sbatch's arguments:\n${args}")
  endif()
endforeach()
file(GLOB scripts "${WORK}/st/slurm/*.sh")
list(LENGTH scripts n)
if(n EQUAL 0)
  message(FATAL_ERROR "no batch script in ${WORK}/st/slurm")
endif()
list(GET scripts 0 script)
file(READ "${script}" text)
if(NOT text MATCHES "\n#SBATCH --qos=sitequeue\n")
  message(FATAL_ERROR "the extra_sbatch line is not in the batch script:\n${text}")
endif()

# A flag on the command line wins over the site file.
submit(--partition clipart)
string(FIND "${args}" "--partition=clipart\n" at)
string(FIND "${args}" "--partition=sitepart" site)
if(at EQUAL -1 OR NOT site EQUAL -1)
  message(FATAL_ERROR "--partition clipart did not win over the site file:\n${args}")
endif()

# The stand-in's refusal is about the job: the hint names the job's options. An sbatch
# that reaches no cluster gets the other hint, not those options.
if(NOT err MATCHES "check --partition, --account")
  message(FATAL_ERROR "a refused job does not name the options to check:\n${err}")
endif()
file(WRITE "${WORK}/bin/sbatch"
     "#!/bin/sh\necho 'sbatch: fatal: Could not establish a configuration source' >&2\nexit 1\n")
execute_process(COMMAND ${CMAKE_COMMAND} -E env "PATH=${WORK}/bin:$ENV{PATH}" XDG_CONFIG_HOME=${WORK}/xdg
                        HOME=${WORK}/home ${GYRUS} run exp.gy --executor slurm --store st2
                WORKING_DIRECTORY "${WORK}" RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(rc EQUAL 0 OR NOT err MATCHES "reaches no Slurm cluster" OR err MATCHES "check --partition")
  message(FATAL_ERROR "an sbatch without a cluster: exit ${rc}:\n${err}")
endif()
