//===- KilnToCPU.cpp - kiln ops to multithreaded vector kernels -----------===//
//
// See the pass description in Conversion/Passes.td. The functions this pass
// lowers are straight-line graphs (one block, no control flow), which makes
// buffer assignment a simple interval allocation over the op order.
//
//===----------------------------------------------------------------------===//

#include "StepLowering.h"
#include "Conversion/Passes.h"
#include "Conversion/StepFunction.h"
#include "Kiln/Transforms/Passes.h"

#include "mlir/Dialect/Math/Transforms/Passes.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/DenseSet.h"
#include "llvm/ADT/TypeSwitch.h"

namespace mlir::kiln {
#define GEN_PASS_DEF_CONVERTKILNTOCPU
#include "Conversion/Passes.h.inc"
} // namespace mlir::kiln

using namespace mlir;
using namespace mlir::kiln;

namespace {

constexpr int64_t kBufferAlignment = 64;
constexpr StringLiteral kPass = "convert-kiln-to-cpu";

} // namespace

bool StepLowering::usesInt8(WeightType weight) {
  if (!int8Activations || weight.getInnerDim() % 32 != 0)
    return false;
  if (isRows16(weight))
    return true;
  std::string error;
  auto format = WeightFormat::get(weight, error);
  return succeeded(format) && (*format)->hasIntegerChunks();
}

bool StepLowering::feedsInt8Linear(Value v, int64_t dim) {
  return dim % 32 == 0 && llvm::any_of(v.getUsers(), [&](Operation *u) {
           auto l = dyn_cast<LinearOp>(u);
           return l && l.getInput() == v && usesInt8(l.getWeight().getType());
         });
}

RopeAttr StepLowering::ropeEpilogueOf(LinearOp linear) {
  RopeAttr rope = linear.getRopeAttr();
  if (!rope || !int8Activations || !isRows16(linear.getWeight().getType()) ||
      rope.getStyle() == RopeStyle::NeoX ||
      rope.getRotaryDim() != rope.getHeadDim() ||
      rope.getHeadDim() % kLanes != 0)
    return {};
  return rope;
}

FailureOr<StepLowering::RopeTable *>
StepLowering::ropeTableFor(Operation *user, RopeAttr rope, Value position,
                           Value rows, ImplicitLocOpBuilder &b) {
  RopeTableKey key{rope.getRotaryDim(), rope.getFreqBase().convertToFloat(),
                   rope.getFreqScale().convertToFloat(), position};
  auto it = llvm::find_if(ropeTables,
                          [&](const RopeTable &table) { return table.key == key; });
  if (it == ropeTables.end())
    return user->emitOpError("has no rope table (a planning bug)");
  if (!it->filled) {
    RopeConfig cfg = ropeConfigOf(rope);
    Value tokens = memref::DimOp::create(b, rows, 0);
    callKernel(buildRopeTableKernel(kernels, cfg),
               {mapping.lookup(position), tokens, scratchArg,
                arith::ConstantIndexOp::create(b, it->offset)},
               b, {}, {scratchRegion(it->offset, it->bytes)});
    it->filled = true;
  }
  return &*it;
}

LogicalResult StepLowering::planScratch() {
  // kiln-plan-memory's slots; the kernels' own workspace goes after them.
  Block &body = oldFunc.getBody().front();
  FailureOr<int64_t> planned = readScratchPlan(oldFunc, kPass, slots);
  if (failed(planned))
    return failure();
  scratchBytes = *planned;
  // The int8 activation region, after everything else.
  for (Operation &op : body) {
    auto linear = dyn_cast<LinearOp>(op);
    if (!linear || !usesInt8(linear.getWeight().getType()))
      continue;
    int64_t rows = linear.getInput().getType().getDimSize(0);
    if (ShapedType::isDynamic(rows))
      rows = maxTokens;
    if (rows <= 0)
      return linear.emitOpError("has a dynamic token dimension with no "
                                "kiln.max_tokens bound");
    int64_t k = linear.getWeight().getType().getInnerDim();
    q8Bytes = std::max(q8Bytes, rows * (k / 32) * kQ8RecordBytes);
  }
  if (q8Bytes) {
    q8Offset = llvm::alignTo(scratchBytes, kBufferAlignment);
    scratchBytes = q8Offset + q8Bytes;
  }
  // A table per frequency set and position, for kiln.rope and for the rope
  // epilogues of projections.
  for (Operation &op : body) {
    RopeAttr rope;
    Value position;
    if (auto r = dyn_cast<RopeOp>(op)) {
      rope = r.getParameters();
      position = r.getPosition();
    } else if (auto linear = dyn_cast<LinearOp>(op)) {
      rope = linear.getRopeAttr();
      position = linear.getRopePosition();
    }
    if (!rope)
      continue;
    RopeTableKey key{rope.getRotaryDim(), rope.getFreqBase().convertToFloat(),
                     rope.getFreqScale().convertToFloat(), position};
    if (llvm::any_of(ropeTables,
                     [&](const RopeTable &t) { return t.key == key; }))
      continue;
    int64_t rows =
        cast<RankedTensorType>(op.getResult(0).getType()).getDimSize(0);
    if (ShapedType::isDynamic(rows))
      rows = maxTokens;
    if (rows <= 0)
      return op.emitOpError("has a dynamic token dimension with no "
                            "kiln.max_tokens bound");
    int64_t offset = llvm::alignTo(scratchBytes, kBufferAlignment);
    int64_t bytes = rows * key.rotaryDim * int64_t(sizeof(float));
    ropeTables.push_back({key, offset, bytes});
    scratchBytes = offset + bytes;
  }
  return success();
}

