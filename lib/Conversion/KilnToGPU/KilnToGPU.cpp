//===- KilnToGPU.cpp - kiln ops to CUDA kernels and a launching host step -===//
//
// See the pass description in Conversion/Passes.td.
//
//===----------------------------------------------------------------------===//

#include "GPUStepLowering.h"
#include "Conversion/Passes.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Math/Transforms/Passes.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace mlir::kiln {
#define GEN_PASS_DEF_CONVERTKILNTOGPU
#include "Conversion/Passes.h.inc"
} // namespace mlir::kiln

using namespace mlir;
using namespace mlir::kiln;

namespace {

/// math.fma as llvm.intr.fma (fma.rn.f32), not libdevice's __nv_fmaf.
struct FmaAsInstruction : OpRewritePattern<math::FmaOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(math::FmaOp op,
                                PatternRewriter &rewriter) const override {
    rewriter.replaceOpWithNewOp<LLVM::FMAOp>(op, op.getA(), op.getB(),
                                             op.getC());
    return success();
  }
};

/// f32 math.floor as PTX's cvt.rmi.f32.f32 (inline: convert-gpu-to-nvvm
/// would call libdevice's __nv_floorf and rejects llvm.intr.floor).
struct FloorAsInstruction : OpRewritePattern<math::FloorOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(math::FloorOp op,
                                PatternRewriter &rewriter) const override {
    if (!op.getType().isF32())
      return failure();
    rewriter.replaceOp(op, unaryPTX(rewriter, op.getLoc(), "cvt.rmi.f32.f32",
                                    op.getOperand()));
    return success();
  }
};

/// Most arguments a kernel takes (the stack arrays rt->launch reads).
constexpr int64_t kMaxKernelArgs = 16;
} // namespace

Value GPUStepLowering::ceilDiv(Value n, int64_t d, ImplicitLocOpBuilder &b) {
  return arith::DivUIOp::create(
      b, arith::AddIOp::create(b, n, arith::ConstantIndexOp::create(b, d - 1)),
      arith::ConstantIndexOp::create(b, d));
}

Value GPUStepLowering::weightBuffer(const WeightRef &w,
                                    ImplicitLocOpBuilder &b) {
  Value size = memref::DimOp::create(b, weightsArg, 0);
  Value offset = arith::ConstantIndexOp::create(b, w.offset);
  return memref::SubViewOp::create(
      b, weightsArg, ArrayRef<OpFoldResult>{offset},
      ArrayRef<OpFoldResult>{OpFoldResult(arith::SubIOp::create(b, size, offset))},
      ArrayRef<OpFoldResult>{b.getIndexAttr(1)});
}

FailureOr<std::unique_ptr<GPUWeightDecoder>>
GPUStepLowering::decoderOf(Operation *op, const WeightRef &w) {
  std::string error;
  auto decoder = GPUWeightDecoder::get(w.type, error);
  if (failed(decoder)) {
    op->emitOpError(error);
    return failure();
  }
  // The split layout's codes are read with 128-bit loads; device
  // allocations are 256-byte aligned, so the offset fixes the alignment.
  if (!(*decoder)->rowIsContiguous() && w.offset % 16 != 0)
    return op->emitOpError("reads a weight in #kiln_gpu.split at byte ")
           << w.offset << ", which is not 16-byte aligned";
  return decoder;
}

LogicalResult GPUStepLowering::requireRowsF32(Operation *op, Type type,
                                              int64_t multiple) {
  auto t = dyn_cast<RankedTensorType>(type);
  if (!t || t.getRank() != 2 || !t.getElementType().isF32() ||
      ShapedType::isDynamic(t.getDimSize(1)))
    return op->emitOpError("the GPU lowering needs [tokens, features] f32 "
                           "tensors with a static feature dimension, got ")
           << type;
  if (t.getDimSize(1) % multiple != 0)
    return op->emitOpError("the GPU lowering needs a feature dimension that "
                           "is a multiple of ")
           << multiple << ", got " << t.getDimSize(1);
  return success();
}

Value GPUStepLowering::rowsOf(Value memref, ImplicitLocOpBuilder &b) {
  auto type = cast<MemRefType>(memref.getType());
  Value rows = memref::DimOp::create(b, memref, 0);
  for (int64_t i = 1; i + 1 < type.getRank(); ++i)
    rows = arith::MulIOp::create(b, rows, memref::DimOp::create(b, memref, i));
  return rows;
}

