//===- Elementwise.cpp - elementwise ops and softmax to kernel calls ------===//
//
// Binary and gated ops (which quantize their output for int8 linear
// layers), activations and softmax.
//
//===----------------------------------------------------------------------===//

#include "../StepLowering.h"

using namespace mlir;
using namespace mlir::kiln;

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
    bool quantize = step.feedsInt8Linear(e.getResult(), dim);
    SmallVector<Value> args = {lhs, step.mapped(e.getRhs()), y};
    SmallVector<StepLowering::Region> writes = {step.regionOf(e.getResult())};
    if (quantize) {
      args.append({step.scratchArg, idx(b, step.q8Offset)});
      writes.push_back(step.scratchRegion(step.q8Offset, step.q8Bytes));
    }
    step.callKernel(step.kernels.elementwise(kind, dim, quantize), args, b,
                    {step.regionOf(e.getLhs()), step.regionOf(e.getRhs())},
                    writes);
    step.bind(e.getResult(), y);
    if (quantize)
      step.lastQuantized = y;
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
    if constexpr (std::is_same_v<decltype(e), GeluOp>)
      kind = e.getApproximate() == GeluApprox::Tanh ? ElementwiseKind::GeluTanh
                                                    : ElementwiseKind::GeluErf;
    Value x = step.mapped(e.getInput());
    Value y = step.resultBuffer(e.getResult(), x, b);
    int64_t dim = e.getInput().getType().getDimSize(1);
    step.callKernel(step.kernels.elementwise(kind, dim, /*quantize=*/false),
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
    step.callKernel(step.kernels.softmax(s.getInput().getType().getDimSize(1)),
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
               UnaryLowering<SiluOp>, UnaryLowering<GeluOp>, SoftmaxLowering>();
}
