//===- Cholesky.cpp - dense symmetric positive definite solves ------------===//

#include "Kiln/Transforms/Cholesky.h"

#include <algorithm>
#include <cmath>

namespace kiln {

bool choleskyLower(std::vector<double> &a, int64_t n) {
  for (int64_t j = 0; j < n; ++j) {
    const double *rowJ = a.data() + j * n;
    double d = a[j * n + j] - dotInDouble(rowJ, rowJ, j);
    if (!(d > 0))
      return false;
    d = std::sqrt(d);
    a[j * n + j] = d;
    for (int64_t i = j + 1; i < n; ++i)
      a[i * n + j] =
          (a[i * n + j] - dotInDouble(a.data() + i * n, rowJ, j)) / d;
    for (int64_t i = 0; i < j; ++i)
      a[i * n + j] = 0;
  }
  return true;
}

std::vector<double> inverseFromCholesky(const std::vector<double> &l,
                                        int64_t n) {
  // L^-1 a row at a time from L L^-1 = I: row r is (e_r - sum_{p<r} L_rp
  // row p) / L_rr, sums of whole rows that vectorize (a column at a time
  // strides through memory: minutes for SparseGPT on a model's K = 1536).
  std::vector<double> li(n * n, 0.0);
  for (int64_t r = 0; r < n; ++r) {
    double *rowR = li.data() + r * n;
    rowR[r] = 1;
    for (int64_t p = 0; p < r; ++p) {
      double lrp = l[r * n + p];
      const double *rowP = li.data() + p * n;
      for (int64_t c = 0; c <= p; ++c)
        rowR[c] -= lrp * rowP[c];
    }
    double scale = 1 / l[r * n + r];
    for (int64_t c = 0; c <= r; ++c)
      rowR[c] *= scale;
  }
  // A^-1 = L^-T L^-1: entry (i, j) is the dot of columns i and j of L^-1,
  // both zero above row max(i, j); transposed, they are contiguous rows.
  std::vector<double> columns(n * n);
  for (int64_t r = 0; r < n; ++r)
    for (int64_t c = 0; c <= r; ++c)
      columns[c * n + r] = li[r * n + c];
  std::vector<double> inv(n * n);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j <= i; ++j)
      inv[i * n + j] = inv[j * n + i] = dotInDouble(
          columns.data() + i * n + i, columns.data() + j * n + i, n - i);
  return inv;
}

void solveCholesky(const std::vector<double> &l, int64_t n, double *b) {
  for (int64_t i = 0; i < n; ++i) {
    double s = b[i];
    for (int64_t p = 0; p < i; ++p)
      s -= l[i * n + p] * b[p];
    b[i] = s / l[i * n + i];
  }
  for (int64_t i = n - 1; i >= 0; --i) {
    double s = b[i];
    for (int64_t p = i + 1; p < n; ++p)
      s -= l[p * n + i] * b[p];
    b[i] = s / l[i * n + i];
  }
}

namespace {

double dot(const std::vector<double> &x, const std::vector<double> &y) {
  return dotInDouble(x.data(), y.data(), int64_t(x.size()));
}

/// y = A x for the symmetric n x n `a`: row j of A is its column j, so y is a
/// sum of rows scaled by x_j, a loop without a reduction that vectorizes.
void multiplySymmetric(const std::vector<double> &a, int64_t n, const double *x,
                       double *y) {
  std::fill(y, y + n, 0.0);
  for (int64_t j = 0; j < n; ++j) {
    const double *row = a.data() + j * n;
    double xj = x[j];
    for (int64_t i = 0; i < n; ++i)
      y[i] += row[i] * xj;
  }
}

} // namespace

ConjugateGradientResult solveConjugateGradient(const std::vector<double> &a,
                                               int64_t n, const double *b,
                                               double *x,
                                               double relativeTolerance,
                                               int64_t maxIterations) {
  ConjugateGradientResult result;
  std::vector<double> inverseDiagonal(n), r(n), z(n), p(n), q(n);
  for (int64_t i = 0; i < n; ++i) {
    double d = a[i * n + i];
    if (!(d > 0)) {
      result.positiveDefinite = false;
      return result;
    }
    inverseDiagonal[i] = 1 / d;
  }
  double bNorm = std::sqrt(dotInDouble(b, b, n));
  if (bNorm == 0) {
    std::fill(x, x + n, 0.0);
    return result;
  }
  multiplySymmetric(a, n, x, q.data());
  for (int64_t i = 0; i < n; ++i) {
    r[i] = b[i] - q[i];
    p[i] = z[i] = inverseDiagonal[i] * r[i];
  }
  double rz = dot(r, z), rNorm = std::sqrt(dot(r, r));
  while (rNorm > relativeTolerance * bNorm &&
         result.iterations < maxIterations) {
    multiplySymmetric(a, n, p.data(), q.data());
    double curvature = dot(p, q);
    if (!(curvature > 0)) {
      result.positiveDefinite = false;
      break;
    }
    double alpha = rz / curvature;
    for (int64_t i = 0; i < n; ++i) {
      x[i] += alpha * p[i];
      r[i] -= alpha * q[i];
      z[i] = inverseDiagonal[i] * r[i];
    }
    ++result.iterations;
    rNorm = std::sqrt(dot(r, r));
    double rzNext = dot(r, z);
    double beta = rzNext / rz;
    rz = rzNext;
    for (int64_t i = 0; i < n; ++i)
      p[i] = z[i] + beta * p[i];
  }
  result.relativeResidual = rNorm / bNorm;
  return result;
}

void dampDiagonal(std::vector<double> &a, int64_t n, double fraction) {
  double mean = 0;
  for (int64_t j = 0; j < n; ++j)
    mean += a[j * n + j] / double(n);
  for (int64_t j = 0; j < n; ++j)
    a[j * n + j] += fraction * mean;
}

} // namespace kiln
