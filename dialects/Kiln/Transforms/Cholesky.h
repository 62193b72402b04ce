//===- Cholesky.h - dense symmetric positive definite solves ----*- C++ -*-===//
//
// The float64 Cholesky factorization, inverse and solve that SparseGPT and
// kiln-distill use on X^T X of a layer's inputs (K x K, row-major), and the
// conjugate-gradient solve kiln-distill uses where a factorization per row
// costs too much.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_TRANSFORMS_CHOLESKY_H
#define KILN_TRANSFORMS_CHOLESKY_H

#include <cstdint>
#include <vector>

namespace kiln {

/// sum_i a_i b_i in float64, in eight partial sums so that the additions do
/// not wait on one another (a compiler may not reorder them itself): the
/// inner loop of the factorization and of kiln-distill's right-hand sides.
template <typename T> double dotInDouble(const T *a, const T *b, int64_t n) {
  double partial[8] = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int64_t lane = 0; lane < 8; ++lane)
      partial[lane] += double(a[i + lane]) * double(b[i + lane]);
  double sum = 0;
  for (; i < n; ++i)
    sum += double(a[i]) * double(b[i]);
  for (double p : partial)
    sum += p;
  return sum;
}

/// In place: the lower Cholesky factor L of the symmetric n x n matrix `a`
/// (A = L L^T; the upper triangle is cleared). False if A is not positive
/// definite.
bool choleskyLower(std::vector<double> &a, int64_t n);

/// The inverse of A = L L^T, given L (lower), n x n.
std::vector<double> inverseFromCholesky(const std::vector<double> &l,
                                        int64_t n);

/// In place: x = A^-1 b for A = L L^T, given L (lower), n x n.
void solveCholesky(const std::vector<double> &l, int64_t n, double *b);

/// How a conjugate-gradient solve ended.
struct ConjugateGradientResult {
  /// False if some search direction p had p^T A p <= 0 (A is not positive
  /// definite); x then holds the last iterate.
  bool positiveDefinite = true;
  int64_t iterations = 0;
  /// ||b - A x|| / ||b|| at the end (the recurrence's residual).
  double relativeResidual = 0;
};

/// In place: x ~ A^-1 b for the symmetric positive definite n x n `a`, by
/// conjugate gradients preconditioned with A's diagonal, started from the
/// guess in `x`, until ||b - A x|| <= relativeTolerance ||b|| or after
/// maxIterations. Each iteration lowers (x - A^-1 b)^T A (x - A^-1 b), so a
/// stop at the cap still improves on the guess. n^2 multiply-adds an
/// iteration, against n^3 / 6 for choleskyLower.
ConjugateGradientResult solveConjugateGradient(const std::vector<double> &a,
                                               int64_t n, const double *b,
                                               double *x,
                                               double relativeTolerance,
                                               int64_t maxIterations);

/// Adds `fraction` of the mean diagonal of the n x n matrix `a` to its
/// diagonal (SparseGPT's and GPTQ's damping, fraction 0.01).
void dampDiagonal(std::vector<double> &a, int64_t n, double fraction);

} // namespace kiln

#endif // KILN_TRANSFORMS_CHOLESKY_H
