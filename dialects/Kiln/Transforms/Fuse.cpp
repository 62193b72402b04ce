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
  if (!rope || rope.getStyle() != RopeStyle::Llama ||
      rope.getRotaryDim() != rope.getHeadDim() ||
      rope.getType() != linear.getType())
    return {};
  return rope;
}

struct Fuse : mlir::kiln::impl::KilnFuseBase<Fuse> {
  using KilnFuseBase::KilnFuseBase;

  void runOnOperation() override {
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
