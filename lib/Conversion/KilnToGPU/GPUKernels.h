//===- GPUKernels.h - device kernels of convert-kiln-to-gpu ------*- C++ -*-===//
//
// Every kernel is a `gpu.func` in one `gpu.module @kiln_kernels`; its index
// there is its index in the manifest's `cuda.kernels`, the number the host
// step passes to rt->launch. A kernel's name derives from every constant that
// shapes it, so a second op with the same constants reuses it.
//
// Kernel arguments follow the bare-pointer convention of HostABI.h's launch:
// a buffer argument is one device pointer, declared as a byte memref of a
// fixed, never-checked bound (the convention needs static shapes) that the
// kernel views with the element type it loads; sizes known only at run time
// (the token count) are index arguments.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_CONVERSION_KILNTOGPU_GPUKERNELS_H
#define KILN_CONVERSION_KILNTOGPU_GPUKERNELS_H

#include "Kiln/IR/KilnDialect.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/ImplicitLocOpBuilder.h"
#include "llvm/ADT/StringMap.h"

#include <functional>
#include <memory>
#include <string>

namespace mlir::kiln {

constexpr int64_t kWarpSize = 32;
/// The static bound of a buffer argument (1 TiB): larger than any buffer,
/// never checked; it only lets the bare-pointer convention apply.
constexpr int64_t kDeviceBufferBytes = int64_t(1) << 40;

/// How a kernel argument is passed.
enum class KernelArgKind { Buffer, Index };

struct KernelArg {
  std::string name;
  KernelArgKind kind;
};

class GPUKernelBuilder;

/// A float in a kernel name: %g with '.' as 'p' and '-' as 'm' (1e-05 ->
/// "1em05").
std::string floatKey(float value);

/// The gpu.module of a step's kernels, each built once.
class GPUKernelLibrary {
public:
  explicit GPUKernelLibrary(ModuleOp module);

  /// The index of kernel `name` with arguments `args`, whose body `build`
  /// emits the first time the name is asked for.
  int64_t get(const std::string &name, ArrayRef<KernelArg> args,
              llvm::function_ref<void(GPUKernelBuilder &)> build);
  ArrayRef<std::string> getNames() const { return names; }
  gpu::GPUModuleOp getModule() const { return module; }

private:
  gpu::GPUModuleOp module;
  llvm::StringMap<int64_t> indexOf;
  std::vector<std::string> names;
};

/// One f32 PTX instruction `op` ("sqrt.rn.f32") of x, as inline PTX: for
/// instructions convert-gpu-to-nvvm would otherwise make libdevice calls of.
Value unaryPTX(OpBuilder &b, Location loc, StringRef op, Value x);

/// Emits a kernel body: named arguments, typed views of buffers, thread
/// indices, warp reductions and the arithmetic the kernels share.
class GPUKernelBuilder {
public:
  GPUKernelBuilder(gpu::GPUFuncOp func, ArrayRef<KernelArg> args);

  ImplicitLocOpBuilder b;

  Value arg(StringRef name);
  /// Buffer argument `name` seen as an array of `element` (f32, i32,
  /// vector<4xf32>, ...).
  Value view(StringRef name, Type element) { return view(arg(name), element); }
  /// A byte buffer (an argument or shared memory) seen as an array of
  /// `element`, in the buffer's memory space.
  Value view(Value bytes, Type element);
  /// A shared-memory array of `count` `element`s, 16-byte aligned.
  Value sharedArray(int64_t count, Type element);
  /// Waits for every thread of the block (gpu.barrier).
  void barrier() { gpu::BarrierOp::create(b); }
  Value xorI(Value x, Value y) { return arith::XOrIOp::create(b, x, y); }
  Value andI(Value x, Value y) { return arith::AndIOp::create(b, x, y); }
  Value shrU(Value x, Value y) { return arith::ShRUIOp::create(b, x, y); }

  Value threadIdx() { return gpu::ThreadIdOp::create(b, gpu::Dimension::x); }
  Value blockIdx(gpu::Dimension d) { return gpu::BlockIdOp::create(b, d); }
  Value lane() { return rem(threadIdx(), idx(kWarpSize)); }
  Value warp() { return div(threadIdx(), idx(kWarpSize)); }

  Value idx(int64_t v) { return arith::ConstantIndexOp::create(b, v); }
  Value i32(int64_t v) { return arith::ConstantIntOp::create(b, v, 32); }
  Value f(float v) {
    return arith::ConstantFloatOp::create(b, b.getF32Type(), APFloat(v));
  }
  Value add(Value x, Value y);
  Value sub(Value x, Value y);
  Value mul(Value x, Value y);
  Value div(Value x, Value y);
  Value rem(Value x, Value y) { return arith::RemUIOp::create(b, x, y); }
  /// x * y + acc in one rounding (fma.rn.f32; math.fma would become a
  /// libdevice call).
  Value fma(Value x, Value y, Value acc);
  Value maxf(Value x, Value y) { return arith::MaximumFOp::create(b, x, y); }
  Value ult(Value x, Value y) {
    return arith::CmpIOp::create(b, arith::CmpIPredicate::ult, x, y);
  }
  Value minu(Value x, Value y) { return arith::MinUIOp::create(b, x, y); }
  Value select(Value c, Value x, Value y) {
    return arith::SelectOp::create(b, c, x, y);
  }
  Value toF32(Value i); // index or integer, unsigned
  Value sqrt(Value x);
  Value exp(Value x);

