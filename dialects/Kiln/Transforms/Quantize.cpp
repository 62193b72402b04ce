//===- Quantize.cpp - kiln-quantize: float weights to codes ---------------===//

#include "Kiln/IR/WeightStore.h"
#include "Kiln/Transforms/AWQ.h"
#include "Kiln/Transforms/Passes.h"
#include "Kiln/Transforms/QuantizeOptions.h"

#include "mlir/IR/Builders.h"
#include "llvm/ADT/SetVector.h"

#include <cmath>
#include <cstdio>
#include <cstring>
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

/// The tensor name the importer gives a weight (its location).
StringRef getWeightName(WeightOp weight) {
  if (auto loc = dyn_cast<NameLoc>(weight.getLoc()))
    return loc.getName();
  return "quantized";
}

/// The values of a float weight, decoded; fails (emitted) on a value that is
/// not finite.
FailureOr<std::vector<float>> readFloatValues(WeightOp weight) {
  WeightType type = weight.getType();
  FailureOr<ArrayRef<char>> bytes = readWeightBytes(weight);
  if (failed(bytes))
    return failure();
  int64_t count = type.getNumRows() * type.getInnerDim();
  std::vector<float> values(count);
  ::kiln::decodeScalars(*getFloatStorage(type),
                        reinterpret_cast<const uint8_t *>(bytes->data()), count,
                        values.data());
  for (int64_t i = 0; i < count; ++i)
    if (!std::isfinite(values[i]))
      return weight.emitOpError("quantize: row ")
             << i / type.getInnerDim() << " holds a value that is not finite";
  return values;
}

LogicalResult quantizeWeight(WeightOp weight,
                             const ::kiln::QuantizeOptions &options,
                             ::kiln::MatrixQuantizer &quantizer) {
  WeightType type = weight.getType();
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
  FailureOr<std::vector<float>> values = readFloatValues(weight);
  if (failed(values))
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
  StringRef name = getWeightName(weight);
  if (llvm::Error e = quantizer.quantize(
          *encoding, values->data(), rows, k, name,
          reinterpret_cast<uint8_t *>(out.data())))
    return weight.emitOpError(llvm::toString(std::move(e)));
  OpBuilder b(weight);
  WeightOp replacement =
      createWeight(b, weight.getLoc(), quantized, std::move(blob), name);
  weight.replaceAllUsesWith(replacement.getResult());
  weight.erase();
  return success();
}

/// Replaces `weight` by an f32 blob of `values` (same shape and name).
WeightOp replaceWithFloats(WeightOp weight, ArrayRef<float> values) {
  MLIRContext *ctx = weight.getContext();
  auto type = WeightType::get(ctx, weight.getType().getShape(),
                              Builder(ctx).getF32Type(), QuantSchemeAttr(),
                              SparsityAttr());
  AsmResourceBlob blob = allocateWeightBytes(values.size() * sizeof(float));
  std::memcpy(blob.getMutableData().data(), values.data(),
              values.size() * sizeof(float));
  OpBuilder b(weight);
  WeightOp replacement = createWeight(b, weight.getLoc(), type,
                                      std::move(blob), getWeightName(weight));
  weight.replaceAllUsesWith(replacement.getResult());
  weight.erase();
  return replacement;
}

