//===- SymmetricSolveTest.cpp - Cholesky and conjugate-gradient solves ----===//
//
// kiln-distill solves rows wider than 256 kept weights by conjugate gradients
// instead of Cholesky: its answer against the exact one on a system shaped
// like a layer's calibration statistics (correlated inputs, a few 10x
// columns, fewer tokens than inputs, SparseGPT's 1% damping).
//
//===----------------------------------------------------------------------===//

#include "Kiln/Transforms/Cholesky.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

using namespace kiln;

namespace {

double norm(const std::vector<double> &v) {
  double s = 0;
  for (double x : v)
    s += x * x;
  return std::sqrt(s);
}

std::vector<double> multiply(const std::vector<double> &a, int64_t n,
                             const std::vector<double> &x) {
  std::vector<double> y(n, 0.0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j)
      y[i] += a[i * n + j] * x[j];
  return y;
}

/// (x - e)^T A (x - e): the layer's output error that x adds over the exact
/// fit e.
double energyError(const std::vector<double> &a, int64_t n,
                   const std::vector<double> &x, const std::vector<double> &e) {
  std::vector<double> d(n);
  for (int64_t i = 0; i < n; ++i)
    d[i] = x[i] - e[i];
  std::vector<double> ad = multiply(a, n, d);
  double s = 0;
  for (int64_t i = 0; i < n; ++i)
    s += d[i] * ad[i];
  return s;
}

/// X^T X / N + 1% of its mean diagonal, X: N tokens of n inputs that mix 8
/// shared factors, every 37th input 10x larger.
std::vector<double> calibrationHessian(int64_t n, int64_t tokens,
                                       std::mt19937 &rng) {
  std::normal_distribution<double> gauss;
  std::vector<double> mixing(8 * n);
  for (double &m : mixing)
    m = gauss(rng);
  std::vector<double> h(n * n, 0.0), x(n), factors(8);
  for (int64_t t = 0; t < tokens; ++t) {
    for (double &f : factors)
      f = gauss(rng);
    for (int64_t i = 0; i < n; ++i) {
      x[i] = 0.3 * gauss(rng);
      for (int64_t f = 0; f < 8; ++f)
        x[i] += factors[f] * mixing[f * n + i];
      if (i % 37 == 0)
        x[i] *= 10;
    }
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < n; ++j)
        h[i * n + j] += x[i] * x[j] / double(tokens);
  }
  dampDiagonal(h, n, 0.01);
  return h;
}

struct Problem {
  int64_t n;
  std::vector<double> a, b, exact, start;
};

Problem makeProblem(int64_t n, int64_t tokens) {
  std::mt19937 rng(14);
  std::normal_distribution<double> gauss;
  Problem p{n, calibrationHessian(n, tokens, rng), {}, {}, {}};
  // The exact fit of a teacher row, started from that row plus noise (the
  // pruned row's kept weights are the teacher's, the fit moves them).
  std::vector<double> teacher(n);
  for (double &t : teacher)
    t = gauss(rng);
  p.b = multiply(p.a, n, teacher);
  for (int64_t i = 0; i < n; ++i) {
    p.b[i] += 0.5 * gauss(rng);
    p.start.push_back(teacher[i] + 0.3 * gauss(rng));
  }
  std::vector<double> l = p.a;
  EXPECT_TRUE(choleskyLower(l, n));
  p.exact = p.b;
  solveCholesky(l, n, p.exact.data());
  return p;
}

TEST(SymmetricSolveTest, ConjugateGradientMeetsItsResidualAgainstCholesky) {
  // 768 kept inputs (SmolLM2's down projection at 2:4), 512 tokens: X^T X is
  // singular but for the damping, as in a model's statistics.
  Problem p = makeProblem(768, 512);
  std::vector<double> x = p.start;
  ConjugateGradientResult result =
      solveConjugateGradient(p.a, p.n, p.b.data(), x.data(), 1e-4, 1000);
  ASSERT_TRUE(result.positiveDefinite);
  EXPECT_LT(result.iterations, 1000);
  // The true residual, not the recurrence's.
  std::vector<double> ax = multiply(p.a, p.n, x), r(p.n);
  for (int64_t i = 0; i < p.n; ++i)
    r[i] = p.b[i] - ax[i];
  double residual = norm(r) / norm(p.b);
  EXPECT_LE(residual, 1.01e-4);
  std::vector<double> diff(p.n);
  for (int64_t i = 0; i < p.n; ++i)
    diff[i] = x[i] - p.exact[i];
  double relativeError = norm(diff) / norm(p.exact);
  // Measured: 27 iterations, residual 8.7e-5, 2.1% from the exact answer
  // (the least-determined directions), 1e-4 of the start's output error left.
  EXPECT_LT(relativeError, 0.05);
  double left = energyError(p.a, p.n, x, p.exact) /
                energyError(p.a, p.n, p.start, p.exact);
  EXPECT_LT(left, 1e-3);
  std::printf("n = %lld: %lld iterations, residual %.2e, error vs Cholesky "
              "%.2e, output error left %.2e\n",
              (long long)p.n, (long long)result.iterations, residual,
              relativeError, left);
}

TEST(SymmetricSolveTest, ConjugateGradientAtItsCapStillLowersTheError) {
  Problem p = makeProblem(300, 256);
  double previous = energyError(p.a, p.n, p.start, p.exact);
  for (int64_t cap : {1, 2, 5, 10, 20}) {
    std::vector<double> x = p.start;
    ConjugateGradientResult result =
        solveConjugateGradient(p.a, p.n, p.b.data(), x.data(), 0, cap);
    ASSERT_TRUE(result.positiveDefinite);
    EXPECT_EQ(result.iterations, cap);
    double error = energyError(p.a, p.n, x, p.exact);
    EXPECT_LT(error, previous) << "cap " << cap;
    previous = error;
  }
}

TEST(SymmetricSolveTest, ConjugateGradientIsExactOnASmallSystem) {
  Problem p = makeProblem(40, 200);
  std::vector<double> x = p.start;
  ConjugateGradientResult result =
      solveConjugateGradient(p.a, p.n, p.b.data(), x.data(), 1e-13, 400);
  ASSERT_TRUE(result.positiveDefinite);
  for (int64_t i = 0; i < p.n; ++i)
    EXPECT_NEAR(x[i], p.exact[i], 1e-9 * norm(p.exact)) << i;
}

TEST(SymmetricSolveTest, ConjugateGradientRefusesAnIndefiniteMatrix) {
  // Positive diagonal, eigenvalues 3 and -1.
  std::vector<double> a = {1, 2, 2, 1}, b = {1, 0}, x = {0, 0};
  EXPECT_FALSE(solveConjugateGradient(a, 2, b.data(), x.data(), 1e-6, 10)
                   .positiveDefinite);
  EXPECT_FALSE(choleskyLower(a, 2));
}

} // namespace
