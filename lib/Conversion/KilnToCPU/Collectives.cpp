//===- Collectives.cpp - communication between ranks to runtime calls -----===//
//
// kiln.all_reduce, kiln.send and kiln.recv become calls of the runtime's
// communicator through KilnRtContext::communicate (kiln/runtime/HostABI.h):
// every thread calls it, thread 0 exchanges the data with the other rank(s)
// and all return once it is in place. The barrier before the call (when the
// data was just written) comes from StepLowering::callKernel.
//
//===----------------------------------------------------------------------===//

#include "KernelBuilder.h"
#include "StepLowering.h"

#include "kiln/runtime/HostABI.h"

#include "mlir/Dialect/LLVMIR/LLVMDialect.h"

using namespace mlir;
using namespace mlir::kiln;

namespace {

/// The address of element [0, 0] of a rows memref, as an !llvm.ptr.
Value firstElementAddress(KB &kb, Value rows) {
  ImplicitLocOpBuilder &b = kb.b;
  auto meta = memref::ExtractStridedMetadataOp::create(b, rows);
  Value base = memref::ExtractAlignedPointerAsIndexOp::create(b, b.getIndexType(), rows);
  Value bytes = kb.add(base, kb.mul(meta.getOffset(), kb.idx(sizeof(float))));
  Value asInt = arith::IndexCastOp::create(b, b.getI64Type(), bytes);
  return LLVM::IntToPtrOp::create(b, LLVM::LLVMPointerType::get(b.getContext()),
                                  asInt);
}

/// `kiln_<op>_<dim>(rt, [x,] [y,] peer, tid, nth)`: calls
/// rt->communicate(rt, op, peer, x, y, rows * dim, tid).
func::FuncOp buildCommunicateKernel(KernelLibrary &library, KilnCommOp op,
                                    int64_t dim) {
  MLIRContext *ctx = library.getContext();
  bool hasInput = op != KILN_COMM_RECV, hasOutput = op != KILN_COMM_SEND;
  KernelSignature sig(ctx);
  sig.pointer("rt");
  if (hasInput)
    sig.rows("x", dim);
  if (hasOutput)
    sig.rows("y", dim);
  sig.index("peer");
  static const char *names[] = {"all_reduce", "send", "recv"};
  KernelBuilder kb(library, sig,
                   "kiln_" + Twine(names[op]) + "_" + Twine(dim));
  ImplicitLocOpBuilder &b = kb.b;
  auto ptr = LLVM::LLVMPointerType::get(ctx);
  Value x = kb.optionalArg("x"), y = kb.optionalArg("y"), rt = kb.arg("rt");
  Value null = LLVM::ZeroOp::create(b, ptr);
  Value in = x ? firstElementAddress(kb, x) : null;
  Value out = y ? firstElementAddress(kb, y) : null;
  Value count = kb.mul(kb.dim(x ? x : y, 0), kb.idx(dim));
  auto i32 = b.getI32Type();
  Value opCode = arith::ConstantOp::create(b, b.getI32IntegerAttr(op));
  Value peer = arith::IndexCastOp::create(b, i32, kb.arg("peer"));
  Value tid = arith::IndexCastOp::create(b, i32, kb.arg("tid"));
  Value count64 = arith::IndexCastOp::create(b, b.getI64Type(), count);
  // KilnRtContext's fourth pointer-sized field is `communicate`.
  Value field = LLVM::GEPOp::create(b, ptr, ptr, rt,
                                    ArrayRef<LLVM::GEPArg>{3});
  Value callee = LLVM::LoadOp::create(b, ptr, field);
  auto fnType = LLVM::LLVMFunctionType::get(
      LLVM::LLVMVoidType::get(ctx),
      {ptr, i32, i32, ptr, ptr, b.getI64Type(), i32});
  LLVM::CallOp::create(b, fnType,
                       ValueRange{callee, rt, opCode, peer, in, out, count64,
                                  tid});
  return kb.finish();
}

template <typename OpTy>
LogicalResult lowerCommunication(OpTy op, KilnCommOp kind, Value input,
                                 Value result, Value rows, int64_t peer,
                                 StepLowering &step, ImplicitLocOpBuilder &b) {
  Value data = input ? input : result;
  if (failed(step.requireRowsF32(op, data)))
    return failure();
  int64_t dim = cast<RankedTensorType>(data.getType()).getDimSize(1);
  SmallVector<Value> args = {step.rtArg};
  SmallVector<StepLowering::Region> reads, writes;
  if (input) {
    args.push_back(step.mapped(input));
    reads.push_back(step.regionOf(input));
  }
  Value y;
  if (result) {
    y = step.resultBuffer(result, step.mapped(rows), b);
    args.push_back(y);
    writes.push_back(step.regionOf(result));
  }
  args.push_back(idx(b, peer));
  step.callKernel(buildCommunicateKernel(step.kernels, kind, dim), args, b,
                  reads, writes);
  if (result)
    step.bind(result, y);
  return success();
}

struct AllReduceLowering : KernelCallPattern<AllReduceOp> {
  LogicalResult lower(AllReduceOp op, StepLowering &step,
                      ImplicitLocOpBuilder &b) const override {
    return lowerCommunication(op, KILN_COMM_ALL_REDUCE_SUM, op.getInput(),
                              op.getResult(), op.getInput(), 0, step, b);
  }
};

struct SendLowering : KernelCallPattern<SendOp> {
  LogicalResult lower(SendOp op, StepLowering &step,
                      ImplicitLocOpBuilder &b) const override {
    return lowerCommunication(op, KILN_COMM_SEND, op.getInput(), Value(),
                              Value(), op.getPeer(), step, b);
  }
};

struct RecvLowering : KernelCallPattern<RecvOp> {
  LogicalResult lower(RecvOp op, StepLowering &step,
                      ImplicitLocOpBuilder &b) const override {
    return lowerCommunication(op, KILN_COMM_RECV, Value(), op.getResult(),
                              op.getRows(), op.getPeer(), step, b);
  }
};

} // namespace

void mlir::kiln::populateCollectivePatterns(KernelCallPatterns &patterns) {
  patterns.add<AllReduceLowering, SendLowering, RecvLowering>();
}
