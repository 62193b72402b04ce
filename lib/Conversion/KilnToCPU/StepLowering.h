//===- StepLowering.h - lowering a step function to kernel calls -*- C++ -*-===//
//
// convert-kiln-to-cpu rewrites each step function (see Conversion/Passes.td)
// into calls of kernels on memrefs. StepLowering holds what every op's
// lowering shares: the new function's buffers, kiln-plan-memory's slots, the
// kernels' workspace in scratch, and the barriers between dependent kernels.
// Each op family lowers through KernelCallPatterns in <Family>.cpp,
// registered by its populate<Family>Patterns, next to the kernels they call:
// a new op is one pattern and its kernel builder in its family's file.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_CONVERSION_KILNTOCPU_STEPLOWERING_H
#define KILN_CONVERSION_KILNTOCPU_STEPLOWERING_H

#include "CPUKernels.h"
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

/// Where a kiln.weight's bytes are: an offset into the `%weights` buffer.
struct WeightRef {
  WeightType type;
  int64_t offset;
};

inline bool isRows16(WeightType type) {
  return type.getQuant() && type.getQuant().getLayout() == QuantLayout::Rows16;
}

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
  return cfg;
}

inline Value idx(ImplicitLocOpBuilder &b, int64_t v) {
  return arith::ConstantIndexOp::create(b, v);
}

class KernelCallPatterns;

class StepLowering {
public:
  StepLowering(func::FuncOp func, const KernelCallPatterns &patterns,
               KernelLibrary &kernels, bool int8Activations)
      : oldFunc(func), kernels(kernels), int8Activations(int8Activations),
        patterns(patterns) {}

  LogicalResult run();

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
  /// The buffer op's result is computed into: its out-parameter if returned,
  /// else its scratch slot.
  Value resultBuffer(Value result, Value rowSource, ImplicitLocOpBuilder &b);
  /// The lowered value (memref, index) of an original one.
  Value mapped(Value v) { return mapping.lookup(v); }
  /// Records that `result` now lives in `buffer`.
  void bind(Value result, Value buffer) { mapping.map(result, buffer); }
  FailureOr<WeightRef> weightOf(Value v, Operation *user);
  /// The decoder of a weight encoding, or an error on `op`.
  FailureOr<std::unique_ptr<WeightFormat>> formatOf(Operation *op,
                                                    WeightType type);
  /// Success if `value` (or `type`) is [tokens, features] f32 with a static
  /// feature dimension that is a multiple of 16; else an error on `op`.
  LogicalResult requireRowsF32(Operation *op, Value value);
  LogicalResult requireRowsF32(Operation *op, RankedTensorType type);
  /// Whether a linear layer over `weight` takes int8-quantized activations.
  bool usesInt8(WeightType weight);
  /// Whether `v` (rows of `dim` values) is the input of a linear layer that
  /// takes int8 activations: its producer then quantizes it as it writes it.
  bool feedsInt8Linear(Value v, int64_t dim);
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

  func::FuncOp oldFunc;
  KernelLibrary &kernels;
  bool int8Activations;
  /// Scratch region holding the int8-quantized input of the current linear
  /// layer, and the input it holds (consecutive layers over one input, like
  /// Q/K/V, quantize it once).
  int64_t q8Offset = 0, q8Bytes = 0;
  Value lastQuantized;
  IRMapping mapping;
  Value weightsArg, scratchArg, rtArg, tid, nth;

  /// RoPE cos/sin tables in scratch, one per frequency set and position.
  struct RopeTableKey {
    int64_t rotaryDim;
    float base, scale;
    Value position;
    bool operator==(const RopeTableKey &o) const {
      return rotaryDim == o.rotaryDim && base == o.base && scale == o.scale &&
             position == o.position;
    }
  };
  struct RopeTable {
    RopeTableKey key;
    int64_t offset, bytes;
    bool filled = false;
  };

private:
  const KernelCallPatterns &patterns;
  LogicalResult planScratch();
  LogicalResult emitOp(Operation *op, ImplicitLocOpBuilder &b);
  LogicalResult emitWeight(WeightOp op);
  Value castTo(Value v, Type type, ImplicitLocOpBuilder &b);
  void barrier(ImplicitLocOpBuilder &b);
  static bool overlaps(const Region &a, const Region &b);

  int64_t maxTokens = 0;
  SmallVector<RopeTable> ropeTables;
  SmallVector<Region> pendingReads, pendingWrites;
  llvm::DenseMap<Value, WeightRef> weights;
  /// Scratch slots as kiln-plan-memory placed them.
  llvm::DenseMap<Value, ScratchSlot> slots;
  /// Returned values and the buffer argument each is computed into.
  llvm::DenseMap<Value, Value> destinations;
  std::optional<std::string> weightFile;
  int64_t scratchBytes = 0;
};

/// Lowers one kind of op of a step function to kernel calls (or views): the
/// counterpart of an OpConversionPattern for a lowering whose buffers and
/// barriers StepLowering owns.
class KernelCallPatternBase {
public:
  virtual ~KernelCallPatternBase() = default;
  virtual TypeID getOpTypeID() const = 0;
  virtual LogicalResult lowerOp(Operation *op, StepLowering &step,
                                ImplicitLocOpBuilder &b) const = 0;
};

template <typename OpTy>
class KernelCallPattern : public KernelCallPatternBase {
public:
  virtual LogicalResult lower(OpTy op, StepLowering &step,
                              ImplicitLocOpBuilder &b) const = 0;
  TypeID getOpTypeID() const final { return TypeID::get<OpTy>(); }
  LogicalResult lowerOp(Operation *op, StepLowering &step,
                        ImplicitLocOpBuilder &b) const final {
    return lower(cast<OpTy>(op), step, b);
  }
};

/// The patterns of a lowering, one per op kind.
class KernelCallPatterns {
public:
  template <typename... Patterns> void add() {
    (addPattern(std::make_unique<Patterns>()), ...);
  }
  const KernelCallPatternBase *lookup(Operation *op) const {
    std::optional<RegisteredOperationName> name = op->getRegisteredInfo();
    return name ? byOp.lookup(name->getTypeID()) : nullptr;
  }

private:
  void addPattern(std::unique_ptr<KernelCallPatternBase> pattern) {
    byOp[pattern->getOpTypeID()] = pattern.get();
    owned.push_back(std::move(pattern));
  }
  llvm::DenseMap<TypeID, const KernelCallPatternBase *> byOp;
  std::vector<std::unique_ptr<KernelCallPatternBase>> owned;
};

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
