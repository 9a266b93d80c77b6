// The kernel IR: what a pipeline (ir::Pipeline) becomes before it runs. One program per
// pipeline; a program is a short list of passes over float buffers:
//
//   gather   once, first: for every output voxel, a coordinate program maps its index
//            to a position in the source volume (every spatial operation of the pipeline
//            composed: resample, crop, flip, rotation, scaling, elastic displacement),
//            one interpolation reads the source there (trilinear for images, or
//            tricubic where an operation asks; nearest for a mask, which travels
//            through the same map), and each output's chain of
//            pointwise instructions runs in registers before the one store;
//   reduce   a statistic of a buffer (moments, min/max, percentiles) into slots;
//   map      a pointwise chain over a buffer in place (what follows a statistic);
//   stencil  an operation that is not pointwise (blur, ghosting, ringing,
//            low resolution), one library routine per kind.
//
// Outputs: `image` (the augmented view), `target` (the same geometry, only the
// deterministic intensity operations: the MAE reconstruction target) and `mask` (nearest
// neighbour, no intensity operation). Within one program the spatial operations act
// first (composed into one map: one interpolation instead of one per operation) and the
// intensity operations follow in their written order. A pipeline whose spatial
// operation follows an intensity one (`zscore >> crop`: the statistics are the whole
// volume's) is cut there into *segments*, one program each, run one after the other, so
// a pipeline means what its operations mean one by one. Training also cuts a pipeline
// before its first random operation (the cached, deterministic prefix).
//
// A program's structure and its constants are compile-time (they are its canonical text
// and its hash: the key of compiled code); per-volume and per-sample values (shapes,
// spacings, draws of random operations) live in float *slots*, filled on the host by
// `bind` from counter-based draws (Philox.h), so every back end sees the same values.
// Coordinates are single precision and every back end evaluates them in the order the
// reference interpreter does, without contraction to FMA, so masks agree exactly.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "gyrus/Ir.h"

