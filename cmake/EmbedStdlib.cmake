# cmake -DOUTPUT=file.cpp "-DINPUTS=a.gy;b.gy" -P EmbedStdlib.cmake
# Writes a C++ source with every standard-library module's name and text, so the
# gyrus executable needs no data files.
set(body "")
foreach(input ${INPUTS})
  get_filename_component(name ${input} NAME_WE)
  file(READ "${input}" content)
  string(APPEND body "    {\"${name}\", R\"gyrus_embed(${content})gyrus_embed\"},\n")
endforeach()
file(WRITE "${OUTPUT}.tmp"
  "// Generated from stdlib/*.gy by cmake/EmbedStdlib.cmake; do not edit.\n"
  "#include <cstddef>\n\n"
  "namespace gyrus {\n"
  "struct EmbeddedModule {\n  const char* name;\n  const char* text;\n};\n"
  "extern const EmbeddedModule kStdlibModules[];\n"
  "extern const size_t kStdlibModuleCount;\n"
  "const EmbeddedModule kStdlibModules[] = {\n${body}};\n"
  "const size_t kStdlibModuleCount = sizeof(kStdlibModules) / sizeof(kStdlibModules[0]);\n"
  "}  // namespace gyrus\n")
file(COPY_FILE "${OUTPUT}.tmp" "${OUTPUT}" ONLY_IF_DIFFERENT)
file(REMOVE "${OUTPUT}.tmp")
