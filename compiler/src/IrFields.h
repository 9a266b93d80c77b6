// The experiment IR's field tables: for every IR struct, one function that visits its
// fields in canonical order, each with its JSON name and whether it is part of the
// stage's identity. The JSON writer, the JSON reader and the hash material are all
// visitors over these tables, so a field is declared once (as MLIR's ODS declares an
// op's operands once for its parser, printer and verifier).
//
// A visitor `v` has three calls:
//   v("name", member)       an identity field: part of the hash material (a run of them
//                           is one `identity(v, "name", member, ...)` row list)
//   v.info("name", member)  carried and serialised, but not part of the identity (names,
//                           absolute paths, what a stage reports)
//   v.unlessDefault("name", member, default)
//                           an identity field added later: written (and hashed) only
//                           when it differs from `default`, so older stages keep their
//                           hashes; a reader takes the default when the key is absent
// Members are visited through `S&` where S is the struct or `const` struct, so one table
// serves readers (which assign) and writers (which only look).
//
// Also here: one name list per IR enumeration, read by toString, the writer and the
// reader.
#pragma once

#include <array>
#include <concepts>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>

#include "gyrus/Ir.h"

namespace gyrus::ir::fields {

/// S is T, possibly const.
template <class S, class T>
concept Is = std::same_as<std::remove_const_t<S>, T>;

/// The names of an enumeration's values, in one list.
template <class E>
struct EnumNames;

#define GYRUS_ENUM_NAMES(Type, ...)                                                     \
  template <>                                                                           \
  struct EnumNames<Type> {                                                              \
    static constexpr std::pair<Type, std::string_view> kNames[] = {__VA_ARGS__};        \
  };

GYRUS_ENUM_NAMES(StageKind, {StageKind::Pretrain, "pretrain"}, {StageKind::Evaluate, "evaluate"})
GYRUS_ENUM_NAMES(LabelKind, {LabelKind::Binary, "binary"}, {LabelKind::Continuous, "continuous"},
                 {LabelKind::Mask, "mask"})
GYRUS_ENUM_NAMES(OptimizerKind, {OptimizerKind::AdamW, "adamw"}, {OptimizerKind::Sgd, "sgd"})
GYRUS_ENUM_NAMES(Schedule, {Schedule::Constant, "constant"}, {Schedule::Cosine, "cosine"})
GYRUS_ENUM_NAMES(Precision, {Precision::Fp32, "fp32"}, {Precision::Bf16, "bf16"})
GYRUS_ENUM_NAMES(StemInit, {StemInit::Reinit, "reinit"}, {StemInit::Repeat, "repeat"})
GYRUS_ENUM_NAMES(Protocol, {Protocol::Probe, "probe"}, {Protocol::Finetune, "finetune"})
GYRUS_ENUM_NAMES(Probe, {Probe::Linear, "linear"})
GYRUS_ENUM_NAMES(DataKind, {DataKind::Synthetic, "synthetic"}, {DataKind::Folder, "folder"})
GYRUS_ENUM_NAMES(FolderData::Layout, {FolderData::Layout::Fomo60k, "fomo60k"},
                 {FolderData::Layout::Fomo25, "fomo25"}, {FolderData::Layout::Glob, "glob"})
GYRUS_ENUM_NAMES(EncoderKind, {EncoderKind::UNet, "unet"}, {EncoderKind::Vit, "vit"})
GYRUS_ENUM_NAMES(ObjectiveKind, {ObjectiveKind::Mae, "mae"}, {ObjectiveKind::SimClr, "simclr"})
#undef GYRUS_ENUM_NAMES

template <class E>
constexpr std::string_view enumName(E value) {
  for (const auto& [v, name] : EnumNames<E>::kNames)
    if (v == value) return name;
  return "?";
}

template <class E>
constexpr bool enumFromName(std::string_view name, E& out) {
  for (const auto& [v, n] : EnumNames<E>::kNames) {
    if (n == name) {
      out = v;
      return true;
    }
  }
  return false;
}

/// Visits identity fields listed as name, member pairs: one call is a struct's table
/// (or a run of it), in canonical order.
template <class V>
void identity(V&) {}
template <class V, class T, class... Rest>
void identity(V& v, const char* name, T& member, Rest&... rest) {
  v(name, member);
  identity(v, rest...);
}

/// A struct with a kind and one part per kind: the kind, then the part it uses (`a` when
/// the kind is `first`, else `b`).
template <class V, class K, class E, class A, class B>
void tagged(V& v, K& kind, E first, const char* aName, A& a, const char* bName, B& b) {
  v("kind", kind);
  if (kind == first) {
    v(aName, a);
  } else {
    v(bName, b);
  }
}

/// A struct whose fields are all identity fields: its table in one row list.
#define GYRUS_IDENTITY_TABLE(Type, x, ...) \
  template <class V, Is<Type> S>           \
  void visit(V& v, S& x) {                 \
    identity(v, __VA_ARGS__);              \
  }

GYRUS_IDENTITY_TABLE(SyntheticData, d, "subjects", d.subjects, "size", d.size, "seed", d.seed,
                     "lesion_rate", d.lesionRate, "noise", d.noise, "lesion_contrast", d.lesionContrast,
                     "lesion_size", d.lesionSize, "lesion_shape", d.lesionShape, "site_effect", d.siteEffect,
                     "age_effect", d.ageEffect)

GYRUS_IDENTITY_TABLE(FolderSample, s, "subject", s.subject, "session", s.session, "files", s.files, "label", s.label,
                     "mask", s.mask, "site", s.site)

GYRUS_IDENTITY_TABLE(SkippedSample, s, "name", s.name, "reason", s.reason)

// A folder's identity is its content: the fingerprint covers every sample's relative
// path, size and content digest, labels, sites and skipped samples. Where the folder
// lies (`root`, the samples' absolute paths) is not part of it, so the same data on
// another machine give the same stage hashes.
template <class V, Is<FolderData> S>
void visit(V& v, S& f) {
  v("layout", f.layout);
  v.info("root", f.root);
  identity(v, "channels", f.channels, "glob", f.glob, "label_name", f.labelName, "has_label", f.hasLabel,
           "label_kind", f.labelKind, "skip_unreadable", f.skipUnreadable, "fingerprint", f.fingerprint);
  v.info("samples", f.samples);
  v.info("skipped", f.skipped);
}

template <class V, Is<DataSource> S>
void visit(V& v, S& d) {
  tagged(v, d.kind, DataKind::Synthetic, "synthetic", d.synthetic, "folder", d.folder);
}

// An operation is its registry name and its registry's parameters, in order (a reader
// starts from the operation's defaults, so every parameter is read, and checked, by name).
template <class V, Is<PipelineOp> S>
void visit(V& v, S& op) {
  v("op", op.name);
  if constexpr (!std::is_const_v<S>) {
    if (findPipelineOp(op.name) == nullptr) return v.invalid("op", "unknown value '" + op.name + "'");
    op = makeOp(op.name);
  }
  // A parameter added later (kLater) is identity only when it is not its default.
  const OpSpec* spec = findPipelineOp(op.name);
  for (auto& arg : op.args) {
    const OpParamSpec* param = spec != nullptr ? spec->find(arg.name) : nullptr;
    std::visit(
        [&](auto& value) {
          using T = std::decay_t<decltype(value)>;
          if (param != nullptr && (param->flags & kLater) != 0) {
            v.unlessDefault(arg.name.c_str(), value, std::get<T>(defaultValue(*param)));
          } else {
            v(arg.name.c_str(), value);
          }
        },
        arg.value);
  }
}

template <class V, Is<Pipeline> S>
void visit(V& v, S& p) {
  v("ops", p.ops);
}

GYRUS_IDENTITY_TABLE(UNetEncoder, e, "in_channels", e.inChannels, "width", e.width, "stages", e.stages,
                     "convs_per_stage", e.convsPerStage, "max_width", e.maxWidth)

GYRUS_IDENTITY_TABLE(VitEncoder, e, "in_channels", e.inChannels, "patch", e.patch, "dim", e.dim, "depth", e.depth,
                     "heads", e.heads, "mlp_ratio", e.mlpRatio)

template <class V, Is<Encoder> S>
void visit(V& v, S& e) {
  tagged(v, e.kind, EncoderKind::UNet, "unet", e.unet, "vit", e.vit);
}

template <class V, Is<ObjectiveTerm> S>
void visit(V& v, S& t) {
  identity(v, "kind", t.kind, "weight", t.weight);
  if (t.kind == ObjectiveKind::Mae) {
    identity(v, "mask_ratio", t.mae.maskRatio, "cube", t.mae.cube, "masked_only", t.mae.maskedOnly);
  } else {
    identity(v, "temperature", t.simclr.temperature, "projection", t.simclr.projection);
  }
}

template <class V, Is<Objective> S>
void visit(V& v, S& o) {
  v("terms", o.terms);
}

template <class V, Is<Optimizer> S>
void visit(V& v, S& o) {
  identity(v, "kind", o.kind, "lr", o.lr, "weight_decay", o.weightDecay);
  if (o.kind == OptimizerKind::Sgd) v("momentum", o.momentum);
  identity(v, "warmup_epochs", o.warmupEpochs, "schedule", o.schedule, "grad_clip", o.gradClip);
}

// A weights file is its content; where it lies is carried for the runtime.
template <class V, Is<WeightsFile> S>
void visit(V& v, S& w) {
  v.info("path", w.path);
  v("sha256", w.sha256);
}

// `init` names the stage this one starts from; that stage is its dependency, which
// enters the identity by hash.
template <class V, Is<PretrainStage> S>
void visit(V& v, S& p) {
  v.info("name", p.name);
  identity(v, "data", p.data, "pipeline", p.pipeline, "encoder", p.encoder, "objective", p.objective,
           "optimizer", p.optimizer, "epochs", p.epochs, "batch", p.batch, "seed", p.seed);
  v.unlessDefault("precision", p.precision, Precision::Fp32);
  v.info("init", p.init);
  v.unlessDefault("init_weights", p.initWeights, WeightsFile{});
}

/// The ridge probe's fixed L2 strength before it was chosen by leave-one-out.
inline constexpr double kLegacyRidgeAlpha = 1.0;

// The fine-tuning schedule belongs to the fine-tuning protocol and the NSD tolerance to
// masks: a probe's identity does not depend on settings it never reads. The metrics only
// choose what is reported.
template <class V, Is<EvaluateStage> S>
void visit(V& v, S& e) {
  v.info("name", e.name);
  v.info("pretrain", e.pretrain);
  identity(v, "data", e.data, "pipeline", e.pipeline, "encoder", e.encoder, "label", e.label, "label_kind", e.labelKind,
           "protocol", e.protocol);
  if (e.protocol == Protocol::Probe) {
    v("probe", e.probe);
    // Absent in stages written before the leave-one-out choice, which fitted with 1.0:
    // they keep their hash, and `alpha = 1` reuses their results.
    if (e.labelKind == LabelKind::Continuous) v.unlessDefault("ridge_alpha", e.ridgeAlpha, kLegacyRidgeAlpha);
  } else {
    identity(v, "epochs", e.epochs, "lr", e.lr, "batch", e.batch, "batches", e.batches, "grad_clip", e.gradClip);
    v.unlessDefault("stem", e.stem, StemInit::Reinit);
  }
  if (e.labelKind == LabelKind::Mask) v("nsd_tolerance_mm", e.nsdToleranceMm);
  identity(v, "shots", e.shots, "repeats", e.repeats, "test_site", e.testSite);
  if (e.testSite.empty()) v("test_fraction", e.testFraction);  // a site's test set is the whole site
  v("seed", e.seed);
  v.unlessDefault("precision", e.precision, Precision::Fp32);
  v.info("metrics", e.metrics);
  v.unlessDefault("init_weights", e.initWeights, WeightsFile{});
}

#undef GYRUS_IDENTITY_TABLE

}  // namespace gyrus::ir::fields
