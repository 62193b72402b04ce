//===- Norm.cpp - rms_norm and layer_norm over rows -----------------------===//
//
// One warp per row (a per-head norm of [T, heads, head_dim] runs as T * heads
// rows): shuffle-xor sums of x (layer norm) and of squares, then the scaled
// row times the f32 weight (plus bias). Where the row divides among the lanes
// (128-bit loads when it divides by 128 values) each lane loads all its values
// at once and keeps them in registers: a loop of dependent sums would wait a
// memory round trip per step (a 4096-wide row took 66 us that way on an H200,
// more than the GEMVs around it).
//
//===----------------------------------------------------------------------===//

#include "GPUStepLowering.h"

#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "llvm/Support/FormatVariadic.h"

using namespace mlir;
using namespace mlir::kiln;

namespace {

/// The most values of a row one lane keeps in registers: 128 (a 4096-wide
/// row) leaves room under the 255 registers a thread may have; wider rows
/// take the loop.
constexpr int64_t kMaxHeldValues = 128;

int64_t normKernel(GPUKernelLibrary &kernels, int64_t dim, float epsilon,
                   bool layerNorm, bool bias) {
  std::string name =
      llvm::formatv("kiln_{0}_{1}_eps{2}{3}",
                    layerNorm ? "layer_norm" : "rms_norm", dim,
                    floatKey(epsilon), bias ? "_bias" : "");
  SmallVector<KernelArg> args = {{"x", KernelArgKind::Buffer},
                                 {"w", KernelArgKind::Buffer}};
  if (bias)
    args.push_back({"bias", KernelArgKind::Buffer});
  args.push_back({"y", KernelArgKind::Buffer});
  // Values each lane holds in registers (none: the strided loop).
  int64_t vec = dim % (kWarpSize * 4) == 0 ? 4 : 1;
  int64_t held = dim % kWarpSize == 0 && dim / kWarpSize <= kMaxHeldValues
                     ? dim / (kWarpSize * vec)
                     : 0;
  if (held)
    name += vec == 4 ? "_v4" : "_held";
  return kernels.get(name, args, [&](GPUKernelBuilder &kb) {
    ImplicitLocOpBuilder &b = kb.b;
    Type f32 = b.getF32Type();
    // 1 / sqrt(mean of squares + eps) from a lane's sum of (centred) squares.
    auto rowScale = [&](Value laneSquares) {
      Value var = kb.div(kb.warpSum(laneSquares), kb.f(float(dim)));
      return kb.div(kb.f(1.0f), kb.sqrt(kb.add(var, kb.f(epsilon))));
    };
    if (held) {
      Type element = vec == 4 ? Type(VectorType::get({vec}, f32)) : f32;
      Value x = kb.view("x", element), w = kb.view("w", element),
            y = kb.view("y", element);
      Value bv = bias ? kb.view("bias", element) : Value();
      Value lane = kb.lane();
      Value row = kb.mul(kb.blockIdx(gpu::Dimension::x), kb.idx(dim / vec));
      auto scalars = [&](Value v) {
        SmallVector<Value> out;
        for (int64_t j = 0; j < vec; ++j)
          out.push_back(vec == 4 ? vector::ExtractOp::create(b, v, j) : v);
        return out;
      };
      // Element (lane + i * 32) of the row seen as `element`s.
      auto at = [&](int64_t i) { return kb.add(lane, kb.idx(i * kWarpSize)); };
      SmallVector<Value> xs;
      for (int64_t i = 0; i < held; ++i)
        llvm::append_range(xs, scalars(kb.load(x, kb.add(row, at(i)))));
      Value mean = kb.f(0.0f);
      if (layerNorm) {
        Value sum = kb.f(0.0f);
        for (Value v : xs)
          sum = kb.add(sum, v);
        mean = kb.div(kb.warpSum(sum), kb.f(float(dim)));
      }
      Value squares = kb.f(0.0f);
      for (Value &v : xs) {
        v = kb.sub(v, mean);
        squares = kb.fma(v, v, squares);
      }
      Value scale = rowScale(squares);
      for (int64_t i = 0; i < held; ++i) {
        SmallVector<Value> ws = scalars(kb.load(w, at(i)));
        SmallVector<Value> bs = bias ? scalars(kb.load(bv, at(i))) : ws;
        SmallVector<Value> out;
        for (int64_t j = 0; j < vec; ++j) {
          Value v = kb.mul(kb.mul(xs[i * vec + j], scale), ws[j]);
          out.push_back(bias ? kb.add(v, bs[j]) : v);
        }
        Value stored =
            vec == 4 ? vector::FromElementsOp::create(
                           b, cast<VectorType>(element), out)
                           .getResult()
                     : out[0];
        kb.store(stored, y, kb.add(row, at(i)));
      }
      return;
    }
    Value x = kb.view("x", f32), w = kb.view("w", f32), y = kb.view("y", f32);
    Value row = kb.mul(kb.blockIdx(gpu::Dimension::x), kb.idx(dim));
    Value lane = kb.lane(), end = kb.idx(dim), step = kb.idx(kWarpSize);
    auto at = [&](Value c) { return kb.load(x, kb.add(row, c)); };
    Value mean = kb.f(0.0f);
    if (layerNorm) {
      auto sum = kb.loop(lane, end, step, {kb.f(0.0f)},
                         [&](Value c, ValueRange acc) {
                           return SmallVector<Value>{kb.add(acc[0], at(c))};
                         });
      mean = kb.div(kb.warpSum(sum.getResult(0)), kb.f(float(dim)));
    }
    auto squares = kb.loop(lane, end, step, {kb.f(0.0f)},
                           [&](Value c, ValueRange acc) {
                             Value v = kb.sub(at(c), mean);
                             return SmallVector<Value>{kb.fma(v, v, acc[0])};
                           });
    Value scale = rowScale(squares.getResult(0));
    kb.forEach(lane, end, step, [&](Value c) {
      Value v = kb.mul(kb.mul(kb.sub(at(c), mean), scale), kb.load(w, c));
      if (bias)
        v = kb.add(v, kb.load(kb.view("bias", f32), c));
      kb.store(v, y, kb.add(row, c));
    });
  });
}

template <typename NormOp> struct NormLowering : GPUKernelPattern<NormOp> {
  LogicalResult lower(NormOp n, GPUStepLowering &step,
                      ImplicitLocOpBuilder &b) const override {
    Operation *op = n;
    constexpr bool isLayer = std::is_same_v<NormOp, LayerNormOp>;
    RankedTensorType type = n.getInput().getType();
    bool perHead = type.getRank() == 3 && !type.isDynamicDim(1) &&
                   !type.isDynamicDim(2);
    if (!perHead && failed(step.requireRowsF32(op, type, 1)))
      return failure();
    if (!type.getElementType().isF32())
      return n.emitOpError("the GPU lowering needs f32 activations");
    auto w = step.weightOf(n.getWeight(), op);
    if (failed(w))
      return failure();
    auto isF32 = [](WeightType t) {
      return t.getElementType() && t.getElementType().isF32();
    };
    if (!isF32(w->type))
      return n.emitOpError("the GPU lowering needs an f32 norm weight");
    std::optional<WeightRef> bias;
    if constexpr (isLayer) {
      if (n.getBias()) {
        auto bw = step.weightOf(n.getBias(), op);
        if (failed(bw))
          return failure();
        if (!isF32(bw->type))
          return n.emitOpError("the GPU lowering needs an f32 norm bias");
        bias = *bw;
      }
    }
    int64_t dim = w->type.getShape()[0];
    Value x = step.mapped(n.getInput());
    Value y = step.resultBuffer(n.getResult(), x, b);
    SmallVector<Value> args = {x, step.weightBuffer(*w, b)};
    if (bias)
      args.push_back(step.weightBuffer(*bias, b));
    args.push_back(y);
    int64_t kernel = normKernel(step.kernels, dim,
                                n.getEpsilon().convertToFloat(), isLayer,
                                bias.has_value());
    Value one = arith::ConstantIndexOp::create(b, 1);
    step.launch(kernel, {step.rowsOf(x, b), one, one}, {kWarpSize, 1, 1}, args,
                b);
    step.bind(n.getResult(), y);
    return success();
  }
};

} // namespace

void mlir::kiln::populateGPUNormPatterns(GPUKernelPatterns &patterns) {
  patterns.add<NormLowering<RMSNormOp>, NormLowering<LayerNormOp>>();
}
