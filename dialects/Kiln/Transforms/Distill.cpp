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
//===----------------------------------------------------------------------===//

#include "Calibration/CalibrationStats.h"
#include "Kiln/IR/WeightStore.h"
#include "Kiln/Transforms/Cholesky.h"
#include "Kiln/Transforms/Passes.h"
#include "Kiln/Transforms/RoundToNearest.h"

#include "mlir/IR/Builders.h"
#include "mlir/Parser/Parser.h"
#include "llvm/ADT/SetVector.h"
#include "llvm/ADT/StringMap.h"

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

/// The weight's values as floats (it is float and stored dense).
FailureOr<std::vector<float>> readValues(WeightOp weight) {
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

/// Refits each row of `student` (its zeros stay zeros) to `teacher`'s
/// output under the input second moments `hessian` (k x k).
LogicalResult refit(WeightOp student, ArrayRef<float> teacher,
                    const std::vector<float> &hessian) {
  WeightType type = student.getType();
  int64_t k = type.getInnerDim(), rows = type.getNumRows();
  FailureOr<std::vector<float>> values = readValues(student);
  if (failed(values))
    return failure();
  std::vector<double> h(hessian.begin(), hessian.end());
  ::kiln::dampDiagonal(h, k, 0.01);
  std::vector<int64_t> kept;
  std::vector<double> system, rhs;
  for (int64_t r = 0; r < rows; ++r) {
    float *row = values->data() + r * k;
    const float *target = teacher.data() + r * k;
    kept.clear();
    for (int64_t j = 0; j < k; ++j)
      if (row[j] != 0)
        kept.push_back(j);
    int64_t n = kept.size();
    if (n == 0)
      continue;
    system.assign(n * n, 0.0);
    rhs.assign(n, 0.0);
    for (int64_t a = 0; a < n; ++a) {
      const double *hRow = h.data() + kept[a] * k;
      for (int64_t b = 0; b < n; ++b)
        system[a * n + b] = hRow[kept[b]];
      for (int64_t j = 0; j < k; ++j)
        rhs[a] += hRow[j] * target[j];
    }
    if (!::kiln::choleskyLower(system, n))
      return student.emitOpError("distill: X^T X + damping restricted to the "
                                 "kept inputs of row ")
             << r << " is not positive definite";
    ::kiln::solveCholesky(system, n, rhs.data());
    for (int64_t a = 0; a < n; ++a)
      row[kept[a]] = float(rhs[a]);
  }
  AsmResourceBlob blob = allocateWeightBytes(*type.getStorageBytes());
  ::kiln::encodeScalars(
      *getFloatStorage(type), values->data(), rows * k,
      reinterpret_cast<uint8_t *>(blob.getMutableData().data()));
  OpBuilder b(student);
  WeightOp replacement = createWeight(b, student.getLoc(), type,
                                      std::move(blob), nameOf(student));
  student.replaceAllUsesWith(replacement.getResult());
  student.erase();
  return success();
}

struct Distill : mlir::kiln::impl::KilnDistillBase<Distill> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    if (teacher.empty() || calibration.empty()) {
      module.emitError("distill: needs teacher=<module.mlir> and "
                       "calibration=<statistics file>");
      return signalPassFailure();
    }
    ::kiln::CalibrationStatistics stats;
    std::string error;
    if (!::kiln::readCalibrationStatistics(calibration, stats, error)) {
      module.emitError("distill: ") << error;
      return signalPassFailure();
    }
    OwningOpRef<ModuleOp> teacherModule =
        parseSourceFile<ModuleOp>(teacher, ParserConfig(&getContext()));
    if (!teacherModule) {
      module.emitError("distill: cannot read the teacher module ") << teacher;
      return signalPassFailure();
    }
    if (failed(distill(module, *teacherModule, stats)))
      signalPassFailure();
  }

  /// Refits every pruned float weight of a linear layer of `module` (a
  /// quantized one keeps its codes: distil before kiln-quantize).
  LogicalResult distill(ModuleOp module, ModuleOp teacherModule,
                        const ::kiln::CalibrationStatistics &stats) {
    llvm::StringMap<WeightOp> teacherWeights;
    teacherModule.walk([&](WeightOp w) {
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
      FailureOr<std::vector<float>> target = readValues(source);
      if (failed(target) || failed(refit(student, *target, input->hessian)))
        return failure();
    }
    return success();
  }
};

} // namespace
