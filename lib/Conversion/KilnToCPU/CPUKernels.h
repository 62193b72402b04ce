//===- CPUKernels.h - kernel functions the CPU lowering calls ---*- C++ -*-===//
//
// Each kiln op lowers to a call of a kernel function specialised for its
// static shapes and weight encoding, created once per module. Kernels follow
// one convention: memref operands first, then `tid` and `nth` (index); each
// kernel takes its share of the work from them (SPMD, see HostABI.h).
// The kernels are built in Kernels/, one file per family (Linear.cpp,
// Rows16.cpp, Norm.cpp, ...), each declaring its signature once with a
// KernelBuilder (Kernels/KernelBuilder.h); what differs between the CPU
// variants is in Kernels/CPUTarget.h.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_CONVERSION_KILNTOCPU_CPUKERNELS_H
#define KILN_CONVERSION_KILNTOCPU_CPUKERNELS_H

#include "Dequant.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinOps.h"

namespace mlir::kiln {

/// One quantized activation block: 32 int8 codes, f32 scale, f32 scale *
/// sum(codes) (both already rounded to f16 precision), then the i32 sums of
/// codes 0..15 and 16..31.
constexpr int64_t kQ8RecordBytes = 48;

enum class ElementwiseKind { Add, Mul, SwiGLU, GeGLUTanh, GeGLUErf, Silu,
                             GeluTanh, GeluErf, Copy };

struct RopeConfig {
  int64_t width, numHeads, headDim, rotaryDim;
  bool neox;
  float freqBase, freqScale;
};

struct AttentionConfig {
  int64_t numHeads, kvHeads, headDim, layers, context, layer, window;
  float scale, softcap;
  bool causal;
};

/// memref<?xCOLSxELT, strided<[COLS, 1], offset: ?>>: the type of every
/// row-major activation operand of a kernel.
MemRefType getRowsType(MLIRContext *ctx, int64_t cols, Type elt);
/// memref<?xi32, strided<[1], offset: ?>>: token ids.
MemRefType getIdsType(MLIRContext *ctx);

class KernelBuilder;

class KernelLibrary {
public:
  explicit KernelLibrary(ModuleOp module) : module(module) {}

  /// `@kiln_barrier(%rt)`: calls the runtime's barrier through `rt`.
  func::FuncOp barrier();
  /// (x: memref<?xKxf32>, w: memref<?xi8>, wOffset: index,
  ///  [bias: memref<?xi8>, biasOffset: index,] y: memref<?xNxf32>, tid, nth)
  func::FuncOp linear(const WeightFormat &format, int64_t k, int64_t n,
                      bool hasBias);
  /// (x: memref<?xKxf32>, q: memref<?xi8>, qOffset: index, tid, nth):
  /// quantizes each 32-value block of x to int8 as ggml's q8_1 does (scale
  /// amax/127 rounded to f16, codes round-half-even(x * 127/amax), and the
  /// f16-rounded scale * code sum), one kQ8RecordBytes record per block.
  func::FuncOp quantizeActivations(int64_t k);
  /// (q: memref<?xi8>, qOffset: index, w, wOffset, [bias, biasOffset,]
  ///  y: memref<?xNxf32>, tid, nth): y = x W^T with x as quantized by
  /// quantizeActivations, integer dot products two 32-value blocks at a time:
  /// AVX-512 VNNI vpdpbusd for `cpu` = x86-64-v4, AVX2 vpmaddubsw + vpmaddwd
  /// for x86-64-v3, portable vector code for generic.
  func::FuncOp linearInt8(const WeightFormat &format, int64_t k, int64_t n,
                          bool hasBias, StringRef cpu);
  /// linearInt8's signature and result for a weight in layout = rows16:
  /// 16 rows per vector, one sequential read of the weights per token chunk.
  /// With `hasResidual`, a rows memref `r` follows the bias and the kernel
  /// writes y = r + x W^T (the residual add of a transformer block). With
  /// `ropeHeadDim`, (table: memref<?xi8>, offset: index) follow: a ropeTable
  /// of rotary_dim = ropeHeadDim, applied to adjacent pairs (llama style).
  func::FuncOp linearRows16(const Rows16Format &format, int64_t k, int64_t n,
                            bool hasBias, bool hasResidual,
                            int64_t ropeHeadDim, StringRef cpu);
  /// embedding's signature for a table in layout = rows16 (a tied output
  /// layer's weight, stored once).
  func::FuncOp embeddingRows16(const Rows16Format &format, int64_t vocab,
                               int64_t dim, float scale);
  /// (table: memref<?xi8>, offset: index, ids: memref<?xi32>,
  ///  y: memref<?xDxf32>, tid, nth): y[t] = scale * table[ids[t]].
  func::FuncOp embedding(const WeightFormat &format, int64_t vocab,
                         int64_t dim, float scale);
  /// (x, w: memref<?xi8>, wOffset, [b: memref<?xi8>, bOffset,] y,
  ///  [q: memref<?xi8>, qOffset,] tid, nth); with `quantize`, also writes y
  /// as quantizeActivations would (one kernel and barrier fewer before the
  /// linear layers that read it).
  func::FuncOp norm(const WeightFormat &weight, int64_t dim, float epsilon,
                    bool layerNorm, bool hasBias, bool quantize);
  /// (position: index, tokens: index, table: memref<?xi8>, offset: index,
  ///  tid, nth): (cos, sin) f32 pairs [tokens][rotary_dim / 2] of the
  /// rotation angles of positions position .. position + tokens - 1, shared
  /// by every rope of the same frequencies (libm calls once per forward step,
  /// not once per layer and head).
  func::FuncOp ropeTable(const RopeConfig &config);
  /// (x: memref<?xWxf32>, table: memref<?xi8>, offset: index, y, tid, nth)
  func::FuncOp rope(const RopeConfig &config);
  /// (q, k, v, cache: memref<?xi8>, position: index, y, rt: !llvm.ptr,
  ///  tid, nth)
  func::FuncOp attention(const AttentionConfig &config);
  /// (a, [b,] y: memref<?xDxf32>, [q: memref<?xi8>, qOffset,] tid, nth);
  /// with `quantize`, also writes y as quantizeActivations would.
  func::FuncOp elementwise(ElementwiseKind kind, int64_t dim, bool quantize);
  /// (x, y: memref<?xDxf32>, tid, nth): softmax of each row.
  func::FuncOp softmax(int64_t dim);

private:
  friend class KernelBuilder;

  /// A new kernel function of `type` named after its `family` (what the
  /// reader sees), with `b` at the start of its body.
  func::FuncOp start(StringRef family, FunctionType type, OpBuilder &b);
  /// Returns the kernel built before with the same code as `fn` (erasing
  /// `fn`), else `fn`, renamed `<family>_<n>` if its family has kernels.
  func::FuncOp finish(func::FuncOp fn);

  ModuleOp module;
  struct BuiltKernel {
    llvm::hash_code code;
    func::FuncOp fn;
  };
  /// The kernels built so far, by family name.
  llvm::StringMap<std::vector<BuiltKernel>> kernelFamilies;
};

} // namespace mlir::kiln

#endif // KILN_CONVERSION_KILNTOCPU_CPUKERNELS_H
