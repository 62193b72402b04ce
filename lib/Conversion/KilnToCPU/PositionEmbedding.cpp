//===- PositionEmbedding.cpp - kiln.position_embedding to a kernel call ---===//
//
// Learned position rows (and BERT's constant token-type row) added to the
// token embeddings: pattern and kernel of one family.
//
//===----------------------------------------------------------------------===//

#include "KernelBuilder.h"
#include "StepLowering.h"

using namespace mlir;
using namespace mlir::kiln;

//===----------------------------------------------------------------------===//
// y[t, :] = x[t, :] + dequant(table[min(position + step * t, rows - 1), :])
//===----------------------------------------------------------------------===//

/// (x, table: memref<?xi8>, tableOffset, position, y, tid, nth).
static func::FuncOp buildPositionEmbeddingKernel(KernelLibrary &library,

                                                 const WeightFormat &format,
                                                 int64_t rows, int64_t dim,
                                                 int64_t step) {
  KernelSignature sig(library.getContext());
  sig.rows("x", dim).bytesAt("table").index("position").rows("y", dim);
  KernelBuilder kb(library, sig,
                   "kiln_position_embedding_" + format.getName() + "_" +
                       Twine(rows) + "x" + Twine(dim) + "_step" + Twine(step));
  ImplicitLocOpBuilder &b = kb.b;
  Value x = kb.arg("x"), y = kb.arg("y"), table = kb.arg("table"),
        offset = kb.arg("tableOffset"), position = kb.arg("position");
  auto [t0, t1] = kb.share(kb.dim(x, 0));
  int64_t chunkValues = format.getChunkValues();
  kb.forEach(t0, t1, [&](Value t) {
    Value row = step ? kb.add(position, t) : position;
    // Clamped: a position past the table never reads outside it.
    row = arith::MinUIOp::create(b, row, kb.idx(rows - 1));
    Value rowBase = kb.add(offset, kb.mul(row, kb.idx(format.getRowBytes())));
    kb.forEach(kb.idx(0), kb.idx(dim / chunkValues), [&](Value c) {
      SmallVector<Value> values = format.emitChunk(b, table, rowBase, c);
      for (auto [p, v] : llvm::enumerate(values)) {
        Value col =
            kb.add(kb.mul(c, kb.idx(chunkValues)), kb.idx(int64_t(p) * kLanes));
        kb.store(kb.add(kb.load(x, {t, col}), v), y, {t, col});
      }
    });
  });
  return kb.finish();
}

//===----------------------------------------------------------------------===//
// Pattern
//===----------------------------------------------------------------------===//

namespace {

struct PositionEmbeddingLowering : KernelCallPattern<PositionEmbeddingOp> {
  LogicalResult lower(PositionEmbeddingOp e, StepLowering &step,
                      ImplicitLocOpBuilder &b) const override {
    Operation *op = e;
    if (failed(step.requireRowsF32(op, e.getInput())))
      return failure();
    auto w = step.weightOf(e.getTable(), op);
    if (failed(w))
      return failure();
    if (isRows16(w->type))
      return e.emitOpError("the CPU lowering reads position tables in their "
                           "file encoding, not repacked");
    auto f = step.formatOf(op, w->type);
    if (failed(f))
      return failure();
    int64_t rows = w->type.getShape()[0], dim = w->type.getShape()[1];
    if (dim % (*f)->getChunkValues() != 0)
      return e.emitOpError("position table width must be a multiple of ")
             << (*f)->getChunkValues();
    Value x = step.mapped(e.getInput());
    Value y = step.resultBuffer(e.getResult(), x, b);
    step.callKernel(
        buildPositionEmbeddingKernel(step.kernels, **f, rows, dim, e.getStep()),
        {x, step.weightsArg, idx(b, w->offset), step.mapped(e.getPosition()),
         y},
        b, {step.regionOf(e.getInput())}, {step.regionOf(e.getResult())});
    step.bind(e.getResult(), y);
    return success();
  }
};

} // namespace

void mlir::kiln::populatePositionEmbeddingPatterns(
    KernelCallPatterns &patterns) {
  patterns.add<PositionEmbeddingLowering>();
}
