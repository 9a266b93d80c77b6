// `gyrus predict` (see Predict.h).
#include "Predict.h"

#include <fmt/core.h>

#include <algorithm>
#include <memory>

#include "Runs.h"
#include "gyrus/Ir.h"
#include "gyrus/exec/Scheduler.h"
#include "gyrus/exec/Store.h"
#include "gyrus/runtime/Runtime.h"

namespace gyrus::driver {
namespace fs = std::filesystem;

namespace {

std::vector<std::string> alternatives(const std::string& spec) {
  std::vector<std::string> out;
  size_t begin = 0;
  for (;;) {
    size_t bar = spec.find('|', begin);
    out.push_back(spec.substr(begin, bar == std::string::npos ? std::string::npos : bar - begin));
    if (bar == std::string::npos) return out;
    begin = bar + 1;
  }
}

std::string flags(const std::vector<std::string>& names) {
  std::string out;
  for (size_t i = 0; i < names.size(); ++i) out += (i ? (i + 1 == names.size() ? " or " : ", ") : "") + ("--" + names[i]);
  return out;
}

/// Every channel of a data set, in order: "--flair, --dwi_b1000 and --swi|--t2s".
std::string channelList(const std::vector<std::string>& specs) {
  std::string out;
  for (size_t i = 0; i < specs.size(); ++i) {
    std::string one;
    for (const std::string& name : alternatives(specs[i])) one += (one.empty() ? "--" : "|--") + name;
    out += (i ? (i + 1 == specs.size() ? " and " : ", ") : "") + one;
  }
  return out;
}

bool endsWith(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

}  // namespace

int predictSubject(const PredictArgs& args) {
  StoredStage found;
  if (!readStoredStage(args.store, args.stage, found)) return 1;
  const exec::Store store(args.store);
  const std::string& hash = found.hash;
  const ir::Stage& stage = found.stage;
  std::error_code ec;
  std::string error;
  if (stage.kind != ir::StageKind::Evaluate || stage.evaluate.protocol != ir::Protocol::Finetune) {
    fmt::print(stderr, "error: '{}' is {}: gyrus predict needs a fine-tuning evaluation, which keeps its models\n",
               stage.name, stage.kind == ir::StageKind::Pretrain ? "a pretraining" : "a linear probe");
    fmt::print(stderr, "note: fine-tune with `evaluate ... (protocol = finetune, ...)`, or `use std.fomo25` and one of "
                       "its tasks; `gyrus runs ls --store {}` lists the stages\n", args.store.string());
    return 1;
  }
  if (store.inspect(hash).status != exec::StageEntry::Status::Done) {
    fmt::print(stderr, "error: stage '{}' ({}) has not finished: run it first (`gyrus run`)\n", stage.name,
               hash.substr(0, 12));
    return 1;
  }
  const ir::EvaluateStage& e = stage.evaluate;

  // The channels, in the data set's order.
  std::vector<std::string> specs;
  if (e.data.kind == ir::DataKind::Folder && e.data.folder.layout == ir::FolderData::Layout::Fomo25)
    specs = e.data.folder.channels;
  std::vector<fs::path> inputs;
  std::vector<bool> used(args.channels.size(), false);
  if (specs.empty()) {
    if (args.input.empty() || !args.channels.empty()) {
      fmt::print(stderr, "error: '{}' was fine-tuned on a data set whose one channel has no name: give it as --input FILE\n",
                 stage.name);
      return 1;
    }
    inputs.emplace_back(args.input);
  } else {
    if (!args.input.empty()) {
      fmt::print(stderr, "error: '{}' takes named channels ({}): give each with its flag, not --input\n", stage.name,
                 channelList(specs));
      return 1;
    }
    for (size_t c = 0; c < specs.size(); ++c) {
      const std::vector<std::string> names = alternatives(specs[c]);
      std::vector<size_t> given;
      for (size_t k = 0; k < args.channels.size(); ++k)
        if (std::find(names.begin(), names.end(), args.channels[k].first) != names.end()) given.push_back(k);
      if (given.empty()) {
        fmt::print(stderr, "error: missing {}: '{}' takes the channels {} (channel {} of {})\n", flags(names), stage.name,
                   channelList(specs), c + 1, specs.size());
        return 1;
      }
      if (given.size() > 1) {
        fmt::print(stderr, "error: channel {} of '{}' is one of {}: give one of them, not {}\n", c + 1, stage.name,
                   flags(names), given.size());
        return 1;
      }
      used[given.front()] = true;
      inputs.emplace_back(args.channels[given.front()].second);
    }
    for (size_t k = 0; k < args.channels.size(); ++k)
      if (!used[k]) {
        fmt::print(stderr, "error: '{}' has no channel '{}': its channels are {}\n", stage.name, args.channels[k].first,
                   channelList(specs));
        return 1;
      }
  }
  for (const fs::path& p : inputs)
    if (!fs::is_regular_file(p, ec)) {
      fmt::print(stderr, "error: the input '{}' does not exist or is not a file\n", p.string());
      return 1;
    }

  const bool mask = e.labelKind == ir::LabelKind::Mask;
  const std::string out = args.output.string();
  if (mask ? !(endsWith(out, ".nii.gz") || endsWith(out, ".nii")) : !endsWith(out, ".txt")) {
    fmt::print(stderr, "error: --output '{}' must end in {}: '{}' predicts {}\n", out, mask ? ".nii.gz" : ".txt",
               stage.name, mask ? "a mask" : e.labelKind == ir::LabelKind::Binary ? "a probability" : "a value");
    return 1;
  }
  if (args.output.has_parent_path()) fs::create_directories(args.output.parent_path(), ec);

  std::unique_ptr<rt::Runtime> runtime = exec::loadRuntime(error);
  if (!runtime) {
    fmt::print(stderr, "error: {}\n", error);
    return 2;
  }
  rt::PredictRequest request;
  request.stageDir = store.stageDir(hash);
  request.inputs = inputs;
  request.output = args.output;
  request.repeat = args.repeat;
  request.overlap = args.overlap;
  request.threads = args.threads;
  request.device = args.device;
  rt::PredictResult r = runtime->predict(e, request);
  if (r.status != rt::PredictResult::Status::Ok) {
    const bool user = r.status == rt::PredictResult::Status::UserError;
    fmt::print(stderr, "{}: {}\n", user ? "error" : "internal error", r.message);
    if (!user) fmt::print(stderr, "this is a bug in gyrus; please report it with the command you ran\n");
    return user ? 1 : 2;
  }
  const std::string models = r.models == 1 ? "1 model" : fmt::format("mean of {} models", r.models);
  if (mask)
    fmt::print("{}: mask of {} voxels ({}, {} windows each) on {} in {:.2f} s\n", out, r.foreground, models, r.windows,
               r.device, r.seconds);
  else
    fmt::print("{}: {} {:.6g} ({}) on {} in {:.2f} s\n", out,
               e.labelKind == ir::LabelKind::Binary ? "probability" : "value", r.value, models, r.device, r.seconds);
  return 0;
}

}  // namespace gyrus::driver