namespace gyrus::kir {

/// A value an instruction reads: a constant (folded into compiled code, part of the
/// program's hash) or a slot of the per-sample block (`Binding::slots`).
struct Operand {
  bool isSlot = false;
  float value = 0.0f;  ///< a constant
  int slot = -1;       ///< a slot's index
  static Operand constant(float v) { return {false, v, -1}; }
  static Operand at(int s) { return {true, 0.0f, s}; }
  bool operator==(const Operand&) const = default;
};

/// One step of the coordinate program, applied to the position p (x, y, z), from the
/// output voxel's index back towards the source.
enum class CoordOp {
  Affine,   ///< p = M p + t; args: 12 operands, row-major [M | t]
  Clamp,    ///< p_a = min(max(p_a, 0), args[a]) for each axis a (args: the top index)
  Window,   ///< outside (-0.5, args[a] + 0.5) on any axis: the voxel is 0 (args: top index)
  Displace, ///< p += d(q), q = M p + t (args: 12 operands): d is field `field`, trilinear
};
struct CoordInstr {
  CoordOp op = CoordOp::Affine;
  std::vector<Operand> args;
  int field = -1;  ///< Displace: the displacement field's index
  std::string origin;  ///< the pipeline operation it came from (for the print)
};

/// Interpolation of the source at the final position.
enum class Interp {
  Nearest,  ///< voxel floor(p + 0.5) per axis; 0 outside the grid
  Linear,   ///< trilinear; the 8 neighbours, those outside the grid count as 0. At an
            ///< integral position (every weight 0) it is the voxel itself, bit for bit
            ///< (no blend with a neighbour of weight 0, which would turn -0 into +0 and
            ///< spread an infinity), so a whole-voxel translation is a copy
  /// Tricubic, separable Catmull-Rom (Keys' kernel with a = -1/2): the 4 neighbours
  /// floor(p) - 1 .. floor(p) + 2 per axis, those outside the grid count as 0 (as Linear).
  /// With t the fraction of p on an axis, the weights are
  ///   w0 = ((-0.5 t + 1) t - 0.5) t      w1 = (1.5 t - 2.5) t t + 1
  ///   w2 = ((-1.5 t + 2) t + 0.5) t      w3 = (0.5 t - 0.5) t t
  /// and the sums run x first (each row ((w0 v0 + w1 v1) + w2 v2) + w3 v3), then y, then
  /// z, in that order. Interpolating (at an integral position: the voxel itself, as
  /// Linear), reproduces polynomials up to degree 2 where all 64 neighbours are inside,
  /// and may overshoot the neighbours' range (by at most 1/8 of it per axis). Not scipy's
  /// order-3 B-spline (which approximates after a prefilter pass): docs/kernels.md.
  Cubic,
};

/// A pointwise instruction on the value v of one voxel. With `headOnly`, a voxel whose
/// value is 0 (the background of a skull-stripped image) is left alone.
enum class PointOp {
  Affine,     ///< v = a v + b; args (a, b)
  Normalize,  ///< v = (v - mean) / sd; args (mean, sd)
  Clamp,      ///< v = min(max(v, lo), hi); args (lo, hi)
  Gamma,      ///< args (g, lo, hi, invert): when hi > lo, t = min(max((v - lo) / (hi - lo), 0), 1),
              ///< t' = t^g (or 1 - (1 - t)^g when invert != 0), v = lo + (hi - lo) t'
  AddNoise,   ///< v += sigma n, n the voxel's standard normal of stream `stream`; args (sigma)
  MulNoise,   ///< v *= 1 + sigma n (as AddNoise); args (sigma)
  Contrast,   ///< v = (v - mean) f + mean; args (f, mean)
  Bias,       ///< v *= exp(c . (1, x, y, z, x2, y2, z2, xy, xz, yz)), x, y, z the voxel's
              ///< position scaled to [-1, 1] over the output grid; args: 10 coefficients
};
///
/// An instruction that is the identity for this sample's slot values is *skipped*: it
/// leaves every v unchanged, bit for bit, whatever the instruction's formula would give
/// (a -0 stays -0; a Gamma of exponent 1 does not round through pow). It is skipped when
///   Affine     a == 1 and b == 0        Normalize  mean == 0 and sd == 1
///   Clamp      lo == -inf and hi == +inf
///   Gamma      g == 1 and invert == 0 (or, as above, not hi > lo)
///   AddNoise, MulNoise  sigma == 0      Contrast   f == 1
///   Bias       all 10 coefficients == 0
/// (`skipped` below). Random operations that do not fire for a sample bind these values,
/// so a back end decides once per pass, not per voxel, and does none of their work.
struct PointInstr {
  PointOp op = PointOp::Affine;
  bool headOnly = false;
  std::vector<Operand> args;
  uint32_t stream = 0;  ///< AddNoise, MulNoise: the random stream (the operation's number)
  std::string origin;
};
using Chain = std::vector<PointInstr>;

/// The buffers of a program: the outputs it writes (and reduces, maps, filters).
enum class Buffer { Image, Target, Mask };

/// A statistic of a buffer, written to slots `out`, `out + 1`. With `nonzero`, only
/// voxels whose value is not 0 count; with none, the statistic is the neutral one.
enum class ReduceOp {
  Moments,     ///< (mean, sd): population sd, 1 when below 1e-12; (0, 1) with no voxel
  MinMax,      ///< (min, max); (0, 0) with no voxel
  Percentiles, ///< the q0 and q1 quantiles, numpy's linear interpolation; (0, 0) with no voxel
};
///
/// A reduction that no instruction needs for this sample is not run, and its slots keep
/// their values (0 from `bind`): every later instruction that reads them is skipped
/// whatever the statistic is (a Gamma of g == 1 and invert == 0, a Contrast of f == 1,
/// with those operands not the statistic's own; `reductionNeeded`).
struct Reduction {
  ReduceOp op = ReduceOp::Moments;
  bool nonzero = false;
  float q0 = 0.0f, q1 = 0.0f;  ///< Percentiles, in [0, 1]
  int out = -1;
};

/// A pass that is not pointwise: a library routine (Stencils.cpp), not generated code.
/// Every kind is separable (lines of one axis at a time), computed in double precision
/// and stored in single precision. n is the length of the axis filtered.
enum class StencilOp {
  /// Separable Gaussian, sd per axis in voxels: args (sx, sy, sz); an sd <= 1e-15 skips
  /// its axis. Exactly scipy.ndimage.gaussian_filter's defaults: radius int(4 sd + 0.5),
  /// weights exp(-x^2 / (2 sd^2)) normalised to sum 1, boundary 'reflect'
  /// (d c b a | a b c d | d c b a, repeated for any offset).
  Blur,
  /// Motion ghosting along axis args[0] (0, 1, 2): with X = fftshift(fft(line)), the planes
  /// m = 0, k, 2k, ... < n of X (k = args[1], an integer >= 1) are scaled by args[2];
  /// the line becomes Re(ifft(ifftshift(X))). Plane m is the frequency m - floor(n / 2).
  Ghost,
  /// Gibbs ringing along axis args[0]: the frequencies f (signed, |f| <= n / 2) with
  /// 2 |f| > args[1] n are removed (args[1] is the kept fraction of the Nyquist
  /// frequency, in (0, 1]); the line becomes Re(ifft(...)).
  Ring,
  /// Low resolution, per axis zoom args (zx, zy, zz) in (0, 1]; an axis of zoom 1 (or of
  /// one voxel) is left alone. Down: m = max(1, floor(n z + 1/2)) samples, sample j the
  /// voxel floor(j (n - 1) / (m - 1) + 1/2) (scipy's zoom, order 0); up: voxel i at
  /// position i (m - 1) / (n - 1) of the m samples, linear between its two neighbours.
  LowRes,
};
struct Stencil {
  StencilOp op = StencilOp::Blur;
  std::vector<Operand> args;
  Operand enabled = Operand::constant(1.0f);  ///< the pass runs when this is not 0
  std::string origin;
};

/// One output of the gather: the interpolation of the source and its pointwise chain.
struct GatherOutput {
  Buffer buffer = Buffer::Image;
  Buffer source = Buffer::Image;  ///< the source it reads (Target: a later segment's target)
  Interp interp = Interp::Linear;
  Chain chain;
};

enum class PassKind { Gather, Reduce, Map, Stencil };
struct Pass {
  PassKind kind = PassKind::Gather;
  Buffer buffer = Buffer::Image;        ///< Reduce, Map, Stencil
  std::vector<CoordInstr> coords;       ///< Gather
  std::vector<GatherOutput> outputs;    ///< Gather
  Reduction reduce;                     ///< Reduce
  Chain chain;                          ///< Map
  struct Stencil stencil;               ///< Stencil
};

/// A displacement field: `shape` control points per axis, 3 components (x fastest,
/// component slowest), drawn per sample by `bind`.
struct FieldSpec {
  ir::Shape3 shape{0, 0, 0};
  std::string origin;
};

/// A compiled-to-be program. `gather` is always passes[0].
struct Program {
  std::vector<Pass> passes;
  int slots = 0;                  ///< the size of the per-sample slot block
  std::vector<std::string> slotNames;
  std::vector<FieldSpec> fields;
  bool hasTarget = false;         ///< writes a target (lowered with LowerOptions::target)
  bool hasMask = false;           ///< writes a mask (LowerOptions::mask)
  /// Operations that are not part of the fused passes (none: every registry operation
  /// lowers); `gyrus plan` names them.
  std::vector<std::string> unfused;
};

/// The grid of one volume: its shape and voxel size (mm).
struct Grid {
  ir::Shape3 shape{0, 0, 0};
  std::array<double, 3> spacing{1.0, 1.0, 1.0};
};

/// A program's values for one volume and one sample.
struct Binding {
  Grid in, out;                 ///< the source's grid, the outputs'
  std::vector<float> slots;     ///< Program::slots values; reductions fill theirs when run
  std::vector<std::vector<float>> fields;  ///< one per FieldSpec: 3 * prod(shape) values
  /// Scratch of `bind`: each spatial operation's affine map (row-major [M | t], from its
  /// output grid's index to its input grid's), composed into the Affine slots.
  std::vector<std::array<double, 12>> affines;
  uint64_t seed = 0;
  uint32_t sample = 0;
};

/// A lowered pipeline: its program, and the host code that binds it to a volume and a
/// sample (draws of random operations, geometry of deterministic ones).
struct Kernel {
  Program program;
  /// One binder per operation, in pipeline order: fills the operation's slots (and
  /// fields) for the given source grid; returns the grid after the operation.
  std::vector<std::function<Grid(const Grid& in, Binding& b)>> binders;
  /// The Affine instructions of the gather, each the composition of operations' affine
  /// maps (indices into Binding::affines, applied first to last) into 12 slots at `slot`.
  struct Composite {
    int slot = -1;
    std::vector<int> affines;
  };
  std::vector<Composite> composites;
  int affineCount = 0;
  ir::Pipeline pipeline;
};

struct LowerOptions {
  bool target = false;  ///< also write the reconstruction target
  bool mask = false;    ///< also carry a mask (nearest neighbour)
  /// The image itself is a mask or label map: sampled nearest neighbour, and only the
  /// spatial operations apply (intensity ones leave a mask alone).
  bool labels = false;
  /// Internal to lowerSegments: the first operation's index in the whole pipeline (the
  /// key of its draws and streams), and whether the target has its own source.
  uint32_t firstOp = 0;
  bool targetSource = false;
};

/// Lowers `pipeline` into its segments (one program each; usually one). Throws
/// std::invalid_argument for an operation without a lowering.
std::vector<Kernel> lowerSegments(const ir::Pipeline& pipeline, const LowerOptions& options = {});
/// Lowers a pipeline that is one segment (no spatial operation after an intensity one);
/// throws std::invalid_argument otherwise.
Kernel lower(const ir::Pipeline& pipeline, const LowerOptions& options = {});
/// Whether operation `op` has a lowering (every registry operation has one; a test
/// checks it).
bool canLower(const ir::PipelineOp& op);
/// Whether `pipeline` lowers to one segment.
bool isOneSegment(const ir::Pipeline& pipeline);

class Draws;
/// The elastic operation's control points per axis: a coarse displacement field of
/// kElasticPoints^3 points spanning the grid (docs/augmentations.md).
inline constexpr int64_t kElasticPoints = 16;
/// The standard deviation of one component of batchgenerators' dense elastic displacement
/// α · gaussian_filter(U(-1, 1) noise, σ) away from the borders: α sqrt(Σ g^2 / 3), g the
/// 3-D kernel of scipy's gaussian_filter (truncated at 4σ, normalised).
double elasticSd(double alpha, double sigma);
/// Draws the three components (x fastest, component slowest) of a field of `points`
/// control points `spacing` voxels apart: a Gaussian field with the dense definition's
/// standard deviation (elasticSd) and correlation exp(-r^2 / (4σ^2)) between points,
/// sampled exactly with a Cholesky factor per axis.
void elasticField(Draws& d, const ir::Shape3& points, const std::array<double, 3>& spacing, double alpha, double sigma,
                  std::vector<float>& out);

/// The values of `kernel` for a source grid, a seed and a sample (Philox draws keyed by
/// (seed, sample, operation)). Slots of reductions are left 0 until a pass fills them.
Binding bind(const Kernel& kernel, const Grid& in, uint64_t seed, uint32_t sample);

/// The canonical text of a program (`gyrus emit --stage=kernel`): every pass, operand and
/// constant, slot names; the same program always prints the same.
std::string print(const Program& program);
/// A pointwise instruction's name in the print ("add_noise").
const char* toString(PointOp op);
/// SHA-256 of the canonical text: the key of compiled code.
std::string hash(const Program& program);

/// The buffers a program runs on: the source (and its mask) on the binding's `in` grid,
/// outputs on its `out` grid (null for outputs the program does not write).
struct Buffers {
  const float* image = nullptr;
  const float* mask = nullptr;
  const float* target = nullptr;  ///< a later segment's target source
  const float* source(Buffer b) const { return b == Buffer::Image ? image : b == Buffer::Target ? target : mask; }
  float* outImage = nullptr;
  float* outTarget = nullptr;
  float* outMask = nullptr;
  float* of(Buffer b) const { return b == Buffer::Image ? outImage : b == Buffer::Target ? outTarget : outMask; }
};

/// The reference interpreter (the oracle): runs every pass in scalar code, one voxel at
/// a time, exactly as specified above. `binding.slots` receives the reductions.
void interpret(const Program& program, Binding& binding, const Buffers& buffers);

/// A back end: runs one program on one binding and its buffers.
using Runner = std::function<void(const Kernel&, Binding&, const Buffers&)>;
/// The result of a pipeline on one volume.
struct Result {
  Grid grid;
  std::vector<float> image, target, mask;  ///< target, mask: when asked for
};
/// Applies `segments` (lowerSegments of one pipeline) to one volume with a back end:
/// binds each segment (seed, sample), runs it, and feeds its outputs to the next.
/// `mask` is null unless the segments carry one. Example:
///   auto segments = kir::lowerSegments(pipeline, {.target = true});
///   kir::Result r = kir::apply(segments, {shape, spacing}, data, nullptr, seed, sample,
///                              kir::interpret);
Result apply(const std::vector<Kernel>& segments, const Grid& in, const float* image, const float* mask, uint64_t seed,
             uint32_t sample, const Runner& run);
/// The interpreter as a Runner.
void interpretKernel(const Kernel& kernel, Binding& binding, const Buffers& buffers);

/// Library routines shared by the CPU back ends (the interpreter and the JIT): the
/// statistics and the stencils, on a buffer of `grid`'s shape. `slots` receives a
/// reduction's values.
void runReduce(const Reduction& r, const float* data, int64_t n, std::vector<float>& slots);
void runStencil(const Stencil& s, float* data, const ir::Shape3& shape, const std::vector<float>& slots);
/// Quantile q in [0, 1] of `values` (reordered: partially sorted), numpy's default
/// linear interpolation between order statistics. `values` must not be empty.
double quantile(std::vector<float>& values, double q);
/// An operand's value under `slots`.
inline float valueOf(const Operand& o, const std::vector<float>& slots) {
  return o.isSlot ? slots[static_cast<size_t>(o.slot)] : o.value;
}
/// Whether `p` is skipped under `slots` (the identity for this sample; see PointOp).
bool skipped(const PointInstr& p, const std::vector<float>& slots);
/// Whether the Reduce pass `pass` of `program` runs under `slots` (see Reduction).
bool reductionNeeded(const Program& program, size_t pass, const std::vector<float>& slots);

}  // namespace gyrus::kir
