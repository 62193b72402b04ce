//===- Quantize.cpp - kiln-quantize: float weights to codes ---------------===//

#include "Kiln/IR/WeightStore.h"
#include "Calibration/CalibrationStats.h"
#include "Kiln/Transforms/AWQ.h"
#include "Kiln/Transforms/Passes.h"
#include "Kiln/Transforms/QuantizeOptions.h"

#include "mlir/IR/Builders.h"
#include "llvm/ADT/SetVector.h"
#include "llvm/ADT/SmallPtrSet.h"

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

/// Each column's mean square over the rows of a row-major matrix.
std::vector<double> measureColumnSquares(const float *values, int64_t rows,
                                         int64_t k) {
  std::vector<double> columns(k, 0.0);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t i = 0; i < k; ++i)
      columns[i] += double(values[r * k + i]) * values[r * k + i];
  for (double &c : columns)
    c /= double(rows);
  return columns;
}

/// The part of the residual stream each linear layer's errors reach, for
/// mixed precision: a relative error of a layer's output moves the model's
/// output about as much as the same relative error of the residual stream
/// where that output is added, scaled by the share of the stream it writes.
/// From each embedding's result the residual chain (kiln.add of the stream and
/// a layer's output, or an rms_norm of one: Gemma 3's post norms) is walked,
/// keeping the stream's energy per dimension (the embedding's, plus every
/// earlier write: writes taken as uncorrelated with the stream). A writer's
/// share is its energy over the stream's after it, both seen through the
/// gain of the next rms_norm that reads the stream (what the next layer
/// sees: a few dimensions of huge activations with small gains do not
/// drown every later write); the layers that feed it without passing
/// another linear layer (q, k, v through attention; gate, up through the
/// GLU) get the same. Layers off the chain (the output head) get 1: their
/// relative error is the output's. `writeEnergies` gives E[y_j^2] per output
/// j of a layer, `tableEnergies` the mean over an embedding table's rows of
/// each column's square, when known.
llvm::DenseMap<Operation *, double> measureResidualShares(
    ModuleOp module,
    llvm::function_ref<std::optional<std::vector<double>>(LinearOp)>
        writeEnergies,
    llvm::function_ref<std::optional<std::vector<double>>(EmbeddingOp)>
        tableEnergies) {
  llvm::DenseMap<Operation *, double> shares;
  auto readGain = [](RMSNormOp norm) -> std::optional<std::vector<double>> {
    auto gain = norm.getWeight().getDefiningOp<WeightOp>();
    if (!gain || !getFloatStorage(gain.getType()))
      return std::nullopt;
    FailureOr<std::vector<float>> g = readFloatWeight(gain);
    if (failed(g))
      return std::nullopt;
    return std::vector<double>(g->begin(), g->end());
  };
  // The rms_norm that reads `residual` (directly or through one op that
  // slices it: the rows the output head reads).
  auto nextNorm = [](Value residual) -> RMSNormOp {
    for (Operation *user : residual.getUsers()) {
      if (auto norm = dyn_cast<RMSNormOp>(user))
        return norm;
      if (!isa<AddOp>(user) && user->getNumResults() == 1)
        for (Operation *next : user->getResult(0).getUsers())
          if (auto norm = dyn_cast<RMSNormOp>(next))
            return norm;
    }
    return RMSNormOp();
  };
  // The linear layers whose outputs reach `input` through anything but
  // another linear layer or the residual stream.
  auto feeders = [](Value input) {
    SmallVector<LinearOp> found;
    llvm::SmallPtrSet<Operation *, 16> seen;
    SmallVector<Value> work = {input};
    while (!work.empty()) {
      Operation *op = work.pop_back_val().getDefiningOp();
      if (!op || !seen.insert(op).second || isa<AddOp, EmbeddingOp>(op))
        continue;
      if (auto linear = dyn_cast<LinearOp>(op)) {
        found.push_back(linear);
        continue;
      }
      llvm::append_range(work, op->getOperands());
    }
    return found;
  };
  module.walk([&](EmbeddingOp embedding) {
    std::optional<std::vector<double>> stream = tableEnergies(embedding);
    if (!stream)
      return;
    const double scale = embedding.getScale().convertToDouble();
    for (double &e : *stream)
      e *= scale * scale;
    Value residual = embedding.getResult();
    while (true) {
      AddOp add;
      for (Operation *user : residual.getUsers())
        if ((add = dyn_cast<AddOp>(user)))
          break;
      if (!add)
        return;
      Value written = add.getLhs() == residual ? add.getRhs() : add.getLhs();
      residual = add.getResult();
      std::optional<std::vector<double>> energies;
      LinearOp writer = written.getDefiningOp<LinearOp>();
      if (auto norm = written.getDefiningOp<RMSNormOp>()) {
        // Normalized to a unit mean square, then scaled by the norm's gain.
        writer = norm.getInput().getDefiningOp<LinearOp>();
        if ((energies = readGain(norm)))
          for (double &e : *energies)
            e *= e;
      } else if (writer) {
        energies = writeEnergies(writer);
      }
      if (!writer || !energies || energies->size() != stream->size())
        continue;
      std::optional<std::vector<double>> gain;
      if (RMSNormOp norm = nextNorm(residual))
        gain = readGain(norm);
      double written2 = 0, total2 = 0;
      for (size_t j = 0; j < stream->size(); ++j) {
        (*stream)[j] += (*energies)[j];
        double g2 = gain && gain->size() == stream->size()
                        ? (*gain)[j] * (*gain)[j]
                        : 1.0;
        written2 += g2 * (*energies)[j];
        total2 += g2 * (*stream)[j];
      }
      if (!(total2 > 0))
        continue;
      double share = written2 / total2;
      shares[writer] = share;
      for (LinearOp feeder : feeders(writer.getInput()))
        shares[feeder] = std::max(shares.lookup(feeder), share);
    }
  });
  return shares;
}

