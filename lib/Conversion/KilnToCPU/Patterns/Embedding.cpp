//===- Embedding.cpp - kiln.embedding to a kernel call --------------------===//
//
// Rows of a (possibly packed) table, dequantized and scaled.
//
//===----------------------------------------------------------------------===//

#include "../StepLowering.h"

using namespace mlir;
using namespace mlir::kiln;

namespace {

struct EmbeddingLowering : KernelCallPattern<EmbeddingOp> {
  LogicalResult lower(EmbeddingOp e, StepLowering &step,
                      ImplicitLocOpBuilder &b) const override {
    Operation *op = e;
    if (failed(step.requireRowsF32(op, e.getResult())))
      return failure();
    auto w = step.weightOf(e.getTable(), op);
    if (failed(w))
      return failure();
    int64_t vocab = w->type.getShape()[0], dim = w->type.getShape()[1];
    func::FuncOp kernel;
    if (isRows16(w->type)) {
      kernel = step.kernels.embeddingRows16(*w->type.getRows16Format(), vocab,
                                            dim, e.getScale().convertToFloat());
    } else {
      auto f = step.formatOf(op, w->type);
      if (failed(f))
        return failure();
      if (dim % (*f)->getChunkValues() != 0)
        return e.emitOpError("embedding width must be a multiple of ")
               << (*f)->getChunkValues();
      kernel = step.kernels.embedding(**f, vocab, dim,
                                      e.getScale().convertToFloat());
    }
    Value ids = step.mapped(e.getIds());
    Value y = step.resultBuffer(e.getResult(), ids, b);
    step.callKernel(kernel, {step.weightsArg, idx(b, w->offset), ids, y}, b,
                    {step.regionOf(e.getIds())},
                    {step.regionOf(e.getResult())});
    step.bind(e.getResult(), y);
    return success();
  }
};

} // namespace

void mlir::kiln::populateEmbeddingPatterns(KernelCallPatterns &patterns) {
  patterns.add<EmbeddingLowering>();
}
