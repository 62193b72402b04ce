//===- Distill.cpp - kiln-distill: refit pruned layers to the teacher -----===//
//
// Layer-wise distillation by least squares: each row of a pruned linear
// weight keeps its mask, and its kept weights w_S become the fit of the
// teacher's output on the calibration inputs,
//   w_S = argmin || X_S w_S - X w_t ||^2 = (H_SS + lambda I)^-1 (H w_t)_S,
// H = X^T X / N from the calibration statistics, lambda 1% of H's mean
// diagonal (SparseGPT's damping). The error that magnitude or Wanda pruning
// leaves is what this wins back.
//
// Statistics of the pruned student's own inputs (kiln-run --collect-stats
// on the student, with or without --teacher) make H the student's: each
// layer then matches the teacher's layer on the inputs the student feeds it.
// The cross moments C = X^T Y / N against the teacher's inputs Y, when the
// file has them, are not used: every layer is refit at once, so a fit of the
// teacher's output Y w_t on the student's inputs X (right-hand side C w_t)
// makes up for upstream errors that the upstream layers' own refits then
// remove. On SmolLM2 at 2:4 that fit, better layer by layer on X, errs
// 4-12x more than the teacher-input fit on the teacher's inputs, and gave
// a perplexity of 2 million (issue 14,
// bench/results/prune-accuracy-20261205-student2.md); it is sound only when
// each layer's inputs are collected after the layers before it are refit.
//
//===----------------------------------------------------------------------===//

#include "Calibration/CalibrationStats.h"
#include "Kiln/IR/WeightStore.h"
#include "Kiln/Transforms/Cholesky.h"
#include "Kiln/Transforms/Passes.h"
#include "Kiln/Transforms/RoundToNearest.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/Threading.h"
#include "mlir/Parser/Parser.h"
#include "llvm/ADT/SetVector.h"
#include "llvm/ADT/StringMap.h"

#include <atomic>
#include <vector>

namespace mlir::kiln {
#define GEN_PASS_DEF_KILNDISTILL
#include "Kiln/Transforms/Passes.h.inc"
} // namespace mlir::kiln

using namespace mlir;
using namespace mlir::kiln;

namespace {

StringRef nameOf(WeightOp weight) {
  auto loc = dyn_cast<NameLoc>(weight.getLoc());
  return loc ? loc.getName().getValue() : StringRef();
}

/// A row with at most this many kept weights is solved exactly by Cholesky
/// (n^3 / 6 <= 2.8 M multiply-adds, the cost of ~40 iterations below, and
/// the tests' layers stay exact); wider rows by conjugate gradients, n^2 an
/// iteration. SmolLM2 at 2:4 (288 and 768 kept weights a row): 48 iterations
/// a row on average, 1 of 155520 rows at the cap, 2.2x less solve time than
/// Cholesky on the rows sampled, within 0.4% of the exact fit (7.7% at most).
constexpr int64_t kLargestExactSolve = 256;
/// The iterative solve's stop: ||b - A x|| <= 1e-4 ||b||, or the cap.
constexpr double kRelativeResidual = 1e-4;
constexpr int64_t kMaxIterations = 200;

/// Refits each row of `student` (its zeros stay zeros) to `teacher`'s
/// output under the input second moments (k x k) of the statistics.
LogicalResult refit(WeightOp student, ArrayRef<float> teacher,
                    const ::kiln::InputStatistics &input) {
  WeightType type = student.getType();
  int64_t k = type.getInnerDim(), rows = type.getNumRows();
  FailureOr<std::vector<float>> values = readFloatWeight(student);
  if (failed(values))
    return failure();
  std::vector<double> h(input.hessian.begin(), input.hessian.end());
  ::kiln::dampDiagonal(h, k, 0.01);
  double damping = h[0] - double(input.hessian[0]);
  // Rows are independent solves (most of the time a model's distillation
  // takes): spread over the context's threads.
  std::atomic<int64_t> indefiniteRow{-1};
  auto refitRow = [&](size_t r) {
    float *row = values->data() + r * k;
    const float *teacherRow = teacher.data() + r * k;
    std::vector<int64_t> kept;
    for (int64_t j = 0; j < k; ++j)
      if (row[j] != 0)
        kept.push_back(j);
    int64_t n = kept.size();
    if (n == 0)
      return success();
    std::vector<double> system(n * n), rhs(n);
    for (int64_t a = 0; a < n; ++a) {
      const double *hRow = h.data() + kept[a] * k;
      const float *targetRow = input.hessian.data() + kept[a] * k;
      for (int64_t b = 0; b < n; ++b)
        system[a * n + b] = hRow[kept[b]];
      rhs[a] = ::kiln::dotInDouble(targetRow, teacherRow, k) +
               damping * teacherRow[kept[a]];
    }
    if (n <= kLargestExactSolve) {
      if (!::kiln::choleskyLower(system, n)) {
        indefiniteRow = int64_t(r);
        return failure();
      }
      ::kiln::solveCholesky(system, n, rhs.data());
      for (int64_t a = 0; a < n; ++a)
        row[kept[a]] = float(rhs[a]);
      return success();
    }
    // Started from the pruned row's kept weights: every iteration lowers
    // the damped least-squares error above, so a row that meets the cap is
    // still a better fit than the pruned one.
    std::vector<double> fit(n);
    for (int64_t a = 0; a < n; ++a)
      fit[a] = row[kept[a]];
    ::kiln::ConjugateGradientResult solve =
        ::kiln::solveConjugateGradient(system, n, rhs.data(), fit.data(),
                                       kRelativeResidual, kMaxIterations);
    if (!solve.positiveDefinite) {
      indefiniteRow = int64_t(r);
      return failure();
    }
    for (int64_t a = 0; a < n; ++a)
      row[kept[a]] = float(fit[a]);
    return success();
  };
  if (failed(failableParallelForEachN(student.getContext(), 0, size_t(rows),
                                      refitRow)))
    return student.emitOpError("distill: X^T X + damping restricted to the "
                               "kept inputs of row ")
           << indefiniteRow.load() << " is not positive definite";
  replaceFloatWeight(student, *values);
  return success();
}

struct Distill : mlir::kiln::impl::KilnDistillBase<Distill> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    if (teacher.empty() || (calibration.empty() && inputs.empty())) {
      module.emitError("distill: needs teacher=<module.mlir> and "
                       "calibration=<statistics file> (layer by layer), "
                       "inputs=<inputs.npy> (end to end) or both");
      return signalPassFailure();
    }
    OwningOpRef<ModuleOp> teacherModule =
        parseSourceFile<ModuleOp>(teacher, ParserConfig(&getContext()));
    if (!teacherModule) {
      module.emitError("distill: cannot read the teacher module ") << teacher;
      return signalPassFailure();
    }
    if (!calibration.empty() &&
        failed(distillWeights(module, *teacherModule, calibration)))
      return signalPassFailure();
    if (inputs.empty())
      return;
    LogitDistillationOptions options;
    options.inputs = inputs;
    options.temperature = temperature;
    options.steps = steps;
    options.learningRate = learningRate;
    if (failed(distillLogits(module, *teacherModule, options)))
      signalPassFailure();
  }
};

} // namespace