Value GPUStepLowering::deviceAddress(Value memref, ImplicitLocOpBuilder &b) {
  auto type = cast<MemRefType>(memref.getType());
  auto meta = memref::ExtractStridedMetadataOp::create(b, memref);
  Value base = memref::ExtractAlignedPointerAsIndexOp::create(b, memref);
  int64_t elementBytes = type.getElementTypeBitWidth() / 8;
  Value offset = arith::MulIOp::create(
      b, meta.getOffset(), arith::ConstantIndexOp::create(b, elementBytes));
  Value address = arith::AddIOp::create(b, base, offset);
  return arith::IndexCastUIOp::create(b, b.getI64Type(), address);
}

void GPUStepLowering::beginStep(Block &, const StepSignature &,
                                ImplicitLocOpBuilder &b) {
  MLIRContext *ctx = b.getContext();
  auto ptr = LLVM::LLVMPointerType::get(ctx);
  auto i32 = b.getI32Type(), i64 = b.getI64Type();
  // KilnRtContext {barrier, pool, launch}: launch is the third pointer.
  Value slot = LLVM::GEPOp::create(b, ptr, ptr, rtArg,
                                   ArrayRef<LLVM::GEPArg>{2});
  launchFn = LLVM::LoadOp::create(b, ptr, slot);
  auto count = [&](int64_t n) {
    return LLVM::ConstantOp::create(b, i64, b.getI64IntegerAttr(n));
  };
  gridArray = LLVM::AllocaOp::create(b, ptr, i32, count(3), 4);
  blockArray = LLVM::AllocaOp::create(b, ptr, i32, count(3), 4);
  valueArray = LLVM::AllocaOp::create(b, ptr, i64, count(kMaxKernelArgs), 8);
  paramArray = LLVM::AllocaOp::create(b, ptr, ptr, count(kMaxKernelArgs), 8);
  // params[i] points at values[i] for every launch.
  for (int64_t i = 0; i < kMaxKernelArgs; ++i) {
    Value value = LLVM::GEPOp::create(b, ptr, i64, valueArray,
                                      ArrayRef<LLVM::GEPArg>{int32_t(i)});
    Value param = LLVM::GEPOp::create(b, ptr, ptr, paramArray,
                                      ArrayRef<LLVM::GEPArg>{int32_t(i)});
    LLVM::StoreOp::create(b, value, param);
  }
}

void GPUStepLowering::launch(int64_t kernel, std::array<Value, 3> grid,
                             std::array<int64_t, 3> block,
                             ArrayRef<Value> args, ImplicitLocOpBuilder &b) {
  assert(int64_t(args.size()) <= kMaxKernelArgs && "too many kernel arguments");
  MLIRContext *ctx = b.getContext();
  auto ptr = LLVM::LLVMPointerType::get(ctx);
  auto i32 = b.getI32Type(), i64 = b.getI64Type();
  for (auto [i, arg] : llvm::enumerate(args)) {
    Value value = isa<MemRefType>(arg.getType())
                      ? deviceAddress(arg, b)
                      : arith::IndexCastUIOp::create(b, i64, arg).getResult();
    Value at = LLVM::GEPOp::create(b, ptr, i64, valueArray,
                                   ArrayRef<LLVM::GEPArg>{int32_t(i)});
    LLVM::StoreOp::create(b, value, at);
  }
  for (int64_t d = 0; d < 3; ++d) {
    Value g = arith::IndexCastUIOp::create(b, i32, grid[d]);
    LLVM::StoreOp::create(b, g,
                          LLVM::GEPOp::create(b, ptr, i32, gridArray,
                                              ArrayRef<LLVM::GEPArg>{int32_t(d)}));
    Value t = arith::ConstantIntOp::create(b, block[d], 32);
    LLVM::StoreOp::create(b, t,
                          LLVM::GEPOp::create(b, ptr, i32, blockArray,
                                              ArrayRef<LLVM::GEPArg>{int32_t(d)}));
  }
  auto fnType = LLVM::LLVMFunctionType::get(i32, {ptr, i32, ptr, ptr, i32, ptr});
  Value index = arith::ConstantIntOp::create(b, kernel, 32);
  Value shared = arith::ConstantIntOp::create(b, 0, 32);
  // The result is ignored: the runtime records the first error.
  LLVM::CallOp::create(b, fnType,
                       ValueRange{launchFn, rtArg, index, gridArray,
                                  blockArray, shared, paramArray});
}

LogicalResult GPUStepLowering::planScratch() {
  if (failed(StepLoweringBase::planScratch()))
    return failure();
  for (Operation &op : oldFunc.getBody().front())
    if (const GPUKernelPatternBase *pattern = patterns.lookup(&op))
      workspaceBytes = std::max(workspaceBytes, pattern->workspaceBytesOf(&op));
  if (workspaceBytes) {
    // Aligned for 128-bit accesses (device allocations are 256-byte aligned).
    workspaceOffset = llvm::alignTo(scratchBytes, 256);
    scratchBytes = workspaceOffset + workspaceBytes;
  }
  // The runtime allocates at least a byte of device scratch.
  scratchBytes = std::max<int64_t>(scratchBytes, 1);
  return success();
}

