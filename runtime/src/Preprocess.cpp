// Preprocessing operations (see Preprocess.h). Statistics are accumulated in double.
#include "Preprocess.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace gyrus::rt {

Volume centerCropOrPad(const Volume& in, const ir::Shape3& size) {
  for (int64_t s : size)
    if (s <= 0) throw std::invalid_argument("centerCropOrPad: sizes must be positive");
  Volume out = Volume::zeros(size);
  out.spacing = in.spacing;
  // Source offset per axis: positive when cropping, negative when padding.
  int64_t off[3];
  for (int i = 0; i < 3; ++i) off[i] = (in.shape[i] - size[i]) / 2;
  for (int64_t z = 0; z < size[2]; ++z) {
    int64_t sz = z + off[2];
    if (sz < 0 || sz >= in.shape[2]) continue;
    for (int64_t y = 0; y < size[1]; ++y) {
      int64_t sy = y + off[1];
      if (sy < 0 || sy >= in.shape[1]) continue;
      int64_t x0 = std::max<int64_t>(0, -off[0]);
      int64_t x1 = std::min<int64_t>(size[0], in.shape[0] - off[0]);
      if (x1 <= x0) continue;
      const float* src = &in.data[in.index(x0 + off[0], sy, sz)];
      std::copy(src, src + (x1 - x0), &out.data[out.index(x0, y, z)]);
    }
  }
  return out;
}

void zscore(Volume& v, bool nonzeroOnly) {
  double sum = 0.0, sumSq = 0.0;
  size_t count = 0;
  for (float f : v.data) {
    if (nonzeroOnly && f == 0.0f) continue;
    sum += f;
    sumSq += static_cast<double>(f) * f;
    ++count;
  }
  if (count == 0) return;
  double mean = sum / static_cast<double>(count);
  double var = std::max(0.0, sumSq / static_cast<double>(count) - mean * mean);
  double sd = std::sqrt(var);
  if (sd < 1e-12) sd = 1.0;
  for (float& f : v.data) {
    if (nonzeroOnly && f == 0.0f) continue;
    f = static_cast<float>((f - mean) / sd);
  }
}

namespace {
/// Percentile q in [0, 1] of `values` (modified: partially sorted), numpy 'linear'.
double percentile(std::vector<float>& values, double q) {
  double pos = q * static_cast<double>(values.size() - 1);
  size_t k = static_cast<size_t>(std::floor(pos));
  std::nth_element(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(k), values.end());
  double a = values[k];
  if (k + 1 >= values.size()) return a;
  double b = *std::min_element(values.begin() + static_cast<std::ptrdiff_t>(k) + 1, values.end());
  return a + (b - a) * (pos - static_cast<double>(k));
}
}  // namespace

void clipPercentiles(Volume& v, double lo, double hi) {
  if (!(lo >= 0.0 && lo <= hi && hi <= 1.0))
    throw std::invalid_argument("clipPercentiles: need 0 <= lo <= hi <= 1");
  std::vector<float> values;
  values.reserve(v.data.size());
  for (float f : v.data)
    if (f != 0.0f) values.push_back(f);
  if (values.empty()) return;
  double loValue = percentile(values, lo);
  double hiValue = percentile(values, hi);
  for (float& f : v.data)
    if (f != 0.0f) f = static_cast<float>(std::clamp<double>(f, loValue, hiValue));
}

Volume applyPipeline(const ir::Pipeline& pipeline, Volume v) {
  for (const ir::PipelineOp& op : pipeline.ops) {
    switch (op.kind) {
      case ir::OpKind::Crop:
        v = centerCropOrPad(v, op.size);
        break;
      case ir::OpKind::ZScore:
        zscore(v, op.nonzero);
        break;
      case ir::OpKind::Clip:
        clipPercentiles(v, op.lo, op.hi);
        break;
    }
  }
  return v;
}

}  // namespace gyrus::rt