/// AWQ (AWQ.h): each rms_norm whose result only linear layers in `weights`
/// read (weights no embedding gathers from, a norm weight of its own) gets
/// the column scales s searched on its input's statistics; the layers'
/// weights become W diag(s), the norm's weight g / s, and both stay float
/// for the rounding that follows. Other layers are rounded as they are.
LogicalResult applyActivationAwareScales(
    ModuleOp module, const ::kiln::QuantizeOptions &options,
    llvm::SetVector<WeightOp> &weights) {
  SmallVector<RMSNormOp> norms;
  module.walk([&](RMSNormOp norm) { norms.push_back(norm); });
  for (RMSNormOp norm : norms) {
    auto normWeight = norm.getWeight().getDefiningOp<WeightOp>();
    if (!normWeight || !normWeight->hasOneUse() ||
        !getFloatStorage(normWeight.getType()) || norm->use_empty())
      continue;
    SmallVector<WeightOp> group;
    bool eligible = true;
    for (Operation *user : norm->getUsers()) {
      auto linear = dyn_cast<LinearOp>(user);
      auto weight = linear ? linear.getWeight().getDefiningOp<WeightOp>()
                           : WeightOp();
      eligible &= linear && linear.getInput() == norm.getResult() && weight &&
                  weights.contains(weight) &&
                  llvm::all_of(weight->getUsers(),
                               [](Operation *u) { return isa<LinearOp>(u); });
      if (!eligible)
        break;
      if (!llvm::is_contained(group, weight))
        group.push_back(weight);
    }
    if (!eligible || group.empty())
      continue;
    StringRef first = getWeightName(group.front());
    int64_t k = group.front().getType().getInnerDim();
    std::optional<::kiln::InputStatisticsView> stats =
        options.statistics ? options.statistics(first) : std::nullopt;
    if (!stats || stats->cols != k)
      return group.front().emitOpError("awq: the calibration statistics have ")
             << (stats ? "another width for " : "no input for ") << first;
    llvm::Expected<::kiln::RowEncoding> encoding =
        ::kiln::chooseRowEncoding(options, k);
    if (!encoding)
      return group.front().emitOpError(llvm::toString(encoding.takeError()));
    std::vector<std::vector<float>> values;
    std::vector<::kiln::ScaledMatrix> matrices;
    for (WeightOp weight : group) {
      FailureOr<std::vector<float>> v = readFloatValues(weight);
      if (failed(v))
        return failure();
      values.push_back(std::move(*v));
    }
    for (auto [weight, v] : llvm::zip(group, values))
      matrices.push_back({v.data(), weight.getType().getNumRows()});
    std::vector<uint8_t> scratch(encoding->rowBytes(k));
    std::vector<float> scales = ::kiln::searchActivationScales(
        [&](const float *row, ::kiln::RoundingFeedback *feedback) {
          encoding->quantizeRow(row, k, scratch.data(), feedback);
        },
        matrices, k, stats->meanAbs, stats->hessian);
    for (auto [weight, v] : llvm::zip(group, values)) {
      for (size_t i = 0; i < v.size(); ++i)
        v[i] *= scales[i % k];
      weights.remove(weight);
      weights.insert(replaceWithFloats(weight, v));
    }
    FailureOr<std::vector<float>> gain = readFloatValues(normWeight);
    if (failed(gain) || int64_t(gain->size()) != k)
      return failure();
    for (int64_t j = 0; j < k; ++j)
      (*gain)[j] /= scales[j];
    replaceWithFloats(normWeight, *gain);
  }
  return success();
}

/// Whether `linear` computes a value the step function returns (the output
/// layer's logits).
bool isOutputLayer(LinearOp linear) {
  return llvm::any_of(linear->getUsers(), [](Operation *user) {
    return user->hasTrait<OpTrait::IsTerminator>();
  });
}

