//===- GPUStepLowering.h - a step function to kernel launches ---*- C++ -*-===//
//
// convert-kiln-to-gpu rewrites each step function into a host function with
// the CPU step's signature (StepFunction.h) whose memrefs hold device
// addresses, and whose body only computes launch parameters and calls
// rt->launch (HostABI.h) for kernels in the gpu.module of GPUKernels.h.
// Launches run in order on the runtime's stream, so no barriers are needed.
// Each op family lowers through a GPUKernelPattern in <Family>.cpp, which
// also builds the family's kernels.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_CONVERSION_KILNTOGPU_GPUSTEPLOWERING_H
#define KILN_CONVERSION_KILNTOGPU_GPUSTEPLOWERING_H

#include "GPUKernels.h"
#include "Conversion/StepFunction.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/IRMapping.h"

#include <array>

namespace mlir::kiln {

class GPUKernelPatterns;

class GPUStepLowering {
public:
  GPUStepLowering(func::FuncOp func, const GPUKernelPatterns &patterns,
                  GPUKernelLibrary &kernels)
      : oldFunc(func), kernels(kernels), patterns(patterns) {}

  LogicalResult run();

  /// Launches kernel `kernel` on `grid` (index values) blocks of `block`
  /// threads; `args` are memrefs (passed as their device address) and
  /// index values, in the kernel's argument order.
  void launch(int64_t kernel, std::array<Value, 3> grid,
              std::array<int64_t, 3> block, ArrayRef<Value> args,
              ImplicitLocOpBuilder &b);
  /// The device address of weight `w`'s bytes, as a byte memref.
  struct WeightRef {
    WeightType type;
    int64_t offset;
  };
  FailureOr<WeightRef> weightOf(Value v, Operation *user);
  Value weightBuffer(const WeightRef &w, ImplicitLocOpBuilder &b);
  /// The buffer op's result is computed into: its out-parameter if returned,
  /// else a view of its scratch slot.
  Value resultBuffer(Value result, Value rowSource, ImplicitLocOpBuilder &b);
  /// Rows of a [rows, features] (or [rows, heads, head_dim]) memref, at run
  /// time.
  Value rowsOf(Value memref, ImplicitLocOpBuilder &b);
  Value mapped(Value v) { return mapping.lookup(v); }
  void bind(Value result, Value buffer) { mapping.map(result, buffer); }
  /// The decoder of `type`, or an error on `op`.
  FailureOr<std::unique_ptr<GPUWeightDecoder>> decoderOf(Operation *op,
                                                         WeightType type);
  /// Success if `type` is [tokens, features] f32 with a static feature
  /// dimension that is a multiple of `multiple`; else an error on `op`.
  LogicalResult requireRowsF32(Operation *op, Type type, int64_t multiple);

  /// ceil(n / d) on index values.
  static Value ceilDiv(Value n, int64_t d, ImplicitLocOpBuilder &b);

  func::FuncOp oldFunc;
  GPUKernelLibrary &kernels;
  IRMapping mapping;
  Value weightsArg, scratchArg, rtArg;

private:
  const GPUKernelPatterns &patterns;
  LogicalResult emitOp(Operation *op, ImplicitLocOpBuilder &b);
  LogicalResult emitWeight(WeightOp op);
  /// The device address (i64) of a memref's first element.
  Value deviceAddress(Value memref, ImplicitLocOpBuilder &b);
  void prepareLaunches(ImplicitLocOpBuilder &b);

  llvm::DenseMap<Value, WeightRef> weights;
  llvm::DenseMap<Value, ScratchSlot> slots;
  llvm::DenseMap<Value, Value> destinations;
  std::optional<std::string> weightFile;
  int64_t scratchBytes = 0;
  /// rt->launch and the stack arrays its arguments are passed in.
  Value launchFn, gridArray, blockArray, paramArray, valueArray;
};

/// Lowers one kind of op of a step function to launches (or views).
class GPUKernelPatternBase {
public:
  virtual ~GPUKernelPatternBase() = default;
  virtual TypeID getOpTypeID() const = 0;
  virtual LogicalResult lowerOp(Operation *op, GPUStepLowering &step,
                                ImplicitLocOpBuilder &b) const = 0;
};

template <typename OpTy>
class GPUKernelPattern : public GPUKernelPatternBase {
public:
  virtual LogicalResult lower(OpTy op, GPUStepLowering &step,
                              ImplicitLocOpBuilder &b) const = 0;
  TypeID getOpTypeID() const final { return TypeID::get<OpTy>(); }
  LogicalResult lowerOp(Operation *op, GPUStepLowering &step,
                        ImplicitLocOpBuilder &b) const final {
    return lower(cast<OpTy>(op), step, b);
  }
};

class GPUKernelPatterns {
public:
  template <typename... Patterns> void add() {
    (addPattern(std::make_unique<Patterns>()), ...);
  }
  const GPUKernelPatternBase *lookup(Operation *op) const {
    std::optional<RegisteredOperationName> name = op->getRegisteredInfo();
    return name ? byOp.lookup(name->getTypeID()) : nullptr;
  }

private:
  void addPattern(std::unique_ptr<GPUKernelPatternBase> pattern) {
    byOp[pattern->getOpTypeID()] = pattern.get();
    owned.push_back(std::move(pattern));
  }
  llvm::DenseMap<TypeID, const GPUKernelPatternBase *> byOp;
  std::vector<std::unique_ptr<GPUKernelPatternBase>> owned;
};

void populateGPULinearPatterns(GPUKernelPatterns &patterns);
void populateGPUEmbeddingPatterns(GPUKernelPatterns &patterns);
void populateGPUNormPatterns(GPUKernelPatterns &patterns);
void populateGPURopePatterns(GPUKernelPatterns &patterns);
void populateGPUAttentionPatterns(GPUKernelPatterns &patterns);
void populateGPUElementwisePatterns(GPUKernelPatterns &patterns);
void populateGPUViewsPatterns(GPUKernelPatterns &patterns);

/// The elementwise kernel computing `kind` ("add", "mul", "swiglu",
/// "geglu_tanh", "geglu_erf", "silu", "gelu_tanh", "gelu_erf", or "copy",
/// which copies returned values into their buffers) over a count of values.
int64_t elementwiseKernel(GPUKernelLibrary &kernels, StringRef kind);
/// Launches elementwise kernel `kernel` over `rows` rows of `width` values:
/// `buffers` are its inputs, then its output.
void launchElementwise(GPUStepLowering &step, int64_t kernel, int64_t width,
                       ArrayRef<Value> buffers, Value rows,
                       ImplicitLocOpBuilder &b);

} // namespace mlir::kiln

#endif // KILN_CONVERSION_KILNTOGPU_GPUSTEPLOWERING_H
