//===- CPUKernels.h - kernel functions the CPU lowering calls ---*- C++ -*-===//
//
// Each kiln op lowers to a call of a kernel function specialised for its
// static shapes and weight encoding, created once per module. Kernels follow
// one convention: memref operands first, then `tid` and `nth` (index); each
// kernel takes its share of the work from them (SPMD, see HostABI.h).
// A kernel is built by a function in its family's file (Linear.cpp,
// Norm.cpp, ...), next to the pattern that calls it, declaring its signature
// once with a KernelBuilder (KernelBuilder.h); the KernelLibrary only starts
// kernels and keeps one copy of each. What differs between the CPU variants
// is in CPUTarget.h.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_CONVERSION_KILNTOCPU_CPUKERNELS_H
#define KILN_CONVERSION_KILNTOCPU_CPUKERNELS_H

#include "CPUTarget.h"
#include "Dequant.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinOps.h"

#include <vector>

namespace mlir::kiln {

/// One quantized activation block: 32 int8 codes, f32 scale, f32 scale *
/// sum(codes) (both already rounded to f16 precision), then the i32 sums of
/// codes 0..15 and 16..31.
constexpr int64_t kQ8RecordBytes = 48;

enum class ElementwiseKind { Add, Mul, SwiGLU, GeGLUTanh, GeGLUErf, Silu,
                             GeluTanh, GeluErf, Copy, Relu };

struct RopeConfig {
  int64_t width, numHeads, headDim, rotaryDim;
  bool neox;
  float freqBase, freqScale;
  /// Per-frequency angle multipliers (empty: all 1) and the scale of the
  /// rotated pairs: Llama 3's and YaRN's long-context scalings.
  std::vector<float> freqFactors;
  float magnitude = 1.0f;
};

/// memref<?xCOLSxELT, strided<[COLS, 1], offset: ?>>: the type of every
/// row-major activation operand of a kernel.
MemRefType getRowsType(MLIRContext *ctx, int64_t cols, Type elt);
/// memref<?xi32, strided<[1], offset: ?>>: token ids.
MemRefType getIdsType(MLIRContext *ctx);

class KernelBuilder;

class KernelLibrary {
public:
  KernelLibrary(ModuleOp module, CPUTarget target)
      : module(module), target(target) {}

  MLIRContext *getContext() { return module.getContext(); }
  /// The CPU variant every kernel of the module is built for.
  const CPUTarget &getTarget() const { return target; }

  /// `@kiln_barrier(%rt)`: calls the runtime's barrier through `rt`.
  func::FuncOp barrier();

private:
  friend class KernelBuilder;

  /// A new kernel function of `type` named after its `family` (what the
  /// reader sees), with `b` at the start of its body.
  func::FuncOp start(StringRef family, FunctionType type, OpBuilder &b);
  /// Returns the kernel built before with the same code as `fn` (erasing
  /// `fn`), else `fn`, renamed `<family>_<n>` if its family has kernels.
  func::FuncOp finish(func::FuncOp fn);

  ModuleOp module;
  CPUTarget target;
  struct BuiltKernel {
    llvm::hash_code code;
    func::FuncOp fn;
  };
  /// The kernels built so far, by family name.
  llvm::StringMap<std::vector<BuiltKernel>> kernelFamilies;
};

// The kernels more than one family calls; the others are built in their
// family's file only.

/// (a, [b,] y: memref<?xDxf32>, [q: memref<?xi8>, qOffset,] tid, nth);
/// with `quantizeBits` (0: none), also writes y as quantizeActivations
/// would at that width.
func::FuncOp buildElementwiseKernel(KernelLibrary &library,
                                    ElementwiseKind kind, int64_t dim,
                                    int64_t quantizeBits);
/// (position: index, tokens: index, table: memref<?xi8>, offset: index,
///  tid, nth): (cos, sin) f32 pairs [tokens][rotary_dim / 2] of the
/// rotation angles of positions position .. position + tokens - 1, shared
/// by every rope of the same frequencies (libm calls once per forward step,
/// not once per layer and head). With `perTokenPositions` the first
/// argument is `positions: memref<?xi32>` and token t sits at positions[t].
func::FuncOp buildRopeTableKernel(KernelLibrary &library,
                                  const RopeConfig &config,
                                  bool perTokenPositions);

} // namespace mlir::kiln

#endif // KILN_CONVERSION_KILNTOCPU_CPUKERNELS_H
