//===- Quantize.cpp - kiln-quantize: float weights to codes ---------------===//

#include "Kiln/IR/WeightStore.h"
#include "Calibration/CalibrationStats.h"
#include "Kiln/Transforms/AWQ.h"
#include "Kiln/Transforms/Passes.h"
#include "Kiln/Transforms/QuantizeOptions.h"

#include "mlir/IR/Builders.h"
#include "llvm/ADT/SetVector.h"

#include <algorithm>
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
  FailureOr<std::vector<float>> values = readFloatWeight(weight);
  if (failed(values))
    return failure();
  for (size_t i = 0; i < values->size(); ++i)
    if (!std::isfinite((*values)[i]))
      return weight.emitOpError("quantize: row ")
             << int64_t(i) / weight.getType().getInnerDim()
             << " holds a value that is not finite";
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

/// The width and group mixed precision gives one weight.
struct WeightEncoding {
  unsigned bits = 0, group = 0;
};

/// sum over the rows of e^T H e, e = w - decoded: the squared error the rows
/// add to the layer's outputs, summed over the calibration inputs when H is
/// their E[x x^T]; without H, the squared error of the weights.
double measureOutputError(const float *values, const double *decoded,
                          int64_t rows, int64_t k, const float *hessian) {
  std::vector<float> errors(size_t(rows) * k);
  for (size_t i = 0; i < errors.size(); ++i)
    errors[i] = float(double(values[i]) - decoded[i]);
  double total = 0;
  if (!hessian) {
    for (float e : errors)
      total += double(e) * e;
    return total;
  }
  // One row of H at a time against every error row: H is read once, the
  // errors stay in cache.
  for (int64_t i = 0; i < k; ++i) {
    const float *h = hessian + i * k;
    for (int64_t r = 0; r < rows; ++r) {
      const float *e = errors.data() + r * k;
      if (e[i] == 0)
        continue;
      // Eight partial sums: a strict-order reduction does not vectorize.
      float partial[8] = {};
      int64_t j = 0;
      for (; j + 8 <= k; j += 8)
        for (int p = 0; p < 8; ++p)
          partial[p] += h[j + p] * e[j + p];
      double dot = 0;
      for (; j < k; ++j)
        dot += double(h[j]) * e[j];
      for (float p : partial)
        dot += p;
      total += double(e[i]) * dot;
    }
  }
  return total;
}

