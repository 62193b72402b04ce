//===- Norm.cpp - RMS and layer norms to kernel calls ---------------------===//
//
// Row norms (a per-head norm runs as more, shorter rows); a norm read by
// int8 linear layers quantizes its output in the same kernel.
//
//===----------------------------------------------------------------------===//

#include "KernelBuilder.h"
#include "StepLowering.h"

using namespace mlir;
using namespace mlir::kiln;

//===----------------------------------------------------------------------===//
// rms_norm / layer_norm over rows
//===----------------------------------------------------------------------===//

/// (x, w: memref<?xi8>, wOffset, [b: memref<?xi8>, bOffset,] y,
///  [q: memref<?xi8>, qOffset,] tid, nth); with `quantizeBits` (0: none),
/// also writes y as quantizeActivations would at that width (one kernel and
/// barrier fewer before the linear layers that read it).
static func::FuncOp buildNormKernel(KernelLibrary &library,
                                    const WeightFormat &weight, int64_t dim,
                                    float epsilon, bool layerNorm, bool hasBias,
                                    int64_t quantizeBits) {
  bool quantize = quantizeBits != 0;
  KernelSignature sig(library.getContext());
  sig.rows("x", dim).weightAndBias(hasBias);
  sig.rows("y", dim);
  if (quantize)
    sig.bytesAt("q");
  KernelBuilder kb(library, sig,
                   (layerNorm ? "kiln_layer_norm_" : "kiln_rms_norm_") +
                       weight.getName() + "_" + Twine(dim) + "_eps" +
                       floatName(epsilon) + (hasBias ? "_bias" : "") +
                       (quantize ? "_q" + Twine(quantizeBits) : ""));
  ImplicitLocOpBuilder &b = kb.b;
  Value x = kb.arg("x"), y = kb.arg("y");
  Value w = kb.arg("w"), wOffset = kb.arg("wOffset");
  Value bBuf = kb.optionalArg("bias"),
        bOffset = kb.optionalArg("biasOffset");
  Value q = kb.optionalArg("q"),
        qOffset = kb.optionalArg("qOffset");
  auto [t0, t1] = kb.share(kb.dim(x, 0));
  Value chunks = kb.idx(dim / kLanes);
  kb.forEach(t0, t1, [&](Value t) {
    auto col = [&](Value c) { return kb.mul(c, kb.idx(kLanes)); };
    Value mean = kb.f(0.0f);
    if (layerNorm) {
      auto s = kb.loop(kb.idx(0), chunks, kb.idx(1), {kb.zeros()},
                       [&](Value c, ValueRange acc) {
                         return SmallVector<Value>{
                             kb.add(acc[0], kb.load(x, {t, col(c)}))};
                       });
      mean = kb.div(kb.sum(s.getResult(0)), kb.f(float(dim)));
    }
    Value meanV = kb.splat(mean);
    auto sq = kb.loop(kb.idx(0), chunks, kb.idx(1), {kb.zeros()},
                      [&](Value c, ValueRange acc) {
                        Value v = kb.sub(kb.load(x, {t, col(c)}), meanV);
                        return SmallVector<Value>{kb.fma(v, v, acc[0])};
                      });
    Value var = kb.div(kb.sum(sq.getResult(0)), kb.f(float(dim)));
    Value scale = kb.div(kb.f(1.0f),
                         math::SqrtOp::create(b, kb.add(var, kb.f(epsilon))));
    Value scaleV = kb.splat(scale);
    kb.forEach(kb.idx(0), chunks, [&](Value c) {
      Value v = kb.mul(kb.sub(kb.load(x, {t, col(c)}), meanV), scaleV);
      v = kb.mul(v, weight.emitChunk(b, w, wOffset, c)[0]);
      if (hasBias)
        v = kb.add(v, weight.emitChunk(b, bBuf, bOffset, c)[0]);
      kb.store(v, y, {t, col(c)});
    });
    // The row is in L1: quantize it for the linear layers that read it.
    if (quantize)
      kb.forEach(kb.idx(0), kb.idx(dim / 32), [&](Value blk) {
        Value rec = kb.mul(kb.add(kb.mul(t, kb.idx(dim / 32)), blk),
                           kb.idx(kQ8RecordBytes));
        emitQuantizeBlock(kb, y, t, kb.mul(blk, kb.idx(32)), q,
                          kb.add(qOffset, rec), quantizeBits);
      });
  });
  return kb.finish();
}

//===----------------------------------------------------------------------===//
// Patterns
//===----------------------------------------------------------------------===//

namespace {

template <typename NormOp> struct NormLowering : KernelCallPattern<NormOp> {
  LogicalResult lower(NormOp n, StepLowering &step,
                      ImplicitLocOpBuilder &b) const override {
    Operation *op = n;
    constexpr bool isLayer = std::is_same_v<decltype(n), LayerNormOp>;
    // [tokens, heads, head_dim] (a per-head norm) runs as
    // [tokens * heads, head_dim] rows.
    RankedTensorType inputType = n.getInput().getType();
    bool perHead = inputType.getRank() == 3 &&
                   !ShapedType::isDynamic(inputType.getDimSize(1));
    if (failed(step.requireRowsF32(
            op, perHead ? RankedTensorType::get(
                              {ShapedType::kDynamic, inputType.getDimSize(2)},
                              inputType.getElementType())
                        : inputType)))
      return failure();
    auto w = step.weightOf(n.getWeight(), op);
    if (failed(w))
      return failure();
    auto f = step.formatOf(op, w->type);
    if (failed(f))
      return failure();
    std::optional<WeightRef> bias;
    if constexpr (isLayer) {
      if (n.getBias()) {
        auto bw = step.weightOf(n.getBias(), op);
        if (failed(bw))
          return failure();
        if (bw->type != w->type)
          return n.emitOpError("the CPU lowering needs bias and weight of "
                               "one type");
        bias = *bw;
      }
    }
    int64_t dim = w->type.getShape()[0];
    Value x = step.mapped(n.getInput());
    Value y = step.resultBuffer(n.getResult(), x, b);
    step.bind(n.getResult(), y);
    if (perHead) {
      SmallVector<ReassociationIndices> rows = {{0, 1}, {2}};
      x = memref::CollapseShapeOp::create(b, x, rows);
      y = memref::CollapseShapeOp::create(b, y, rows);
    }
    SmallVector<Value> args = {x, step.weightsArg, idx(b, w->offset)};
    if (bias)
      args.append({step.weightsArg, idx(b, bias->offset)});
    args.push_back(y);
    // Pre-norm blocks feed the norm to int8 linear layers: kiln-fuse has the
    // norm kernel quantize it.
    int64_t quantizeBits = step.quantizedOutputBits(n);
    bool quantize = quantizeBits != 0;
    SmallVector<StepLowering::Region> writes = {step.regionOf(n.getResult())};
    if (quantize) {
      args.append({step.scratchArg, idx(b, step.q8Offset)});
      writes.push_back(step.scratchRegion(step.q8Offset, step.q8Bytes));
    }
    step.callKernel(buildNormKernel(step.kernels, **f, dim,
                                    n.getEpsilon().convertToFloat(), isLayer,
                                    bias.has_value(), quantizeBits),
                    args, b, {step.regionOf(n.getInput())}, writes);
    if (quantize) {
      step.lastQuantized = step.mapped(n.getResult());
      step.lastQuantizedBits = quantizeBits;
    }
    return success();
  }
};

} // namespace

void mlir::kiln::populateNormPatterns(KernelCallPatterns &patterns) {
  patterns.add<NormLowering<RMSNormOp>, NormLowering<LayerNormOp>>();
}
