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

} // namespace

RopeAttr StepLowering::ropeEpilogueOf(LinearOp linear) {
  RopeAttr rope = linear.getRopeAttr();
  if (!rope || !usesInt8(linear) || !isRows16(linear.getWeight().getType()) ||
      rope.getStyle() == RopeStyle::NeoX ||
      rope.getRotaryDim() != rope.getHeadDim() ||
      rope.getHeadDim() % kLanes != 0)
    return {};
  return rope;
}

/// Ropes with equal keys share one cos/sin table.
static StepLowering::RopeTableKey ropeTableKey(RopeAttr rope, Value position) {
  return {rope.getRotaryDim(),
          rope.getFreqBase().convertToFloat(),
          rope.getFreqScale().convertToFloat(),
          position,
          rope.getFreqFactors(),
          rope.getMagnitude().convertToFloat()};
}

FailureOr<StepLowering::RopeTable *>
StepLowering::ropeTableFor(Operation *user, RopeAttr rope, Value position,
                           Value rows, ImplicitLocOpBuilder &b) {
  RopeTableKey key = ropeTableKey(rope, position);
  auto it = llvm::find_if(ropeTables,
                          [&](const RopeTable &table) { return table.key == key; });
  if (it == ropeTables.end())
    return user->emitOpError("has no rope table (a planning bug)");
  if (!it->filled) {
    RopeConfig cfg = ropeConfigOf(rope);
    Value tokens = memref::DimOp::create(b, rows, 0);
    Value positions = mapping.lookup(position);
    callKernel(buildRopeTableKernel(kernels, cfg,
                                    isa<MemRefType>(positions.getType())),
               {positions, tokens, scratchArg,
                arith::ConstantIndexOp::create(b, it->offset)},
               b, {}, {scratchRegion(it->offset, it->bytes)});
    it->filled = true;
  }
  return &*it;
}

LogicalResult StepLowering::planScratch() {
  // kiln-plan-memory's slots; the kernels' own workspace goes after them.
  Block &body = oldFunc.getBody().front();
  if (failed(StepLoweringBase::planScratch()))
    return failure();
  // The int8 activation region, after everything else.
  for (Operation &op : body) {
    auto linear = dyn_cast<LinearOp>(op);
    if (!linear || !usesInt8(linear))
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
      position = r.getPositionSource();
    } else if (auto linear = dyn_cast<LinearOp>(op)) {
      rope = linear.getRopeAttr();
      position = linear.getRopePosition();
    }
    if (!rope)
      continue;
    RopeTableKey key = ropeTableKey(rope, position);
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

LogicalResult StepLowering::requireRowsF32(Operation *op, RankedTensorType t,
                                           int64_t multipleOf) {
  if (t.getRank() != 2 || !t.getElementType().isF32() ||
      ShapedType::isDynamic(t.getDimSize(1)))
    return op->emitOpError("the CPU lowering needs [tokens, features] f32 "
                           "tensors with a static feature dimension, got ")
           << t;
  if (t.getDimSize(1) % multipleOf != 0)
    return op->emitOpError("the CPU lowering needs feature dimensions that "
                           "are multiples of ")
           << multipleOf << ", got " << t.getDimSize(1);
  return success();
}

LogicalResult StepLowering::requireRowsF32(Operation *op, Value value,
                                           int64_t multipleOf) {
  return requireRowsF32(op, cast<RankedTensorType>(value.getType()),
                        multipleOf);
}

FailureOr<std::unique_ptr<WeightFormat>>
StepLowering::formatOf(Operation *op, WeightType type) {
  std::string error;
  auto f = WeightFormat::get(type, error);
  if (failed(f))
    op->emitOpError(error);
  return f;
}

void StepLowering::beginStep(Block &entry, const StepSignature &sig,
                             ImplicitLocOpBuilder &b) {
  tid = arith::IndexCastOp::create(b, b.getIndexType(),
                                   entry.getArgument(sig.weightsIndex + 3));
  nth = arith::IndexCastOp::create(b, b.getIndexType(),
                                   entry.getArgument(sig.weightsIndex + 4));
}

std::optional<LogicalResult>
StepLowering::lowerByPattern(Operation *op, ImplicitLocOpBuilder &b) {
  if (const KernelCallPatternBase *pattern = patterns.lookup(op))
    return pattern->lowerOp(op, *this, b);
  return std::nullopt;
}

LogicalResult StepLowering::copyResult(func::ReturnOp ret, Value v, Value src,
                                       Value dest, ImplicitLocOpBuilder &b) {
  auto type = cast<RankedTensorType>(v.getType());
  if (type.getRank() != 2 || !type.getElementType().isF32() ||
      type.getDimSize(1) % kLanes != 0)
    return ret.emitOpError("the CPU lowering can only copy [rows, 16k] f32 "
                           "results into their buffers");
  callKernel(buildElementwiseKernel(kernels, ElementwiseKind::Copy,
                                    type.getDimSize(1), /*quantize=*/false),
             {src, dest}, b, {regionOf(v)}, {Region{dest}});
  return success();
}

void StepLowering::finishStep(func::FuncOp, ImplicitLocOpBuilder &b) {
  // Every thread returns only when all results are complete.
  if (!pendingWrites.empty())
    barrier(b);
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
      StepLowering lowering(f, kernelCalls, kernels);
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
