//===- StepLowering.h - lowering a step function to kernel calls -*- C++ -*-===//
//
// convert-kiln-to-cpu rewrites each step function (see Conversion/Passes.td)
// into calls of kernels on memrefs. StepLowering adds to the shared frame
// (StepLoweringBase: the new function's buffers, kiln-plan-memory's slots)
// the kernels' workspace in scratch and the barriers between dependent
// kernels. Each op family lowers through KernelCallPatterns in <Family>.cpp,
// registered by its populate<Family>Patterns, next to the kernels they call:
// a new op is one pattern and its kernel builder in its family's file.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_CONVERSION_KILNTOCPU_STEPLOWERING_H
#define KILN_CONVERSION_KILNTOCPU_STEPLOWERING_H

#include "CPUKernels.h"
#include "Conversion/KilnToCPU/IR/KilnCPUDialect.h"
#include "Conversion/StepFunction.h"
#include "Kiln/IR/KilnDialect.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/IR/ImplicitLocOpBuilder.h"
#include "mlir/IR/IRMapping.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/DenseSet.h"

#include <memory>

namespace mlir::kiln {


/// The constants a rope kernel (and its table kernel) is built for.
inline RopeConfig ropeConfigOf(RopeAttr rope) {
  RopeConfig cfg;
  cfg.width = rope.getWidth();
  cfg.numHeads = rope.getNumHeads();
  cfg.headDim = rope.getHeadDim();
  cfg.rotaryDim = rope.getRotaryDim();
  cfg.neox = rope.getStyle() == RopeStyle::NeoX;
  cfg.freqBase = rope.getFreqBase().convertToFloat();
  cfg.freqScale = rope.getFreqScale().convertToFloat();
  if (DenseF32ArrayAttr factors = rope.getFreqFactors())
    cfg.freqFactors.assign(factors.asArrayRef().begin(),
                           factors.asArrayRef().end());
  cfg.magnitude = rope.getMagnitude().convertToFloat();
  return cfg;
}

inline Value idx(ImplicitLocOpBuilder &b, int64_t v) {
  return arith::ConstantIndexOp::create(b, v);
}

class StepLowering;
using KernelCallPatternBase = StepPatternBase<StepLowering>;
template <typename OpTy>
using KernelCallPattern = StepPattern<OpTy, StepLowering>;
using KernelCallPatterns = StepPatterns<StepLowering>;

class StepLowering : public StepLoweringBase {
public:
  StepLowering(func::FuncOp func, const KernelCallPatterns &patterns,
               KernelLibrary &kernels)
      : StepLoweringBase(func, "convert-kiln-to-cpu"), kernels(kernels),
        patterns(patterns) {}

  /// Bytes [begin, end) of a buffer a kernel reads or writes; a null buffer
  /// stands for any memory.
  struct Region {
    Value buffer;
    int64_t begin = 0, end = INT64_MAX;
  };
  /// The memory holding tensor `value` of the function being lowered.
  Region regionOf(Value value);
  Region scratchRegion(int64_t offset, int64_t size) {
    return {scratchArg, offset, offset + size};
  }
  /// Calls `kernel` on all threads. A barrier goes first only when the
  /// kernel reads what a kernel since the last barrier wrote, or writes what
  /// one read or wrote: independent kernels (Q, K and V projections) run
  /// back to back.
  void callKernel(func::FuncOp kernel, SmallVector<Value> args,
                  ImplicitLocOpBuilder &b, ArrayRef<Region> reads,
                  ArrayRef<Region> writes);
  /// The decoder of a weight encoding, or an error on `op`.
  FailureOr<std::unique_ptr<WeightFormat>> formatOf(Operation *op,
                                                    WeightType type);
  /// Success if `value` (or `type`) is [tokens, features] f32 with a static
  /// feature dimension that is a multiple of `multipleOf` (16: the kernels'
  /// vector width); else an error on `op`.
  LogicalResult requireRowsF32(Operation *op, Value value,
                               int64_t multipleOf = 16);
  LogicalResult requireRowsF32(Operation *op, RankedTensorType type,
                               int64_t multipleOf = 16);
  /// Whether kiln-fuse gave `linear` quantized activations: int8 codes of
  /// activation_bits (2-8) bits, multiplied by the integer kernels.
  static bool usesInt8(LinearOp linear) {
    return linear.getActivationBits().has_value();
  }
  /// The width kiln-fuse asked `op`'s kernel to quantize its result to as it
  /// writes it, for the linear layers that read it; 0 for none.
  static int64_t quantizedOutputBits(Operation *op) {
    auto helper = KilnDialect::QuantizeOutputAttrHelper(op->getContext());
    return helper.isAttrPresent(op) ? helper.getAttr(op).getInt() : 0;
  }
  /// kiln-fuse's rope of `linear`, if its kernel applies it in the epilogue:
  /// a rows16 kernel rotating whole vectors of pairs. Else null, and the rope
  /// is applied after the product.
  RopeAttr ropeEpilogueOf(LinearOp linear);
  struct RopeTable;
  /// The cos/sin table of `rope`'s frequencies at `position`, filled by a
  /// kernel the first time a step needs it (`user` gets the errors).
  /// `rows` is any buffer with the step's token count as its first dim.
  FailureOr<RopeTable *> ropeTableFor(Operation *user, RopeAttr rope,
                                      Value position, Value rows,
                                      ImplicitLocOpBuilder &b);

