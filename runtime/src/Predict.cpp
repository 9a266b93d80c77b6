// `gyrus predict` (Runtime::predict): one subject through the models a fine-tuning
// evaluation kept, the FOMO25 submission interface.
//
// Preprocessing is the stage's own: its pipeline without random operations, applied to
// each channel exactly as the evaluation's loader applied it (one compiled pipeline per
// file, Kernels.h), so a subject the evaluation tested gets the score it got there.
//
// A binary or continuous label: the channels go through the whole pipeline (which ends
// with a crop: the patch the model was trained on) and the model gives one logit (its
// sigmoid is the probability) or one standardised value (mapped back with the repeat's
// target mean and scale).
//
// A mask: the pipeline is cut at its last crop, P = P1 >> crop(S) >> P2. P1 (resampling,
// earlier crops, intensity operations) is applied to the whole volume; windows of S
// voxels then tile P1's grid G, overlapping by `overlap` of a side (one window centred
// like the training crop where G is no larger than S), each window cut as the crop cuts
// (zero padding outside G) and finished with P2 (its z-score then sees the window, as the
// training patch saw its crop). The voxel probabilities (sigmoid of the logits) of all
// windows and models are blended with Gaussian weights (sigma = S / 8 per axis, as
// nnU-Net's), and the blended map on G is sampled trilinearly at every voxel of the
// input's own grid through the inverse of P1's index map (resample: an axis-aligned
// scaling about the field of view's centre; crop: an offset), 0 beyond G; the mask is
// that probability > 0.5, written in the input file's voxel order with its affine.
#include <torch/torch.h>

#include <chrono>
#include <cstring>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "Errors.h"
#include "Finetune.h"
#include "Folder.h"
#include "Kernels.h"
#include "Preprocess.h"
#include "Stages.h"
#include "Trainer.h"
#include "WeightsIo.h"
#include "gyrus/io/Nifti.h"

