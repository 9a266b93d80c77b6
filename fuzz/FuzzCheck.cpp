// libFuzzer target over the whole front end: parse (with the prelude), overrides-free
// check, sweep expansion, lowering, plan printing and formatting. Any crash, sanitizer
// report or uncaught exception is a bug: the front end must turn every input into
// diagnostics.
#include <cstddef>
#include <cstdint>
#include <string>

#include "gyrus/Format.h"
#include "gyrus/Frontend.h"
#include "gyrus/Parse.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  auto c = gyrus::compileFile("fuzz.gy", {}, gyrus::StopAfter::Check, &text);
  std::string rendered = gyrus::renderHuman(c->sources, c->diags.sorted());
  rendered += gyrus::renderJson(c->sources, c->diags.sorted());
  if (c->check.experiment) rendered += gyrus::printPlan(c->plan);
  if (c->main != nullptr) rendered += gyrus::formatFile(c->sources, c->mainFile, *c->main);
  return rendered.empty() ? 0 : 0;
}
