// libFuzzer target over the whole front end: parse (with the prelude), overrides-free
// check, sweep expansion, lowering, plan printing, the IR's JSON round trip and
// formatting. Any crash, sanitizer report or uncaught exception is a bug: the front end
// must turn every input into diagnostics. An IR that does not read back as itself
// (same JSON, same hashes) aborts.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "gyrus/Format.h"
#include "gyrus/Frontend.h"
#include "gyrus/IrJson.h"
#include "gyrus/Parse.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  auto c = gyrus::compileFile("fuzz.gy", {}, gyrus::StopAfter::Check, &text);
  std::string rendered = gyrus::renderHuman(c->sources, c->diags.sorted());
  rendered += gyrus::renderJson(c->sources, c->diags.sorted());
  if (c->check.experiment) {
    rendered += gyrus::printPlan(c->plan);
    std::string json = gyrus::ir::toJson(*c->check.experiment);
    gyrus::ir::Experiment back;
    std::string error;
    if (!gyrus::ir::experimentFromJson(json, back, error) || gyrus::ir::toJson(back) != json) {
      std::fprintf(stderr, "IR JSON round trip failed: %s\n", error.c_str());
      std::abort();
    }
  }
  if (c->main != nullptr) rendered += gyrus::formatFile(c->sources, c->mainFile, *c->main);
  return rendered.empty() ? 0 : 0;
}
