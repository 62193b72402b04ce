//===- Norm.cpp - rms_norm and layer_norm over rows -----------------------===//
//
// A block per row (a per-head norm of [T, heads, head_dim] runs as T * heads
// rows): sums of x (layer norm) and of squares, then the scaled row times
// the f32 weight (plus bias). Where the row divides among the threads
// (128-bit loads when it divides by 128 values) each thread loads all its
// values at once and keeps them in registers: a loop of dependent sums would
// wait a memory round trip per step (a 4096-wide row took 66 us that way on
// an H200, more than the GEMVs around it). Wide rows take up to 8 warps, at
// least 16 values a thread, their sums meeting in shared memory: one warp
// held a 4096-wide row for 15.8 us, a quarter of an 8B decode step (H100).
// At one token, a norm kiln-fuse marks `kiln.quantize_output` also writes
// its result quantized for the int8 decode GEMVs that read it
// (emitQuantizeQuad), so they need no quantization kernel of their own.
//
//===----------------------------------------------------------------------===//

#include "GPUStepLowering.h"

#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "llvm/Support/FormatVariadic.h"

using namespace mlir;
using namespace mlir::kiln;

namespace {

/// The most values of a row one thread keeps in registers: 128 (a 4096-wide
/// row in one warp) leaves room under the 255 registers a thread may have;
/// rows that 8 warps cannot hold so take the loop.
constexpr int64_t kMaxHeldValues = 128;
/// Warps a row may take, and the fewest values a thread of a row taking more
/// than one warp holds.
constexpr int64_t kMaxRowWarps = 8;
constexpr int64_t kMinValuesPerThread = 16;
/// Values of x a thread may hold for its weight to be loaded with them.
constexpr int64_t kMaxPrefetchedValues = 32;

/// How a row of `dim` values is spread: `vec` values a load (4 or 1), `held`
/// loads a thread keeps in registers (0: the strided loop, one warp) over
/// `warps` warps.
struct NormPlan {
  int64_t vec, held, warps;
};

NormPlan planNorm(int64_t dim) {
  int64_t vec = dim % (kWarpSize * 4) == 0 ? 4 : 1;
  if (dim % kWarpSize != 0 || dim / kWarpSize > kMaxHeldValues * kMaxRowWarps)
    return {vec, 0, 1};
  int64_t warps = 1;
  while (warps < kMaxRowWarps && dim % (2 * warps * kWarpSize * vec) == 0 &&
         dim / (2 * warps * kWarpSize) >= kMinValuesPerThread)
    warps *= 2;
  if (dim / (warps * kWarpSize) > kMaxHeldValues)
    return {vec, 0, 1};
  return {vec, dim / (warps * kWarpSize * vec), warps};
}

/// The norm kernel; with `quantizeBits` (one token, held in 128-bit loads)
/// it also writes its result to "q" as emitQuantizeQuad does.
int64_t normKernel(GPUKernelLibrary &kernels, int64_t dim, float epsilon,
                   bool layerNorm, bool bias, int64_t quantizeBits) {
  std::string name =
      llvm::formatv("kiln_{0}_{1}_eps{2}{3}",
                    layerNorm ? "layer_norm" : "rms_norm", dim,
                    floatKey(epsilon), bias ? "_bias" : "");
  SmallVector<KernelArg> args = {{"x", KernelArgKind::Buffer},
                                 {"w", KernelArgKind::Buffer}};
  if (bias)
    args.push_back({"bias", KernelArgKind::Buffer});
  args.push_back({"y", KernelArgKind::Buffer});
  NormPlan plan = planNorm(dim);
  int64_t vec = plan.vec, held = plan.held, warps = plan.warps;
  assert((!quantizeBits || (held && vec == 4)) &&
         "the quantizing norm holds its row in 128-bit loads");
  if (held)
    name += vec == 4 ? "_v4" : "_held";
  if (warps > 1)
    name += "_w" + std::to_string(warps);
  if (quantizeBits) {
    name += "_q" + std::to_string(quantizeBits);
    args.push_back({"q", KernelArgKind::Buffer});
  }
  return kernels.get(name, args, [&](GPUKernelBuilder &kb) {
    ImplicitLocOpBuilder &b = kb.b;
    Type f32 = b.getF32Type();
    // The sum of `v` over the row's threads: a warp's by shuffles, the
    // warps' in shared memory (an array per sum, so none is overwritten).
    auto rowSum = [&](Value v) {
      v = kb.warpSum(v);
      if (warps == 1)
        return v;
      Value partial = kb.sharedArray(warps, f32);
      kb.ifThen(arith::CmpIOp::create(b, arith::CmpIPredicate::eq, kb.lane(),
                                      kb.idx(0)),
                [&] { kb.store(v, partial, kb.warp()); });
      kb.barrier();
      Value total = kb.load(partial, kb.idx(0));
      for (int64_t i = 1; i < warps; ++i)
        total = kb.add(total, kb.load(partial, kb.idx(i)));
      return total;
    };
    // 1 / sqrt(mean of squares + eps) from a thread's sum of (centred)
    // squares.
    auto rowScale = [&](Value squares) {
      Value var = kb.div(rowSum(squares), kb.f(float(dim)));
      return kb.div(kb.f(1.0f), kb.sqrt(kb.add(var, kb.f(epsilon))));
    };
    if (held) {
      Type element = vec == 4 ? Type(VectorType::get({vec}, f32)) : f32;
      Value x = kb.view("x", element), w = kb.view("w", element),
            y = kb.view("y", element);
      Value bv = bias ? kb.view("bias", element) : Value();
      Value thread = warps > 1 ? kb.threadIdx() : kb.lane();
      int64_t threads = warps * kWarpSize;
      Value row = kb.mul(kb.blockIdx(gpu::Dimension::x), kb.idx(dim / vec));
      auto scalars = [&](Value v) {
        SmallVector<Value> out;
        for (int64_t j = 0; j < vec; ++j)
          out.push_back(vec == 4 ? vector::ExtractOp::create(b, v, j) : v);
        return out;
      };
      // Element (thread + i * threads) of the row seen as `element`s.
      auto at = [&](int64_t i) { return kb.add(thread, kb.idx(i * threads)); };
      SmallVector<Value> xs;
      for (int64_t i = 0; i < held; ++i)
        llvm::append_range(xs, scalars(kb.load(x, kb.add(row, at(i)))));
      // The weight (and bias) loaded with x where registers allow: loaded
      // after the sums, they would wait a second memory round trip.
      auto loadParams = [&](int64_t i) {
        SmallVector<Value> params = scalars(kb.load(w, at(i)));
        if (bias)
          llvm::append_range(params, scalars(kb.load(bv, at(i))));
        return params;
      };
      SmallVector<SmallVector<Value>> early;
      if (held * vec <= kMaxPrefetchedValues)
        for (int64_t i = 0; i < held; ++i)
          early.push_back(loadParams(i));
      Value mean = kb.f(0.0f);
      if (layerNorm) {
        Value sum = kb.f(0.0f);
        for (Value v : xs)
          sum = kb.add(sum, v);
        mean = kb.div(rowSum(sum), kb.f(float(dim)));
      }
      Value squares = kb.f(0.0f);
      for (Value &v : xs) {
        v = kb.sub(v, mean);
        squares = kb.fma(v, v, squares);
      }
      Value scale = rowScale(squares);
      for (int64_t i = 0; i < held; ++i) {
        SmallVector<Value> params = early.empty() ? loadParams(i) : early[i];
        SmallVector<Value> out;
        for (int64_t j = 0; j < vec; ++j) {
          Value v = kb.mul(kb.mul(xs[i * vec + j], scale), params[j]);
          out.push_back(bias ? kb.add(v, params[vec + j]) : v);
        }
        Value stored =
            vec == 4 ? vector::FromElementsOp::create(
                           b, cast<VectorType>(element), out)
                           .getResult()
                     : out[0];
        kb.store(stored, y, kb.add(row, at(i)));
        // One token: quad at(i) of the row (8 consecutive threads a block).
        if (quantizeBits)
          emitQuantizeQuad(kb, out, at(i),
                           arith::ConstantIntOp::create(b, 1, 1), dim,
                           quantizeBits);
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
    float epsilon = n.getEpsilon().convertToFloat();
    Value one = arith::ConstantIndexOp::create(b, 1);
    Value rows = step.rowsOf(x, b);
    std::array<int64_t, 3> block = {planNorm(dim).warps * kWarpSize, 1, 1};
    int64_t bits = quantizeBits(n);
    step.launchQuantizingOutput(
        n.getResult(), y, rows, bits,
        [&](Value q) {
          SmallVector<Value> kernelArgs(args);
          if (q)
            kernelArgs.push_back(q);
          step.launch(normKernel(step.kernels, dim, epsilon, isLayer,
                                 bias.has_value(), q ? bits : 0),
                      {rows, one, one}, block, kernelArgs, b);
        },
        b);
    return success();
  }
  /// The quantized copy of a decode step's result.
  int64_t workspaceBytes(NormOp n) const override {
    int64_t bits = quantizeBits(n);
    return bits ? quantizedActivationBytes(n.getType().getDimSize(1)) : 0;
  }
  /// kiln.quantize_output's width where the one-token kernel can quantize
  /// (rows held in 128-bit loads), else 0.
  static int64_t quantizeBits(NormOp n) {
    int64_t bits = quantizedOutputBits(n);
    if (!bits)
      return 0;
    NormPlan plan = planNorm(n.getType().getDimSize(1));
    return plan.held && plan.vec == 4 ? bits : 0;
  }
};

} // namespace

void mlir::kiln::populateGPUNormPatterns(GPUKernelPatterns &patterns) {
  patterns.add<NormLowering<RMSNormOp>, NormLowering<LayerNormOp>>();
}
