//===- Norm.cpp - rms_norm and layer_norm ---------------------------------===//

#include "KernelBuilder.h"

using namespace mlir;
using namespace mlir::kiln;

//===----------------------------------------------------------------------===//
// rms_norm / layer_norm over rows
//===----------------------------------------------------------------------===//

func::FuncOp KernelLibrary::norm(const WeightFormat &weight, int64_t dim,
                                 float epsilon, bool layerNorm, bool hasBias,
                                 bool quantize) {
  KernelSignature sig(module.getContext());
  sig.rows("x", dim).bytesAt("w");
  if (hasBias)
    sig.bytesAt("bias");
  sig.rows("y", dim);
  if (quantize)
    sig.bytesAt("q");
  KernelBuilder kb(*this, sig,
                   (layerNorm ? "kiln_layer_norm_" : "kiln_rms_norm_") +
                       weight.getName() + "_" + Twine(dim) + "_eps" +
                       floatName(epsilon) + (hasBias ? "_bias" : "") +
                       (quantize ? "_q8" : ""));
  ImplicitLocOpBuilder &b = kb.b;
  Value x = kb.arg("x"), y = kb.arg("y");
  Value w = kb.arg("w"), wOffset = kb.arg("wOffset");
  Value bBuf = kb.optionalArg("bias"),
        bOffset = kb.optionalArg("biasOffset");
  Value q = kb.optionalArg("q"),
        qOffset = kb.optionalArg("qOffset");
  auto [t0, t1] = kb.share(kb.dim(x, 0));
  Value chunks = kb.idx(dim / kLanes);
  kb.forEach(t0, t1, [&](Value t) {
    auto col = [&](Value c) { return kb.mul(c, kb.idx(kLanes)); };
    Value mean = kb.f(0.0f);
    if (layerNorm) {
      auto s = kb.loop(kb.idx(0), chunks, kb.idx(1), {kb.zeros()},
                       [&](Value c, ValueRange acc) {
                         return SmallVector<Value>{
                             kb.add(acc[0], kb.load(x, {t, col(c)}))};
                       });
      mean = kb.div(kb.sum(s.getResult(0)), kb.f(float(dim)));
    }
    Value meanV = kb.splat(mean);
    auto sq = kb.loop(kb.idx(0), chunks, kb.idx(1), {kb.zeros()},
                      [&](Value c, ValueRange acc) {
                        Value v = kb.sub(kb.load(x, {t, col(c)}), meanV);
                        return SmallVector<Value>{kb.fma(v, v, acc[0])};
                      });
    Value var = kb.div(kb.sum(sq.getResult(0)), kb.f(float(dim)));
    Value scale = kb.div(kb.f(1.0f),
                         math::SqrtOp::create(b, kb.add(var, kb.f(epsilon))));
    Value scaleV = kb.splat(scale);
    kb.forEach(kb.idx(0), chunks, [&](Value c) {
      Value v = kb.mul(kb.sub(kb.load(x, {t, col(c)}), meanV), scaleV);
      v = kb.mul(v, weight.emitChunk(b, w, wOffset, c)[0]);
      if (hasBias)
        v = kb.add(v, weight.emitChunk(b, bBuf, bOffset, c)[0]);
      kb.store(v, y, {t, col(c)});
    });
    // The row is in L1: quantize it for the linear layers that read it.
    if (quantize)
      kb.forEach(kb.idx(0), kb.idx(dim / 32), [&](Value blk) {
        Value rec = kb.mul(kb.add(kb.mul(t, kb.idx(dim / 32)), blk),
                           kb.idx(kQ8RecordBytes));
        emitQuantizeBlock(kb, y, t, kb.mul(blk, kb.idx(32)), q,
                          kb.add(qOffset, rec));
      });
  });
  return kb.finish();
}
