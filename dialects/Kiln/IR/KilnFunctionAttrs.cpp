//===- KilnFunctionAttrs.cpp - the kiln.* attributes of functions ---------===//
//
// The discardable attributes through which the importer, the lowerings and
// the driver agree on a step function (KilnDialect.td): verified here, once,
// so that every stage can rely on them.
//
//===----------------------------------------------------------------------===//

#include "Kiln/IR/KilnDialect.h"

#include "mlir/Interfaces/FunctionInterfaces.h"

using namespace mlir;
using namespace mlir::kiln;

static LogicalResult verifyInteger(Operation *op, NamedAttribute attr,
                                   int64_t min) {
  auto value = dyn_cast<IntegerAttr>(attr.getValue());
  if (!value || !value.getType().isInteger(64) || value.getInt() < min)
    return op->emitOpError("attribute '")
           << attr.getName().getValue() << "' must be an i64 integer >= "
           << min << ", got " << attr.getValue();
  return success();
}

static LogicalResult verifyTiedResults(Operation *op, ArrayAttr tied) {
  auto fn = dyn_cast<FunctionOpInterface>(op);
  if (!fn)
    return op->emitOpError("attribute 'kiln.tied_results' belongs on a "
                           "function");
  ArrayRef<Type> inputs = fn.getArgumentTypes(), results = fn.getResultTypes();
  if (tied.size() != results.size())
    return op->emitOpError("attribute 'kiln.tied_results' needs one entry "
                           "per result (")
           << results.size() << "), got " << tied.size();
  for (auto [i, entry] : llvm::enumerate(tied)) {
    auto index = dyn_cast<IntegerAttr>(entry);
    int64_t arg = index ? index.getInt() : -2;
    if (arg < -1 || arg >= int64_t(inputs.size()) ||
        (arg >= 0 && inputs[arg] != results[i]))
      return op->emitOpError("attribute 'kiln.tied_results' entry ")
             << i << " must be -1 or the index of an argument of the "
             << "result's type " << results[i] << ", got " << entry;
  }
  return success();
}

/// kiln.quantize_output = bits: on a kiln op with one [tokens, dim] result
/// that a linear layer with the same activation_bits takes as its input.
static LogicalResult verifyQuantizeOutput(Operation *op, NamedAttribute attr) {
  auto bits = dyn_cast<IntegerAttr>(attr.getValue());
  if (!bits || !bits.getType().isInteger(64) || bits.getInt() < 2 ||
      bits.getInt() > 8)
    return op->emitOpError("attribute 'kiln.quantize_output' must be an i64 "
                           "bit width in [2, 8], got ")
           << attr.getValue();
  auto result = op->getNumResults() == 1
                    ? dyn_cast<RankedTensorType>(op->getResult(0).getType())
                    : RankedTensorType();
  if (!isa<KilnDialect>(op->getDialect()) || !result ||
      result.getRank() != 2 || result.isDynamicDim(1) ||
      result.getDimSize(1) % 32 != 0)
    return op->emitOpError("attribute 'kiln.quantize_output' belongs on a "
                           "kiln op with one [tokens, 32 * n] result");
  bool feedsLinear = llvm::any_of(op->getResult(0).getUsers(), [&](Operation *u) {
    auto linear = dyn_cast<LinearOp>(u);
    return linear && linear.getInput() == op->getResult(0) &&
           linear.getActivationBits() == uint64_t(bits.getInt());
  });
  if (!feedsLinear)
    return op->emitOpError("has 'kiln.quantize_output' = ")
           << bits.getInt() << " but no linear layer with activation_bits = "
           << bits.getInt() << " takes its result";
  return success();
}

bool KilnDialect::isStepFunction(Operation *op) {
  auto fn = dyn_cast<FunctionOpInterface>(op);
  if (!fn || fn.isExternal())
    return false;
  auto isKilnType = [](Type t) { return isa<WeightType, KVCacheType>(t); };
  if (llvm::any_of(fn.getArgumentTypes(), isKilnType))
    return true;
  return fn->walk([](Operation *inner) {
             return isa<KilnDialect>(inner->getDialect())
                        ? WalkResult::interrupt()
                        : WalkResult::advance();
           })
      .wasInterrupted();
}

LogicalResult KilnDialect::verifyOperationAttribute(Operation *op,
                                                    NamedAttribute attr) {
  StringRef name = attr.getName().getValue();
  if (name == MaxTokensAttrHelper::getNameStr())
    return verifyInteger(op, attr, 1);
  if (name == PlannedBytesAttrHelper::getNameStr())
    return verifyInteger(op, attr, 0);
  if (name == SlotAttrHelper::getNameStr()) {
    // [offset >= 0, size > 0] per result, [-1, 0] for a result with none.
    auto slot = dyn_cast<DenseI64ArrayAttr>(attr.getValue());
    bool valid = slot && slot.size() == 2 * int64_t(op->getNumResults());
    for (int64_t i = 0; valid && i < slot.size(); i += 2)
      valid = (slot[i] >= 0 && slot[i + 1] > 0) ||
              (slot[i] == -1 && slot[i + 1] == 0);
    if (!valid)
      return op->emitOpError("attribute 'kiln.slot' must hold an [offset >= "
                             "0, size > 0] pair per result ([-1, 0]: none), "
                             "got ")
             << attr.getValue();
    return success();
  }
  if (name == ScratchBytesAttrHelper::getNameStr())
    return verifyInteger(op, attr, 0);
  if (name == TiedResultsAttrHelper::getNameStr()) {
    auto tied = dyn_cast<ArrayAttr>(attr.getValue());
    if (!tied)
      return op->emitOpError("attribute 'kiln.tied_results' must be an "
                             "array of argument indices, got ")
             << attr.getValue();
    return verifyTiedResults(op, tied);
  }
  if (name == WeightFileAttrHelper::getNameStr()) {
    auto file = dyn_cast<StringAttr>(attr.getValue());
    if (!file || file.getValue().empty())
      return op->emitOpError("attribute 'kiln.weight_file' must be a "
                             "non-empty string, got ")
             << attr.getValue();
    return success();
  }
  if (name == CudaKernelsAttrHelper::getNameStr()) {
    auto names = dyn_cast<ArrayAttr>(attr.getValue());
    if (!names || !llvm::all_of(names, [](Attribute a) {
          auto s = dyn_cast<StringAttr>(a);
          return s && !s.getValue().empty();
        }))
      return op->emitOpError("attribute 'kiln.cuda_kernels' must be an "
                             "array of non-empty kernel names, got ")
             << attr.getValue();
    return success();
  }
  if (name == QuantizeOutputAttrHelper::getNameStr())
    return verifyQuantizeOutput(op, attr);
  return op->emitOpError("unknown kiln attribute '") << name
         << "' (kiln.max_tokens, kiln.tied_results, kiln.slot, "
            "kiln.planned_bytes, kiln.scratch_bytes, kiln.weight_file, "
            "kiln.cuda_kernels and kiln.quantize_output are defined)";
}
