//===- Elementwise.cpp - binary, gated and unary ops, and copies ----------===//
//
// One thread per value of [rows, width], 256 threads per block. At one
// token, a binary op kiln-fuse marks `kiln.quantize_output` (the SwiGLU
// before a down projection) takes four values a thread and also writes its
// result quantized for the int8 decode GEMVs that read it
// (emitQuantizeQuad), in place of a quantization kernel of their own.
//
//===----------------------------------------------------------------------===//

#include "GPUStepLowering.h"

#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

#include <cmath>

using namespace mlir;
using namespace mlir::kiln;

namespace {

constexpr int64_t kThreads = 256;

int64_t arityOf(StringRef kind) {
  return llvm::StringSwitch<int64_t>(kind)
      .Cases("add", "mul", "swiglu", "geglu_tanh", "geglu_erf", 2)
      .Default(1);
}

Value gelu(GPUKernelBuilder &kb, Value x, bool tanhForm) {
  ImplicitLocOpBuilder &b = kb.b;
  Value inner;
  if (tanhForm) {
    // 0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3)))
    Value cube = kb.mul(kb.mul(x, x), x);
    inner = math::TanhOp::create(
        b, kb.mul(kb.f(float(std::sqrt(2.0 / M_PI))),
                  kb.fma(cube, kb.f(0.044715f), x)));
  } else {
    // 0.5 x (1 + erf(x / sqrt(2)))
    inner = math::ErfOp::create(b, kb.mul(x, kb.f(float(M_SQRT1_2))));
  }
  return kb.mul(kb.mul(kb.f(0.5f), x), kb.add(kb.f(1.0f), inner));
}

Value silu(GPUKernelBuilder &kb, Value x) {
  return kb.div(x, kb.add(kb.f(1.0f), kb.exp(kb.sub(kb.f(0.0f), x))));
}

/// `kind` of a (and r, for binary kinds).
Value apply(GPUKernelBuilder &kb, StringRef kind, Value a, Value r) {
  if (kind == "add")
    return kb.add(a, r);
  if (kind == "mul")
    return kb.mul(a, r);
  if (kind == "swiglu")
    return kb.mul(silu(kb, a), r);
  if (kind == "geglu_tanh" || kind == "geglu_erf")
    return kb.mul(gelu(kb, a, kind == "geglu_tanh"), r);
  if (kind == "silu")
    return silu(kb, a);
  if (kind == "gelu_tanh" || kind == "gelu_erf")
    return gelu(kb, a, kind == "gelu_tanh");
  if (kind == "copy")
    return a;
  llvm_unreachable("unknown elementwise kernel kind");
}

/// Binary `kind` over one token's `width` values, written to y and, as
/// emitQuantizeQuad does, to q: a thread per four values.
int64_t quantizingKernel(GPUKernelLibrary &kernels, StringRef kind,
                         int64_t width, int64_t bits) {
  SmallVector<KernelArg> args = {{"a", KernelArgKind::Buffer},
                                 {"b", KernelArgKind::Buffer},
                                 {"y", KernelArgKind::Buffer},
                                 {"q", KernelArgKind::Buffer}};
  std::string name =
      ("kiln_" + kind + "_" + std::to_string(width) + "_q" +
       std::to_string(bits))
          .str();
  return kernels.get(name, args, [&](GPUKernelBuilder &kb) {
    ImplicitLocOpBuilder &b = kb.b;
    Type f32x4 = VectorType::get({4}, b.getF32Type());
    int64_t quads = width / 4;
    Value quad = kb.add(
        kb.mul(kb.blockIdx(gpu::Dimension::x), kb.idx(kThreads)),
        kb.threadIdx());
    // Threads past the end repeat the last quad (every lane shuffles); they
    // store nothing.
    Value at = kb.minu(quad, kb.idx(quads - 1));
    Value a = kb.load(kb.view("a", f32x4), at);
    Value r = kb.load(kb.view("b", f32x4), at);
    SmallVector<Value> v;
    for (int64_t i = 0; i < 4; ++i)
      v.push_back(apply(kb, kind, vector::ExtractOp::create(b, a, i),
                        vector::ExtractOp::create(b, r, i)));
    Value valid = kb.ult(quad, kb.idx(quads));
    kb.ifThen(valid, [&] {
      kb.store(vector::FromElementsOp::create(b, cast<VectorType>(f32x4), v),
               kb.view("y", f32x4), quad);
    });
    emitQuantizeQuad(kb, v, quad, valid, width, bits);
  });
}

} // namespace