namespace gyrus::rt {
namespace {

namespace fs = std::filesystem;

struct KeptModel {
  fs::path file;
  int64_t repeat = 0;
  double mean = 0.0, scale = 1.0;  ///< continuous labels: value = output * scale + mean
};

struct ModelInfo {
  std::string kind;
  ir::Shape3 patch{0, 0, 0};
  int64_t inChannels = 1;
  std::vector<KeptModel> models;
};

ModelInfo readModelInfo(const PredictRequest& request) {
  const fs::path path = request.stageDir / kModelFile;
  std::ifstream in(path);
  if (!in)
    throw UserError("the stage keeps no fine-tuned models (no " + path.string() +
                    "): it ran before gyrus kept them; remove it (`gyrus runs rm`) and run the experiment again");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw UserError(path.string() + " is not valid JSON (" + e.what() + "): remove the stage and run it again");
  }
  ModelInfo info;
  try {
    info.kind = j.at("kind").get<std::string>();
    info.inChannels = j.at("in_channels").get<int64_t>();
    for (size_t i = 0; i < 3; ++i) info.patch[i] = j.at("patch").at(i).get<int64_t>();
    const auto& files = j.at("files");
    const int64_t repeats = static_cast<int64_t>(files.size());
    if (request.repeat >= repeats)
      throw UserError("--repeat " + std::to_string(request.repeat) + " is out of range: the stage kept " +
                      std::to_string(repeats) + " model(s), repeats 0 to " + std::to_string(repeats - 1));
    for (int64_t r = 0; r < repeats; ++r) {
      if (request.repeat >= 0 && r != request.repeat) continue;
      KeptModel m;
      m.repeat = r;
      m.file = request.stageDir / files.at(static_cast<size_t>(r)).get<std::string>();
      if (j.contains("targets")) {
        for (const auto& t : j.at("targets"))
          if (t.at("repeat").get<int64_t>() == r) {
            m.mean = t.at("mean").get<double>();
            m.scale = t.at("scale").get<double>();
          }
      }
      info.models.push_back(m);
    }
  } catch (const nlohmann::json::exception& e) {
    throw UserError(path.string() + " is incomplete (" + e.what() + "): remove the stage and run it again");
  }
  if (info.models.empty()) throw UserError(path.string() + " lists no models: remove the stage and run it again");
  return info;
}

/// One input file, read and oriented to RAS as the loader reads it.
struct Input {
  io::Image image;  ///< header and geometry (data moved into `volume`)
  Volume volume;
};

Input readInput(const fs::path& path) {
  Input in;
  in.volume = readVolumeFile(path.string(), &in.image);
  return in;
}

std::string shapeText(const ir::Shape3& s) {
  return std::to_string(s[0]) + "x" + std::to_string(s[1]) + "x" + std::to_string(s[2]);
}

/// Stacks per-channel volumes of one shape into [1, C, z, y, x].
torch::Tensor stack(const std::vector<Volume>& channels) {
  const ir::Shape3& s = channels.front().shape;
  torch::Tensor x = torch::empty({1, static_cast<int64_t>(channels.size()), s[2], s[1], s[0]}, torch::kFloat32);
  for (size_t c = 0; c < channels.size(); ++c)
    std::memcpy(x[0][static_cast<int64_t>(c)].data_ptr<float>(), channels[c].data.data(),
                channels[c].data.size() * sizeof(float));
  return x;
}

/// in = a * out + b along one axis.
struct AxisMap {
  double a = 1.0, b = 0.0;
};

/// The index map of P1's spatial operations: for each axis, the input index a voxel of
/// P1's output grid reads. Throws UserError on a spatial operation other than resample
/// and crop (none exists today; a new one must teach this function its geometry).
std::array<AxisMap, 3> indexMap(const ir::Pipeline& p1, ir::Shape3 shape, std::array<double, 3> spacing) {
  std::array<AxisMap, 3> m{};
  for (const ir::PipelineOp& op : p1.ops) {
    if (!op.spec().spatial()) continue;
    std::array<AxisMap, 3> step{};
    ir::Shape3 next = shape;
    std::array<double, 3> nextSpacing = spacing;
    if (op.name == "resample") {
      const double mm = op.number("spacing");
      next = ir::resampledShape(shape, spacing, mm);
      for (size_t i = 0; i < 3; ++i) {
        const double cIn = 0.5 * static_cast<double>(shape[i] - 1), cOut = 0.5 * static_cast<double>(next[i] - 1);
        step[i].a = mm / spacing[i];
        step[i].b = cIn - cOut * step[i].a;
        nextSpacing[i] = mm;
      }
    } else if (op.name == "crop") {
      next = op.shape("size");
      for (size_t i = 0; i < 3; ++i) step[i].b = static_cast<double>((shape[i] - next[i]) / 2);
    } else {
      throw UserError("gyrus predict cannot invert the pipeline operation '" + op.name +
                      "' to put a mask back on the input's grid");
    }
    // m maps P1-so-far's output to the input; compose: in = m(step(out)).
    for (size_t i = 0; i < 3; ++i) m[i] = {m[i].a * step[i].a, m[i].a * step[i].b + m[i].b};
    shape = next;
    spacing = nextSpacing;
  }
  return m;
}

/// Window offsets along one axis of `n` voxels for windows of `w`: one centred as the
/// crop centres (offset (n - w) / 2) when n <= w, else evenly spaced from 0 to n - w with
/// a stride of at most w (1 - overlap).
std::vector<int64_t> windowOffsets(int64_t n, int64_t w, double overlap) {
  if (n <= w) return {(n - w) / 2};
  const double stride = std::max(1.0, static_cast<double>(w) * (1.0 - overlap));
  const auto count = static_cast<int64_t>(std::ceil(static_cast<double>(n - w) / stride)) + 1;
  std::vector<int64_t> out;
  for (int64_t k = 0; k < count; ++k)
    out.push_back(static_cast<int64_t>(std::llround(static_cast<double>(k) * static_cast<double>(n - w) /
                                                    static_cast<double>(count - 1))));
  return out;
}

/// Gaussian importance of a window's voxels along one axis (sigma = w / 8), at least
/// 1e-3 of the centre's so that the window's border still counts where nothing else
/// covers it.
std::vector<float> gaussianWeights(int64_t w) {
  std::vector<float> out(static_cast<size_t>(w));
  const double c = 0.5 * static_cast<double>(w - 1), sigma = static_cast<double>(w) / 8.0;
  for (int64_t j = 0; j < w; ++j) {
    const double d = (static_cast<double>(j) - c) / sigma;
    out[static_cast<size_t>(j)] = static_cast<float>(std::max(1e-3, std::exp(-0.5 * d * d)));
  }
  return out;
}

/// Trilinear sample of `v` at (x, y, z) in voxel indices; 0 beyond half a voxel outside.
float sampleOrZero(const Volume& v, double x, double y, double z) {
  const std::array<double, 3> p{x, y, z};
  std::array<int64_t, 3> lo{};
  std::array<double, 3> t{};
  for (size_t i = 0; i < 3; ++i) {
    const double n = static_cast<double>(v.shape[i]);
    if (p[i] < -0.5 || p[i] > n - 0.5) return 0.0f;
    const double q = std::clamp(p[i], 0.0, n - 1.0);
    lo[i] = std::min<int64_t>(static_cast<int64_t>(std::floor(q)), v.shape[i] - 1);
    t[i] = q - static_cast<double>(lo[i]);
  }
  double acc = 0.0;
  for (int dz = 0; dz < 2; ++dz)
    for (int dy = 0; dy < 2; ++dy)
      for (int dx = 0; dx < 2; ++dx) {
        const double w = (dx ? t[0] : 1 - t[0]) * (dy ? t[1] : 1 - t[1]) * (dz ? t[2] : 1 - t[2]);
        if (w == 0.0) continue;
        const int64_t xi = std::min(lo[0] + dx, v.shape[0] - 1), yi = std::min(lo[1] + dy, v.shape[1] - 1),
                      zi = std::min(lo[2] + dz, v.shape[2] - 1);
        acc += w * v.at(xi, yi, zi);
      }
  return static_cast<float>(acc);
}

void requireOneGrid(const std::vector<Input>& inputs, const PredictRequest& request) {
  for (size_t c = 1; c < inputs.size(); ++c) {
    const io::Image& a = inputs[0].image;
    const io::Image& b = inputs[c].image;
    bool same = a.shape == b.shape;
    for (size_t i = 0; i < 3 && same; ++i) same = std::abs(a.spacing[i] - b.spacing[i]) <= 1e-4 * a.spacing[i];
    if (!same)
      throw UserError(request.inputs[c].string() + " (" + shapeText(b.shape) + " in RAS order) does not lie on the grid of " +
                      request.inputs[0].string() + " (" + shapeText(a.shape) +
                      "): a mask is predicted on one grid, so every channel must share it (register them first)");
  }
}

}  // namespace

