// Self-supervised pretraining: MAE, SimCLR, or a weighted sum of terms (see Stages.h).
//
// Views: the pipeline is cut at its first random operation (Flip, Noise, Gamma). The
// deterministic prefix is applied once when the data set is built; the suffix, random
// operations and any deterministic ones after them, is applied anew to every view of
// every sample at every step (makeViews). One view per sample without a SimCLR term,
// two with one. MAE terms work on view 0: the masked input carries every augmentation,
// the reconstruction target only the spatial and deterministic ones (AMAES: the target
// is the clean image in the view's geometry). SimCLR terms encode both views in one
// batch of 2B, pool the bottleneck and project it with their own head (NT-Xent). All
// terms share one encoder; the loss is the weighted sum of the terms.
//
// Randomness: torch::manual_seed(stage.seed) fixes the initial weights; the epoch's
// sample order, the augmentations (one seed per view and sample, drawn in order) and
// the masks come from Rng(deriveSeed(stage.seed, epoch)). Since every epoch's random
// stream is derived from (seed, epoch) alone, the checkpoint needs no RNG state:
// model (encoder and heads), optimizer state (AdamW moments and step counts), the
// number of finished epochs and the last epoch's loss are enough for a bit-exact resume.
// Without random operations no augmentation draws are made, so MAE runs consume the
// same stream as before augmentations existed.
//
// Data: synthetic subjects or a NIfTI folder data set of single-channel samples
// (FOMO60K: every scan is a sample); a multi-channel data set is the user's error.
//
// Batches: contrastive terms need at least 2 samples per step; when the epoch's last
// batch would hold a single sample it is merged into the previous one.
//
// Data parallelism (StageContext::worldSize > 1, Distributed.h): every rank builds the
// same data set, sample order and random stream; each step's batch is cut into
// contiguous shards (shardRange), and rank r makes views of its shard alone, but from
// the seeds and masks drawn for the whole batch, so its rows are the ones one process
// would make. Each term's loss is the rank's share of the batch's (Models.cpp): MAE's is
// the shard's mean times shard / batch (a mean over samples of equal size); SimCLR's is
// the whole batch's NT-Xent over every rank's embeddings (gathered), back-propagated
// through the rank's own. The shares' gradients, summed over the ranks by the Trainer,
// are the whole batch's. Rank 0's initial
// parameters are broadcast; every rank loads rank 0's checkpoint on resume; only rank 0
// writes (checkpoints, history, encoder.pt), other ranks spill streamed data to a
// temporary directory. Instance normalisation (the only normalisation of the encoders)
// is per sample, so the shards change nothing but the order of floating-point sums.
#include <chrono>
#include <future>
#include <cmath>
#include <cstdio>
#include <algorithm>
#include <cstdlib>
#include <numeric>
#include <string_view>
#include <optional>

#include <torch/cuda.h>
#include <unistd.h>

#include "Distributed.h"
#include "Errors.h"
#include "Models.h"
#include "Preprocess.h"
#include "Stages.h"
#include "Trainer.h"
#include "WeightsIo.h"

