//===- Embedding.cpp - kiln.embedding: dequantized table rows -------------===//
//
// One warp per token: each lane decodes whole 32-value chunks of the row.
//
//===----------------------------------------------------------------------===//

#include "GPUStepLowering.h"

#include "llvm/Support/FormatVariadic.h"

using namespace mlir;
using namespace mlir::kiln;

namespace {

int64_t embeddingKernel(GPUKernelLibrary &kernels,
                        const GPUWeightDecoder &decoder, int64_t vocab,
                        int64_t dim, float scale) {
  std::string name = llvm::formatv("kiln_embedding_{0}_{1}x{2}{3}",
                                   decoder.getName(), vocab, dim,
                                   scale == 1.0f ? "" : "_s" + floatKey(scale));
  return kernels.get(
      name,
      {{"table", KernelArgKind::Buffer},
       {"ids", KernelArgKind::Buffer},
       {"y", KernelArgKind::Buffer}},
      [&](GPUKernelBuilder &kb) {
        ImplicitLocOpBuilder &b = kb.b;
        Value t = kb.blockIdx(gpu::Dimension::x);
        Value ids = kb.view("ids", b.getI32Type());
        Value y = kb.view("y", b.getF32Type());
        // Out-of-range ids are clamped so a bad token never reads outside
        // the table; the runtime rejects them before they get here.
        Value id = arith::IndexCastUIOp::create(b, b.getIndexType(),
                                                kb.load(ids, t));
        id = kb.minu(id, kb.idx(vocab - 1));
        Value rowBase = kb.mul(id, kb.idx(decoder.getRowBytes()));
        kb.forEach(kb.lane(), kb.idx(dim / GPUWeightDecoder::kChunkValues),
                   kb.idx(kWarpSize), [&](Value chunk) {
                     SmallVector<Value> values =
                         decoder.decode(kb, kb.arg("table"), rowBase, chunk);
                     Value first = kb.add(
                         kb.mul(t, kb.idx(dim)),
                         kb.mul(chunk, kb.idx(GPUWeightDecoder::kChunkValues)));
                     for (auto [i, v] : llvm::enumerate(values)) {
                       if (scale != 1.0f)
                         v = kb.mul(v, kb.f(scale));
                       kb.store(v, y, kb.add(first, kb.idx(i)));
                     }
                   });
      });
}

struct EmbeddingLowering : GPUKernelPattern<EmbeddingOp> {
  LogicalResult lower(EmbeddingOp e, GPUStepLowering &step,
                      ImplicitLocOpBuilder &b) const override {
    Operation *op = e;
    if (failed(step.requireRowsF32(op, e.getResult().getType(), 32)))
      return failure();
    auto w = step.weightOf(e.getTable(), op);
    if (failed(w))
      return failure();
    auto decoder = step.decoderOf(op, *w);
    if (failed(decoder))
      return failure();
    int64_t vocab = w->type.getShape()[0], dim = w->type.getShape()[1];
    Value ids = step.mapped(e.getIds());
    Value y = step.resultBuffer(e.getResult(), ids, b);
    int64_t kernel = embeddingKernel(step.kernels, **decoder, vocab, dim,
                                     e.getScale().convertToFloat());
    Value one = arith::ConstantIndexOp::create(b, 1);
    step.launch(kernel, {memref::DimOp::create(b, ids, 0), one, one},
                {kWarpSize, 1, 1}, {step.weightBuffer(*w, b), ids, y}, b);
    step.bind(e.getResult(), y);
    return success();
  }
};

} // namespace

void mlir::kiln::populateGPUEmbeddingPatterns(GPUKernelPatterns &patterns) {
  patterns.add<EmbeddingLowering>();
}
