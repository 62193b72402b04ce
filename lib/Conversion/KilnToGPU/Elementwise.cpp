//===- Elementwise.cpp - binary, gated and unary ops, and copies ----------===//
//
// One thread per value of [rows, width], 256 threads per block.
//
//===----------------------------------------------------------------------===//

#include "GPUStepLowering.h"

#include "mlir/Dialect/Math/IR/Math.h"

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
      Value v;
      if (kind == "add")
        v = kb.add(a, r);
      else if (kind == "mul")
        v = kb.mul(a, r);
      else if (kind == "swiglu")
        v = kb.mul(silu(kb, a), r);
      else if (kind == "geglu_tanh" || kind == "geglu_erf")
        v = kb.mul(gelu(kb, a, kind == "geglu_tanh"), r);
      else if (kind == "silu")
        v = silu(kb, a);
      else if (kind == "gelu_tanh" || kind == "gelu_erf")
        v = gelu(kb, a, kind == "gelu_tanh");
      else if (kind == "copy")
        v = a;
      else
        llvm_unreachable("unknown elementwise kernel kind");
      kb.store(v, kb.view("y", f32), i);
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
    launchElementwise(step, elementwiseKernel(step.kernels, kindOf(e)),
                      width, buffers, rows, b);
    step.bind(e->getResult(0), y);
    return success();
  }
};

} // namespace

void mlir::kiln::populateGPUElementwisePatterns(GPUKernelPatterns &patterns) {
  patterns.add<ElementwiseLowering<AddOp>, ElementwiseLowering<MulOp>,
               ElementwiseLowering<SwiGLUOp>, ElementwiseLowering<GeGLUOp>,
               ElementwiseLowering<SiluOp>, ElementwiseLowering<GeluOp>>();
}