/// budget=B: the width (2..8) and group of each weight. A weight's
/// candidates are every width at the requested group and at two and four
/// times it (fewer scales: what a budget near 2 bits needs), as far as they
/// divide its rows; each is measured by the layer's output error on the
/// calibration inputs (measureOutputError) relative to the output's own,
/// after the rounding the method does (GPTQ's included), on a sample of
/// rows.
/// Every weight starts at its cheapest candidate; then, while the budget
/// allows, the weight whose next step on its error's lower convex hull
/// removes the most error per added bit moves up (ties: the earlier weight).
/// The hull makes each weight's gains per bit fall step by step, so the
/// greedy order is the best for every budget it stops at. No weight is
/// exempt: the output layer, the embedding table it may share, attn_v and
/// ffn_down get their bits only where their measured error says so.
FailureOr<llvm::DenseMap<Operation *, WeightEncoding>>
chooseEncodings(ModuleOp module, const ::kiln::QuantizeOptions &options,
                ArrayRef<WeightOp> weights,
                ::kiln::MatrixQuantizer &quantizer) {
  struct Candidate {
    WeightEncoding encoding;
    double bitsPerWeight = 0, error = 0;
  };
  struct Choice {
    WeightOp weight;
    int64_t params = 0;
    SmallVector<Candidate> hull;
    size_t at = 0;
  };
  SmallVector<unsigned> groups = {options.group};
  if (options.group)
    groups.append({2 * options.group, 4 * options.group});
  std::vector<Choice> choices;
  double budgetBits = 0, usedBits = 0;
  for (WeightOp weight : weights) {
    Choice c;
    c.weight = weight;
    int64_t k = weight.getType().getInnerDim(),
            rows = weight.getType().getNumRows();
    c.params = rows * k;
    StringRef name = getWeightName(weight);
    FailureOr<std::vector<float>> values = readFloatValues(weight);
    if (failed(values))
      return failure();
    std::optional<::kiln::InputStatisticsView> stats =
        options.statistics ? options.statistics(name) : std::nullopt;
    const float *hessian =
        stats && stats->cols == k ? stats->hessian : nullptr;
    // Rows add their errors independently: a strided sample of at least 64
    // (more where K is small, about 2^25 multiply-adds per candidate) keeps
    // the measurement of all candidates near GPTQ's own time.
    const int64_t wanted =
        std::max<int64_t>(64, (int64_t(1) << 25) / (k * k));
    const int64_t stride = (rows + wanted - 1) / wanted;
    std::vector<float> sample;
    for (int64_t r = 0; r < rows; r += stride)
      sample.insert(sample.end(), values->begin() + r * k,
                    values->begin() + (r + 1) * k);
    const int64_t sampled = int64_t(sample.size()) / k;
    std::vector<double> decoded(sample.size());
    // Errors relative to the layer's output energy (sum of w^T H w): the
    // absolute errors of q, v or ffn_down are in different units; summed,
    // they gave SmolLM2 at budget=3.5 a perplexity of 147, relative ones 93
    // (uniform 3 bits: 35; bench/README.md: still the open problem).
    const double energy = measureOutputError(sample.data(), decoded.data(),
                                             sampled, k, hessian);
    const double normalizer = energy > 0 ? energy : 1.0;
    SmallVector<Candidate> candidates;
    for (unsigned group : groups)
      for (unsigned bits = 2; bits <= 8; ++bits) {
        ::kiln::QuantizeOptions o = options;
        o.bits = bits;
        o.group = group;
        if (llvm::Error e = o.validate()) {
          llvm::consumeError(std::move(e));
          continue;
        }
        llvm::Expected<::kiln::RowEncoding> encoding =
            ::kiln::chooseRowEncoding(o, k);
        if (!encoding) {
          llvm::consumeError(encoding.takeError());
          continue;
        }
        if (llvm::Error e = quantizer.roundTrip(*encoding, sample.data(),
                                                sampled, k, name,
                                                decoded.data()))
          return weight.emitOpError(llvm::toString(std::move(e)));
        double error = measureOutputError(sample.data(), decoded.data(),
                                          sampled, k, hessian);
        candidates.push_back(
            {{bits, group},
             8.0 * double(encoding->rowBytes(k)) / double(k),
             error / normalizer});
      }
    if (candidates.empty())
      return weight.emitOpError("quantize: budget: no width 2..8 can be "
                                "encoded with these options");
    // The lower convex hull of (bits, error): cheaper first, each kept
    // candidate removing error at a lower rate per bit than the one before.
    llvm::stable_sort(candidates, [](const Candidate &a, const Candidate &b) {
      return a.bitsPerWeight < b.bitsPerWeight;
    });
    for (const Candidate &next : candidates) {
      if (!c.hull.empty() && (next.error >= c.hull.back().error ||
                              next.bitsPerWeight == c.hull.back().bitsPerWeight))
        continue;
      auto slope = [](const Candidate &a, const Candidate &b) {
        return (a.error - b.error) / (b.bitsPerWeight - a.bitsPerWeight);
      };
      while (c.hull.size() >= 2 &&
             slope(c.hull[c.hull.size() - 2], c.hull.back()) <=
                 slope(c.hull.back(), next))
        c.hull.pop_back();
      c.hull.push_back(next);
    }
    budgetBits += options.budget * double(c.params);
    usedBits += c.hull.front().bitsPerWeight * double(c.params);
    choices.push_back(std::move(c));
  }
  if (usedBits > budgetBits) {
    char message[160];
    std::snprintf(message, sizeof(message),
                  "quantize: budget=%g is below the narrowest encodings' "
                  "%.3f bits per weight",
                  options.budget, usedBits / (budgetBits / options.budget));
    return module.emitError(message);
  }
  while (true) {
    Choice *best = nullptr;
    double bestGain = 0;
    for (Choice &c : choices) {
      if (c.at + 1 >= c.hull.size())
        continue;
      const Candidate &from = c.hull[c.at], &to = c.hull[c.at + 1];
      double addedBits = (to.bitsPerWeight - from.bitsPerWeight) * c.params;
      double gain = (from.error - to.error) / addedBits;
      if (usedBits + addedBits <= budgetBits && gain > bestGain) {
        best = &c;
        bestGain = gain;
      }
    }
    if (!best)
      break;
    usedBits += (best->hull[best->at + 1].bitsPerWeight -
                 best->hull[best->at].bitsPerWeight) *
                best->params;
    ++best->at;
  }
  llvm::DenseMap<Operation *, WeightEncoding> chosen;
  for (const Choice &c : choices)
    chosen[c.weight] = c.hull[c.at].encoding;
  return chosen;
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
    if (!::kiln::parseQuantizeMethod(method, options.method)) {
      getOperation().emitError("quantize: method=")
          << method << " is not one of rtn, gptq, awq";
      return signalPassFailure();
    }
    options.statisticsPath = stats;
    options.damping = damping;
    options.budget = budget;
    options.searchScales = search;
    if (failed(quantizeWeights(getOperation(), options)))
      signalPassFailure();
  }
};

} // namespace

LogicalResult
mlir::kiln::quantizeWeights(ModuleOp module,
                            const ::kiln::QuantizeOptions &requested) {
  if (llvm::Error e = requested.validate())
    return module.emitError(llvm::toString(std::move(e)));
  ::kiln::QuantizeOptions options = requested;
  ::kiln::CalibrationStatistics calibration;
  if (!options.statistics && !options.statisticsPath.empty()) {
    std::string error;
    if (!::kiln::readCalibrationStatistics(options.statisticsPath, calibration,
                                           error))
      return module.emitError("quantize: ") << error;
    options.statistics = [&](llvm::StringRef name)
        -> std::optional<::kiln::InputStatisticsView> {
      const ::kiln::InputStatistics *input =
          calibration.findWeight(name.str());
      if (!input)
        return std::nullopt;
      return ::kiln::InputStatisticsView{input->cols, input->meanAbs.data(),
                                         input->hessian.data()};
    };
  }
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
  ::kiln::MatrixQuantizer quantizer(options);
  llvm::DenseMap<Operation *, WeightEncoding> encodings;
  if (options.budget > 0) {
    FailureOr<llvm::DenseMap<Operation *, WeightEncoding>> chosen =
        chooseEncodings(module, options, weights.getArrayRef(), quantizer);
    if (failed(chosen))
      return failure();
    encodings = std::move(*chosen);
  }
  for (WeightOp weight : weights) {
    ::kiln::QuantizeOptions weightOptions = options;
    if (auto it = encodings.find(weight); it != encodings.end()) {
      weightOptions.bits = it->second.bits;
      weightOptions.group = it->second.group;
    }
    if (failed(quantizeWeight(weight, weightOptions, quantizer)))
      return failure();
  }
  return success();
}
