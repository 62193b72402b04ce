//===- WeightStore.cpp - the bytes behind kiln.weight ops -----------------===//

#include "Kiln/IR/WeightStore.h"

#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/BuiltinDialect.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/DialectResourceBlobManager.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/Support/MathExtras.h"

#include <cstring>
#include <map>
#include <tuple>

using namespace mlir;
using namespace mlir::kiln;

WeightStore &WeightStore::get(MLIRContext *ctx) {
  return ctx->getOrLoadDialect<KilnDialect>()->getWeightStore();
}

void WeightStore::provideFile(StringRef path, ArrayRef<char> bytes) {
  files[path] = bytes;
}

FailureOr<ArrayRef<char>> WeightStore::getFile(StringRef path,
                                               std::string &error) {
  if (auto it = files.find(path); it != files.end())
    return it->second;
  auto buffer = llvm::MemoryBuffer::getFile(path, /*IsText=*/false,
                                            /*RequiresNullTerminator=*/false);
  if (!buffer) {
    error = (path + ": " + buffer.getError().message()).str();
    return failure();
  }
  ArrayRef<char> bytes((*buffer)->getBufferStart(), (*buffer)->getBufferSize());
  mapped[path] = std::move(*buffer);
  files[path] = bytes;
  return bytes;
}

FailureOr<ArrayRef<char>> mlir::kiln::readWeightBytes(WeightOp weight) {
  Attribute source = weight.getSource();
  if (auto ext = dyn_cast<ExternalDataAttr>(source)) {
    std::string error;
    FailureOr<ArrayRef<char>> file =
        WeightStore::get(weight.getContext()).getFile(ext.getPath(), error);
    if (failed(file))
      return weight.emitOpError(error);
    uint64_t end;
    if (__builtin_add_overflow(ext.getOffset(), ext.getSize(), &end) ||
        end > file->size())
      return weight.emitOpError()
             << ext.getPath().getValue() << " holds " << file->size()
             << " bytes, too few for the weight at offset " << ext.getOffset()
             << " of " << ext.getSize() << " bytes";
    return file->slice(ext.getOffset(), ext.getSize());
  }
  if (auto res = dyn_cast<DenseResourceElementsAttr>(source)) {
    AsmResourceBlob *blob = res.getRawHandle().getBlob();
    if (!blob)
      return weight.emitOpError("dense_resource source has no data (elided "
                                "from the module)");
    return blob->getData();
  }
  if (auto dense = dyn_cast<DenseElementsAttr>(source)) {
    // A splat stores one value for all of them: not the weight's bytes.
    if (dense.isSplat() && dense.getNumElements() != 1)
      return weight.emitOpError("a splat inline source holds no storage "
                                "bytes; write the values out");
    return dense.getRawData();
  }
  return weight.emitOpError("has no bytes to read from source ") << source;
}

AsmResourceBlob mlir::kiln::allocateWeightBytes(uint64_t size) {
  // 64 bytes: a cache line and an AVX-512 register, what the kernels read.
  AsmResourceBlob blob = HeapAsmResourceBlob::allocate(size, 64);
  std::memset(blob.getMutableData().data(), 0, size);
  return blob;
}

WeightOp mlir::kiln::createWeight(OpBuilder &builder, Location loc,
                                  WeightType type, AsmResourceBlob bytes,
                                  StringRef nameHint) {
  auto storage = RankedTensorType::get({int64_t(bytes.getData().size())},
                                       builder.getI8Type());
  auto source =
      DenseResourceElementsAttr::get(storage, nameHint, std::move(bytes));
  return WeightOp::create(builder, loc, type, source);
}

FailureOr<std::string> mlir::kiln::gatherWeights(ModuleOp module,
                                                 StringRef sectionName) {
  SmallVector<WeightOp> inIR, inFiles;
  module.walk([&](WeightOp op) {
    (isa<ExternalDataAttr>(op.getSource()) ? inFiles : inIR).push_back(op);
  });
  std::string section;
  auto name = StringAttr::get(module.getContext(), sectionName);
  // (offset, size) in the section of each blob or inline source (by its
  // storage) and of each file range.
  using Placement = std::pair<uint64_t, uint64_t>;
  llvm::DenseMap<const void *, Placement> placedInIR;
  std::map<std::tuple<StringRef, uint64_t, uint64_t>, Placement> placedRanges;
  auto place = [&](WeightOp op, Placement &placement,
                   bool isNew) -> LogicalResult {
    if (isNew) {
      FailureOr<ArrayRef<char>> bytes = readWeightBytes(op);
      if (failed(bytes))
        return failure();
      placement = {llvm::alignTo(section.size(), 64), bytes->size()};
      section.resize(placement.first, '\0');
      section.append(bytes->data(), bytes->size());
    }
    op.setSourceAttr(ExternalDataAttr::get(module.getContext(), name,
                                           placement.first, placement.second));
    return success();
  };
  for (WeightOp op : inIR) {
    auto blob = dyn_cast<DenseResourceElementsAttr>(op.getSource());
    const void *key =
        blob ? static_cast<const void *>(blob.getRawHandle().getResource())
             : op.getSource().getAsOpaquePointer();
    auto [it, isNew] = placedInIR.try_emplace(key);
    if (failed(place(op, it->second, isNew)))
      return failure();
    // The section holds the bytes now: a packed model is not kept twice.
    if (blob && isNew)
      blob.getRawHandle().getResource()->setBlob(AsmResourceBlob());
  }
  for (WeightOp op : inFiles) {
    auto ext = cast<ExternalDataAttr>(op.getSource());
    auto [it, isNew] = placedRanges.try_emplace(
        {ext.getPath().getValue(), ext.getOffset(), ext.getSize()});
    if (failed(place(op, it->second, isNew)))
      return failure();
  }
  return section;
}