PredictResult predict(const ir::EvaluateStage& stage, const PredictRequest& request) {
  const auto start = std::chrono::steady_clock::now();
  if (stage.protocol != ir::Protocol::Finetune)
    throw UserError("'" + stage.name + "' is a linear probe, which keeps no model: predict with a fine-tuning " +
                    "evaluation (`protocol = finetune`)");
  if (!(request.overlap >= 0.0 && request.overlap <= 0.9))
    throw UserError("--overlap must be between 0 and 0.9 (a share of the window's side)");
  ModelInfo info = readModelInfo(request);
  if (static_cast<int64_t>(request.inputs.size()) != info.inChannels)
    throw UserError("the model takes " + std::to_string(info.inChannels) + " channel(s), " +
                    std::to_string(request.inputs.size()) + " input file(s) were given");
  const bool mask = info.kind == "mask";
  const ir::Pipeline pipeline = withoutRandomOps(stage.pipeline);
  setThreads(request.threads);
  StageContext ctx;
  ctx.device = request.device;
  const torch::Device device = stageDevice(ctx);

  ir::Encoder config = stage.encoder;
  config.setInChannels(info.inChannels);
  std::vector<std::shared_ptr<torch::nn::Module>> nets;
  for (const KeptModel& m : info.models) {
    std::shared_ptr<torch::nn::Module> net;
    if (mask)
      net = SegNet(config).ptr();
    else
      net = FinetuneNet(config).ptr();
    loadModuleWeights(*net, m.file, "the kept model of repeat " + std::to_string(m.repeat));
    net->to(device);
    net->eval();
    nets.push_back(net);
  }
  auto forward = [&](size_t k, const torch::Tensor& x) {
    return mask ? std::static_pointer_cast<SegNetImpl>(nets[k])->forward(x)
                : std::static_pointer_cast<FinetuneNetImpl>(nets[k])->forward(x);
  };

  std::vector<Input> inputs;
  for (const fs::path& p : request.inputs) inputs.push_back(readInput(p));

  PredictResult result;
  result.kind = info.kind;
  result.models = static_cast<int64_t>(nets.size());
  result.device = describeDevice(device);
  torch::NoGradGuard noGrad;
  AutocastScope autocast(stage.precision, device.type());

  if (!mask) {
    std::vector<Volume> channels;
    const CompiledPipeline compiled = compilePipeline(pipeline);
    for (size_t c = 0; c < inputs.size(); ++c) {
      channels.push_back(runPipeline(compiled, inputs[c].volume));
      if (channels.back().shape != info.patch)
        throw UserError(request.inputs[c].string() + ": the stage's pipeline gives " +
                        shapeText(channels.back().shape) + " voxels for this image, the model was trained on " +
                        shapeText(info.patch) + ": the pipeline must end its size changes with a crop");
    }
    torch::Tensor x = toDevice(stack(channels), device);
    double sum = 0.0;
    for (size_t k = 0; k < nets.size(); ++k) {
      const double out = forward(k, x).to(torch::kCPU, torch::kFloat64).item<double>();
      const KeptModel& m = info.models[k];
      const double value = info.kind == "binary" ? 1.0 / (1.0 + std::exp(-out)) : out * m.scale + m.mean;
      result.perRepeat.push_back(value);
      sum += value;
    }
    result.value = sum / static_cast<double>(nets.size());
    char text[64];
    std::snprintf(text, sizeof text, "%.9g\n", result.value);
    // Atomically (a temporary file renamed over it): a killed predict leaves no torn file.
    writeAtomically(request.output, [&](const std::string& tmp) {
      std::ofstream f(tmp);
      f << text;
      if (!f.flush()) throw UserError("cannot write " + request.output.string());
    });
  } else {
    requireOneGrid(inputs, request);
    // P = P1 >> crop(S) >> P2, cut at the last crop.
    size_t cut = pipeline.ops.size();
    for (size_t i = 0; i < pipeline.ops.size(); ++i)
      if (pipeline.ops[i].name == "crop") cut = i;
    ir::Pipeline p1, p2;
    for (size_t i = 0; i < pipeline.ops.size(); ++i) {
      if (i < cut) p1.ops.push_back(pipeline.ops[i]);
      if (i > cut) p2.ops.push_back(pipeline.ops[i]);
    }
    for (const ir::PipelineOp& op : p2.ops)
      if (op.spec().spatial())
        throw UserError("the stage's pipeline changes the grid after its last crop ('" + op.name +
                        "'): gyrus predict slides the crop's window over the volume and needs the crop last among "
                        "the spatial operations");
    const CompiledPipeline c1 = compilePipeline(p1), c2 = compilePipeline(p2);
    std::vector<Volume> grid;  // every channel on P1's grid
    for (const Input& in : inputs) grid.push_back(runPipeline(c1, in.volume));
    const ir::Shape3 g = grid.front().shape;
    const ir::Shape3 s = cut < pipeline.ops.size() ? pipeline.ops[cut].shape("size") : g;
    if (s != info.patch)
      throw UserError("the stage's pipeline cuts " + shapeText(s) + " windows, its models were trained on " +
                      shapeText(info.patch) + ": the stage's files are inconsistent; run it again");
    std::array<std::vector<int64_t>, 3> offsets;
    std::array<std::vector<float>, 3> weights;
    for (size_t i = 0; i < 3; ++i) {
      offsets[i] = windowOffsets(g[i], s[i], request.overlap);
      weights[i] = gaussianWeights(s[i]);
    }
    Volume acc = Volume::zeros(g), wsum = Volume::zeros(g);
    acc.spacing = wsum.spacing = grid.front().spacing;
    std::vector<std::array<int64_t, 3>> windows;
    for (int64_t oz : offsets[2])
      for (int64_t oy : offsets[1])
        for (int64_t ox : offsets[0]) windows.push_back({ox, oy, oz});
    result.windows = static_cast<int64_t>(windows.size());
    // Windows go through the networks in batches of about 2^21 voxels (one 96^3 window
    // alone, up to 32 small ones), so that small patches on large volumes do not pay a
    // forward pass's fixed cost per window.
    const int64_t windowVoxels = s[0] * s[1] * s[2];
    const auto perBatch = static_cast<size_t>(std::clamp<int64_t>((int64_t{1} << 21) / windowVoxels, 1, 32));
    for (size_t first = 0; first < windows.size(); first += perBatch) {
      const size_t last = std::min(windows.size(), first + perBatch);
      std::vector<torch::Tensor> batch;
      for (size_t w = first; w < last; ++w) {
        std::vector<Volume> window;
        for (const Volume& v : grid) window.push_back(runPipeline(c2, cropOrPadAt(v, s, windows[w])));
        batch.push_back(stack(window));
      }
      torch::Tensor x = toDevice(torch::cat(batch, 0), device);
      for (size_t k = 0; k < nets.size(); ++k) {
        torch::Tensor p = torch::sigmoid(forward(k, x).to(torch::kCPU, torch::kFloat)).contiguous();
        for (size_t w = first; w < last; ++w) {
          const float* pd = p.data_ptr<float>() + static_cast<int64_t>(w - first) * windowVoxels;
          const auto [ox, oy, oz] = windows[w];
          for (int64_t z = 0; z < s[2]; ++z) {
            const int64_t gz = z + oz;
            if (gz < 0 || gz >= g[2]) continue;
            for (int64_t y = 0; y < s[1]; ++y) {
              const int64_t gy = y + oy;
              if (gy < 0 || gy >= g[1]) continue;
              for (int64_t xx = 0; xx < s[0]; ++xx) {
                const int64_t gx = xx + ox;
                if (gx < 0 || gx >= g[0]) continue;
                const float wt = weights[0][static_cast<size_t>(xx)] * weights[1][static_cast<size_t>(y)] *
                                 weights[2][static_cast<size_t>(z)];
                acc.at(gx, gy, gz) += wt * pd[xx + s[0] * (y + s[1] * z)];
                wsum.at(gx, gy, gz) += wt;
              }
            }
          }
        }
      }
    }
    for (size_t i = 0; i < acc.data.size(); ++i) acc.data[i] = wsum.data[i] > 0 ? acc.data[i] / wsum.data[i] : 0.0f;

    // Back onto the input's grid through the inverse of P1's index map.
    const Input& ref = inputs.front();
    const std::array<AxisMap, 3> m = indexMap(p1, ref.volume.shape, ref.volume.spacing);
    io::Image out = ref.image;
    const ir::Shape3& n = ref.volume.shape;
    out.data.assign(static_cast<size_t>(n[0] * n[1] * n[2]), 0.0f);
    at::parallel_for(0, n[2], 1, [&](int64_t z0, int64_t z1) {
      for (int64_t z = z0; z < z1; ++z)
        for (int64_t y = 0; y < n[1]; ++y)
          for (int64_t x = 0; x < n[0]; ++x) {
            const double qx = (static_cast<double>(x) - m[0].b) / m[0].a, qy = (static_cast<double>(y) - m[1].b) / m[1].a,
                         qz = (static_cast<double>(z) - m[2].b) / m[2].a;
            out.data[static_cast<size_t>(x + n[0] * (y + n[1] * z))] = sampleOrZero(acc, qx, qy, qz) > 0.5f ? 1.0f : 0.0f;
          }
    });
    for (float v : out.data) result.foreground += v > 0.5f ? 1 : 0;
    io::WriteOptions options;
    options.datatype = "uint8";
    options.sourceGeometry = true;
    std::string error;
    if (!io::writeNifti(request.output.string(), out, options, error))
      throw UserError("cannot write " + request.output.string() + ": " + error);
  }
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

}  // namespace gyrus::rt
