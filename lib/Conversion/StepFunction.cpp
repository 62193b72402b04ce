//===- StepFunction.cpp - what every target's step lowering shares --------===//

#include "Conversion/StepFunction.h"

#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
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
