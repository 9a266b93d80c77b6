#include "gyrus/Weights.h"

#include <set>

namespace gyrus::ir {
namespace {

std::string shapeText(const std::vector<int64_t>& shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) out += (i ? ", " : "") + std::to_string(shape[i]);
  return out + "]";
}

}  // namespace

WeightsMatch matchEncoderWeights(const st::Header& header, const Encoder& encoder) {
  WeightsMatch m;
  const std::vector<ParameterShape> params = encoderParameters(encoder);
  const std::string enc = print(encoder);
  bool prefixed = false;
  for (const st::TensorInfo& t : header.tensors) prefixed = prefixed || t.name.rfind("encoder.", 0) == 0;
  // A whole model's state dict keeps its encoder under "encoder."; a plain encoder file
  // has no prefix at all.
  m.prefix = prefixed && (header.find(params.front().name) == nullptr) ? "encoder." : "";
  if (header.tensors.empty()) {
    m.problem = "the file holds no tensors";
    return m;
  }
  std::set<std::string> expected;
  for (const ParameterShape& p : params) {
    expected.insert(m.prefix + p.name);
    const st::TensorInfo* t = header.find(m.prefix + p.name);
    if (t == nullptr) {
      m.problem = "it has no tensor '" + m.prefix + p.name + "', which " + enc + " needs";
      size_t held = 0;
      for (const st::TensorInfo& h : header.tensors) held += h.name.rfind(m.prefix, 0) == 0 ? 1 : 0;
      m.note = held < params.size()
                   ? "the file holds " + std::to_string(held) + " tensor" + (held == 1 ? "" : "s") +
                         (m.prefix.empty() ? "" : " under '" + m.prefix + "'") + " where this encoder has " +
                         std::to_string(params.size()) + ": a smaller encoder (fewer stages, convolutions or blocks), or "
                         "another model"
                   : "the file's tensors begin with '" + header.tensors.front().name + "'; this encoder's " +
                         std::to_string(params.size()) + " parameter tensors are named as `gyrus export` writes them";
      return m;
    }
    if (t->shape != p.shape) {
      m.problem = "its tensor '" + t->name + "' has shape " + shapeText(t->shape) + " where " + enc + " needs " +
                  shapeText(p.shape);
      if (p.name == params.front().name && t->shape.size() == p.shape.size() && t->shape.size() >= 2 &&
          t->shape[0] == p.shape[0] && t->shape[1] != p.shape[1])
        m.note = "the file's encoder reads " + std::to_string(t->shape[1]) + " input channel" +
                 (t->shape[1] == 1 ? "" : "s") + ", this one " + std::to_string(p.shape[1]);
      else
        m.note = "the file holds another architecture (a different width, depth or patch)";
      return m;
    }
  }
  for (const st::TensorInfo& t : header.tensors) {
    if (!m.prefix.empty() && t.name.rfind(m.prefix, 0) != 0) continue;
    if (expected.count(t.name) == 0) {
      m.problem = "it has tensor '" + t.name + "', which " + enc + " does not have";
      m.note = "the file holds a larger encoder (more stages, convolutions or blocks)";
      return m;
    }
  }
  return m;
}

}  // namespace gyrus::ir
