//===- Rope.cpp - kiln.rope to kernel calls -------------------------------===//
//
// RoPE from a cos/sin table shared by every rope of the same frequencies
// and position in a step.
//
//===----------------------------------------------------------------------===//

#include "../StepLowering.h"

using namespace mlir;
using namespace mlir::kiln;

namespace {

struct RopeLowering : KernelCallPattern<RopeOp> {
  LogicalResult lower(RopeOp r, StepLowering &step,
                      ImplicitLocOpBuilder &b) const override {
    Operation *op = r;
    if (step.fusedOps.contains(r))
      return success(); // applied by the projection before it
    if (failed(step.requireRowsF32(op, r.getInput())))
      return failure();
    RopeConfig cfg = ropeConfigOf(r);
    Value x = step.mapped(r.getInput());
    Value y = step.resultBuffer(r.getResult(), x, b);
    // One cos/sin table per frequency set and position: the first rope
    // of the step fills it, the others read it.
    FailureOr<StepLowering::RopeTable *> table = step.ropeTableFor(r, x, b);
    if (failed(table))
      return failure();
    int64_t at = (*table)->offset, bytes = (*table)->bytes;
    step.callKernel(
        step.kernels.rope(cfg), {x, step.scratchArg, idx(b, at), y}, b,
        {step.regionOf(r.getInput()), step.scratchRegion(at, bytes)},
        {step.regionOf(r.getResult())});
    step.bind(r.getResult(), y);
    return success();
  }
};

} // namespace

void mlir::kiln::populateRopePatterns(KernelCallPatterns &patterns) {
  patterns.add<RopeLowering>();
}
