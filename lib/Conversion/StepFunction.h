//===- StepFunction.h - what every target's step lowering shares -*- C++ -*-===//
//
// A step function (see KilnDialect::isStepFunction) becomes, on every target,
// a function on memrefs with the signature of include/kiln/runtime/HostABI.h:
// tensors become memrefs, the KV cache a byte buffer, results out-parameters
// (unless kiln.tied_results ties them to an argument), then %weights,
// %scratch, %rt, %tid, %nth. Its intermediate tensors live at the scratch
// offsets kiln-plan-memory wrote as kiln.slot. convert-kiln-to-cpu and
// convert-kiln-to-gpu both read the two from here, and both lower a step
// function through StepLoweringBase: the same walk over its ops, each kiln op
// through a StepPattern of the target's, one per op family.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_CONVERSION_STEPFUNCTION_H
#define KILN_CONVERSION_STEPFUNCTION_H

#include "Kiln/IR/KilnDialect.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/IR/ImplicitLocOpBuilder.h"
#include "llvm/ADT/DenseMap.h"

#include <memory>
#include <optional>
#include <string>
#include <vector>

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

/// Where a kiln.weight's bytes are: an offset into the `%weights` buffer.
struct WeightRef {
  WeightType type;
  int64_t offset;
};

/// Rewrites one step function into its lowered form: the new function with
/// the step signature, its arguments mapped, returned values computed into
/// their out-parameters, each op lowered in order (kiln.weight ops become
/// offsets into %weights, scalar arithmetic is cloned, kiln ops go to the
/// target's patterns), then the results copied where they were not computed
/// in place. A target fills in the hooks.
class StepLoweringBase {
public:
  StepLoweringBase(func::FuncOp func, StringRef pass)
      : oldFunc(func), pass(pass) {}
  virtual ~StepLoweringBase() = default;

  LogicalResult run();

  FailureOr<WeightRef> weightOf(Value v, Operation *user);
  /// The buffer op's result is computed into: its out-parameter if returned,
  /// else a view of its scratch slot.
  Value resultBuffer(Value result, Value rowSource, ImplicitLocOpBuilder &b);
  /// The token bound of the step (kiln.max_tokens; 0 if it has none).
  int64_t getMaxTokens() const { return maxTokens; }
  /// The lowered value (memref, index) of an original one.
  Value mapped(Value v) { return mapping.lookup(v); }
  /// Records that `result` now lives in `buffer`.
  void bind(Value result, Value buffer) { mapping.map(result, buffer); }

  func::FuncOp oldFunc;
  IRMapping mapping;
  Value weightsArg, scratchArg, rtArg;

protected:
  /// The prologue of the lowered function, after its arguments are mapped.
  virtual void beginStep(Block &entry, const StepSignature &sig,
                         ImplicitLocOpBuilder &b) {}
  /// Reads kiln-plan-memory's slots into `slots` and sets `scratchBytes`
  /// (a target appends its kernels' workspace).
  virtual LogicalResult planScratch();
  /// Lowers `op` through the target's pattern for it; nullopt if it has
  /// none.
  virtual std::optional<LogicalResult>
  lowerByPattern(Operation *op, ImplicitLocOpBuilder &b) = 0;
  /// Copies returned value `v`, lowered to `src`, into its out-parameter.
  virtual LogicalResult copyResult(func::ReturnOp ret, Value v, Value src,
                                   Value dest, ImplicitLocOpBuilder &b) = 0;
  /// The epilogue before the return, and the target's attributes on the
  /// lowered function.
  virtual void finishStep(func::FuncOp newFunc, ImplicitLocOpBuilder &b) {}

  StringRef pass;
  /// The token bound the scratch plan was made for (kiln.max_tokens).
  int64_t maxTokens = 0;
  llvm::DenseMap<Value, WeightRef> weights;
  /// Scratch slots as kiln-plan-memory placed them.
  llvm::DenseMap<Value, ScratchSlot> slots;
  /// Returned values and the buffer argument each is computed into.
  llvm::DenseMap<Value, Value> destinations;
  std::optional<std::string> weightFile;
  int64_t scratchBytes = 0;

private:
  LogicalResult emitOp(Operation *op, ImplicitLocOpBuilder &b);
  LogicalResult emitWeight(WeightOp op);
};

/// Lowers one kind of op of a step function for the lowering `Step`: the
/// counterpart of an OpConversionPattern for a lowering that owns the
/// buffers (and barriers or launches) itself.
template <typename Step> class StepPatternBase {
public:
  virtual ~StepPatternBase() = default;
  virtual TypeID getOpTypeID() const = 0;
  virtual LogicalResult lowerOp(Operation *op, Step &step,
                                ImplicitLocOpBuilder &b) const = 0;
  /// Bytes of scratch `op`'s kernels need while it runs (its workspace),
  /// besides its result.
  virtual int64_t workspaceBytesOf(Operation *op) const { return 0; }
};

template <typename OpTy, typename Step>
class StepPattern : public StepPatternBase<Step> {
public:
  virtual LogicalResult lower(OpTy op, Step &step,
                              ImplicitLocOpBuilder &b) const = 0;
  TypeID getOpTypeID() const final { return TypeID::get<OpTy>(); }
  LogicalResult lowerOp(Operation *op, Step &step,
                        ImplicitLocOpBuilder &b) const final {
    return lower(cast<OpTy>(op), step, b);
  }
  virtual int64_t workspaceBytes(OpTy op) const { return 0; }
  int64_t workspaceBytesOf(Operation *op) const final {
    return workspaceBytes(cast<OpTy>(op));
  }
};

/// The patterns of a lowering, one per op kind.
template <typename Step> class StepPatterns {
public:
  template <typename... Patterns> void add() {
    (addPattern(std::make_unique<Patterns>()), ...);
  }
  const StepPatternBase<Step> *lookup(Operation *op) const {
    std::optional<RegisteredOperationName> name = op->getRegisteredInfo();
    return name ? byOp.lookup(name->getTypeID()) : nullptr;
  }

private:
  void addPattern(std::unique_ptr<StepPatternBase<Step>> pattern) {
    byOp[pattern->getOpTypeID()] = pattern.get();
    owned.push_back(std::move(pattern));
  }
  llvm::DenseMap<TypeID, const StepPatternBase<Step> *> byOp;
  std::vector<std::unique_ptr<StepPatternBase<Step>>> owned;
};

} // namespace mlir::kiln

#endif // KILN_CONVERSION_STEPFUNCTION_H