/// budget=B: the code width of each weight. Every weight starts at the
/// narrowest width the options can encode (the output layer at the widest,
/// at most 8: llama.cpp keeps it at Q8_0 too); then, while the budget allows,
/// the weight whose next width removes the most error per added bit moves up
/// (ties: the earlier weight, so the choice is deterministic). The error of a
/// width is measured by rounding the weight: sum of (w - q)^2, each column
/// weighted by its input's mean square (the Hessian's diagonal) when
/// statistics are given.
FailureOr<llvm::DenseMap<Operation *, unsigned>>
chooseWidths(ModuleOp module, const ::kiln::QuantizeOptions &options,
             ArrayRef<WeightOp> weights) {
  struct Choice {
    WeightOp weight;
    int64_t params = 0;
    SmallVector<unsigned> widths;
    SmallVector<double> bitsPerWeight, error;
    size_t at = 0;
  };
  llvm::DenseSet<Operation *> outputs;
  module.walk([&](LinearOp linear) {
    if (isOutputLayer(linear))
      if (auto w = linear.getWeight().getDefiningOp<WeightOp>())
        outputs.insert(w);
  });
  std::vector<Choice> choices;
  double budgetBits = 0, usedBits = 0;
  for (WeightOp weight : weights) {
    Choice c;
    c.weight = weight;
    c.params = weight.getType().getNumRows() * weight.getType().getInnerDim();
    int64_t k = weight.getType().getInnerDim(), rows = c.params / k;
    FailureOr<std::vector<float>> values = readFloatValues(weight);
    if (failed(values))
      return failure();
    std::optional<::kiln::InputStatisticsView> stats =
        options.statistics ? options.statistics(getWeightName(weight))
                           : std::nullopt;
    if (stats && stats->cols != k)
      stats.reset();
    std::vector<double> decoded(k);
    std::vector<uint8_t> scratch;
    for (unsigned bits = 2; bits <= 8; ++bits) {
      ::kiln::QuantizeOptions o = options;
      o.bits = bits;
      if (llvm::Error e = o.validate()) {
        llvm::consumeError(std::move(e));
        continue;
      }
      llvm::Expected<::kiln::RowEncoding> encoding =
          ::kiln::chooseRowEncoding(o, k);
      if (!encoding)
        return weight.emitOpError(llvm::toString(encoding.takeError()));
      scratch.resize(encoding->rowBytes(k));
      double error = 0;
      for (int64_t r = 0; r < rows; ++r) {
        const float *w = values->data() + r * k;
        ::kiln::RecordDecoded feedback(decoded.data());
        encoding->quantizeRow(w, k, scratch.data(), &feedback);
        for (int64_t j = 0; j < k; ++j) {
          double d = double(w[j]) - decoded[j];
          error += d * d * (stats ? double(stats->hessian[j * k + j]) : 1.0);
        }
      }
      c.widths.push_back(bits);
      c.bitsPerWeight.push_back(8.0 * double(encoding->rowBytes(k)) /
                                double(k));
      c.error.push_back(error);
    }
    if (c.widths.empty())
      return weight.emitOpError("quantize: budget: no width 2..8 can be "
                                "encoded with these options");
    if (outputs.contains(weight))
      c.at = c.widths.size() - 1;
    budgetBits += options.budget * double(c.params);
    usedBits += c.bitsPerWeight[c.at] * double(c.params);
    choices.push_back(std::move(c));
  }
  if (usedBits > budgetBits) {
    char message[160];
    std::snprintf(message, sizeof(message),
                  "quantize: budget=%g is below the narrowest widths' %.3f "
                  "bits per weight (the output layer kept at 8 bits)",
                  options.budget, usedBits / (budgetBits / options.budget));
    return module.emitError(message);
  }
  while (true) {
    Choice *best = nullptr;
    double bestGain = 0;
    for (Choice &c : choices) {
      if (c.at + 1 >= c.widths.size())
        continue;
      double addedBits =
          (c.bitsPerWeight[c.at + 1] - c.bitsPerWeight[c.at]) * c.params;
      double gain = (c.error[c.at] - c.error[c.at + 1]) / addedBits;
      if (usedBits + addedBits <= budgetBits && gain > bestGain) {
        best = &c;
        bestGain = gain;
      }
    }
    if (!best)
      break;
    usedBits += (best->bitsPerWeight[best->at + 1] -
                 best->bitsPerWeight[best->at]) *
                best->params;
    ++best->at;
  }
  llvm::DenseMap<Operation *, unsigned> widths;
  for (const Choice &c : choices)
    widths[c.weight] = c.widths[c.at];
  return widths;
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
  if (options.method == ::kiln::QuantizeMethod::AWQ &&
      failed(applyActivationAwareScales(module, options, weights)))
    return failure();
  llvm::DenseMap<Operation *, unsigned> widths;
  if (options.budget > 0) {
    FailureOr<llvm::DenseMap<Operation *, unsigned>> chosen =
        chooseWidths(module, options, weights.getArrayRef());
    if (failed(chosen))
      return failure();
    widths = std::move(*chosen);
  }
  ::kiln::MatrixQuantizer quantizer(options);
  for (WeightOp weight : weights) {
    ::kiln::QuantizeOptions weightOptions = options;
    if (auto it = widths.find(weight); it != widths.end())
      weightOptions.bits = it->second;
    if (failed(quantizeWeight(weight, weightOptions, quantizer)))
      return failure();
  }
  return success();
}
