// Safetensors files (gyrus/Safetensors.h) and matching their tensors to an encoder
// (gyrus/Weights.h): what `init = weights(...)` checks before any compute.
#include <doctest/doctest.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "gyrus/IrJson.h"
#include "gyrus/Safetensors.h"
#include "gyrus/Weights.h"

namespace fs = std::filesystem;
using namespace gyrus;

namespace {

fs::path tempFile(const std::string& name) {
  fs::path dir = fs::temp_directory_path() / ("gyrus-weights-test-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  return dir / name;
}

// Writes the encoder's parameters (every value `fill`), each name with `prefix`.
fs::path writeEncoder(const ir::Encoder& e, const std::string& name, const std::string& prefix = "",
                      std::vector<ir::ParameterShape> extra = {}) {
  std::vector<ir::ParameterShape> params = ir::encoderParameters(e);
  for (ir::ParameterShape& p : params) p.name = prefix + p.name;
  params.insert(params.end(), extra.begin(), extra.end());
  std::vector<std::vector<float>> storage;
  std::vector<st::TensorData> tensors;
  for (const ir::ParameterShape& p : params) {
    int64_t n = 1;
    for (int64_t s : p.shape) n *= s;
    storage.emplace_back(static_cast<size_t>(n), 0.5f);
  }
  for (size_t i = 0; i < params.size(); ++i)
    tensors.push_back({params[i].name, st::DType::F32, params[i].shape, storage[i].data(), storage[i].size() * 4});
  fs::path path = tempFile(name);
  std::string error;
  REQUIRE(st::write(path, tensors, {{"format", "gyrus-encoder"}}, error));
  return path;
}

std::string headerError(const std::string& bytes) {
  fs::path path = tempFile("damaged.safetensors");
  std::ofstream(path, std::ios::binary) << bytes;
  st::Header h;
  std::string error;
  CHECK_FALSE(st::readHeader(path, h, error));
  return error;
}

std::string withHeader(const std::string& json, size_t dataBytes) {
  std::string out(8, '\0');
  uint64_t n = json.size();
  std::memcpy(out.data(), &n, 8);  // little-endian hosts only, as the format
  return out + json + std::string(dataBytes, '\0');
}

}  // namespace

TEST_CASE("safetensors: what is written reads back") {
  ir::Encoder e = ir::UNetEncoder{.width = 4, .stages = 2};
  fs::path path = writeEncoder(e, "round.safetensors");
  st::Header h;
  std::string error;
  REQUIRE(st::readHeader(path, h, error));
  CHECK(h.metadata.at("format") == "gyrus-encoder");
  CHECK(h.dataStart % 8 == 0);  // the header is padded
  REQUIRE(h.tensors.size() == ir::encoderParameters(e).size());
  CHECK(h.tensors[0].name == "stage0.conv0.conv.weight");
  CHECK(h.tensors[0].shape == std::vector<int64_t>{4, 1, 3, 3, 3});
  std::vector<char> bytes;
  REQUIRE(st::readTensorBytes(path, h, h.tensors[1], bytes, error));
  float first = 0;
  std::memcpy(&first, bytes.data(), 4);
  CHECK(first == 0.5f);
}

TEST_CASE("safetensors: damaged files are refused with the reason") {
  CHECK(headerError("abc").find("shorter than") != std::string::npos);
  CHECK(headerError(withHeader("{\"a\": 1", 0)).find("not a JSON object") != std::string::npos);
  CHECK(headerError(withHeader(R"({"a":{"dtype":"I8","shape":[2],"data_offsets":[0,2]}})", 2)).find("I8") !=
        std::string::npos);
  // The size of the byte range must match the shape: a truncated file.
  CHECK(headerError(withHeader(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", 8))
            .find("do not match") != std::string::npos);
  // Gaps and overlaps between tensors.
  CHECK(headerError(withHeader(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", 8)).find("tile") !=
        std::string::npos);
  CHECK(headerError(withHeader(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 8)).find("after the last") !=
        std::string::npos);
  st::Header h;
  std::string error;
  CHECK_FALSE(st::readHeader(tempFile("absent.safetensors"), h, error));
  CHECK(error.find("cannot open") != std::string::npos);
}

TEST_CASE("encoder parameters: counts agree with parameterCount") {
  for (const ir::Encoder& e : {ir::Encoder(ir::UNetEncoder{.width = 8, .stages = 4}),
                               ir::Encoder(ir::UNetEncoder{.inChannels = 3, .width = 32, .stages = 6, .convsPerStage = 2,
                                                           .maxWidth = 320}),
                               ir::Encoder(ir::VitEncoder{.patch = 8, .dim = 48, .depth = 2, .heads = 4})}) {
    int64_t total = 0;
    for (const ir::ParameterShape& p : ir::encoderParameters(e)) {
      int64_t n = 1;
      for (int64_t s : p.shape) n *= s;
      total += n;
    }
    CHECK(total == ir::parameterCount(e));
  }
}

TEST_CASE("matching a file to an encoder") {
  ir::Encoder small = ir::UNetEncoder{.width = 4, .stages = 2};
  st::Header h;
  std::string error;
  SUBCASE("plain names match") {
    REQUIRE(st::readHeader(writeEncoder(small, "plain.safetensors"), h, error));
    ir::WeightsMatch m = ir::matchEncoderWeights(h, small);
    CHECK(m.ok());
    CHECK(m.prefix.empty());
  }
  SUBCASE("a whole model's state dict: the encoder under encoder., the rest ignored") {
    REQUIRE(st::readHeader(writeEncoder(small, "whole.safetensors", "encoder.", {{"decoder.head.weight", {1, 4, 1, 1, 1}}}),
                           h, error));
    ir::WeightsMatch m = ir::matchEncoderWeights(h, small);
    CHECK(m.ok());
    CHECK(m.prefix == "encoder.");
  }
  SUBCASE("a wider encoder") {
    REQUIRE(st::readHeader(writeEncoder(small, "plain.safetensors"), h, error));
    ir::WeightsMatch m = ir::matchEncoderWeights(h, ir::UNetEncoder{.width = 8, .stages = 2});
    CHECK(m.problem.find("has shape [4, 1, 3, 3, 3]") != std::string::npos);
  }
  SUBCASE("other input channels") {
    REQUIRE(st::readHeader(writeEncoder(small, "plain.safetensors"), h, error));
    ir::WeightsMatch m = ir::matchEncoderWeights(h, ir::UNetEncoder{.inChannels = 2, .width = 4, .stages = 2});
    CHECK(m.note.find("reads 1 input channel, this one 2") != std::string::npos);
  }
  SUBCASE("a deeper encoder in the file") {
    REQUIRE(st::readHeader(writeEncoder(ir::UNetEncoder{.width = 4, .stages = 3}, "deep.safetensors"), h, error));
    ir::WeightsMatch m = ir::matchEncoderWeights(h, small);
    CHECK(m.problem.find("'stage2.conv0.conv.weight', which") != std::string::npos);
  }
  SUBCASE("a shallower encoder in the file") {
    REQUIRE(st::readHeader(writeEncoder(small, "plain.safetensors"), h, error));
    ir::WeightsMatch m = ir::matchEncoderWeights(h, ir::UNetEncoder{.width = 4, .stages = 3});
    CHECK(m.note.find("smaller encoder") != std::string::npos);
  }
}

TEST_CASE("a weights file enters the stage hash by its content, not its path") {
  auto stage = [](const std::string& path, const std::string& sha) {
    ir::Stage s;
    s.kind = ir::StageKind::Pretrain;
    s.name = s.pretrain.name = "base";
    s.pretrain.encoder = ir::UNetEncoder{.width = 4, .stages = 2};
    s.pretrain.objective.terms.push_back(ir::ObjectiveTerm{});
    s.pretrain.initWeights = {path, sha};
    return s;
  };
  auto hashOf = [&](const std::string& path, const std::string& sha) {
    ir::Experiment ex;
    ex.stages.push_back(stage(path, sha));
    ir::hashStages(ex);
    return ex.stages[0].hash;
  };
  const std::string a(64, 'a'), b(64, 'b');
  CHECK(hashOf("/data/one/enc.safetensors", a) == hashOf("/elsewhere/enc.safetensors", a));
  CHECK(hashOf("/data/one/enc.safetensors", a) != hashOf("/data/one/enc.safetensors", b));
  CHECK(hashOf("", "") != hashOf("/data/one/enc.safetensors", a));
  // Without a file, the material (and so the hash) is what stages had before
  // `init = weights` existed.
  CHECK(ir::hashMaterial(stage("", ""), {}).find("init_weights") == std::string::npos);
  CHECK(ir::hashMaterial(stage("/x.safetensors", a), {}).find("init_weights") != std::string::npos);
}

TEST_CASE("safetensors: hostile headers") {
  // A shape whose element count overflows 64 bits must not pass as an empty tensor.
  CHECK(headerError(withHeader(R"({"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,0]}})", 0))
            .find("do not match") != std::string::npos);
  // Control characters in a name are refused, and shown escaped.
  std::string error = headerError(withHeader("{\"\\u001b[31mx\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4));
  CHECK(error.find("control characters") != std::string::npos);
  CHECK(error.find('\x1b') == std::string::npos);
}
