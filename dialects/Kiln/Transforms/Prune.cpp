//===- Prune.cpp - kiln-prune: zero the least important weights -----------===//
//
// Masks are chosen per weight by PruneOptions' pattern and criterion; the
// weight keeps its dense storage (zeros written) and its type is marked
// `sparsity = #kiln.sparsity<..., dense = true>`, so it runs on the dense
// kernels until it is packed for sparse ones.
//
//===----------------------------------------------------------------------===//

#include "Calibration/CalibrationStats.h"
#include "Kiln/IR/WeightStore.h"
#include "Kiln/Transforms/Passes.h"
#include "Kiln/Transforms/PruneOptions.h"
#include "Kiln/Transforms/RoundToNearest.h"
#include "Kiln/Transforms/SparseGPT.h"

#include "mlir/IR/Builders.h"
#include "llvm/ADT/SetVector.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

namespace mlir::kiln {
#define GEN_PASS_DEF_KILNPRUNE
#include "Kiln/Transforms/Passes.h.inc"
} // namespace mlir::kiln

using namespace mlir;
using namespace mlir::kiln;
using ::kiln::PruneCriterion;
using ::kiln::PruneOptions;
using ::kiln::PrunePattern;

namespace {

/// Whether every use of `weight` is the weight of a linear layer (a table
/// tied to an embedding stays dense: a lookup reads every row).
bool onlyMultiplied(WeightOp weight) {
  return llvm::all_of(weight->getUses(), [](OpOperand &use) {
    auto linear = dyn_cast<LinearOp>(use.getOwner());
    return linear && &use == &linear.getWeightMutable();
  });
}

/// Clears `keep` at the `count` positions of `indices` with the lowest
/// scores (ties: the lower index goes first, so masks are deterministic).
void dropLowest(const std::vector<double> &scores,
                std::vector<int64_t> &indices, int64_t count,
                std::vector<uint8_t> &keep) {
  if (count <= 0)
    return;
  auto lower = [&](int64_t a, int64_t b) {
    return scores[a] < scores[b] || (scores[a] == scores[b] && a < b);
  };
  std::nth_element(indices.begin(), indices.begin() + (count - 1),
                   indices.end(), lower);
  for (int64_t i = 0; i < count; ++i)
    keep[indices[i]] = 0;
}

/// The mask of `scores` (rows x k, row-major) under a pattern.
std::vector<uint8_t> selectMask(const std::vector<double> &scores,
                                int64_t rows, int64_t k,
                                const PruneOptions &o) {
  std::vector<uint8_t> keep(rows * k, 1);
  std::vector<int64_t> indices;
  switch (o.pattern) {
  case PrunePattern::Unstructured:
    for (int64_t r = 0; r < rows; ++r) {
      indices.resize(k);
      std::iota(indices.begin(), indices.end(), r * k);
      dropLowest(scores, indices, std::llround(o.rate * k), keep);
    }
    break;
  case PrunePattern::NM:
    for (int64_t start = 0; start < rows * k; start += o.m) {
      indices.resize(o.m);
      std::iota(indices.begin(), indices.end(), start);
      dropLowest(scores, indices, o.m - o.n, keep);
    }
    break;
  case PrunePattern::Block: {
    int64_t blockRows = rows / o.blockRows, blockCols = k / o.blockCols;
    std::vector<double> blockScores(blockRows * blockCols, 0.0);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < k; ++c)
        blockScores[r / o.blockRows * blockCols + c / o.blockCols] +=
            scores[r * k + c];
    std::vector<uint8_t> keepBlock(blockScores.size(), 1);
    indices.resize(blockScores.size());
    std::iota(indices.begin(), indices.end(), 0);
    dropLowest(blockScores, indices,
               std::llround(o.rate * double(blockScores.size())), keepBlock);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < k; ++c)
        keep[r * k + c] =
            keepBlock[r / o.blockRows * blockCols + c / o.blockCols];
    break;
  }
  }
  return keep;
}

/// The #kiln.sparsity that describes `keep` under the pattern.
SparsityAttr getSparsity(MLIRContext *ctx, const PruneOptions &o,
                         const std::vector<uint8_t> &keep) {
  uint64_t kept = std::count(keep.begin(), keep.end(), uint8_t(1));
  switch (o.pattern) {
  case PrunePattern::Unstructured:
    return SparsityAttr::get(ctx, SparsityKind::Bitmap, 0, 0, 0, 0, kept,
                             /*dense=*/true);
  case PrunePattern::NM:
    return SparsityAttr::get(ctx, SparsityKind::NM, o.n, o.m, 0, 0, 0,
                             /*dense=*/true);
  case PrunePattern::Block:
    return SparsityAttr::get(ctx, SparsityKind::Block, 0, 0, o.blockRows,
                             o.blockCols,
                             kept / (uint64_t(o.blockRows) * o.blockCols),
                             /*dense=*/true);
  }
  return {};
}

