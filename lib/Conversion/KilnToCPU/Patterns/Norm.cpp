//===- Norm.cpp - RMS and layer norms to kernel calls ---------------------===//
//
// Row norms (a per-head norm runs as more, shorter rows); a norm read by
// int8 linear layers quantizes its output in the same kernel.
//
//===----------------------------------------------------------------------===//

#include "../StepLowering.h"

using namespace mlir;
using namespace mlir::kiln;

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
    // Pre-norm blocks feed the norm to int8 linear layers: quantize in
    // the norm kernel.
    bool quantize = !perHead && step.feedsInt8Linear(n.getResult(), dim);
    SmallVector<StepLowering::Region> writes = {step.regionOf(n.getResult())};
    if (quantize) {
      args.append({step.scratchArg, idx(b, step.q8Offset)});
      writes.push_back(step.scratchRegion(step.q8Offset, step.q8Bytes));
    }
    step.callKernel(step.kernels.norm(**f, dim, n.getEpsilon().convertToFloat(),
                                      isLayer, bias.has_value(), quantize),
                    args, b, {step.regionOf(n.getInput())}, writes);
    if (quantize)
      step.lastQuantized = step.mapped(n.getResult());
    return success();
  }
};

} // namespace

void mlir::kiln::populateNormPatterns(KernelCallPatterns &patterns) {
  patterns.add<NormLowering<RMSNormOp>, NormLowering<LayerNormOp>>();
}
