//===- Quantize.cpp - kiln-quantize: float weights to codes ---------------===//

#include "Kiln/IR/WeightStore.h"
#include "Kiln/Transforms/Passes.h"
#include "Kiln/Transforms/QuantizeOptions.h"

#include "mlir/IR/Builders.h"
#include "llvm/ADT/SetVector.h"

#include <cmath>
#include <vector>

namespace mlir::kiln {
#define GEN_PASS_DEF_KILNQUANTIZE
#include "Kiln/Transforms/Passes.h.inc"
} // namespace mlir::kiln

using namespace mlir;
using namespace mlir::kiln;

std::optional<::kiln::ScalarType> mlir::kiln::getFloatStorage(WeightType type) {
  if (type.getCompressedSparsity() || type.getQuant())
    return std::nullopt;
  Type element = type.getElementType();
  if (element.isF32())
    return ::kiln::ScalarType::F32;
  if (element.isF16())
    return ::kiln::ScalarType::F16;
  if (element.isBF16())
    return ::kiln::ScalarType::BF16;
  return std::nullopt;
}

namespace {

Type getMLIRType(MLIRContext *ctx, ::kiln::ScalarType type) {
  Builder b(ctx);
  switch (type) {
  case ::kiln::ScalarType::F32:
    return b.getF32Type();
  case ::kiln::ScalarType::F16:
    return b.getF16Type();
  case ::kiln::ScalarType::BF16:
    return b.getBF16Type();
  }
  return Type();
}

/// The #kiln.quant that describes rows written by `encoding`.
QuantSchemeAttr getScheme(MLIRContext *ctx,
                          const ::kiln::RowEncoding &encoding) {
  if (encoding.ggml) {
    const ::kiln::GGMLFormat &format = ::kiln::getGGMLFormat(*encoding.ggml);
    Type f16 = Builder(ctx).getF16Type();
    return QuantSchemeAttr::get(ctx, format.bits, format.group, f16,
                                format.hasMin ? f16 : Type(), 0, 0,
                                QuantLayout::GGUF);
  }
  const ::kiln::PackedScheme &p = encoding.packed;
  return QuantSchemeAttr::get(
      ctx, p.bits, p.group, getMLIRType(ctx, p.scaleType),
      p.symmetric ? Type() : getMLIRType(ctx, p.zeroType), 0, 0,
      QuantLayout::Packed);
}

/// Whether every use of `weight` can take a quantized weight: the weight of
/// a linear layer, or the table of an embedding (a tied output layer).
bool onlyMultipliedOrGathered(WeightOp weight) {
  return llvm::all_of(weight->getUses(), [](OpOperand &use) {
    if (auto linear = dyn_cast<LinearOp>(use.getOwner()))
      return &use == &linear.getWeightMutable();
    return isa<EmbeddingOp>(use.getOwner());
  });
}

LogicalResult quantizeWeight(WeightOp weight,
                             const ::kiln::QuantizeOptions &options) {
  WeightType type = weight.getType();
  ::kiln::ScalarType storage = *getFloatStorage(type);
  int64_t k = type.getInnerDim(), rows = type.getNumRows();
  llvm::Expected<::kiln::RowEncoding> encoding =
      ::kiln::chooseRowEncoding(options, k);
  if (!encoding)
    return weight.emitOpError(llvm::toString(encoding.takeError()));
  // Symmetric codes decode a zero to exactly zero; an asymmetric group's
  // zero point would turn pruned values into small non-zeros.
  if (type.getSparsity() && !options.symmetric)
    return weight.emitOpError("quantize: a pruned weight needs symmetric "
                              "quantization (sym) to keep its zeros");
  FailureOr<ArrayRef<char>> bytes = readWeightBytes(weight);
  if (failed(bytes))
    return failure();
  MLIRContext *ctx = weight.getContext();
  auto quantized = WeightType::get(ctx, type.getShape(), Type(),
                                   getScheme(ctx, *encoding),
                                   type.getSparsity());
  uint64_t rowBytes = encoding->rowBytes(k);
  if (failed(quantized.getRowBytes()) || *quantized.getRowBytes() != rowBytes)
    return weight.emitOpError("quantize: the encoder and WeightLayout.h "
                              "disagree on the row size (a compiler bug)");
  AsmResourceBlob blob = allocateWeightBytes(uint64_t(rows) * rowBytes);
  MutableArrayRef<char> out = blob.getMutableData();
  unsigned valueBytes = ::kiln::getScalarBytes(storage);
  std::vector<float> row(k);
  for (int64_t r = 0; r < rows; ++r) {
    ::kiln::decodeScalars(storage,
                          reinterpret_cast<const uint8_t *>(bytes->data()) +
                              r * k * valueBytes,
                          k, row.data());
    for (float v : row)
      if (!std::isfinite(v))
        return weight.emitOpError("quantize: row ")
               << r << " holds a value that is not finite";
    encoding->quantizeRow(
        row.data(), k, reinterpret_cast<uint8_t *>(out.data()) + r * rowBytes);
  }
  StringRef name = "quantized";
  if (auto loc = dyn_cast<NameLoc>(weight.getLoc()))
    name = loc.getName();
  OpBuilder b(weight);
  WeightOp replacement =
      createWeight(b, weight.getLoc(), quantized, std::move(blob), name);
  weight.replaceAllUsesWith(replacement.getResult());
  weight.erase();
  return success();
}

struct Quantize : mlir::kiln::impl::KilnQuantizeBase<Quantize> {
  using Base::Base;

  void runOnOperation() override {
    ::kiln::QuantizeOptions options;
    options.bits = bits;
    options.group = group;
    options.symmetric = symmetric;
    if (format != "gguf" && format != "packed") {
      getOperation().emitError("quantize: format=")
          << format << " is not one of packed, gguf";
      return signalPassFailure();
    }
    options.format = format == "gguf" ? ::kiln::QuantizeFormat::GGUF
                                      : ::kiln::QuantizeFormat::Packed;
    if (!::kiln::parseScalarType(scaleType, options.scaleType)) {
      getOperation().emitError("quantize: scale-type=")
          << scaleType << " is not one of f16, bf16, f32";
      return signalPassFailure();
    }
    if (failed(quantizeWeights(getOperation(), options)))
      signalPassFailure();
  }
};

} // namespace

LogicalResult
mlir::kiln::quantizeWeights(ModuleOp module,
                            const ::kiln::QuantizeOptions &options) {
  if (llvm::Error e = options.validate())
    return module.emitError(llvm::toString(std::move(e)));
  llvm::SetVector<WeightOp> weights;
  module.walk([&](LinearOp linear) {
    auto weight = linear.getWeight().getDefiningOp<WeightOp>();
    if (weight && getFloatStorage(weight.getType()) &&
        weight.getType().getRank() == 2 && onlyMultipliedOrGathered(weight))
      weights.insert(weight);
  });
  for (WeightOp weight : weights)
    if (failed(quantizeWeight(weight, options)))
      return failure();
  return success();
}
