//===- SparseGPT.cpp - pruning with OBS updates of the kept weights -------===//

#include "Kiln/Transforms/SparseGPT.h"
#include "Kiln/Transforms/Cholesky.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace kiln {

static llvm::Error fail(const llvm::Twine &message) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), message);
}

/// Clears `keep` at the `count` of `columns` (row-relative indices into
/// `row`) whose scores are lowest; ties: the lower column first.
static void dropLowest(const std::vector<double> &scores, int64_t first,
                       int64_t width, int64_t count, uint8_t *keepRow) {
  if (count <= 0)
    return;
  std::vector<int64_t> cols(width);
  std::iota(cols.begin(), cols.end(), first);
  std::nth_element(cols.begin(), cols.begin() + (count - 1), cols.end(),
                   [&](int64_t a, int64_t b) {
                     return scores[a] < scores[b] ||
                            (scores[a] == scores[b] && a < b);
                   });
  for (int64_t i = 0; i < count; ++i)
    keepRow[cols[i]] = 0;
}

llvm::Expected<std::vector<uint8_t>>
pruneSparseGPT(std::vector<float> &weights, int64_t rows, int64_t k,
               const float *hessian, const PruneOptions &o) {
  std::vector<double> h(hessian, hessian + k * k);
  std::vector<double> w(weights.begin(), weights.end());
  // An input that is always zero carries no information: its weights are
  // pruned first and its diagonal set to 1 so that H stays invertible (as
  // the reference implementation does).
  std::vector<uint8_t> dead(k, 0);
  for (int64_t j = 0; j < k; ++j)
    if (h[j * k + j] == 0) {
      dead[j] = 1;
      h[j * k + j] = 1;
    }
  // The paper's damping: 1% of the mean diagonal.
  dampDiagonal(h, k, 0.01);
  if (!choleskyLower(h, k))
    return fail("prune: sparsegpt: X^T X + damping is not positive definite");
  std::vector<double> u = inverseFromCholesky(h, k);
  // U: upper factor of H^-1 = U^T U, the transpose of its lower factor.
  if (!choleskyLower(u, k))
    return fail("prune: sparsegpt: the inverse of X^T X is not positive "
                "definite");
  // Stored row-major (row j of U is column j of u) for the updates below,
  // each a run along a row of U.
  std::vector<double> upperRows(k * k);
  for (int64_t i = 0; i < k; ++i)
    for (int64_t j = 0; j < k; ++j)
      upperRows[i * k + j] = u[j * k + i];
  auto upper = [&](int64_t i, int64_t j) { return upperRows[i * k + j]; };

  std::vector<uint8_t> keep(rows * k, 1);
  std::vector<double> scores(k);
  // Blocks of 128 columns (the paper's B), a whole number of N:M runs.
  int64_t blockCols = o.pattern == PrunePattern::NM
                          ? std::max<int64_t>(o.m, 128 - 128 % o.m)
                          : 128;
  std::vector<double> err(rows * blockCols);
  for (int64_t c1 = 0; c1 < k; c1 += blockCols) {
    int64_t c2 = std::min(k, c1 + blockCols);
    // Unstructured: the block prunes its share of each row, so that the row
    // totals telescope to round(rate k).
    if (o.pattern == PrunePattern::Unstructured) {
      int64_t count = std::llround(o.rate * c2) - std::llround(o.rate * c1);
      for (int64_t r = 0; r < rows; ++r) {
        for (int64_t j = c1; j < c2; ++j) {
          double d = upper(j, j);
          scores[j] = dead[j] ? -1.0 : w[r * k + j] * w[r * k + j] / (d * d);
        }
        dropLowest(scores, c1, c2 - c1, count, &keep[r * k]);
      }
    }
    for (int64_t j = c1; j < c2; ++j) {
      // N:M: each run's mask is chosen when the run is reached, from the
      // weights the earlier updates left.
      if (o.pattern == PrunePattern::NM && (j - c1) % o.m == 0)
        for (int64_t r = 0; r < rows; ++r) {
          for (int64_t p = j; p < j + o.m; ++p) {
            double d = upper(p, p);
            scores[p] =
                dead[p] ? -1.0 : w[r * k + p] * w[r * k + p] / (d * d);
          }
          dropLowest(scores, j, o.m, o.m - o.n, &keep[r * k]);
        }
      double d = upper(j, j);
      for (int64_t r = 0; r < rows; ++r) {
        double value = w[r * k + j];
        double kept = keep[r * k + j] ? value : 0.0;
        double e = (value - kept) / d;
        err[r * blockCols + (j - c1)] = e;
        w[r * k + j] = kept;
        const double *upperRow = upperRows.data() + j * k;
        for (int64_t p = j + 1; p < c2; ++p)
          w[r * k + p] -= e * upperRow[p];
      }
    }
    // The block's errors reach the columns after it.
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t j = c1; j < c2; ++j) {
        double e = err[r * blockCols + (j - c1)];
        if (e == 0)
          continue;
        const double *upperRow = upperRows.data() + j * k;
        for (int64_t p = c2; p < k; ++p)
          w[r * k + p] -= e * upperRow[p];
      }
  }
  for (int64_t i = 0; i < rows * k; ++i)
    weights[i] = keep[i] ? float(w[i]) : 0.0f;
  return keep;
}

} // namespace kiln