FailureOr<WeightRef> StepLowering::weightOf(Value v, Operation *user) {
  auto it = weights.find(v);
  if (it == weights.end()) {
    user->emitOpError("weight operand must come from a kiln.weight in the "
                      "same function");
    return failure();
  }
  return it->second;
}

LogicalResult StepLowering::emitWeight(WeightOp op) {
  auto ext = dyn_cast<ExternalDataAttr>(op.getSource());
  if (!ext)
    return op.emitOpError("convert-kiln-to-cpu reads weights from one "
                          "external file; inline sources are not supported "
                          "yet (write them to a file and use #kiln.external)");
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

Value StepLowering::castTo(Value v, Type type, ImplicitLocOpBuilder &b) {
  if (v.getType() == type)
    return v;
  return memref::CastOp::create(b, type, v);
}

StepLowering::Region StepLowering::regionOf(Value value) {
  if (auto it = destinations.find(value); it != destinations.end())
    return {it->second};
  if (auto it = slots.find(value); it != slots.end())
    return scratchRegion(it->second.offset, it->second.size);
  if (isa<BlockArgument>(value))
    return {mapping.lookup(value)};
  if (Value root = viewRoot(value); root != value)
    return regionOf(root);
  return {};
}

bool StepLowering::overlaps(const Region &a, const Region &b) {
  if (a.buffer && b.buffer && a.buffer != b.buffer)
    return false;
  return a.begin < b.end && b.begin < a.end;
}

void StepLowering::barrier(ImplicitLocOpBuilder &b) {
  func::CallOp::create(b, kernels.barrier(), ValueRange{rtArg});
  pendingReads.clear();
  pendingWrites.clear();
}

void StepLowering::callKernel(func::FuncOp kernel, SmallVector<Value> args,
                                  ImplicitLocOpBuilder &b,
                                  ArrayRef<Region> reads,
                                  ArrayRef<Region> writes) {
  auto conflicts = [](ArrayRef<Region> mine, ArrayRef<Region> theirs) {
    return llvm::any_of(mine, [&](const Region &m) {
      return llvm::any_of(theirs,
                          [&](const Region &t) { return overlaps(m, t); });
    });
  };
  if (conflicts(reads, pendingWrites) || conflicts(writes, pendingWrites) ||
      conflicts(writes, pendingReads))
    barrier(b);
  args.push_back(tid);
  args.push_back(nth);
  FunctionType type = kernel.getFunctionType();
  for (auto [i, arg] : llvm::enumerate(args))
    args[i] = castTo(arg, type.getInput(i), b);
  func::CallOp::create(b, kernel, args);
  pendingReads.append(reads.begin(), reads.end());
  pendingWrites.append(writes.begin(), writes.end());
}

Value StepLowering::resultBuffer(Value result, Value rowSource,
                                     ImplicitLocOpBuilder &b) {
  auto it = destinations.find(result);
  if (it != destinations.end())
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

LogicalResult StepLowering::requireRowsF32(Operation *op,
                                           RankedTensorType t) {
  if (t.getRank() != 2 || !t.getElementType().isF32() ||
      ShapedType::isDynamic(t.getDimSize(1)))
    return op->emitOpError("the CPU lowering needs [tokens, features] f32 "
                           "tensors with a static feature dimension, got ")
           << t;
  if (t.getDimSize(1) % kLanes != 0)
    return op->emitOpError("the CPU lowering needs feature dimensions that "
                           "are multiples of 16, got ")
           << t.getDimSize(1);
  return success();
}

LogicalResult StepLowering::requireRowsF32(Operation *op, Value value) {
  return requireRowsF32(op, cast<RankedTensorType>(value.getType()));
}

FailureOr<std::unique_ptr<WeightFormat>>
StepLowering::formatOf(Operation *op, WeightType type) {
  std::string error;
  auto f = WeightFormat::get(type, error);
  if (failed(f))
    op->emitOpError(error);
  return f;
}

LogicalResult StepLowering::emitOp(Operation *op, ImplicitLocOpBuilder &b) {
  if (auto weight = dyn_cast<WeightOp>(op))
    return emitWeight(weight);
  if (const KernelCallPatternBase *pattern = patterns.lookup(op))
    return pattern->lowerOp(op, *this, b);
  // Scalar index arithmetic and constants carry over unchanged.
  bool scalar = llvm::all_of(op->getOperandTypes(),
                             [](Type t) { return t.isIntOrIndexOrFloat(); }) &&
                llvm::all_of(op->getResultTypes(),
                             [](Type t) { return t.isIntOrIndexOrFloat(); }) &&
                op->getNumRegions() == 0;
  if (!scalar)
    return op->emitOpError("is not supported by convert-kiln-to-cpu");
  b.clone(*op, mapping);
  return success();
}

LogicalResult StepLowering::run() {
  MLIRContext *ctx = oldFunc.getContext();
  if (!oldFunc.getBody().hasOneBlock())
    return oldFunc.emitOpError("convert-kiln-to-cpu needs a single-block "
                               "function");
  // The token bound the plan was made for.
  if (auto attr = oldFunc->getAttrOfType<IntegerAttr>(
          KilnDialect::MaxTokensAttrHelper::getNameStr()))
    maxTokens = attr.getInt();

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
  tid = arith::IndexCastOp::create(b, b.getIndexType(),
                                   entry->getArgument(sig->weightsIndex + 3));
  nth = arith::IndexCastOp::create(b, b.getIndexType(),
                                   entry->getArgument(sig->weightsIndex + 4));

  // Results produced by a kiln op are computed straight into their buffer.
  auto ret = cast<func::ReturnOp>(oldFunc.getBody().front().getTerminator());
  for (auto [i, v] : llvm::enumerate(ret.getOperands())) {
    Operation *def = v.getDefiningOp();
    if (def && isa<KilnDialect>(def->getDialect()) && !destinations.count(v))
      destinations[v] = entry->getArgument(sig->outParam[i]);
  }
  if (failed(planScratch()))
    return failure();

  for (Operation &op : oldFunc.getBody().front().without_terminator()) {
    b.setLoc(op.getLoc());
    if (failed(emitOp(&op, b)))
      return failure();
  }
  // Results not computed in place are copied into their buffers.
  for (auto [i, v] : llvm::enumerate(ret.getOperands())) {
    Value dest = entry->getArgument(sig->outParam[i]);
    Value src = mapping.lookup(v);
    if (src == dest)
      continue;
    auto type = cast<RankedTensorType>(v.getType());
    if (type.getRank() != 2 || !type.getElementType().isF32() ||
        type.getDimSize(1) % kLanes != 0)
      return ret.emitOpError("the CPU lowering can only copy [rows, 16k] f32 "
                             "results into their buffers");
    callKernel(buildElementwiseKernel(kernels, ElementwiseKind::Copy,
                                      type.getDimSize(1),
                                      /*quantize=*/false),
               {src, dest}, b, {regionOf(v)}, {Region{dest}});
  }
  // Every thread returns only when all results are complete.
  if (!pendingWrites.empty())
    barrier(b);
  func::ReturnOp::create(b);

  newFunc->setAttr(KilnDialect::ScratchBytesAttrHelper::getNameStr(),
                   b.getI64IntegerAttr(scratchBytes));
  if (weightFile)
    newFunc->setAttr(KilnDialect::WeightFileAttrHelper::getNameStr(),
                     b.getStringAttr(*weightFile));
  oldFunc.erase();
  return success();
}

namespace {
struct ConvertKilnToCPUPass
    : public mlir::kiln::impl::ConvertKilnToCPUBase<ConvertKilnToCPUPass> {
  using ConvertKilnToCPUBase::ConvertKilnToCPUBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    KernelLibrary kernels(module, CPUTarget(cpu));
    KernelCallPatterns kernelCalls;
    populateLinearPatterns(kernelCalls);
    populateEmbeddingPatterns(kernelCalls);
    populateNormPatterns(kernelCalls);
    populateRopePatterns(kernelCalls);
    populateAttentionPatterns(kernelCalls);
    populateElementwisePatterns(kernelCalls);
    populateViewsPatterns(kernelCalls);
    populatePositionEmbeddingPatterns(kernelCalls);
    populatePoolingPatterns(kernelCalls);
    populateCollectivePatterns(kernelCalls);
    SmallVector<func::FuncOp> funcs;
    for (auto f : module.getOps<func::FuncOp>())
      if (KilnDialect::isStepFunction(f))
        funcs.push_back(f);
    for (func::FuncOp f : funcs) {
      StepLowering lowering(f, kernelCalls, kernels,
                            activations == ActivationPrecision::Int8);
      if (failed(lowering.run()))
        return signalPassFailure();
    }
    // exp/tanh/erf as polynomials on vectors: no libm call per lane.
    RewritePatternSet patterns(&getContext());
    populateMathPolynomialApproximationPatterns(
        patterns, [](StringRef name) {
          return name.ends_with("exp") || name.ends_with("tanh") ||
                 name.ends_with("erf");
        });
    if (failed(applyPatternsGreedily(module, std::move(patterns))))
      return signalPassFailure();
  }
};
} // namespace
