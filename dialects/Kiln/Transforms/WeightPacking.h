//===- WeightPacking.h - the targets kiln-pack-weights packs for -*- C++ -*-===//
//
// kiln-pack-weights{target=...} rearranges weights at compile time into the
// layout a target's kernels read. What that layout is, and how bytes get
// into it, belongs to the target: each registers a WeightPacker here (the
// CPU's from lib/Conversion/KilnToCPU), the pass asks it about every weight
// a linear layer reads and writes the packed bytes into the weight store.
// Like LLVM's TargetRegistry, the registry is global: the pass cannot link
// the targets that lower its output.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_TRANSFORMS_WEIGHTPACKING_H
#define KILN_TRANSFORMS_WEIGHTPACKING_H

#include "Kiln/IR/KilnDialect.h"

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"

#include <cstdint>
#include <optional>

namespace mlir {
class DialectRegistry;
} // namespace mlir

namespace mlir::kiln {

/// The targets Kiln generates code for, as pass options spell them.
enum class LoweringTarget { CPU, CUDA };

llvm::StringRef stringify(LoweringTarget target);

/// How kiln-pack-weights{target=cpu} stores a Q4_0 or Q8_0 weight pruned
/// unstructured: `Auto` as a bitmap where that kernel measured faster than
/// the dense one (PackWeights.cpp, bitmapBeatsDense), else dense; or always
/// one of the two.
enum class UnstructuredStorage { Auto, Bitmap, Dense };
/// Its spelling ("auto", "bitmap", "dense"), as kiln-compile's
/// --unstructured and the pipeline option unstructured= take it.
std::optional<UnstructuredStorage>
parseUnstructuredStorage(llvm::StringRef name);

/// A target's side of kiln-pack-weights.
class WeightPacker {
public:
  virtual ~WeightPacker() = default;

  /// Adds the dialects of the layouts chooseLayout returns (loaded before
  /// the pass runs).
  virtual void getDependentDialects(DialectRegistry &registry) const = 0;

  /// The layout the target's kernels read a linear layer's weight of `type`
  /// in (a quantized weight in no target layout yet), or null to leave it as
  /// it is.
  virtual WeightLayoutAttrInterface chooseLayout(WeightType type) const = 0;

  /// Writes `source`, the bytes of a weight of type `from`, in the layout
  /// of `to` (`from` with chooseLayout's layout) into `dest`, which holds
  /// to.getStorageBytes() bytes.
  virtual void pack(WeightType from, WeightType to,
                    llvm::ArrayRef<uint8_t> source,
                    llvm::MutableArrayRef<uint8_t> dest) const = 0;
};

/// Makes `packer` (which must outlive every pass run) the one of `target`,
/// in place of any before it; safe from any thread.
void registerWeightPacker(LoweringTarget target, const WeightPacker &packer);

/// The packer registered for `target`, or null.
const WeightPacker *lookupWeightPacker(LoweringTarget target);

} // namespace mlir::kiln

#endif // KILN_TRANSFORMS_WEIGHTPACKING_H