int64_t mlir::kiln::elementwiseKernel(GPUKernelLibrary &kernels,
                                      StringRef kind) {
  int64_t arity = arityOf(kind);
  SmallVector<KernelArg> args = {{"a", KernelArgKind::Buffer}};
  if (arity == 2)
    args.push_back({"b", KernelArgKind::Buffer});
  args.append({{"y", KernelArgKind::Buffer}, {"count", KernelArgKind::Index}});
  return kernels.get(("kiln_" + kind).str(), args, [&](GPUKernelBuilder &kb) {
    Type f32 = kb.b.getF32Type();
    Value i = kb.add(kb.mul(kb.blockIdx(gpu::Dimension::x), kb.idx(kThreads)),
                     kb.threadIdx());
    kb.ifThen(kb.ult(i, kb.arg("count")), [&] {
      Value a = kb.load(kb.view("a", f32), i);
      Value r = arity == 2 ? kb.load(kb.view("b", f32), i) : Value();
      kb.store(apply(kb, kind, a, r), kb.view("y", f32), i);
    });
  });
}

void mlir::kiln::launchElementwise(GPUStepLowering &step, int64_t kernel,
                                   int64_t width, ArrayRef<Value> buffers,
                                   Value rows, ImplicitLocOpBuilder &b) {
  Value count =
      arith::MulIOp::create(b, rows, arith::ConstantIndexOp::create(b, width));
  SmallVector<Value> args(buffers.begin(), buffers.end());
  args.push_back(count);
  Value one = arith::ConstantIndexOp::create(b, 1);
  step.launch(kernel, {GPUStepLowering::ceilDiv(count, kThreads, b), one, one},
              {kThreads, 1, 1}, args, b);
}

namespace {

template <typename OpTy> StringRef kindOf(OpTy op) {
  if constexpr (std::is_same_v<OpTy, AddOp>)
    return "add";
  else if constexpr (std::is_same_v<OpTy, MulOp>)
    return "mul";
  else if constexpr (std::is_same_v<OpTy, SwiGLUOp>)
    return "swiglu";
  else if constexpr (std::is_same_v<OpTy, GeGLUOp>)
    return op.getApproximate() == GeluApprox::Tanh ? "geglu_tanh" : "geglu_erf";
  else if constexpr (std::is_same_v<OpTy, SiluOp>)
    return "silu";
  else
    return op.getApproximate() == GeluApprox::Tanh ? "gelu_tanh" : "gelu_erf";
}

template <typename OpTy> struct ElementwiseLowering : GPUKernelPattern<OpTy> {
  LogicalResult lower(OpTy e, GPUStepLowering &step,
                      ImplicitLocOpBuilder &b) const override {
    Operation *op = e;
    if (failed(step.requireRowsF32(op, e->getOperand(0).getType(), 1)))
      return failure();
    int64_t width =
        cast<RankedTensorType>(e->getOperand(0).getType()).getDimSize(1);
    SmallVector<Value> buffers;
    for (Value v : e->getOperands())
      buffers.push_back(step.mapped(v));
    Value y = step.resultBuffer(e->getResult(0), buffers.front(), b);
    Value rows = step.rowsOf(buffers.front(), b);
    buffers.push_back(y);
    int64_t bits = quantizeBits(e);
    step.launchQuantizingOutput(
        e->getResult(0), y, rows, bits,
        [&](Value q) {
          if (!q) {
            launchElementwise(step, elementwiseKernel(step.kernels, kindOf(e)),
                              width, buffers, rows, b);
            return;
          }
          SmallVector<Value> args(buffers);
          args.push_back(q);
          Value one = arith::ConstantIndexOp::create(b, 1);
          step.launch(quantizingKernel(step.kernels, kindOf(e), width, bits),
                      {arith::ConstantIndexOp::create(
                           b, llvm::divideCeil(width / 4, kThreads)),
                       one, one},
                      {kThreads, 1, 1}, args, b);
        },
        b);
    return success();
  }
  /// The quantized copy of a decode step's result.
  int64_t workspaceBytes(OpTy e) const override {
    int64_t bits = quantizeBits(e);
    return bits ? quantizedActivationBytes(
                      cast<RankedTensorType>(e->getResult(0).getType())
                          .getDimSize(1))
                : 0;
  }
  /// kiln.quantize_output's width for binary kinds, else 0.
  static int64_t quantizeBits(OpTy e) {
    return arityOf(kindOf(e)) == 2 ? quantizedOutputBits(e) : 0;
  }
};

} // namespace

void mlir::kiln::populateGPUElementwisePatterns(GPUKernelPatterns &patterns) {
  patterns.add<ElementwiseLowering<AddOp>, ElementwiseLowering<MulOp>,
               ElementwiseLowering<SwiGLUOp>, ElementwiseLowering<GeGLUOp>,
               ElementwiseLowering<SiluOp>, ElementwiseLowering<GeluOp>>();
}