namespace gyrus::rt {

namespace {

void saveCheckpoint(const std::filesystem::path& path, PretrainNet& net, const Trainer& trainer, int64_t epochsDone,
                    double lastLoss, int64_t samples) {
  writeAtomically(path, [&](const std::string& temp) {
    torch::serialize::OutputArchive archive, model, optim;
    net->save(model);
    trainer.save(optim);
    archive.write("model", model);
    archive.write("optimizer", optim);
    archive.write("epochs_done", torch::tensor(epochsDone, torch::kInt64));
    archive.write("last_loss", torch::tensor(lastLoss, torch::kFloat64));
    archive.write("samples", torch::tensor(samples, torch::kInt64));
    archive.save_to(temp);
  });
}

/// Start of every step's batch in an epoch of `n` samples, plus `n` at the end. A last
/// batch smaller than `minBatch` is merged into the previous one.
std::vector<int64_t> batchStarts(int64_t n, int64_t batch, int64_t minBatch) {
  std::vector<int64_t> starts;
  for (int64_t b = 0; b < n; b += batch) starts.push_back(b);
  if (starts.size() > 1 && n - starts.back() < minBatch) starts.pop_back();
  starts.push_back(n);
  return starts;
}

}  // namespace

StageResult pretrain(const ir::PretrainStage& stage, const StageContext& ctx) {
  StageResult result;
  expectIr(ir::verify(stage));  // what the checker guarantees is asserted, not re-validated
  int threads = setThreads(ctx.threads);
  torch::manual_seed(stage.seed);
  PretrainNet net(stage.encoder, stage.objective);
  // What the terms need: views per sample, a clean target, samples per step.
  int64_t views = 1, minBatch = 1;
  bool reconstructive = false;
  for (const auto& objective : net->objectives) {
    views = std::max(views, objective->views());
    minBatch = std::max(minBatch, objective->minBatch());
    reconstructive = reconstructive || objective->reconstructs();
  }
  // A resumed run continues from its checkpoint and never reads the file again.
  if (!stage.initWeights.empty() && !std::filesystem::exists(ctx.dir / kCheckpointFile)) {
    loadEncoderWeights(*net->encoder, stage.initWeights, "pretrain '" + stage.name + "'");
    if (ctx.progress) ctx.progress("starting from the encoder weights in " + stage.initWeights.path);
  }
  if (!stage.init.empty()) {
    // A multi-stage recipe: the encoder starts from an earlier stage's result.
    std::filesystem::path from = ctx.pretrainDir / kEncoderFile;
    if (!std::filesystem::exists(from))
      throw UserError("pretrain '" + stage.name + "' starts from '" + stage.init + "', whose encoder " + from.string() +
                      " does not exist: run that stage first");
    torch::serialize::InputArchive archive;
    loadArchive(archive, from, removeStageFix(from));
    loadStrict(*net->encoder, archive, from.string());
    if (ctx.progress) ctx.progress("starting from the encoder of '" + stage.init + "'");
  }
  torch::Device device = stageDevice(ctx);
  const bool parallel = ctx.worldSize > 1;
  const bool writer = ctx.rank == 0;  // the rank that writes into the stage directory
  if (parallel) {
    if (stage.batch % ctx.worldSize != 0)
      throw UserError("pretrain '" + stage.name + "': its batch of " + std::to_string(stage.batch) +
                      " cannot be split evenly over " + std::to_string(ctx.worldSize) + " ranks");
    // One GPU per rank: "cuda" (or auto) becomes the rank's own among those visible.
    if (device.is_cuda() && ctx.device.find(':') == std::string::npos)
      device = torch::Device(torch::kCUDA,
                             static_cast<c10::DeviceIndex>(ctx.rank % static_cast<int>(torch::cuda::device_count())));
  }
  warnPrecision(stage.precision, device, ctx);
  std::filesystem::path checkpoint = ctx.dir / kCheckpointFile;
  int64_t startEpoch = 0;
  double lastLoss = std::nan("");
  int64_t checkpointSamples = -1;  // -1: no checkpoint, or one from before samples were recorded
  torch::serialize::InputArchive optimizerState;  // loaded into the Trainer once it exists
  if (std::filesystem::exists(checkpoint)) {
    torch::serialize::InputArchive archive, model;
    // Onto the stage's device: the optimiser's moments must live beside the parameters
    // (a checkpoint written on a GPU resumes on a CPU and the other way round).
    loadArchive(archive, checkpoint,
                "delete it (rm " + checkpoint.string() + ") and run again: the stage then starts from its first epoch",
                device);
    archive.read("model", model);
    loadStrict(*net, model, checkpoint.string());
    archive.read("optimizer", optimizerState);
    // A fresh tensor for every value: reading into a defined tensor keeps its dtype and
    // reinterprets the stored bytes (an int64 read back as the loss's double).
    torch::Tensor epochs, loss, samples;
    archive.read("epochs_done", epochs);
    startEpoch = epochs.item<int64_t>();
    archive.read("last_loss", loss);
    lastLoss = loss.item<double>();
    if (archive.try_read("samples", samples)) checkpointSamples = samples.item<int64_t>();
    result.resumed = true;
    if (ctx.progress)
      ctx.progress("resuming from " + checkpoint.filename().string() + " after epoch " + std::to_string(startEpoch));
  }

  net->to(device);
  std::unique_ptr<DataParallel> group;
  if (parallel) {
    group = std::make_unique<DataParallel>(ctx, device);
    // The same start on every rank, whatever each computed: rank 0's parameters.
    group->broadcast(net->parameters());
    if (writer && ctx.progress)
      ctx.progress("rank 0 of " + std::to_string(ctx.worldSize) + " (" + group->backendName() + ")");
  }

  // The loader drops skipped samples from its copy of the data source.
  ir::DataSource source = stage.data;
  LoadOptions load = loadOptions(ctx, threads);
  // Ranks other than 0 write nothing into the stage directory: their streamed volumes
  // spill to a temporary directory of their own.
  std::optional<std::filesystem::path> ownSpill;
  if (!writer) {
    std::error_code ec;
    ownSpill = std::filesystem::temp_directory_path(ec) /
               ("gyrus-rank" + std::to_string(ctx.rank) + "-" + std::to_string(::getpid()));
    load.spill = *ownSpill;
  }
  struct RemoveSpill {
    std::optional<std::filesystem::path>& dir;
    ~RemoveSpill() {
      std::error_code e;
      if (dir) std::filesystem::remove_all(*dir, e);
    }
  } removeSpill{ownSpill};
  Dataset data = buildDataset(source, stage.pipeline, stage.encoder.totalStride(), load);
  if (writer) reportData(data, ctx);
  if (data.samples < minBatch)
    throw UserError("simclr: contrastive learning needs at least 2 samples; " + std::to_string(data.samples) +
                    " is left after skipping " + std::to_string(data.skipped.size()) + " unreadable ones");
  // A resumed run must train on the samples its checkpoint was trained on: with
  // skip_unreadable, files that became unreadable (or readable again) change them.
  if (checkpointSamples >= 0 && checkpointSamples != data.samples)
    throw UserError("the checkpoint " + checkpoint.string() + " was trained on " + std::to_string(checkpointSamples) +
                    " samples, but " + std::to_string(data.samples) +
                    " are readable now (skip_unreadable); restore the files, or delete the checkpoint to start over");
  int64_t n = data.samples;
  std::vector<int64_t> starts = batchStarts(n, stage.batch, minBatch);
  auto stepsPerEpoch = static_cast<int64_t>(starts.size()) - 1;

  // Every rank's shard of every step must hold a sample (the epoch's last batch may be smaller).
  if (parallel)
    for (size_t k = 0; k + 1 < starts.size(); ++k)
      if (starts[k + 1] - starts[k] < ctx.worldSize)
        throw UserError("pretrain '" + stage.name + "': the last batch of each epoch holds " +
                        std::to_string(starts[k + 1] - starts[k]) + " of the " + std::to_string(n) +
                        " samples, fewer than the " + std::to_string(ctx.worldSize) +
                        " ranks; choose a batch that leaves at least one sample per rank, or fewer ranks");
  TrainerOptions options(stage.optimizer);
  options.steps(stepsPerEpoch, stage.epochs).precision(stage.precision, device).progress(ctx.progress);
  if (writer) options.history(ctx.dir / kHistoryFile, {{"phase", "pretrain"}});
  if (group) options.dataParallel(group.get());
  Trainer trainer(net->parameters(), options);
  if (result.resumed) trainer.load(optimizerState);
  if (writer) Trainer::resetHistory(ctx.dir / kHistoryFile, startEpoch);
  // The history names each term by its kind ("mae", "simclr"; "mae_2" for a second MAE).
  std::vector<std::string> termNames;
  for (size_t t = 0; t < stage.objective.terms.size(); ++t) {
    int64_t earlier = 0;
    for (size_t u = 0; u < t; ++u) earlier += stage.objective.terms[u].kind == stage.objective.terms[t].kind ? 1 : 0;
    std::string name(ir::toString(stage.objective.terms[t].kind));
    termNames.push_back(earlier == 0 ? name : name + "_" + std::to_string(earlier + 1));
  }

  // The epoch's random stream, sample order and read-ahead, set up at its first step.
  std::optional<Rng> rng;
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::future<torch::Tensor> ahead;
  auto batchOf = [&](int64_t step) {
    return std::vector<int64_t>(order.begin() + starts[static_cast<size_t>(step)],
                                order.begin() + starts[static_cast<size_t>(step) + 1]);
  };
  // This rank's part of step `step`'s batch (all of it in one process).
  auto shardOfStep = [&](int64_t step) {
    int64_t size = starts[static_cast<size_t>(step) + 1] - starts[static_cast<size_t>(step)];
    if (!parallel) return Shard{0, size};
    auto [begin, count] = shardRange(size, ctx.rank, ctx.worldSize);
    return Shard{begin, count};
  };
  auto samplesOf = [&](int64_t step) {
    std::vector<int64_t> all = batchOf(step);
    Shard shard = shardOfStep(step);
    return std::vector<int64_t>(all.begin() + shard.begin, all.begin() + shard.begin + shard.size);
  };
  // A streamed data set is read one batch ahead, on another thread, while the current
  // step computes: at most two batches of it are in memory.
  auto readAhead = [&data](std::vector<int64_t> samples) {
    return std::async(std::launch::async, [&data, samples = std::move(samples)] { return data.rows(samples); });
  };

  // Views on the GPU when the stage runs there (GYRUS_GPU_VIEWS=0: on the host).
  const char* gpuViews = std::getenv("GYRUS_GPU_VIEWS");
  bool deviceViews = device.is_cuda() && !(gpuViews != nullptr && std::string_view(gpuViews) == "0");
  net->train();
  trainer.run(
      startEpoch,
      [&](int64_t epoch, int64_t step) {
        if (step == 0) {
          rng.emplace(deriveSeed(stage.seed, static_cast<uint64_t>(epoch)));
          std::iota(order.begin(), order.end(), int64_t{0});
          rng->shuffle(order);
          if (data.streamed()) ahead = readAhead(samplesOf(0));
        }
        int64_t begin = starts[static_cast<size_t>(step)], end = starts[static_cast<size_t>(step) + 1];
        const std::vector<int64_t> whole = batchOf(step);  // the draws are made for all of it
        const Shard shard = shardOfStep(step);
        std::vector<int64_t> samples = samplesOf(step);
        torch::Tensor rows;
        if (data.streamed()) {
          rows = ahead.get();
          if (step + 1 < stepsPerEpoch) ahead = readAhead(samplesOf(step + 1));
        }
        Views batch;
        if (data.augment.ops.empty()) {
          batch.target = rows.defined() ? rows : data.rows(samples);
          batch.inputs.assign(static_cast<size_t>(views), batch.target);
        } else if (deviceViews) {
          // On a GPU the views are made there, next to the model (the same draws).
          Rng saved = *rng;
          try {
            batch = makeViewsOnDevice(data, whole, views, reconstructive, *rng, device, rows, shard);
          } catch (const std::exception& e) {
            deviceViews = false;
            *rng = saved;
            if (ctx.progress)
              ctx.progress(std::string("warning: the GPU kernels cannot run (") + e.what() +
                           "): views are made on the CPU");
            batch = makeViews(data, whole, views, reconstructive, *rng, rows, shard);
          }
        } else {
          batch = makeViews(data, whole, views, reconstructive, *rng, rows, shard);
        }
        // Views made on the host go to the stage's device (those made there stay).
        for (torch::Tensor& input : batch.inputs) input = toDevice(input, device);
        if (batch.target.defined()) batch.target = toDevice(batch.target, device);
        StepLoss out{torch::zeros({}, torch::TensorOptions().dtype(torch::kFloat32).device(device)), {}, 1.0,
                     shard.size};
        // Each term's loss is this rank's share of the whole batch's (all of it in one process).
        ObjectiveBatch objectiveBatch{batch,        shard.size,  data.viewShape, *rng, *net, {},
                                      end - begin, shard.begin, group.get()};
        for (size_t t = 0; t < stage.objective.terms.size(); ++t) {
          const ir::ObjectiveTerm& term = stage.objective.terms[t];
          torch::Tensor termLoss = net->objectives[t]->loss(objectiveBatch);
          out.total = out.total + term.weight * termLoss;
          out.terms.emplace_back(termNames[t], termLoss.detach());
        }
        return out;
      },
      [&](int64_t epoch, double loss) {
        lastLoss = loss;
        if (writer) saveCheckpoint(checkpoint, net, trainer, epoch + 1, lastLoss, n);
      });

  if (writer) {
    writeAtomically(ctx.dir / kEncoderFile, [&](const std::string& temp) {
      torch::serialize::OutputArchive archive;
      net->encoder->save(archive);
      archive.save_to(temp);
    });
  }
  // Rank 0 returns once its files are written; the others wait for that, so that a
  // stage whose ranks have all ended has its results.
  if (group) group->barrier();
  result.metrics.push_back({"final_loss", lastLoss});
  if (writer) finishData(data, ctx, result);
  return result;
}

}  // namespace gyrus::rt
