//===- Linear.cpp - kiln.linear to kernel calls ---------------------------===//
//
// A linear layer: f32 kernels, or int8 activations quantized once per
// input (by the producer when it can) and the gguf-layout or rows16 int8
// kernels, whose epilogue adds kiln-fuse's residual and a llama-style RoPE.
//
//===----------------------------------------------------------------------===//

#include "../StepLowering.h"

using namespace mlir;
using namespace mlir::kiln;

namespace {

struct LinearLowering : KernelCallPattern<LinearOp> {
  LogicalResult lower(LinearOp l, StepLowering &step,
                      ImplicitLocOpBuilder &b) const override {
    Operation *op = l;
    if (failed(step.requireRowsF32(op, l.getInput())) ||
        failed(step.requireRowsF32(op, l.getResult())))
      return failure();
    auto w = step.weightOf(l.getWeight(), op);
    if (failed(w))
      return failure();
    const Rows16Format *rows16 =
        isRows16(w->type) ? w->type.getRows16Format() : nullptr;
    if (rows16 && !step.int8Activations)
      return l.emitOpError("layout = rows16 weights need activations=int8");
    FailureOr<std::unique_ptr<WeightFormat>> f;
    if (!rows16 && failed(f = step.formatOf(op, w->type)))
      return failure();
    std::optional<WeightRef> bias;
    if (l.getBias()) {
      auto bw = step.weightOf(l.getBias(), op);
      if (failed(bw))
        return failure();
      if (!bw->type.getElementType().isF32())
        return l.emitOpError("the CPU lowering needs an f32 bias");
      bias = *bw;
    }
    int64_t k = w->type.getShape()[1], n = w->type.getShape()[0];
    if (!rows16 && k % (*f)->getChunkValues() != 0)
      return l.emitOpError("K = ")
             << k << " is not a multiple of " << (*f)->getChunkValues();
    Value x = step.mapped(l.getInput());
    // kiln-fuse's residual: added in the epilogue of the rows16 step.kernels,
    // by an add kernel after the others.
    Value residual = l.getResidual();
    bool residualEpilogue = residual && rows16;
    RopeOp rope = step.ropeOf(l);
    Value out = rope ? rope.getResult() : l.getResult();
    Value y = step.resultBuffer(out, x, b);
    SmallVector<Value> args;
    func::FuncOp kernel;
    if (step.usesInt8(w->type)) {
      if (step.lastQuantized != x) {
        step.callKernel(step.kernels.quantizeActivations(k),
                        {x, step.scratchArg, idx(b, step.q8Offset)}, b,
                        {step.regionOf(l.getInput())},
                        {step.scratchRegion(step.q8Offset, step.q8Bytes)});
        step.lastQuantized = x;
      }
      args = {step.scratchArg, idx(b, step.q8Offset)};
      kernel = rows16 ? step.kernels.linearRows16(
                            *rows16, k, n, bias.has_value(), residualEpilogue,
                            rope ? int64_t(rope.getHeadDim()) : 0, step.cpu)
                      : step.kernels.linearInt8(**f, k, n, bias.has_value(),
                                                step.cpu);
    } else {
      args = {x};
      kernel = step.kernels.linear(**f, k, n, bias.has_value());
    }
    args.append({step.weightsArg, idx(b, w->offset)});
    if (bias)
      args.append({step.weightsArg, idx(b, bias->offset)});
    SmallVector<StepLowering::Region> reads = {
        step.usesInt8(w->type) ? step.scratchRegion(step.q8Offset, step.q8Bytes)
                               : step.regionOf(l.getInput())};
    if (residualEpilogue) {
      args.push_back(step.mapped(residual));
      reads.push_back(step.regionOf(residual));
    }
    if (rope) {
      FailureOr<StepLowering::RopeTable *> table =
          step.ropeTableFor(rope, x, b);
      if (failed(table))
        return failure();
      args.append({step.scratchArg, idx(b, (*table)->offset)});
      reads.push_back(step.scratchRegion((*table)->offset, (*table)->bytes));
    }
    args.push_back(y);
    step.callKernel(kernel, args, b, reads, {step.regionOf(out)});
    if (residual && !residualEpilogue)
      step.callKernel(step.kernels.elementwise(ElementwiseKind::Add, n,
                                               /*quantize=*/false),
                      {y, step.mapped(residual), y}, b,
                      {step.regionOf(out), step.regionOf(residual)},
                      {step.regionOf(out)});
    step.bind(l.getResult(), y);
    if (out != l.getResult()) {
      step.bind(out, y);
      step.fusedOps.insert(out.getDefiningOp());
    }
    return success();
  }
};

} // namespace

void mlir::kiln::populateLinearPatterns(KernelCallPatterns &patterns) {
  patterns.add<LinearLowering>();
}