/// budget=B: the width (2..8) and group of each weight. A weight's
/// candidates are every width at the requested group and at two and four
/// times it (fewer scales: what a budget near 2 bits needs), as far as they
/// divide its rows. Each is measured, after the rounding the method does
/// (GPTQ's included) on a sample of rows, by the error it gives the model's
/// output: for every linear layer it feeds, the layer's output error on the
/// calibration inputs (measureOutputError) relative to the output's own,
/// times the layer's share of the residual stream (measureResidualShares);
/// for every embedding that gathers from it (a tied output head's table),
/// the table's relative error, its rows taken alike (the embedding is the
/// whole stream where it is added).
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
    double bitsPerWeight = 0;
    // Relative errors of the layer's output and of the table's rows.
    double outputError = 0, tableError = 0, error = 0;
  };
  struct Choice {
    WeightOp weight;
    int64_t params = 0;
    // Per token, E[y_j^2] of each output j (its profile from H's diagonal,
    // its sum E[|y|^2] from H); of a gathered table, each column's mean
    // square over the rows.
    std::vector<double> outputEnergies, columnEnergies;
    SmallVector<Candidate> candidates, hull;
    size_t at = 0;
  };
  SmallVector<unsigned> groups = {options.group};
  if (options.group)
    groups.append({2 * options.group, 4 * options.group});
  std::vector<Choice> choices;
  llvm::DenseMap<Operation *, size_t> choiceOf;
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
    bool gathered = llvm::any_of(weight->getUsers(), [](Operation *user) {
      return isa<EmbeddingOp>(user);
    });
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
    const double energy = measureOutputError(sample.data(), decoded.data(),
                                             sampled, k, hessian);
    const double squares =
        measureOutputError(sample.data(), decoded.data(), sampled, k, nullptr);
    c.outputEnergies.assign(rows, 0.0);
    double profile = 0;
    for (int64_t r = 0; r < rows; ++r) {
      const float *w = values->data() + r * k;
      double e = 0;
      for (int64_t i = 0; i < k; ++i)
        e += double(w[i]) * w[i] * (hessian ? hessian[i * k + i] : 1.0f);
      c.outputEnergies[r] = e;
      profile += e;
    }
    if (profile > 0)
      for (double &e : c.outputEnergies)
        e *= energy * double(rows) / double(sampled) / profile;
    if (gathered)
      c.columnEnergies = measureColumnSquares(values->data(), rows, k);
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
        Candidate candidate;
        candidate.encoding = {bits, group};
        candidate.bitsPerWeight =
            8.0 * double(encoding->rowBytes(k)) / double(k);
        candidate.outputError =
            measureOutputError(sample.data(), decoded.data(), sampled, k,
                               hessian) /
            (energy > 0 ? energy : 1.0);
        if (gathered)
          candidate.tableError =
              measureOutputError(sample.data(), decoded.data(), sampled, k,
                                 nullptr) /
              (squares > 0 ? squares : 1.0);
        c.candidates.push_back(candidate);
      }
    if (c.candidates.empty())
      return weight.emitOpError("quantize: budget: no width 2..8 can be "
                                "encoded with these options");
    choiceOf[weight] = choices.size();
    choices.push_back(std::move(c));
  }
  llvm::DenseMap<Operation *, double> shares = measureResidualShares(
      module,
      [&](LinearOp linear) -> std::optional<std::vector<double>> {
        auto it = choiceOf.find(linear.getWeight().getDefiningOp());
        if (it == choiceOf.end())
          return std::nullopt;
        return choices[it->second].outputEnergies;
      },
      [&](EmbeddingOp embedding) -> std::optional<std::vector<double>> {
        if (auto it = choiceOf.find(embedding.getTable().getDefiningOp());
            it != choiceOf.end())
          return choices[it->second].columnEnergies;
        auto table = embedding.getTable().getDefiningOp<WeightOp>();
        if (!table || !getFloatStorage(table.getType()))
          return std::nullopt;
        FailureOr<std::vector<float>> values = readFloatWeight(table);
        if (failed(values) || values->empty())
          return std::nullopt;
        return measureColumnSquares(values->data(),
                                    table.getType().getNumRows(),
                                    table.getType().getInnerDim());
      });
  for (Choice &c : choices) {
    double outputWeight = 0;
    bool gathered = false;
    for (Operation *user : c.weight->getUsers()) {
      if (isa<EmbeddingOp>(user))
        gathered = true;
      else
        outputWeight += shares.lookup_or(user, 1.0);
    }
    for (Candidate &candidate : c.candidates)
      candidate.error = outputWeight * candidate.outputError +
                        (gathered ? candidate.tableError : 0.0);
    // The lower convex hull of (bits, error): cheaper first, each kept
    // candidate removing error at a lower rate per bit than the one before.
    llvm::stable_sort(c.candidates, [](const Candidate &a, const Candidate &b) {
      return a.bitsPerWeight < b.bitsPerWeight;
    });
    for (const Candidate &next : c.candidates) {
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
