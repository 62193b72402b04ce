//===- Collectives.cpp - communication between GPU ranks to runtime calls -===//
//
// kiln.all_reduce, kiln.send and kiln.recv become one call of
// KilnRtContext::communicate (kiln/runtime/HostABI.h) with the DEVICE
// addresses of their buffers: the runtime enqueues the exchange (NCCL) on
// its stream, after the kernels launched before it and before those
// launched after, so the host step stays a list of stream-ordered calls and
// needs no barrier. Called once per step (tid 0), like rt->launch.
//
//===----------------------------------------------------------------------===//

#include "GPUStepLowering.h"

#include "kiln/runtime/HostABI.h"

#include "mlir/Dialect/LLVMIR/LLVMDialect.h"

using namespace mlir;
using namespace mlir::kiln;

namespace {

/// rt->communicate(rt, kind, peer, in, out, rows * width, 0): `input` and
/// `output` are memrefs or null.
void callCommunicate(GPUStepLowering &step, KilnCommOp kind, int64_t peer,
                     Value input, Value output, int64_t width,
                     ImplicitLocOpBuilder &b) {
  MLIRContext *ctx = b.getContext();
  auto ptr = LLVM::LLVMPointerType::get(ctx);
  auto i32 = b.getI32Type(), i64 = b.getI64Type();
  auto addressOf = [&](Value memref) -> Value {
    if (!memref)
      return LLVM::ZeroOp::create(b, ptr);
    return LLVM::IntToPtrOp::create(b, ptr, step.deviceAddress(memref, b));
  };
  Value in = addressOf(input), out = addressOf(output);
  Value rows = step.rowsOf(input ? input : output, b);
  Value count = arith::IndexCastOp::create(
      b, i64,
      arith::MulIOp::create(b, rows, arith::ConstantIndexOp::create(b, width)));
  // KilnRtContext's fourth pointer-sized field is `communicate`.
  Value slot = LLVM::GEPOp::create(b, ptr, ptr, step.rtArg,
                                   ArrayRef<LLVM::GEPArg>{3});
  Value callee = LLVM::LoadOp::create(b, ptr, slot);
  auto fnType = LLVM::LLVMFunctionType::get(LLVM::LLVMVoidType::get(ctx),
                                            {ptr, i32, i32, ptr, ptr, i64, i32});
  LLVM::CallOp::create(
      b, fnType,
      ValueRange{callee, step.rtArg,
                 arith::ConstantIntOp::create(b, kind, 32),
                 arith::ConstantIntOp::create(b, peer, 32), in, out, count,
                 arith::ConstantIntOp::create(b, 0, 32)});
}

struct AllReduceLowering : GPUKernelPattern<AllReduceOp> {
  LogicalResult lower(AllReduceOp op, GPUStepLowering &step,
                      ImplicitLocOpBuilder &b) const override {
    if (failed(step.requireRowsF32(op, op.getType(), 1)))
      return failure();
    Value x = step.mapped(op.getInput());
    Value y = step.resultBuffer(op.getResult(), x, b);
    callCommunicate(step, KILN_COMM_ALL_REDUCE_SUM, 0, x, y,
                    cast<RankedTensorType>(op.getType()).getDimSize(1), b);
    step.bind(op.getResult(), y);
    return success();
  }
};

struct SendLowering : GPUKernelPattern<SendOp> {
  LogicalResult lower(SendOp op, GPUStepLowering &step,
                      ImplicitLocOpBuilder &b) const override {
    auto type = op.getInput().getType();
    if (failed(step.requireRowsF32(op, type, 1)))
      return failure();
    callCommunicate(step, KILN_COMM_SEND, op.getPeer(),
                    step.mapped(op.getInput()), Value(),
                    cast<RankedTensorType>(type).getDimSize(1), b);
    return success();
  }
};

struct RecvLowering : GPUKernelPattern<RecvOp> {
  LogicalResult lower(RecvOp op, GPUStepLowering &step,
                      ImplicitLocOpBuilder &b) const override {
    if (failed(step.requireRowsF32(op, op.getType(), 1)))
      return failure();
    Value y = step.resultBuffer(op.getResult(), step.mapped(op.getRows()), b);
    callCommunicate(step, KILN_COMM_RECV, op.getPeer(), Value(), y,
                    cast<RankedTensorType>(op.getType()).getDimSize(1), b);
    step.bind(op.getResult(), y);
    return success();
  }
};

} // namespace

void mlir::kiln::populateGPUCollectivePatterns(GPUKernelPatterns &patterns) {
  patterns.add<AllReduceLowering, SendLowering, RecvLowering>();
}
