//===- WeightStore.h - the bytes behind kiln.weight ops ---------*- C++ -*-===//
//
// One interface for every pass that reads or rewrites weights (packing,
// quantization, pruning) and for the drivers that serialize them. A
// kiln.weight's bytes are either a range of a file (`#kiln.external`, mapped
// once per file and per context) or a `dense_resource` blob owned by the
// context (printed in the module's `{-# dialect_resources #-}` section, so
// small rewritten weights round-trip through kiln-opt). Weights nothing
// rewrites stay file ranges: a model is never copied into the IR.
//
// Knows no file format and no target: a driver that already holds a file's
// bytes (a mapped GGUF, the C API's in-memory weights) lends them with
// provideFile.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_IR_WEIGHTSTORE_H
#define KILN_IR_WEIGHTSTORE_H

#include "Kiln/IR/KilnDialect.h"

#include "mlir/IR/AsmState.h"
#include "mlir/IR/Builders.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/Support/MemoryBuffer.h"

#include <memory>
#include <string>

namespace mlir::kiln {

class WeightStore {
public:
  /// The store of `ctx` (loads the kiln dialect).
  static WeightStore &get(MLIRContext *ctx);

  /// Makes #kiln.external ranges naming `path` read `bytes` (not owned; they
  /// must outlive the context's use of them) instead of the file.
  void provideFile(StringRef path, ArrayRef<char> bytes);

  /// The bytes of the file at `path`: provided ones, else the file mapped on
  /// first use. On failure, `error` is one line naming the file.
  FailureOr<ArrayRef<char>> getFile(StringRef path, std::string &error);

private:
  llvm::StringMap<ArrayRef<char>> files;
  llvm::StringMap<std::unique_ptr<llvm::MemoryBuffer>> mapped;
};

/// The storage bytes of `weight` (WeightType::getStorageBytes of them): its
/// file range or its blob. Errors (missing or short file, elided blob) are
/// emitted on the op, one line.
FailureOr<ArrayRef<char>> readWeightBytes(WeightOp weight);

/// Zero-filled, mutable, suitably aligned memory for `size` bytes of a new
/// weight, to be filled in place and handed to createWeight.
AsmResourceBlob allocateWeightBytes(uint64_t size);

/// A kiln.weight of `type` whose source is a dense_resource blob of `bytes`
/// (named after `nameHint`, made unique). `bytes` must hold exactly
/// type.getStorageBytes() bytes (the op's verifier checks it).
WeightOp createWeight(OpBuilder &builder, Location loc, WeightType type,
                      AsmResourceBlob bytes, StringRef nameHint);

/// Lays every distinct weight of `module` out in one buffer (64-byte aligned
/// offsets; a file range or blob used by several ops is stored once) and
/// points the weights at it as `#kiln.external<sectionName, offset, size>`.
/// Blob-backed and inline weights (the ones passes rewrote) come first, then
/// file ranges, each in module order. The blobs are released once copied
/// (the module's weights all name the section then; another module over the
/// same blobs could no longer read them). Errors are emitted on the op.
FailureOr<std::string> gatherWeights(ModuleOp module, StringRef sectionName);

} // namespace mlir::kiln

#endif // KILN_IR_WEIGHTSTORE_H
