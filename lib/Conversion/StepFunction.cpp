//===- StepFunction.cpp - what every target's step lowering shares --------===//

#include "Conversion/StepFunction.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/IR/BuiltinTypes.h"

using namespace mlir;
using namespace mlir::kiln;

Type mlir::kiln::lowerStepType(Type t) {
  if (auto tensor = dyn_cast<RankedTensorType>(t))
    return MemRefType::get(tensor.getShape(), tensor.getElementType());
  if (isa<KVCacheType>(t))
    return MemRefType::get({ShapedType::kDynamic},
                           IntegerType::get(t.getContext(), 8));
  return t;
}

FailureOr<StepSignature> mlir::kiln::lowerStepSignature(func::FuncOp func,
                                                        StringRef pass) {
  MLIRContext *ctx = func.getContext();
  FunctionType oldType = func.getFunctionType();
  SmallVector<int64_t> tied(oldType.getNumResults(), -1);
  // The dialect verified the attribute (KilnFunctionAttrs.cpp).
  if (auto attr = func->getAttrOfType<ArrayAttr>(
          KilnDialect::TiedResultsAttrHelper::getNameStr()))
    for (auto [i, a] : llvm::enumerate(attr))
      tied[i] = cast<IntegerAttr>(a).getInt();
  SmallVector<Type> inputs;
  for (Type t : oldType.getInputs()) {
    if (isa<UnrankedTensorType>(t)) {
      func.emitOpError(pass) << " does not support unranked tensors";
      return failure();
    }
    inputs.push_back(lowerStepType(t));
  }
  StepSignature sig;
  sig.outParam.resize(oldType.getNumResults());
  for (auto [i, t] : llvm::enumerate(oldType.getResults())) {
    if (!isa<RankedTensorType>(t)) {
      func.emitOpError("results must be ranked tensors");
      return failure();
    }
    if (tied[i] >= 0) {
      sig.outParam[i] = tied[i];
    } else {
      sig.outParam[i] = inputs.size();
      inputs.push_back(lowerStepType(t));
    }
  }
  sig.weightsIndex = inputs.size();
  auto bytes = MemRefType::get({ShapedType::kDynamic}, IntegerType::get(ctx, 8));
  inputs.append({bytes, bytes, LLVM::LLVMPointerType::get(ctx),
                 IntegerType::get(ctx, 32), IntegerType::get(ctx, 32)});
  sig.type = FunctionType::get(ctx, inputs, {});
  return sig;
}

FailureOr<int64_t>
mlir::kiln::readScratchPlan(func::FuncOp func, StringRef pass,
                            llvm::DenseMap<Value, ScratchSlot> &slots) {
  MLIRContext *ctx = func.getContext();
  IntegerAttr planned = KilnDialect::PlannedBytesAttrHelper(ctx).getAttr(func);
  if (!planned) {
    func.emitOpError("has no scratch plan: run kiln-plan-memory before ")
        << pass;
    return failure();
  }
  int64_t bytes = planned.getInt();
  auto slotHelper = KilnDialect::SlotAttrHelper(ctx);
  for (Operation &op : func.getBody().front()) {
    DenseI64ArrayAttr slot = slotHelper.getAttr(&op);
    if (!slot)
      continue;
    for (auto [i, result] : llvm::enumerate(op.getResults())) {
      int64_t offset = slot[2 * i], size = slot[2 * i + 1], end;
      if (offset < 0)
        continue;
      if (__builtin_add_overflow(offset, size, &end) || end > bytes) {
        op.emitOpError("kiln.slot lies past kiln.planned_bytes");
        return failure();
      }
      slots[result] = {offset, size};
    }
  }
  return bytes;
}

LogicalResult StepLoweringBase::planScratch() {
  FailureOr<int64_t> planned = readScratchPlan(oldFunc, pass, slots);
  if (failed(planned))
    return failure();
  scratchBytes = *planned;
  return success();
}

FailureOr<WeightRef> StepLoweringBase::weightOf(Value v, Operation *user) {
  auto it = weights.find(v);
  if (it == weights.end()) {
    user->emitOpError("weight operand must come from a kiln.weight in the "
                      "same function");
    return failure();
  }
  return it->second;
}

LogicalResult StepLoweringBase::emitWeight(WeightOp op) {
  auto ext = dyn_cast<ExternalDataAttr>(op.getSource());
  if (!ext)
    return op.emitOpError(pass)
           << " reads weights from one external file; inline sources are "
              "not supported yet (write them to a file and use "
              "#kiln.external)";
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

Value StepLoweringBase::resultBuffer(Value result, Value rowSource,
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

LogicalResult StepLoweringBase::emitOp(Operation *op,
                                       ImplicitLocOpBuilder &b) {
  if (auto weight = dyn_cast<WeightOp>(op))
    return emitWeight(weight);
  if (std::optional<LogicalResult> lowered = lowerByPattern(op, b))
    return *lowered;
  // Scalar index arithmetic and constants carry over unchanged.
  bool scalar = llvm::all_of(op->getOperandTypes(),
                             [](Type t) { return t.isIntOrIndexOrFloat(); }) &&
                llvm::all_of(op->getResultTypes(),
                             [](Type t) { return t.isIntOrIndexOrFloat(); }) &&
                op->getNumRegions() == 0;
  if (!scalar)
    return op->emitOpError("is not supported by ") << pass;
  b.clone(*op, mapping);
  return success();
}

LogicalResult StepLoweringBase::run() {
  MLIRContext *ctx = oldFunc.getContext();
  if (!oldFunc.getBody().hasOneBlock())
    return oldFunc.emitOpError(pass) << " needs a single-block function";
  if (auto attr = oldFunc->getAttrOfType<IntegerAttr>(
          KilnDialect::MaxTokensAttrHelper::getNameStr()))
    maxTokens = attr.getInt();

  FailureOr<StepSignature> sig = lowerStepSignature(oldFunc, pass);
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
  auto fail = [&] {
    newFunc.erase();
    return failure();
  };

  ImplicitLocOpBuilder b(oldFunc.getLoc(), ctx);
  b.setInsertionPointToStart(entry);
  beginStep(*entry, *sig, b);

  // Results produced by a kiln op are computed straight into their buffer.
  auto ret = cast<func::ReturnOp>(oldFunc.getBody().front().getTerminator());
  for (auto [i, v] : llvm::enumerate(ret.getOperands())) {
    Operation *def = v.getDefiningOp();
    if (def && isa<KilnDialect>(def->getDialect()) && !destinations.count(v))
      destinations[v] = entry->getArgument(sig->outParam[i]);
  }
  if (failed(planScratch()))
    return fail();
  for (Operation &op : oldFunc.getBody().front().without_terminator()) {
    b.setLoc(op.getLoc());
    if (failed(emitOp(&op, b)))
      return fail();
  }
  // Results not computed in place are copied into their buffers.
  for (auto [i, v] : llvm::enumerate(ret.getOperands())) {
    Value dest = entry->getArgument(sig->outParam[i]);
    Value src = mapping.lookup(v);
    if (src != dest && failed(copyResult(ret, v, src, dest, b)))
      return fail();
  }
  finishStep(newFunc, b);
  func::ReturnOp::create(b);

  newFunc->setAttr(KilnDialect::ScratchBytesAttrHelper::getNameStr(),
                   b.getI64IntegerAttr(scratchBytes));
  if (weightFile)
    newFunc->setAttr(KilnDialect::WeightFileAttrHelper::getNameStr(),
                     b.getStringAttr(*weightFile));
  oldFunc.erase();
  return success();
}
