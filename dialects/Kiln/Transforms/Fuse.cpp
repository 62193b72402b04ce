//===- Fuse.cpp - fusion decisions made in the IR -------------------------===//
//
// Fusion is decided here, once for every target, and shows in the IR: a
// lowering reads the fused form and emits one kernel for it (or several, if
// its kernel for that form has no epilogue), and never re-decides it.
//
//===----------------------------------------------------------------------===//

#include "Kiln/Transforms/Passes.h"

#include "mlir/IR/Dominance.h"
#include "mlir/IR/PatternMatch.h"

namespace mlir::kiln {
#define GEN_PASS_DEF_KILNFUSE
#include "Kiln/Transforms/Passes.h.inc"
} // namespace mlir::kiln

using namespace mlir;
using namespace mlir::kiln;

namespace {

/// The linear layer whose only use is `add`, with the other operand as its
/// residual, if that operand is available where the layer is computed.
std::optional<std::pair<LinearOp, Value>>
residualCandidate(AddOp add, DominanceInfo &dominance) {
  for (auto [mine, other] : {std::pair(add.getLhs(), add.getRhs()),
                             std::pair(add.getRhs(), add.getLhs())}) {
    auto linear = mine.getDefiningOp<LinearOp>();
    if (!linear || linear.getResidual() || !mine.hasOneUse() ||
        linear.getType() != add.getType())
      continue;
    // The fused layer stays where the linear layer was (so independent
    // projections keep running back to back): the residual must exist there.
    if (dominance.properlyDominates(other, linear))
      return std::pair(linear, other);
  }
  return std::nullopt;
}

/// The rope that is the only use of `linear`'s result, if a projection can
/// rotate its output as it writes it: llama-style pairs over whole heads (a
/// neox rope pairs dims half a head apart, a partial one passes dims through).
RopeOp ropeEpilogueCandidate(LinearOp linear) {
  Value y = linear.getResult();
  if (linear.getResidual() || linear.getRope() || !y.hasOneUse())
    return {};
  auto rope = dyn_cast<RopeOp>(*y.getUsers().begin());
  // The epilogue rotates from one first position, not per-token ones.
  if (!rope || !rope.getPosition() || rope.getStyle() != RopeStyle::Llama ||
      rope.getRotaryDim() != rope.getHeadDim() ||
      rope.getType() != linear.getType())
    return {};
  return rope;
}

/// Whether `op` is a kernel that can quantize its result as it writes it:
/// a norm over whole rows or a binary elementwise op (an add without a
/// linear layer to fold into, a multiply, a gated activation).
bool canQuantizeOutput(Operation *op) {
  if (!isa<RMSNormOp, LayerNormOp, AddOp, MulOp, SwiGLUOp, GeGLUOp>(op))
    return false;
  auto type = dyn_cast<RankedTensorType>(op->getResult(0).getType());
  return type && type.getRank() == 2 && !type.isDynamicDim(1) &&
         type.getDimSize(1) % 32 == 0;
}

/// Quantized activations: the layers that take them (a width already in
/// the IR is kept), then the producers that quantize for them (after the
/// residual folds, which remove adds), if their readers agree on a width.
void selectQuantizedActivations(ModuleOp module, int64_t bits) {
  Builder b(module.getContext());
  module.walk([&](LinearOp linear) {
    if (!linear.getActivationBits() &&
        linear.getWeight().getType().takesQuantizedActivations())
      linear.setActivationBitsAttr(b.getI64IntegerAttr(bits));
  });
  module.walk([&](Operation *op) {
    if (!canQuantizeOutput(op))
      return;
    Value y = op->getResult(0);
    std::optional<uint64_t> width;
    bool agree = true;
    for (Operation *user : y.getUsers()) {
      auto linear = dyn_cast<LinearOp>(user);
      std::optional<uint64_t> mine =
          linear && linear.getInput() == y ? linear.getActivationBits()
                                           : std::nullopt;
      if (!mine)
        continue;
      agree &= !width || *width == *mine;
      width = mine;
    }
    if (width && agree)
      KilnDialect::QuantizeOutputAttrHelper(module.getContext())
          .setAttr(op, b.getI64IntegerAttr(*width));
  });
}

struct Fuse : mlir::kiln::impl::KilnFuseBase<Fuse> {
  using KilnFuseBase::KilnFuseBase;

  void runOnOperation() override {
    if (activationBits != 0 && (activationBits < 2 || activationBits > 8)) {
      getOperation().emitError("kiln-fuse: activation-bits must be 0 or in "
                               "[2, 8], got ")
          << activationBits;
      return signalPassFailure();
    }
    DominanceInfo dominance(getOperation());
    SmallVector<AddOp> adds;
    getOperation().walk([&](AddOp add) { adds.push_back(add); });
    IRRewriter rewriter(&getContext());
    for (AddOp add : adds) {
      auto candidate = residualCandidate(add, dominance);
      if (!candidate)
        continue;
      LinearOp linear = candidate->first;
      Value residual = candidate->second;
      rewriter.modifyOpInPlace(
          linear, [&] { linear.getResidualMutable().assign(residual); });
      rewriter.replaceOp(add, linear.getResult());
    }
    if (activationBits)
      selectQuantizedActivations(getOperation(), activationBits);
    if (!ropeEpilogue)
      return;
    SmallVector<LinearOp> linears;
    getOperation().walk([&](LinearOp linear) { linears.push_back(linear); });
    for (LinearOp linear : linears) {
      RopeOp rope = ropeEpilogueCandidate(linear);
      if (!rope)
        continue;
      // The position is an argument or computed before the projections.
      if (!dominance.properlyDominates(rope.getPosition(), linear))
        continue;
      rewriter.modifyOpInPlace(linear, [&] {
        linear.getRopePositionMutable().assign(rope.getPosition());
        linear.setRopeAttr(rope.getParameters());
      });
      rewriter.replaceOp(rope, linear.getResult());
    }
  }
};

} // namespace