Value GPUStepLowering::workspace(ImplicitLocOpBuilder &b) {
  assert(workspaceBytes && "no pattern asked for a workspace");
  return memref::ViewOp::create(
      b, MemRefType::get({workspaceBytes}, b.getI8Type()), scratchArg,
      arith::ConstantIndexOp::create(b, workspaceOffset), ValueRange{});
}

void GPUStepLowering::launchQuantizingOutput(
    Value result, Value y, Value rows, int64_t bits,
    llvm::function_ref<void(Value)> launch, ImplicitLocOpBuilder &b) {
  bind(result, y);
  if (!bits) {
    launch(Value());
    return;
  }
  auto decode = scf::IfOp::create(
      b,
      arith::CmpIOp::create(b, arith::CmpIPredicate::eq, rows,
                            arith::ConstantIndexOp::create(b, 1)),
      /*withElseRegion=*/true);
  {
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPoint(decode.thenBlock()->getTerminator());
    launch(workspace(b));
    b.setInsertionPoint(decode.elseBlock()->getTerminator());
    launch(Value());
  }
  quantizedInput = y;
  quantizedBits = bits;
}

std::optional<LogicalResult>
GPUStepLowering::lowerByPattern(Operation *op, ImplicitLocOpBuilder &b) {
  if (!isa<LinearOp>(op))
    quantizedInput = Value();
  if (const GPUKernelPatternBase *pattern = patterns.lookup(op))
    return pattern->lowerOp(op, *this, b);
  return std::nullopt;
}

LogicalResult GPUStepLowering::copyResult(func::ReturnOp ret, Value v,
                                          Value src, Value dest,
                                          ImplicitLocOpBuilder &b) {
  if (failed(requireRowsF32(ret, v.getType(), 1)))
    return failure();
  int64_t width = cast<RankedTensorType>(v.getType()).getDimSize(1);
  launchElementwise(*this, elementwiseKernel(kernels, "copy"), width,
                    {src, dest}, rowsOf(src, b), b);
  return success();
}

void GPUStepLowering::finishStep(func::FuncOp newFunc,
                                 ImplicitLocOpBuilder &b) {
  SmallVector<Attribute> names;
  for (const std::string &name : kernels.getNames())
    names.push_back(b.getStringAttr(name));
  newFunc->setAttr(KilnDialect::CudaKernelsAttrHelper::getNameStr(),
                   b.getArrayAttr(names));
}

namespace {
struct ConvertKilnToGPUPass
    : public mlir::kiln::impl::ConvertKilnToGPUBase<ConvertKilnToGPUPass> {
  using ConvertKilnToGPUBase::ConvertKilnToGPUBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    SmallVector<func::FuncOp> funcs;
    for (auto f : module.getOps<func::FuncOp>())
      if (KilnDialect::isStepFunction(f))
        funcs.push_back(f);
    if (funcs.empty())
      return;
    if (funcs.size() > 1) {
      funcs[1].emitOpError("convert-kiln-to-gpu lowers one step function per "
                           "module (its kernels are the manifest's list)");
      return signalPassFailure();
    }
    GPUKernelLibrary kernels(module);
    GPUKernelPatterns patterns;
    populateGPULinearPatterns(patterns);
    populateGPUEmbeddingPatterns(patterns);
    populateGPUNormPatterns(patterns);
    populateGPURopePatterns(patterns);
    populateGPUAttentionPatterns(patterns);
    populateGPUElementwisePatterns(patterns);
    populateGPUViewsPatterns(patterns);
    populateGPUCollectivePatterns(patterns);
    GPUStepLowering lowering(funcs.front(), patterns, kernels);
    if (failed(lowering.run()))
      return signalPassFailure();
    // exp/tanh/erf/sin/cos as polynomials, whose math.fma and math.floor
    // become PTX instructions: convert-gpu-to-nvvm would make libdevice calls
    // of them, left unresolved in the PTX where no toolkit is found (no
    // CUDA_HOME: 15150 calls in SmolLM2's), so the PTX needs no toolkit.
    RewritePatternSet approximations(&getContext());
    populateMathPolynomialApproximationPatterns(
        approximations, [](StringRef name) {
          return name.ends_with("exp") || name.ends_with("tanh") ||
                 name.ends_with("erf") || name.ends_with("sin") ||
                 name.ends_with("cos");
        });
    approximations.add<FmaAsInstruction, FloorAsInstruction>(&getContext());
    if (failed(applyPatternsGreedily(kernels.getModule(),
                                     std::move(approximations))))
      return signalPassFailure();
  }
};
} // namespace
