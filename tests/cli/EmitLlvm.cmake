# `gyrus emit --stage=llvm`: the optimised LLVM IR of every kernel of an experiment,
# from the module libgyrus_kernel_llvm.so (loaded with dlopen; the driver never links
# LLVM). The quickstart's gather must be vectorised (<8 x float> or wider); without the
# module the command fails cleanly (exit 1, an error naming GYRUS_KERNEL_LLVM):
#   cmake -DGYRUS=<gyrus> -DFILE=<examples/quickstart.gy> -P EmitLlvm.cmake
execute_process(COMMAND ${GYRUS} emit --stage=llvm ${FILE} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "gyrus emit --stage=llvm exited with '${rc}':\n${err}")
endif()
string(FIND "${out}" "define void @gyrus_kernel_" at)
if(at EQUAL -1)
  message(FATAL_ERROR "no kernel function defined in:\n${out}")
endif()
# The body of the first gather function: from its `define` to the closing brace.
string(REGEX MATCH "define void @gyrus_kernel_[0-9a-f]+_pass0_gather\\(" head "${out}")
if(head STREQUAL "")
  message(FATAL_ERROR "no gather function in:\n${out}")
endif()
string(FIND "${out}" "${head}" begin)
string(SUBSTRING "${out}" ${begin} -1 gather)
string(FIND "${gather}" "\n}\n" end)
string(SUBSTRING "${gather}" 0 ${end} gather)
if(NOT gather MATCHES "<(8|16|32) x float>")
  message(FATAL_ERROR "the gather is not vectorised (no <8 x float> or wider):\n${gather}")
endif()
if(NOT out MATCHES "; stage base, prefix: ")
  message(FATAL_ERROR "no stage heading in:\n${out}")
endif()

# Without the module: exit 1 and a message that says what to do.
execute_process(COMMAND ${CMAKE_COMMAND} -E env GYRUS_KERNEL_LLVM=/nonexistent/libgyrus_kernel_llvm.so
                        ${GYRUS} emit --stage=llvm ${FILE}
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 1 OR NOT err MATCHES "error: .*GYRUS_KERNEL_LLVM")
  message(FATAL_ERROR "without the module: expected exit 1 and an error naming GYRUS_KERNEL_LLVM, got '${rc}':\n${err}")
endif()

# The driver itself does not link LLVM (its start-up).
find_program(LDD ldd)
if(LDD)
  execute_process(COMMAND ${LDD} ${GYRUS} OUTPUT_VARIABLE libs)
  if(libs MATCHES "libLLVM")
    message(FATAL_ERROR "the gyrus executable links LLVM:\n${libs}")
  endif()
endif()
