# Build settings shared by gyrus's own targets. Nothing here edits global flags:
# targets opt in with gyrus_target_warnings().

# ccache with the sloppiness the precompiled header needs (Debian's ccache 4.7 reads it
# only from the environment).
find_program(GYRUS_CCACHE ccache)
if(GYRUS_CCACHE AND NOT CMAKE_CXX_COMPILER_LAUNCHER)
  set(CMAKE_CXX_COMPILER_LAUNCHER
      ${CMAKE_COMMAND} -E env
      "CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime"
      ${GYRUS_CCACHE})
  set(CMAKE_C_COMPILER_LAUNCHER ${CMAKE_CXX_COMPILER_LAUNCHER})
endif()

# lld links in a fraction of the time of ld.bfd.
find_program(GYRUS_LLD ld.lld)
if(GYRUS_LLD)
  add_link_options(-fuse-ld=lld)
endif()

function(gyrus_target_warnings target)
  target_compile_options(${target} PRIVATE
    -Wall -Wextra -Wshadow -Wnon-virtual-dtor -Wold-style-cast -Wcast-align
    -Wunused -Woverloaded-virtual -Wpedantic -Wimplicit-fallthrough)
  if(GYRUS_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()

# Module ABI versions derived from the boundary headers (the gyrus_abi target).
include(${CMAKE_CURRENT_LIST_DIR}/AbiVersions.cmake)
