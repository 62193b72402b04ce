//===- GPTQ.cpp - quantization with second-order error feedback -----------===//

#include "Kiln/Transforms/GPTQ.h"

#include "llvm/ADT/Twine.h"

#include <cmath>

namespace kiln {

/// sum a[p] * b[p] in four interleaved partial sums (a strict-order
/// reduction does not vectorize).
static double dotProduct(const double *a, const double *b, int64_t n) {
  double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  int64_t p = 0;
  for (; p + 4 <= n; p += 4) {
    s0 += a[p] * b[p];
    s1 += a[p + 1] * b[p + 1];
    s2 += a[p + 2] * b[p + 2];
    s3 += a[p + 3] * b[p + 3];
  }
  for (; p < n; ++p)
    s0 += a[p] * b[p];
  return (s0 + s1) + (s2 + s3);
}

llvm::Expected<std::vector<double>>
factorInverseHessian(const float *hessian, int64_t k, double damping) {
  // H^-1 = U^T U with U upper means H = V V^T with V = U^-1 upper: the
  // Cholesky factor of H with rows and columns reversed, reversed back.
  double meanDiagonal = 0;
  for (int64_t i = 0; i < k; ++i)
    meanDiagonal += hessian[i * k + i];
  meanDiagonal /= double(k);
  const double lift = damping * (meanDiagonal > 0 ? meanDiagonal : 1.0);
  // a = reversed, damped H (lower triangle used), then its Cholesky factor
  // in place.
  std::vector<double> a(size_t(k) * k);
  for (int64_t i = 0; i < k; ++i)
    for (int64_t j = 0; j <= i; ++j) {
      double h = hessian[(k - 1 - i) * k + (k - 1 - j)];
      if (i == j)
        h = (h == 0 ? 1.0 : h) + lift;
      a[i * k + j] = h;
    }
  for (int64_t j = 0; j < k; ++j) {
    double diagonal = a[j * k + j] - dotProduct(&a[j * k], &a[j * k], j);
    if (!(diagonal > 0))
      return llvm::createStringError(
          llvm::inconvertibleErrorCode(),
          "gptq: the damped Hessian is not positive definite (column " +
              llvm::Twine(k - 1 - j) + "); raise the damping");
    double pivot = std::sqrt(diagonal);
    a[j * k + j] = pivot;
    for (int64_t i = j + 1; i < k; ++i)
      a[i * k + j] =
          (a[i * k + j] - dotProduct(&a[i * k], &a[j * k], j)) / pivot;
  }
  // V[i][j] = L[k-1-i][k-1-j] (upper). U = V^-1 row by row from the bottom:
  // row i of V U = I gives U[i] = (e_i - sum_{p>i} V[i][p] U[p]) / V[i][i].
  auto v = [&](int64_t i, int64_t j) { return a[(k - 1 - i) * k + (k - 1 - j)]; };
  std::vector<double> u(size_t(k) * k, 0.0);
  for (int64_t i = k - 1; i >= 0; --i) {
    double *ui = &u[i * k];
    ui[i] = 1.0;
    for (int64_t p = i + 1; p < k; ++p) {
      const double c = v(i, p);
      const double *up = &u[p * k];
      for (int64_t j = p; j < k; ++j)
        ui[j] -= c * up[j];
    }
    const double pivot = v(i, i);
    for (int64_t j = i; j < k; ++j)
      ui[j] /= pivot;
  }
  return u;
}

namespace {

/// Moves each rounding error onto the values after it: w[t] -= e * U[j][t] /
/// U[j][j] (Algorithm 1's update for one row).
class HessianFeedback : public RoundingFeedback {
public:
  HessianFeedback(float *row, int64_t k, const std::vector<double> &factor)
      : row(row), k(k), factor(factor) {}

  void rounded(int64_t j, double decoded) override {
    const double *u = &factor[j * k];
    const double error = (double(row[j]) - decoded) / u[j];
    for (int64_t t = j + 1; t < k; ++t)
      row[t] = float(double(row[t]) - error * u[t]);
  }

private:
  float *row;
  int64_t k;
  const std::vector<double> &factor;
};

} // namespace

void quantizeRowGPTQ(
    const std::function<void(const float *, RoundingFeedback *)> &encodeRow,
    const float *values, int64_t k, const std::vector<double> &factor) {
  std::vector<float> row(values, values + k);
  HessianFeedback feedback(row.data(), k, factor);
  encodeRow(row.data(), &feedback);
}

} // namespace kiln