LogicalResult pruneWeight(WeightOp weight, const PruneOptions &o,
                          const ::kiln::CalibrationStatistics *calibration) {
  WeightType type = weight.getType();
  ::kiln::ScalarType storage = *getFloatStorage(type);
  int64_t k = type.getInnerDim(), rows = type.getNumRows();
  if (llvm::Error e = o.validateShape(rows, k))
    return weight.emitOpError(llvm::toString(std::move(e)));
  StringRef name = "pruned";
  if (auto loc = dyn_cast<NameLoc>(weight.getLoc()))
    name = loc.getName();
  const ::kiln::InputStatistics *stats = nullptr;
  if (o.criterion != PruneCriterion::Magnitude) {
    stats = calibration->findWeight(name.str());
    if (!stats)
      return weight.emitOpError("prune: ")
             << o.calibration << " has no statistics for '" << name << "'";
    if (stats->cols != k)
      return weight.emitOpError("prune: ")
             << o.calibration << " has statistics of K = " << stats->cols
             << " for '" << name << "', whose K is " << k;
  }
  FailureOr<ArrayRef<char>> bytes = readWeightBytes(weight);
  if (failed(bytes))
    return failure();
  std::vector<float> values(rows * k);
  ::kiln::decodeScalars(storage,
                        reinterpret_cast<const uint8_t *>(bytes->data()),
                        rows * k, values.data());
  for (int64_t i = 0; i < rows * k; ++i)
    if (!std::isfinite(values[i]))
      return weight.emitOpError("prune: row ")
             << i / k << " holds a value that is not finite";

  std::vector<uint8_t> keep;
  if (o.criterion == PruneCriterion::SparseGPT) {
    llvm::Expected<std::vector<uint8_t>> mask = ::kiln::pruneSparseGPT(
        values, rows, k, stats->hessian.data(), o);
    if (!mask)
      return weight.emitOpError(llvm::toString(mask.takeError()))
             << " for '" << name << "'";
    keep = std::move(*mask);
  } else {
    std::vector<double> scores(rows * k);
    for (int64_t i = 0; i < rows * k; ++i)
      scores[i] = std::fabs(double(values[i]));
    // Wanda: |w_ij| ||x_j||; the file's mean of x_j^2 is ||x_j||^2 / N,
    // the same order.
    if (o.criterion == PruneCriterion::Wanda)
      for (int64_t i = 0; i < rows * k; ++i)
        scores[i] *= std::sqrt(double(stats->hessian[(i % k) * (k + 1)]));
    keep = selectMask(scores, rows, k, o);
  }
  for (int64_t i = 0; i < rows * k; ++i)
    if (!keep[i])
      values[i] = 0.0f;

  MLIRContext *ctx = weight.getContext();
  auto pruned = WeightType::get(ctx, type.getShape(), type.getElementType(),
                                QuantSchemeAttr(), getSparsity(ctx, o, keep));
  FailureOr<uint64_t> size = pruned.getStorageBytes();
  if (failed(size) || *size != bytes->size())
    return weight.emitOpError("prune: the pruned weight's storage differs "
                              "from the dense one (a compiler bug)");
  AsmResourceBlob blob = allocateWeightBytes(*size);
  ::kiln::encodeScalars(storage, values.data(), rows * k,
                        reinterpret_cast<uint8_t *>(blob.getMutableData().data()));
  OpBuilder b(weight);
  WeightOp replacement =
      createWeight(b, weight.getLoc(), pruned, std::move(blob), name);
  weight.replaceAllUsesWith(replacement.getResult());
  weight.erase();
  return success();
}

struct Prune : mlir::kiln::impl::KilnPruneBase<Prune> {
  using Base::Base;

  void runOnOperation() override {
    PruneOptions options;
    if (!::kiln::parsePrunePattern(pattern, options.pattern)) {
      getOperation().emitError("prune: pattern=")
          << pattern << " is not one of unstructured, nm, block";
      return signalPassFailure();
    }
    if (!::kiln::parsePruneCriterion(criterion, options.criterion)) {
      getOperation().emitError("prune: criterion=")
          << criterion << " is not one of magnitude, wanda, sparsegpt";
      return signalPassFailure();
    }
    if (!::kiln::parseBlockShape(block, options.blockRows,
                                 options.blockCols)) {
      getOperation().emitError("prune: block=")
          << block << " is not rows x columns (e.g. 4x4)";
      return signalPassFailure();
    }
    options.rate = rate;
    options.n = n;
    options.m = m;
    options.calibration = calibration;
    if (failed(pruneWeights(getOperation(), options)))
      signalPassFailure();
  }
};

} // namespace

LogicalResult mlir::kiln::pruneWeights(ModuleOp module,
                                       const PruneOptions &options) {
  if (llvm::Error e = options.validate())
    return module.emitError(llvm::toString(std::move(e)));
  std::optional<::kiln::CalibrationStatistics> calibration;
  if (options.criterion != PruneCriterion::Magnitude) {
    calibration.emplace();
    std::string error;
    if (!::kiln::readCalibrationStatistics(options.calibration, *calibration,
                                           error))
      return module.emitError("prune: ") << error;
  }
  llvm::SetVector<WeightOp> weights;
  module.walk([&](LinearOp linear) {
    auto weight = linear.getWeight().getDefiningOp<WeightOp>();
    if (weight && getFloatStorage(weight.getType()) &&
        !weight.getType().getSparsity() && weight.getType().getRank() == 2 &&
        onlyMultiplied(weight))
      weights.insert(weight);
  });
  for (WeightOp weight : weights)
    if (failed(pruneWeight(weight, options,
                           calibration ? &*calibration : nullptr)))
      return failure();
  return success();
}
