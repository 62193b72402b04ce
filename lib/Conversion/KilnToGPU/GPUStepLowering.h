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

class GPUStepLowering;
using GPUKernelPatternBase = StepPatternBase<GPUStepLowering>;
template <typename OpTy>
using GPUKernelPattern = StepPattern<OpTy, GPUStepLowering>;
using GPUKernelPatterns = StepPatterns<GPUStepLowering>;

class GPUStepLowering : public StepLoweringBase {
public:
  GPUStepLowering(func::FuncOp func, const GPUKernelPatterns &patterns,
                  GPUKernelLibrary &kernels)
      : StepLoweringBase(func, "convert-kiln-to-gpu"), kernels(kernels),
        patterns(patterns) {}

  /// Launches kernel `kernel` on `grid` (index values) blocks of `block`
  /// threads; `args` are memrefs (passed as their device address) and
  /// index values, in the kernel's argument order.
  void launch(int64_t kernel, std::array<Value, 3> grid,
              std::array<int64_t, 3> block, ArrayRef<Value> args,
              ImplicitLocOpBuilder &b);
  /// The device address of weight `w`'s bytes, as a byte memref.
  Value weightBuffer(const WeightRef &w, ImplicitLocOpBuilder &b);
  /// Rows of a [rows, features] (or [rows, heads, head_dim]) memref, at run
  /// time.
  Value rowsOf(Value memref, ImplicitLocOpBuilder &b);
  /// The decoder of weight `w`, or an error on `op`.
  FailureOr<std::unique_ptr<GPUWeightDecoder>> decoderOf(Operation *op,
                                                         const WeightRef &w);
  /// Success if `type` is [tokens, features] f32 with a static feature
  /// dimension that is a multiple of `multiple`; else an error on `op`.
  LogicalResult requireRowsF32(Operation *op, Type type, int64_t multiple);

  /// The step's workspace in scratch (bytes), shared by the ops whose
  /// patterns ask for one: each uses it only while its kernels run.
  Value workspace(ImplicitLocOpBuilder &b);
  /// Binds `result` to `y`, written by launch(nullptr). With `bits` (its
  /// kiln.quantize_output), a decode step (one row of `rows`) runs
  /// launch(workspace) instead, whose kernel also writes y quantized there
  /// (emitQuantizeQuad) for the linear layers that read it.
  void launchQuantizingOutput(Value result, Value y, Value rows, int64_t bits,
                              llvm::function_ref<void(Value)> launch,
                              ImplicitLocOpBuilder &b);
  /// ceil(n / d) on index values.
  static Value ceilDiv(Value n, int64_t d, ImplicitLocOpBuilder &b);
  /// The device address (i64) of a memref's first element.
  Value deviceAddress(Value memref, ImplicitLocOpBuilder &b);

  GPUKernelLibrary &kernels;
  /// The input whose quantized copy the workspace holds, and its width:
  /// consecutive linear layers over one input (Q, K and V) quantize it
  /// once. Any other op may use the workspace, so lowering one forgets it.
  Value quantizedInput;
  int64_t quantizedBits = 0;

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
  const GPUKernelPatterns &patterns;
  int64_t workspaceOffset = 0, workspaceBytes = 0;

  /// rt->launch and the stack arrays its arguments are passed in.
  Value launchFn, gridArray, blockArray, paramArray, valueArray;
};

void populateGPULinearPatterns(GPUKernelPatterns &patterns);
void populateGPUEmbeddingPatterns(GPUKernelPatterns &patterns);
void populateGPUNormPatterns(GPUKernelPatterns &patterns);
void populateGPURopePatterns(GPUKernelPatterns &patterns);
void populateGPUAttentionPatterns(GPUKernelPatterns &patterns);
void populateGPUElementwisePatterns(GPUKernelPatterns &patterns);
void populateGPUViewsPatterns(GPUKernelPatterns &patterns);
void populateGPUCollectivePatterns(GPUKernelPatterns &patterns);

/// The buffers every kiln.linear kernel takes, in order: x, w, [bias],
/// [residual], y (Linear.cpp's GEMVs; the GEMM adds its token count).
SmallVector<KernelArg> linearKernelArgs(bool bias, bool residual);
/// A linear kernel's epilogue: y[out] = v + bias[row] + residual[out], with
/// the terms the layer has.
void storeLinearResult(GPUKernelBuilder &kb, Value v, Value row, Value out,
                       bool bias, bool residual);

/// Bytes of one token's K activations quantized for the int8 decode GEMV
/// (QuantizedActivations, Linear.cpp): the codes, then per 32-value block
/// the scale, the codes' sum and their product.
int64_t quantizedActivationBytes(int64_t k);
/// Quantizes values 4 quad .. 4 quad + 3 (`values`, f32) of one token's K
/// activations into buffer argument "q" as ggml's q8_1 and the CPU's
/// emitQuantizeBlock do at `bits` bits: with m = 2^(bits-1) - 1, scale
/// amax / m rounded to f16, codes round-half-even(x * (m / amax)) clamped to
/// [-m, m]. Each aligned group of 8 lanes holds one 32-value block (quads
/// 8j .. 8j + 7) and shuffles, so the whole warp runs it; lanes where
/// `valid` is false store nothing.
void emitQuantizeQuad(GPUKernelBuilder &kb, ArrayRef<Value> values, Value quad,
                      Value valid, int64_t k, int64_t bits);
/// The width kiln-fuse asks `op` to quantize its [tokens, dim] result to as
/// it writes it (kiln.quantize_output), if its decode (one token) kernel can:
/// dim a multiple of 128; else 0.
int64_t quantizedOutputBits(Operation *op);

/// Success if the CUDA lowering has `rope`'s kind of rotation, else an error
/// on `op`.
LogicalResult checkGPURope(Operation *op, RopeAttr rope);
/// Launches the rope kernel: y = `rope` of x (y may be x) from first
/// position `position` (an index value), a position per row of x.
void launchRope(GPUStepLowering &step, RopeAttr rope, Value x, Value y,
                Value position, ImplicitLocOpBuilder &b);
/// In a kernel: the angle that rotates pair `pair` (an index value: dims
/// 2 pair, 2 pair + 1 for llama style) at `position` (an index value).
Value ropeAngle(GPUKernelBuilder &kb, RopeAttr rope, Value pair,
                Value position);

/// Prefill steps of at least this many tokens run kiln.linear on tensor
/// cores when the weight has a GEMM (LinearMma.cpp).
constexpr int64_t kLinearMmaMinTokens = 16;
/// Whether weight `w` has the tensor-core GEMM: Q4_0 or Q8_0 in
/// #kiln_gpu.split, rows a multiple of 32.
bool hasLinearMma(const WeightRef &w);
/// Launches it for `tokens` (>= kLinearMmaMinTokens) rows of x; `args` are
/// x, w, [bias], [residual], y, tokens; `maxTokens` bounds `tokens` (0: no
/// bound).
void launchLinearMma(GPUStepLowering &step, const WeightRef &w, bool bias,
                     bool residual, ArrayRef<Value> args, Value tokens,
                     int64_t maxTokens, ImplicitLocOpBuilder &b);

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