  KernelLibrary &kernels;
  /// Scratch region holding the int8-quantized input of the current linear
  /// layer, the input it holds and its width (consecutive layers over one
  /// input, like Q/K/V, quantize it once).
  int64_t q8Offset = 0, q8Bytes = 0;
  Value lastQuantized;
  int64_t lastQuantizedBits = 0;
  Value tid, nth;

  /// RoPE cos/sin tables in scratch, one per frequency set and position.
  struct RopeTableKey {
    int64_t rotaryDim;
    float base, scale;
    Value position; // a first position, or one per token
    DenseF32ArrayAttr factors;
    float magnitude;
    bool operator==(const RopeTableKey &o) const {
      return rotaryDim == o.rotaryDim && base == o.base && scale == o.scale &&
             position == o.position && factors == o.factors &&
             magnitude == o.magnitude;
    }
  };
  struct RopeTable {
    RopeTableKey key;
    int64_t offset, bytes;
    bool filled = false;
  };

protected:
  void beginStep(Block &entry, const StepSignature &sig,
                 ImplicitLocOpBuilder &b) override;
  LogicalResult planScratch() override;
  std::optional<LogicalResult> lowerByPattern(Operation *op,
                                              ImplicitLocOpBuilder &b) override;
  LogicalResult copyResult(func::ReturnOp ret, Value v, Value src, Value dest,
                           ImplicitLocOpBuilder &b) override;
  void finishStep(func::FuncOp newFunc, ImplicitLocOpBuilder &b) override;

private:
  const KernelCallPatterns &patterns;
  Value castTo(Value v, Type type, ImplicitLocOpBuilder &b);
  void barrier(ImplicitLocOpBuilder &b);
  static bool overlaps(const Region &a, const Region &b);

  SmallVector<RopeTable> ropeTables;
  SmallVector<Region> pendingReads, pendingWrites;
};

/// Success if a sparse kernel reads `type`, a weight stored compressed
/// (SparseLinear.cpp); else a one-line error on `op`.
LogicalResult checkSparseLinearWeight(Operation *op, WeightType type);
/// The int8-activation linear kernel over a compressed 2:4 weight that
/// checkSparseLinearWeight accepted: the signature of the dense one.
func::FuncOp buildSparseLinearInt8Kernel(KernelLibrary &library,
                                         WeightType type, int64_t k, int64_t n,
                                         bool hasBias);

/// Calls the rope kernel rotating tensor `input` into `result` (both
/// lowered already; they may share a buffer) at `position`.
LogicalResult emitRope(StepLowering &step, Operation *op, RopeAttr rope,
                       Value position, Value input, Value result,
                       ImplicitLocOpBuilder &b);

void populateLinearPatterns(KernelCallPatterns &patterns);
void populateEmbeddingPatterns(KernelCallPatterns &patterns);
void populateNormPatterns(KernelCallPatterns &patterns);
void populateRopePatterns(KernelCallPatterns &patterns);
void populateAttentionPatterns(KernelCallPatterns &patterns);
void populateElementwisePatterns(KernelCallPatterns &patterns);
void populateViewsPatterns(KernelCallPatterns &patterns);
void populatePositionEmbeddingPatterns(KernelCallPatterns &patterns);
void populatePoolingPatterns(KernelCallPatterns &patterns);
void populateCollectivePatterns(KernelCallPatterns &patterns);

} // namespace mlir::kiln

#endif // KILN_CONVERSION_KILNTOCPU_STEPLOWERING_H
