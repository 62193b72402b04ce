//===- Embedding.cpp - embedding lookup -----------------------------------===//

#include "KernelBuilder.h"

using namespace mlir;
using namespace mlir::kiln;

//===----------------------------------------------------------------------===//
// embedding: y[t, :] = dequant(table[ids[t], :])
//===----------------------------------------------------------------------===//

func::FuncOp KernelLibrary::embedding(const WeightFormat &format,
                                      int64_t vocab, int64_t dim,
                                      float scale) {
  KernelSignature sig(module.getContext());
  sig.bytesAt("table").ids("ids").rows("y", dim);
  KernelBuilder kb(*this, sig,
                   "kiln_embedding_" + format.getName() + "_" + Twine(vocab) +
                       "x" + Twine(dim) +
                       (scale == 1.0f ? "" : "_s" + floatName(scale)));
  ImplicitLocOpBuilder &b = kb.b;
  Value table = kb.arg("table"), offset = kb.arg("tableOffset");
  Value idsBuf = kb.arg("ids"), y = kb.arg("y");
  auto [t0, t1] = kb.share(kb.dim(y, 0));
  int64_t chunkValues = format.getChunkValues();
  kb.forEach(t0, t1, [&](Value t) {
    Value id = memref::LoadOp::create(b, idsBuf, t);
    // Out-of-range ids are clamped so a bad token can never read outside the
    // table; the runtime rejects them before they get here.
    Value idIndex = arith::IndexCastUIOp::create(b, b.getIndexType(), id);
    idIndex = arith::MinUIOp::create(b, idIndex, kb.idx(vocab - 1));
    Value rowBase =
        kb.add(offset, kb.mul(idIndex, kb.idx(format.getRowBytes())));
    kb.forEach(kb.idx(0), kb.idx(dim / chunkValues), [&](Value c) {
      SmallVector<Value> values = format.emitChunk(b, table, rowBase, c);
      for (auto [p, v] : llvm::enumerate(values)) {
        if (scale != 1.0f)
          v = kb.mul(v, kb.splat(kb.f(scale)));
        kb.store(v, y,
                 {t, kb.add(kb.mul(c, kb.idx(chunkValues)),
                            kb.idx(int64_t(p) * kLanes))});
      }
    });
  });
  return kb.finish();
}