FailureOr<std::vector<float>> mlir::kiln::readFloatWeight(WeightOp weight) {
  WeightType type = weight.getType();
  FailureOr<ArrayRef<char>> bytes = readWeightBytes(weight);
  if (failed(bytes))
    return failure();
  std::vector<float> values(type.getNumRows() * type.getInnerDim());
  ::kiln::decodeScalars(*getFloatStorage(type),
                        reinterpret_cast<const uint8_t *>(bytes->data()),
                        values.size(), values.data());
  return values;
}

void mlir::kiln::replaceFloatWeight(WeightOp weight, ArrayRef<float> values) {
  WeightType type = weight.getType();
  AsmResourceBlob blob = allocateWeightBytes(*type.getStorageBytes());
  ::kiln::encodeScalars(
      *getFloatStorage(type), values.data(), int64_t(values.size()),
      reinterpret_cast<uint8_t *>(blob.getMutableData().data()));
  OpBuilder b(weight);
  StringRef name = nameOf(weight);
  WeightOp replacement = createWeight(b, weight.getLoc(), type, std::move(blob),
                                      name.empty() ? "weight" : name);
  weight.replaceAllUsesWith(replacement.getResult());
  weight.erase();
}

LogicalResult mlir::kiln::distillWeights(ModuleOp module, ModuleOp teacher,
                                         StringRef calibration) {
  ::kiln::CalibrationStatistics stats;
  std::string error;
  if (!::kiln::readCalibrationStatistics(calibration.str(), stats, error))
    return module.emitError("distill: ") << error;
  llvm::StringMap<WeightOp> teacherWeights;
  teacher.walk([&](WeightOp w) {
    if (!nameOf(w).empty())
      teacherWeights[nameOf(w)] = w;
  });
  llvm::SetVector<WeightOp> students;
  module.walk([&](LinearOp linear) {
    auto w = linear.getWeight().getDefiningOp<WeightOp>();
    if (w && w.getType().getSparsity() && getFloatStorage(w.getType()))
      students.insert(w);
  });
  for (WeightOp student : students) {
    StringRef name = nameOf(student);
    WeightType type = student.getType();
    if (name.empty())
      return student.emitOpError("distill: the weight has no name (a "
                                 "NameLoc, as the importers give) to find "
                                 "it by in the teacher");
    WeightOp source = teacherWeights.lookup(name);
    if (!source)
      return student.emitOpError("distill: the teacher has no weight '")
             << name << "'";
    WeightType sourceType = source.getType();
    if (sourceType.getShape() != type.getShape() ||
        sourceType.getSparsity() || !getFloatStorage(sourceType))
      return student.emitOpError("distill: the teacher's '")
             << name << "' is not a dense float weight of its shape";
    const ::kiln::InputStatistics *input = stats.findWeight(name.str());
    if (!input || input->cols != type.getInnerDim())
      return student.emitOpError("distill: ")
             << calibration << " has no statistics of K = "
             << type.getInnerDim() << " for '" << name << "'";
    FailureOr<std::vector<float>> target = readFloatWeight(source);
    if (failed(target) || failed(refit(student, *target, *input)))
      return failure();
  }
  return success();
}