  Value load(Value memref, Value i) {
    return memref::LoadOp::create(b, memref, ValueRange{i});
  }
  void store(Value v, Value memref, Value i) {
    memref::StoreOp::create(b, v, memref, ValueRange{i});
  }

  /// Sum (or max) of `v` over the 32 lanes of the warp, in every lane.
  Value warpSum(Value v) { return laneGroupSum(v, kWarpSize); }
  Value warpMax(Value v) { return laneGroupMax(v, kWarpSize); }
  /// The same over each aligned group of `lanes` (a power of two) lanes.
  Value laneGroupSum(Value v, int64_t lanes);
  Value laneGroupMax(Value v, int64_t lanes);

  /// for (i = lo; i < hi; i += step) with loop-carried `inits`.
  scf::ForOp loop(Value lo, Value hi, Value step, ValueRange inits,
                  llvm::function_ref<SmallVector<Value>(Value, ValueRange)> body);
  void forEach(Value lo, Value hi, Value step,
               llvm::function_ref<void(Value)> body);
  /// Emits `then` where `cond` holds.
  void ifThen(Value cond, llvm::function_ref<void()> then);

private:
  gpu::GPUFuncOp func;
  llvm::StringMap<unsigned> argIndex;
};

/// A chunk's values before their block's scale: value i = scale * codes[i]
/// (+ min, when there is one).
struct ScaledChunk {
  SmallVector<Value> codes;
  Value scale, min;
};

/// A chunk's codes as the i32 words they are stored in, with its scale (and
/// min) as f32: value i = scale * (code i - offset) (+ min). 4-bit codes
/// (`bits` = 4): byte j of word w holds value 4w + j in its low nibble and
/// 16 + 4w + j in its high one; 8-bit codes: signed byte j of word w is
/// value 4w + j.
struct CodeChunk {
  SmallVector<Value> words;
  Value scale, min;
  int64_t bits, offset;
};

/// How one weight encoding turns bytes into f32 values on the device, one
/// 32-value chunk at a time (a ggml block, or a 32-value sub-block of a
/// K-quant super-block).
class GPUWeightDecoder {
public:
  static constexpr int64_t kChunkValues = 32;
  virtual ~GPUWeightDecoder() = default;
  /// A short name for kernel symbols ("q4_1", "f32").
  StringRef getName() const { return name; }
  int64_t getRowBytes() const { return rowBytes; }
  /// The 32 values of chunk `chunk` of the row that starts at byte `rowBase`
  /// of `bytes` (a buffer argument, or a row staged in shared memory); in
  /// the split layout, rowBase = row * rowBytes of the weight buffer.
  virtual SmallVector<Value> decode(GPUKernelBuilder &kb, Value bytes,
                                    Value rowBase, Value chunk) const = 0;
  /// decode's chunk as codes and one scale (and min), for encodings with one
  /// scale per chunk; nothing for the others. A GEMV then multiplies by the
  /// scale once per chunk rather than once per value.
  virtual std::optional<ScaledChunk> decodeScaled(GPUKernelBuilder &kb,
                                                  Value bytes, Value rowBase,
                                                  Value chunk) const {
    return std::nullopt;
  }
  /// Whether loadCodes gives this encoding's chunks.
  virtual bool hasCodes() const { return false; }
  /// decodeScaled's chunk still coded, for the GEMV over int8 activations
  /// (integer dot products); nothing for encodings it does not take.
  virtual std::optional<CodeChunk> loadCodes(GPUKernelBuilder &kb, Value bytes,
                                             Value rowBase, Value chunk) const {
    return std::nullopt;
  }
  /// Whether a row is the rowBytes bytes from rowBase and nothing else, so
  /// that a copy of them decodes (the split layout keeps its scales apart).
  virtual bool rowIsContiguous() const { return true; }
  /// The decoder of `type`, or failure with `error` saying what the GPU
  /// lowering does not support.
  static FailureOr<std::unique_ptr<GPUWeightDecoder>> get(WeightType type,
                                                          std::string &error);

protected:
  GPUWeightDecoder(std::string name, int64_t rowBytes)
      : name(std::move(name)), rowBytes(rowBytes) {}
  std::string name;
  int64_t rowBytes;
};

} // namespace mlir::kiln

#endif // KILN_CONVERSION_KILNTOGPU_GPUKERNELS_H
