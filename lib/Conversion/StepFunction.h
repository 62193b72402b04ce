//===- StepFunction.h - what every target's step lowering shares -*- C++ -*-===//
//
// A step function (see KilnDialect::isStepFunction) becomes, on every target,
// a function on memrefs with the signature of include/kiln/runtime/HostABI.h:
// tensors become memrefs, the KV cache a byte buffer, results out-parameters
// (unless kiln.tied_results ties them to an argument), then %weights,
// %scratch, %rt, %tid, %nth. Its intermediate tensors live at the scratch
// offsets kiln-plan-memory wrote as kiln.slot. convert-kiln-to-cpu and
// convert-kiln-to-gpu both read the two from here.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_CONVERSION_STEPFUNCTION_H
#define KILN_CONVERSION_STEPFUNCTION_H

#include "Kiln/IR/KilnDialect.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "llvm/ADT/DenseMap.h"

namespace mlir::kiln {

/// The lowered signature of a step function.
struct StepSignature {
  FunctionType type;
  /// For each result, the argument its buffer is.
  SmallVector<unsigned> outParam;
  /// Index of %weights; %scratch, %rt, %tid and %nth follow it.
  unsigned weightsIndex = 0;
};

/// The memref type a tensor (or KV cache) argument of a step function is
/// passed as; other types unchanged.
Type lowerStepType(Type type);

/// The lowered signature of `func`, or an error on it (`pass` names the
/// lowering in the message).
FailureOr<StepSignature> lowerStepSignature(func::FuncOp func, StringRef pass);

/// Bytes [offset, offset + size) of scratch holding one tensor value.
struct ScratchSlot {
  int64_t offset = 0, size = 0;
};

/// kiln-plan-memory's slots of `func`'s body and kiln.planned_bytes, or an
/// error on `func` (no plan) or on the op whose slot lies past the plan.
FailureOr<int64_t> readScratchPlan(func::FuncOp func, StringRef pass,
                                   llvm::DenseMap<Value, ScratchSlot> &slots);

} // namespace mlir::kiln

#endif // KILN_CONVERSION_STEPFUNCTION_H
