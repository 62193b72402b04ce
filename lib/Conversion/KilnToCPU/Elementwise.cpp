//===- Elementwise.cpp - elementwise ops and softmax to kernel calls ------===//
//
// Binary and gated ops (which quantize their output for int8 linear
// layers), activations and softmax.
//
//===----------------------------------------------------------------------===//

#include "KernelBuilder.h"
#include "StepLowering.h"

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

func::FuncOp mlir::kiln::buildElementwiseKernel(KernelLibrary &library,
                                                ElementwiseKind kind,
                                                int64_t dim,
                                                int64_t quantizeBits) {
  bool quantize = quantizeBits != 0;
  bool binary = kind == ElementwiseKind::Add || kind == ElementwiseKind::Mul ||
                kind == ElementwiseKind::SwiGLU ||
                kind == ElementwiseKind::GeGLUTanh ||
                kind == ElementwiseKind::GeGLUErf;
  KernelSignature sig(library.getContext());
  sig.rows("a", dim);
  if (binary)
    sig.rows("b", dim);
  sig.rows("y", dim);
  if (quantize)
    sig.bytesAt("q");
  static const char *names[] = {"add",  "mul",       "swiglu",   "geglu_tanh",
                                "geglu_erf", "silu", "gelu_tanh", "gelu_erf",
                                "copy", "relu"};
  KernelBuilder kb(library, sig,
                   "kiln_" + Twine(names[int(kind)]) + "_" + Twine(dim) +
                       (quantize ? "_q" + Twine(quantizeBits) : ""));
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
    case ElementwiseKind::Relu:
      r = kb.maxf(x, kb.zeros());
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
                        kb.add(qOffset, kb.mul(c, kb.idx(kQ8RecordBytes))),
                        quantizeBits);
  });
  return kb.finish();
}

/// (x, y: memref<?xDxf32>, tid, nth): softmax of each row.
static func::FuncOp buildSoftmaxKernel(KernelLibrary &library,
                                       int64_t dim) {
  KernelSignature sig(library.getContext());
  sig.rows("x", dim).rows("y", dim);
  KernelBuilder kb(library, sig, "kiln_softmax_" + Twine(dim));
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

//===----------------------------------------------------------------------===//
// Patterns
//===----------------------------------------------------------------------===//

namespace {

template <typename BinaryOp>
struct BinaryLowering : KernelCallPattern<BinaryOp> {
  LogicalResult lower(BinaryOp e, StepLowering &step,
                      ImplicitLocOpBuilder &b) const override {
    Operation *op = e;
    if (failed(step.requireRowsF32(op, e.getLhs())))
      return failure();
    ElementwiseKind kind;
    if constexpr (std::is_same_v<decltype(e), AddOp>)
      kind = ElementwiseKind::Add;
    else if constexpr (std::is_same_v<decltype(e), MulOp>)
      kind = ElementwiseKind::Mul;
    else if constexpr (std::is_same_v<decltype(e), SwiGLUOp>)
      kind = ElementwiseKind::SwiGLU;
    else
      kind = e.getApproximate() == GeluApprox::Tanh ? ElementwiseKind::GeGLUTanh
                                                    : ElementwiseKind::GeGLUErf;
    Value lhs = step.mapped(e.getLhs());
    Value y = step.resultBuffer(e.getResult(), lhs, b);
    int64_t dim = e.getLhs().getType().getDimSize(1);
    int64_t quantizeBits = step.quantizedOutputBits(op);
    bool quantize = quantizeBits != 0;
    SmallVector<Value> args = {lhs, step.mapped(e.getRhs()), y};
    SmallVector<StepLowering::Region> writes = {step.regionOf(e.getResult())};
    if (quantize) {
      args.append({step.scratchArg, idx(b, step.q8Offset)});
      writes.push_back(step.scratchRegion(step.q8Offset, step.q8Bytes));
    }
    step.callKernel(
        buildElementwiseKernel(step.kernels, kind, dim, quantizeBits), args, b,
        {step.regionOf(e.getLhs()), step.regionOf(e.getRhs())}, writes);
    step.bind(e.getResult(), y);
    if (quantize) {
      step.lastQuantized = y;
      step.lastQuantizedBits = quantizeBits;
    }
    return success();
  }
};

template <typename UnaryOp> struct UnaryLowering : KernelCallPattern<UnaryOp> {
  LogicalResult lower(UnaryOp e, StepLowering &step,
                      ImplicitLocOpBuilder &b) const override {
    Operation *op = e;
    if (failed(step.requireRowsF32(op, e.getInput())))
      return failure();
    ElementwiseKind kind = ElementwiseKind::Silu;
    if constexpr (std::is_same_v<decltype(e), ReluOp>)
      kind = ElementwiseKind::Relu;
    if constexpr (std::is_same_v<decltype(e), GeluOp>)
      kind = e.getApproximate() == GeluApprox::Tanh ? ElementwiseKind::GeluTanh
                                                    : ElementwiseKind::GeluErf;
    Value x = step.mapped(e.getInput());
    Value y = step.resultBuffer(e.getResult(), x, b);
    int64_t dim = e.getInput().getType().getDimSize(1);
    step.callKernel(
        buildElementwiseKernel(step.kernels, kind, dim, /*quantizeBits=*/0),
        {x, y}, b, {step.regionOf(e.getInput())},
        {step.regionOf(e.getResult())});
    step.bind(e.getResult(), y);
    return success();
  }
};

struct SoftmaxLowering : KernelCallPattern<SoftmaxOp> {
  LogicalResult lower(SoftmaxOp s, StepLowering &step,
                      ImplicitLocOpBuilder &b) const override {
    Operation *op = s;
    if (failed(step.requireRowsF32(op, s.getInput())))
      return failure();
    Value x = step.mapped(s.getInput());
    Value y = step.resultBuffer(s.getResult(), x, b);
    step.callKernel(
        buildSoftmaxKernel(step.kernels, s.getInput().getType().getDimSize(1)),
        {x, y}, b, {step.regionOf(s.getInput())},
        {step.regionOf(s.getResult())});
    step.bind(s.getResult(), y);
    return success();
  }
};

} // namespace

void mlir::kiln::populateElementwisePatterns(KernelCallPatterns &patterns) {
  patterns.add<BinaryLowering<AddOp>, BinaryLowering<MulOp>,
               BinaryLowering<SwiGLUOp>, BinaryLowering<GeGLUOp>,
               UnaryLowering<SiluOp>, UnaryLowering<ReluOp>,
               UnaryLowering<GeluOp>, SoftmaxLowering>();
}
