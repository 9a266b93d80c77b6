#include "WeightsIo.h"

#include <torch/serialize.h>

#include "Errors.h"
#include "gyrus/Safetensors.h"
#include "gyrus/Sha256.h"
#include "gyrus/Weights.h"

namespace gyrus::rt {
namespace {

c10::ScalarType scalarType(st::DType t) {
  switch (t) {
    case st::DType::F64: return torch::kFloat64;
    case st::DType::F32: return torch::kFloat32;
    case st::DType::F16: return torch::kFloat16;
    case st::DType::BF16: return torch::kBFloat16;
  }
  return torch::kFloat32;
}

}  // namespace

void loadEncoderWeights(EncoderImpl& encoder, const ir::WeightsFile& file, const std::string& who) {
  const std::string path = file.path;
  ir::Sha256 hash;
  std::string error;
  if (!hash.updateFromFile(path, error))
    throw UserError(who + " starts from the weights in '" + path + "', which cannot be read: " + error);
  if (hash.hex() != file.sha256)
    throw UserError(who + " starts from the weights in '" + path +
                    "', which changed after the experiment was checked: run `gyrus run` again to check the new file "
                    "(its content is part of the stage's identity)");
  st::Header header;
  if (!st::readHeader(path, header, error)) throw UserError(who + ": " + error);
  ir::WeightsMatch match = ir::matchEncoderWeights(header, encoder.config);
  if (!match.ok())
    throw UserError(who + " starts from the weights in '" + path + "', but " + match.problem + " (" + match.note + ")");
  torch::NoGradGuard noGrad;
  for (auto& p : encoder.named_parameters()) {
    const st::TensorInfo* t = header.find(match.prefix + p.key());
    if (t == nullptr) throw UserError(who + ": '" + path + "' has no tensor '" + match.prefix + p.key() + "'");
    std::vector<char> bytes;
    if (!st::readTensorBytes(path, header, *t, bytes, error)) throw UserError(who + ": " + error);
    torch::Tensor value =
        torch::from_blob(bytes.data(), t->shape, torch::TensorOptions().dtype(scalarType(t->dtype))).to(torch::kFloat32);
    if (value.sizes() != p.value().sizes())
      throw UserError(who + ": tensor '" + t->name + "' of '" + path + "' does not have the parameter's shape");
    p.value().copy_(value);
  }
}

std::map<std::string, std::string> loadModuleWeights(torch::nn::Module& module, const std::filesystem::path& path,
                                                     const std::string& who) {
  st::Header header;
  std::string error;
  if (!st::readHeader(path, header, error)) throw UserError(who + ": " + error);
  auto params = module.named_parameters();
  if (header.tensors.size() != params.size())
    throw UserError(who + ": '" + path.string() + "' holds " + std::to_string(header.tensors.size()) +
                    " tensors, the network has " + std::to_string(params.size()) + " parameters");
  torch::NoGradGuard noGrad;
  for (auto& p : params) {
    const st::TensorInfo* t = header.find(p.key());
    if (t == nullptr) throw UserError(who + ": '" + path.string() + "' has no tensor '" + p.key() + "'");
    std::vector<char> bytes;
    if (!st::readTensorBytes(path, header, *t, bytes, error)) throw UserError(who + ": " + error);
    torch::Tensor value =
        torch::from_blob(bytes.data(), t->shape, torch::TensorOptions().dtype(scalarType(t->dtype))).to(torch::kFloat32);
    if (value.sizes() != p.value().sizes())
      throw UserError(who + ": tensor '" + t->name + "' of '" + path.string() + "' does not have the parameter's shape");
    p.value().copy_(value);
  }
  return header.metadata;
}

void loadJudgedEncoder(EncoderImpl& encoder, const std::filesystem::path& encoderPt, const ir::WeightsFile& weights,
                       const std::string& who) {
  if (!weights.empty()) {
    loadEncoderWeights(encoder, weights, who);
    return;
  }
  torch::serialize::InputArchive archive;
  loadArchive(archive, encoderPt, removeStageFix(encoderPt));
  loadStrict(encoder, archive, encoderPt.string());
}

void saveSafetensors(const std::filesystem::path& path, const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                     const std::map<std::string, std::string>& metadata) {
  std::vector<torch::Tensor> keep;  // the contiguous fp32 copies the TensorData point into
  std::vector<st::TensorData> data;
  for (const auto& [name, tensor] : tensors) {
    keep.push_back(tensor.detach().to(torch::kCPU, torch::kFloat32).contiguous());
    const torch::Tensor& t = keep.back();
    data.push_back({name, st::DType::F32, t.sizes().vec(), t.data_ptr<float>(),
                    static_cast<size_t>(t.numel()) * sizeof(float)});
  }
  std::string error;
  if (!st::write(path, data, metadata, error)) throw UserError(error);
}

ExportResult exportEncoder(const ir::Encoder& config, const std::filesystem::path& encoderPt,
                           const std::filesystem::path& out,
                           const std::vector<std::pair<std::string, std::string>>& metadata) {
  if (!std::filesystem::exists(encoderPt))
    throw UserError("the stage has no trained encoder (" + encoderPt.string() + "): run it to completion first");
  torch::NoGradGuard noGrad;
  EncoderModule encoder = makeEncoder(config);
  {
    torch::serialize::InputArchive archive;
    loadArchive(archive, encoderPt, removeStageFix(encoderPt));
    loadStrict(*encoder, archive, encoderPt.string());
  }
  encoder->eval();
  ExportResult result;
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  for (const auto& p : encoder->named_parameters()) {
    tensors.emplace_back(p.key(), p.value());
    result.tensors.push_back(p.key());
    result.parameters += p.value().numel();
  }
  std::map<std::string, std::string> meta(metadata.begin(), metadata.end());
  saveSafetensors(out, tensors, meta);

  // The reference input and the pooled features of the deepest map.
  const int64_t e = std::max<int64_t>(16, 2 * config.totalStride()), c = config.inChannels();
  auto ar = torch::arange(e, torch::kFloat64);
  auto x = ar.view({1, 1, 1, 1, e}), y = ar.view({1, 1, 1, e, 1}), z = ar.view({1, 1, e, 1, 1});
  auto ch = torch::arange(c, torch::kFloat64).view({1, c, 1, 1, 1});
  torch::Tensor input = torch::sin(0.31 * x + 0.17 * y + 0.07 * z + 0.5 * ch).to(torch::kFloat32).contiguous();
  torch::Tensor deepest = encoder->forward(input).back();
  torch::Tensor pooled = torch::cat({deepest.mean({2, 3, 4}), deepest.amax({2, 3, 4})}, 1).to(torch::kFloat64);
  result.referenceEdge = e;
  auto acc = pooled.accessor<double, 2>();
  for (int64_t i = 0; i < pooled.size(1); ++i) result.referencePooled.push_back(acc[0][i]);
  result.ok = true;
  return result;
}

}  // namespace gyrus::rt
