//===- Elementwise.cpp - elementwise ops and softmax ----------------------===//

#include "KernelBuilder.h"

using namespace mlir;
using namespace mlir::kiln;

//===----------------------------------------------------------------------===//
// elementwise ops and softmax
//===----------------------------------------------------------------------===//

static Value emitSilu(KB &kb, Value x) {
  // x * sigmoid(x) = x / (1 + exp(-x))
  Value one = kb.splat(kb.f(1.0f));
  Value e = kb.exp(arith::NegFOp::create(kb.b, x));
  return kb.div(x, kb.add(one, e));
}

static Value emitGelu(KB &kb, Value x, bool tanhForm) {
  Value half = kb.splat(kb.f(0.5f));
  Value one = kb.splat(kb.f(1.0f));
  if (tanhForm) {
    // 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
    Value x3 = kb.mul(kb.mul(x, x), x);
    Value inner = kb.mul(kb.splat(kb.f(0.7978845608f)),
                         kb.fma(kb.splat(kb.f(0.044715f)), x3, x));
    Value t = math::TanhOp::create(kb.b, inner);
    return kb.mul(kb.mul(half, x), kb.add(one, t));
  }
  Value e = math::ErfOp::create(kb.b, kb.mul(x, kb.splat(kb.f(0.70710678f))));
  return kb.mul(kb.mul(half, x), kb.add(one, e));
}

func::FuncOp KernelLibrary::elementwise(ElementwiseKind kind, int64_t dim,
                                        bool quantize) {
  bool binary = kind == ElementwiseKind::Add || kind == ElementwiseKind::Mul ||
                kind == ElementwiseKind::SwiGLU ||
                kind == ElementwiseKind::GeGLUTanh ||
                kind == ElementwiseKind::GeGLUErf;
  KernelSignature sig(module.getContext());
  sig.rows("a", dim);
  if (binary)
    sig.rows("b", dim);
  sig.rows("y", dim);
  if (quantize)
    sig.bytesAt("q");
  static const char *names[] = {"add",  "mul",       "swiglu",   "geglu_tanh",
                                "geglu_erf", "silu", "gelu_tanh", "gelu_erf",
                                "copy"};
  KernelBuilder kb(*this, sig,
                   "kiln_" + Twine(names[int(kind)]) + "_" + Twine(dim) +
                       (quantize ? "_q8" : ""));
  Value a = kb.arg("a"), bIn = kb.optionalArg("b"), y = kb.arg("y");
  Value q = kb.optionalArg("q"),
        qOffset = kb.optionalArg("qOffset");
  // Work is split over chunks of the flattened [tokens, dim] array so a
  // single token's wide activation still uses every thread: 16 values, or
  // one 32-value block when the result is quantized for a linear layer too.
  int64_t width = quantize ? 32 : kLanes;
  int64_t perRow = dim / width;
  Value total = kb.mul(kb.dim(a, 0), kb.idx(perRow));
  auto [c0, c1] = kb.share(total);
  auto emitLanes = [&](Value t, Value col) {
    Value x = kb.load(a, {t, col});
    Value r;
    switch (kind) {
    case ElementwiseKind::Add:
      r = kb.add(x, kb.load(bIn, {t, col}));
      break;
    case ElementwiseKind::Mul:
      r = kb.mul(x, kb.load(bIn, {t, col}));
      break;
    case ElementwiseKind::SwiGLU:
      r = kb.mul(emitSilu(kb, x), kb.load(bIn, {t, col}));
      break;
    case ElementwiseKind::GeGLUTanh:
    case ElementwiseKind::GeGLUErf:
      r = kb.mul(emitGelu(kb, x, kind == ElementwiseKind::GeGLUTanh),
                 kb.load(bIn, {t, col}));
      break;
    case ElementwiseKind::Silu:
      r = emitSilu(kb, x);
      break;
    case ElementwiseKind::GeluTanh:
    case ElementwiseKind::GeluErf:
      r = emitGelu(kb, x, kind == ElementwiseKind::GeluTanh);
      break;
    case ElementwiseKind::Copy:
      r = x;
      break;
    }
    kb.store(r, y, {t, col});
  };
  kb.forEach(c0, c1, [&](Value c) {
    Value t = kb.div(c, kb.idx(perRow));
    Value col = kb.mul(kb.rem(c, kb.idx(perRow)), kb.idx(width));
    for (int64_t at = 0; at < width; at += kLanes)
      emitLanes(t, kb.add(col, kb.idx(at)));
    if (quantize)
      emitQuantizeBlock(kb, y, t, col, q,
                        kb.add(qOffset, kb.mul(c, kb.idx(kQ8RecordBytes))));
  });
  return kb.finish();
}

func::FuncOp KernelLibrary::softmax(int64_t dim) {
  KernelSignature sig(module.getContext());
  sig.rows("x", dim).rows("y", dim);
  KernelBuilder kb(*this, sig, "kiln_softmax_" + Twine(dim));
  ImplicitLocOpBuilder &b = kb.b;
  Value x = kb.arg("x"), y = kb.arg("y");
  auto [t0, t1] = kb.share(kb.dim(x, 0));
  Value chunks = kb.idx(dim / kLanes);
  kb.forEach(t0, t1, [&](Value t) {
    auto col = [&](Value c) { return kb.mul(c, kb.idx(kLanes)); };
    auto mx = kb.loop(kb.idx(0), chunks, kb.idx(1), {kb.splat(kb.f(-3.0e38f))},
                      [&](Value c, ValueRange acc) {
                        return SmallVector<Value>{
                            kb.maxf(acc[0], kb.load(x, {t, col(c)}))};
                      });
    Value m = vector::ReductionOp::create(b, vector::CombiningKind::MAXIMUMF,
                                          mx.getResult(0));
    Value mV = kb.splat(m);
    auto s = kb.loop(kb.idx(0), chunks, kb.idx(1), {kb.zeros()},
                     [&](Value c, ValueRange acc) {
                       Value e = kb.exp(kb.sub(kb.load(x, {t, col(c)}), mV));
                       kb.store(e, y, {t, col(c)});
                       return SmallVector<Value>{kb.add(acc[0], e)};
                     });
    Value inv = kb.splat(kb.div(kb.f(1.0f), kb.sum(s.getResult(0))));
    kb.forEach(kb.idx(0), chunks, [&](Value c) {
      kb.store(kb.mul(kb.load(y, {t, col(c)}), inv), y, {t, col(c)});
    });
  });
  return kb.finish();
}
