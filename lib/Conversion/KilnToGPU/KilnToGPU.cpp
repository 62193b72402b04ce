//===- KilnToGPU.cpp - kiln ops to CUDA kernels and a launching host step -===//
//
// See the pass description in Conversion/Passes.td.
//
//===----------------------------------------------------------------------===//

#include "GPUStepLowering.h"
#include "Conversion/Passes.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/Math/Transforms/Passes.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace mlir::kiln {
#define GEN_PASS_DEF_CONVERTKILNTOGPU
#include "Conversion/Passes.h.inc"
} // namespace mlir::kiln

using namespace mlir;
using namespace mlir::kiln;

namespace {
constexpr StringLiteral kPass = "convert-kiln-to-gpu";
/// Most arguments a kernel takes (the stack arrays rt->launch reads).
constexpr int64_t kMaxKernelArgs = 16;
} // namespace

Value GPUStepLowering::ceilDiv(Value n, int64_t d, ImplicitLocOpBuilder &b) {
  return arith::DivUIOp::create(
      b, arith::AddIOp::create(b, n, arith::ConstantIndexOp::create(b, d - 1)),
      arith::ConstantIndexOp::create(b, d));
}

FailureOr<GPUStepLowering::WeightRef>
GPUStepLowering::weightOf(Value v, Operation *user) {
  auto it = weights.find(v);
  if (it == weights.end()) {
    user->emitOpError("weight operand must come from a kiln.weight in the "
                      "same function");
    return failure();
  }
  return it->second;
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
GPUStepLowering::decoderOf(Operation *op, WeightType type) {
  std::string error;
  auto decoder = GPUWeightDecoder::get(type, error);
  if (failed(decoder))
    op->emitOpError(error);
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

Value GPUStepLowering::resultBuffer(Value result, Value rowSource,
                                    ImplicitLocOpBuilder &b) {
  if (auto it = destinations.find(result); it != destinations.end())
    return it->second;
  auto type = cast<RankedTensorType>(result.getType());
  auto memrefType = MemRefType::get(type.getShape(), type.getElementType());
  SmallVector<Value> sizes;
  for (auto [i, d] : llvm::enumerate(type.getShape()))
    if (ShapedType::isDynamic(d))
      sizes.push_back(memref::DimOp::create(b, rowSource, i));
  Value offset = arith::ConstantIndexOp::create(b, slots[result].offset);
  return memref::ViewOp::create(b, memrefType, scratchArg, offset, sizes);
}

LogicalResult GPUStepLowering::emitWeight(WeightOp op) {
  auto ext = dyn_cast<ExternalDataAttr>(op.getSource());
  if (!ext)
    return op.emitOpError("convert-kiln-to-gpu reads weights from one "
                          "external file; inline sources are not supported "
                          "(write them to a file and use #kiln.external)");
  std::string path = ext.getPath().str();
  if (!weightFile)
    weightFile = path;
  else if (*weightFile != path)
    return op.emitOpError("all weights of a function must come from one file "
                          "(found \"")
           << path << "\" after \"" << *weightFile << "\")";
  if (ext.getOffset() > uint64_t(INT64_MAX))
    return op.emitOpError("weight offset is too large");
  weights[op.getResult()] = {op.getType(), int64_t(ext.getOffset())};
  return success();
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

void GPUStepLowering::prepareLaunches(ImplicitLocOpBuilder &b) {
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

LogicalResult GPUStepLowering::emitOp(Operation *op, ImplicitLocOpBuilder &b) {
  if (auto weight = dyn_cast<WeightOp>(op))
    return emitWeight(weight);
  if (const GPUKernelPatternBase *pattern = patterns.lookup(op))
    return pattern->lowerOp(op, *this, b);
  // Scalar index arithmetic and constants carry over unchanged.
  bool scalar = llvm::all_of(op->getOperandTypes(),
                             [](Type t) { return t.isIntOrIndexOrFloat(); }) &&
                llvm::all_of(op->getResultTypes(),
                             [](Type t) { return t.isIntOrIndexOrFloat(); }) &&
                op->getNumRegions() == 0;
  if (!scalar)
    return op->emitOpError("is not supported by convert-kiln-to-gpu");
  b.clone(*op, mapping);
  return success();
}

LogicalResult GPUStepLowering::run() {
  MLIRContext *ctx = oldFunc.getContext();
  if (!oldFunc.getBody().hasOneBlock())
    return oldFunc.emitOpError("convert-kiln-to-gpu needs a single-block "
                               "function");
  FailureOr<StepSignature> sig = lowerStepSignature(oldFunc, kPass);
  if (failed(sig))
    return failure();
  OpBuilder mb(oldFunc);
  auto newFunc = func::FuncOp::create(mb, oldFunc.getLoc(), oldFunc.getName(),
                                      sig->type);
  newFunc.setVisibility(oldFunc.getVisibility());
  newFunc->setAttr("llvm.emit_c_interface", UnitAttr::get(ctx));
  Block *entry = newFunc.addEntryBlock();
  for (auto [i, arg] : llvm::enumerate(oldFunc.getArguments()))
    mapping.map(arg, entry->getArgument(i));
  weightsArg = entry->getArgument(sig->weightsIndex);
  scratchArg = entry->getArgument(sig->weightsIndex + 1);
  rtArg = entry->getArgument(sig->weightsIndex + 2);

  ImplicitLocOpBuilder b(oldFunc.getLoc(), ctx);
  b.setInsertionPointToStart(entry);
  prepareLaunches(b);

  // Results produced by a kiln op are computed straight into their buffer.
  auto ret = cast<func::ReturnOp>(oldFunc.getBody().front().getTerminator());
  for (auto [i, v] : llvm::enumerate(ret.getOperands())) {
    Operation *def = v.getDefiningOp();
    if (def && isa<KilnDialect>(def->getDialect()) && !destinations.count(v))
      destinations[v] = entry->getArgument(sig->outParam[i]);
  }
  FailureOr<int64_t> planned = readScratchPlan(oldFunc, kPass, slots);
  if (failed(planned)) {
    newFunc.erase();
    return failure();
  }
  scratchBytes = *planned;

  for (Operation &op : oldFunc.getBody().front().without_terminator()) {
    b.setLoc(op.getLoc());
    if (failed(emitOp(&op, b))) {
      newFunc.erase();
      return failure();
    }
  }
  // Results not computed in place are copied into their buffers.
  for (auto [i, v] : llvm::enumerate(ret.getOperands())) {
    Value dest = entry->getArgument(sig->outParam[i]);
    Value src = mapping.lookup(v);
    if (src == dest)
      continue;
    if (failed(requireRowsF32(ret, v.getType(), 1))) {
      newFunc.erase();
      return failure();
    }
    int64_t width = cast<RankedTensorType>(v.getType()).getDimSize(1);
    launchElementwise(*this, elementwiseKernel(kernels, "copy"), width,
                      {src, dest}, rowsOf(src, b), b);
  }
  func::ReturnOp::create(b);

  newFunc->setAttr(KilnDialect::ScratchBytesAttrHelper::getNameStr(),
                   b.getI64IntegerAttr(std::max<int64_t>(scratchBytes, 1)));
  if (weightFile)
    newFunc->setAttr(KilnDialect::WeightFileAttrHelper::getNameStr(),
                     b.getStringAttr(*weightFile));
  SmallVector<Attribute> names;
  for (const std::string &name : kernels.getNames())
    names.push_back(b.getStringAttr(name));
  newFunc->setAttr(KilnDialect::CudaKernelsAttrHelper::getNameStr(),
                   b.getArrayAttr(names));
  oldFunc.erase();
  return success();
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
    GPUStepLowering lowering(funcs.front(), patterns, kernels);
    if (failed(lowering.run()))
      return signalPassFailure();
    // exp/tanh/erf/sin/cos as polynomials: no libdevice calls, so the PTX
    // needs no CUDA toolkit to be generated.
    RewritePatternSet approximations(&getContext());
    populateMathPolynomialApproximationPatterns(
        approximations, [](StringRef name) {
          return name.ends_with("exp") || name.ends_with("tanh") ||
                 name.ends_with("erf") || name.ends_with("sin") ||
                 name.ends_with("cos");
        });
    if (failed(applyPatternsGreedily(kernels.getModule(),
                                     std::move(approximations))))
      return signalPassFailure();
  }
};
} // namespace
