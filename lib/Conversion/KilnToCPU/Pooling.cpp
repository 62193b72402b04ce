//===- Pooling.cpp - kiln.mean_pool to a kernel call ----------------------===//
//
// An encoder's sentence embedding: the mean of its output rows, optionally
// L2-normalized. Pattern and kernel of one family.
//
//===----------------------------------------------------------------------===//

#include "KernelBuilder.h"
#include "StepLowering.h"

#include "mlir/Dialect/Math/IR/Math.h"

using namespace mlir;
using namespace mlir::kiln;

//===----------------------------------------------------------------------===//
// y[0, :] = mean_t x[t, :]  (/ max(||.||, 1e-12) with normalize)
//===----------------------------------------------------------------------===//

/// (x, y, tid, nth). One row of output is a few hundred values: thread 0
/// computes it whole (the norm needs all of it), the others return.
static func::FuncOp buildMeanPoolKernel(KernelLibrary &library, int64_t dim,
                                        bool normalize) {
  KernelSignature sig(library.getContext());
  sig.rows("x", dim).rows("y", dim);
  KernelBuilder kb(library, sig,
                   "kiln_mean_pool_" + Twine(dim) +
                       (normalize ? "_normalize" : ""));
  ImplicitLocOpBuilder &b = kb.b;
  Value x = kb.arg("x"), y = kb.arg("y");
  auto [i0, i1] = kb.share(kb.idx(1));
  Value chunks = kb.idx(dim / kLanes);
  auto col = [&](Value c) { return kb.mul(c, kb.idx(kLanes)); };
  Value row0 = kb.idx(0);
  kb.forEach(i0, i1, [&](Value) {
    Value tokens = kb.dim(x, 0);
    Value count = arith::SIToFPOp::create(
        b, b.getF32Type(),
        arith::IndexCastOp::create(b, b.getI64Type(), tokens));
    Value inverse = kb.splat(kb.div(kb.f(1.0f), count));
    kb.forEach(kb.idx(0), chunks, [&](Value c) {
      auto sum = kb.loop(
          kb.idx(0), tokens, kb.idx(1), {kb.zeros()},
          [&](Value t, ValueRange acc) -> SmallVector<Value> {
            return SmallVector<Value>{kb.add(acc[0], kb.load(x, {t, col(c)}))};
          });
      kb.store(kb.mul(sum.getResult(0), inverse), y, {row0, col(c)});
    });
    if (!normalize)
      return;
    auto squares = kb.loop(kb.idx(0), chunks, kb.idx(1), {kb.zeros()},
                           [&](Value c, ValueRange acc) -> SmallVector<Value> {
                             Value v = kb.load(y, {row0, col(c)});
                             return SmallVector<Value>{kb.fma(v, v, acc[0])};
                           });
    // torch.nn.functional.normalize's eps: a zero vector stays zero.
    Value norm = kb.maxf(math::SqrtOp::create(b, kb.sum(squares.getResult(0))),
                         kb.f(1e-12f));
    Value scale = kb.splat(kb.div(kb.f(1.0f), norm));
    kb.forEach(kb.idx(0), chunks, [&](Value c) {
      kb.store(kb.mul(kb.load(y, {row0, col(c)}), scale), y, {row0, col(c)});
    });
  });
  return kb.finish();
}

//===----------------------------------------------------------------------===//
// Pattern
//===----------------------------------------------------------------------===//

namespace {

struct MeanPoolLowering : KernelCallPattern<MeanPoolOp> {
  LogicalResult lower(MeanPoolOp p, StepLowering &step,
                      ImplicitLocOpBuilder &b) const override {
    Operation *op = p;
    if (failed(step.requireRowsF32(op, p.getInput())) ||
        failed(step.requireRowsF32(op, p.getResult())))
      return failure();
    int64_t dim = p.getInput().getType().getDimSize(1);
    Value x = step.mapped(p.getInput());
    Value y = step.resultBuffer(p.getResult(), x, b);
    step.callKernel(buildMeanPoolKernel(step.kernels, dim, p.getNormalize()),
                    {x, y}, b, {step.regionOf(p.getInput())},
                    {step.regionOf(p.getResult())});
    step.bind(p.getResult(), y);
    return success();
  }
};

} // namespace

void mlir::kiln::populatePoolingPatterns(KernelCallPatterns &patterns) {
  patterns.add<MeanPoolLowering>();
}
