//===- Cholesky.cpp - dense symmetric positive definite solves ------------===//

#include "Kiln/Transforms/Cholesky.h"

#include <cmath>

namespace kiln {

bool choleskyLower(std::vector<double> &a, int64_t n) {
  for (int64_t j = 0; j < n; ++j) {
    double d = a[j * n + j];
    for (int64_t p = 0; p < j; ++p)
      d -= a[j * n + p] * a[j * n + p];
    if (!(d > 0))
      return false;
    d = std::sqrt(d);
    a[j * n + j] = d;
    for (int64_t i = j + 1; i < n; ++i) {
      double s = a[i * n + j];
      for (int64_t p = 0; p < j; ++p)
        s -= a[i * n + p] * a[j * n + p];
      a[i * n + j] = s / d;
    }
    for (int64_t i = 0; i < j; ++i)
      a[i * n + j] = 0;
  }
  return true;
}

std::vector<double> inverseFromCholesky(const std::vector<double> &l,
                                        int64_t n) {
  // L^-1 by forward substitution, then A^-1 = L^-T L^-1.
  std::vector<double> li(n * n, 0.0);
  for (int64_t c = 0; c < n; ++c) {
    li[c * n + c] = 1.0 / l[c * n + c];
    for (int64_t r = c + 1; r < n; ++r) {
      double s = 0;
      for (int64_t p = c; p < r; ++p)
        s += l[r * n + p] * li[p * n + c];
      li[r * n + c] = -s / l[r * n + r];
    }
  }
  std::vector<double> inv(n * n, 0.0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j <= i; ++j) {
      double s = 0;
      for (int64_t p = i; p < n; ++p)
        s += li[p * n + i] * li[p * n + j];
      inv[i * n + j] = inv[j * n + i] = s;
    }
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

void dampDiagonal(std::vector<double> &a, int64_t n, double fraction) {
  double mean = 0;
  for (int64_t j = 0; j < n; ++j)
    mean += a[j * n + j] / double(n);
  for (int64_t j = 0; j < n; ++j)
    a[j * n + j] += fraction * mean;
}

} // namespace kiln
