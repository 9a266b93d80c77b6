# The layering rule: each gyrus target may link only the gyrus targets listed for it
# here (the layers below it), so no target links upward and the graph has no cycles.
# Checked at configure time over every target's LINK_LIBRARIES and
# INTERFACE_LINK_LIBRARIES; a violation stops the configure with the offending edge.
# Add a new target here with what it may link.
include_guard(GLOBAL)

set(_gyrus_allowed_gyrus_grammar "")
set(_gyrus_allowed_gyrus_abi "")
set(_gyrus_allowed_gyrus_basic "")
set(_gyrus_allowed_gyrus_parse gyrus_basic gyrus_grammar)
set(_gyrus_allowed_gyrus_ir "")
set(_gyrus_allowed_gyrus_core gyrus_basic gyrus_parse gyrus_ir)
# The site configuration (gyrus.toml): reports through the diagnostics only.
set(_gyrus_allowed_gyrus_site gyrus_basic)
set(_gyrus_allowed_gyrus_module "")
set(_gyrus_allowed_gyrus_exec gyrus_ir gyrus_abi gyrus_module)
set(_gyrus_allowed_gyrus_kernel gyrus_ir gyrus_abi gyrus_module)
# The LLVM back end of the kernel compiler (static code generator, and its module).
set(_gyrus_allowed_gyrus_kernel_codegen gyrus_kernel gyrus_ir)
set(_gyrus_allowed_gyrus_kernel_llvm gyrus_kernel_codegen gyrus_kernel gyrus_abi)
set(_gyrus_allowed_gyrus_kernel_cuda gyrus_kernel gyrus_ir)
set(_gyrus_allowed_gyrus_clinic gyrus_ir)
set(_gyrus_allowed_gyrus_runtime_core gyrus_abi gyrus_ir gyrus_clinic gyrus_kernel)
set(_gyrus_allowed_gyrus_nifti gyrus_abi)
set(_gyrus_allowed_gyrus_runtime_data gyrus_runtime_core gyrus_nifti)
set(_gyrus_allowed_gyrus_runtime_torch gyrus_runtime_data gyrus_kernel_cuda)
set(_gyrus_allowed_gyrus_runtime gyrus_runtime_data gyrus_kernel_cuda)
set(_gyrus_allowed_gyrus_io gyrus_nifti gyrus_clinic)
# The driver links the torch-free, ITK-free runtime core for `gyrus score` (its metrics).
set(_gyrus_allowed_gyrus gyrus_core gyrus_site gyrus_exec gyrus_kernel gyrus_kernel_cuda gyrus_runtime_core)

function(gyrus_check_layering)
  set(targets gyrus_grammar gyrus_abi gyrus_basic gyrus_parse gyrus_ir gyrus_core gyrus_site gyrus_module gyrus_exec gyrus_kernel
              gyrus_kernel_codegen gyrus_kernel_llvm gyrus_kernel_cuda gyrus_clinic gyrus_runtime_core
              gyrus_nifti gyrus_runtime_data gyrus_runtime_torch gyrus_runtime gyrus_io gyrus)
  foreach(target ${targets})
    if(NOT TARGET ${target})
      continue()
    endif()
    get_target_property(type ${target} TYPE)
    set(links "")
    if(NOT type STREQUAL "INTERFACE_LIBRARY")
      get_target_property(direct ${target} LINK_LIBRARIES)
      if(direct)
        list(APPEND links ${direct})
      endif()
    endif()
    get_target_property(interface ${target} INTERFACE_LINK_LIBRARIES)
    if(interface)
      list(APPEND links ${interface})
    endif()
    foreach(link ${links})
      # $<LINK_ONLY:x> and other generator expressions around a target name.
      string(REGEX REPLACE "^\\$<LINK_ONLY:(.*)>$" "\\1" link "${link}")
      if(NOT link MATCHES "^gyrus_" OR link STREQUAL target)
        continue()
      endif()
      if(NOT link IN_LIST _gyrus_allowed_${target})
        message(FATAL_ERROR "layering: ${target} links ${link}, which is not below it "
                            "(allowed: ${_gyrus_allowed_${target}}; cmake/Layering.cmake)")
      endif()
    endforeach()
  endforeach()
endfunction()
