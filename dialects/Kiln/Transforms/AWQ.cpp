//===- AWQ.cpp - activation-aware per-channel weight scales ---------------===//

#include "Kiln/Transforms/AWQ.h"

#include <algorithm>
#include <cmath>

namespace kiln {

namespace {

/// AWQ's grid: alpha = 0, 0.1, ..., 1.
constexpr int kGridSteps = 10;
/// Rows of each matrix the search rounds (evenly spaced): the error of a
/// sample of rows ranks the scales as the whole matrix does, at a fraction
/// of the k^2-per-row cost.
constexpr int64_t kSearchRows = 64;
/// AWQ clamps mean |x|^alpha from below so a dead channel's scale stays
/// finite.
constexpr double kMinScale = 1e-4;

} // namespace

std::vector<float> searchActivationScales(
    const std::function<void(const float *, RoundingFeedback *)> &encodeRow,
    const std::vector<ScaledMatrix> &matrices, int64_t k,
    const float *meanAbs, const float *hessian) {
  std::vector<float> best(k, 1.0f);
  double bestError = INFINITY;
  std::vector<float> scales(k), scaledRow(k);
  std::vector<double> decoded(k), error(k);
  for (int step = 0; step <= kGridSteps; ++step) {
    const double alpha = double(step) / kGridSteps;
    double largest = 0, smallest = INFINITY;
    for (int64_t j = 0; j < k; ++j) {
      double s = std::max(std::pow(double(meanAbs[j]), alpha), kMinScale);
      scales[j] = float(s);
      largest = std::max(largest, s);
      smallest = std::min(smallest, s);
    }
    // Centred on 1 (AWQ's s / sqrt(max * min)) so the weights keep their
    // magnitude.
    const double centre = std::sqrt(largest * smallest);
    for (float &s : scales)
      s = float(double(s) / centre);
    double total = 0;
    for (const ScaledMatrix &m : matrices) {
      const int64_t stride = std::max<int64_t>(1, m.rows / kSearchRows);
      for (int64_t r = 0; r < m.rows; r += stride) {
        const float *w = m.values + r * k;
        for (int64_t j = 0; j < k; ++j)
          scaledRow[j] = w[j] * scales[j];
        RecordDecoded feedback(decoded.data());
        encodeRow(scaledRow.data(), &feedback);
        for (int64_t j = 0; j < k; ++j)
          error[j] = decoded[j] / scales[j] - double(w[j]);
        // error H error^T, in four interleaved partial sums (a strict-order
        // reduction does not vectorize).
        for (int64_t i = 0; i < k; ++i) {
          const float *h = hessian + i * k;
          double d0 = 0, d1 = 0, d2 = 0, d3 = 0;
          int64_t j = 0;
          for (; j + 4 <= k; j += 4) {
            d0 += double(h[j]) * error[j];
            d1 += double(h[j + 1]) * error[j + 1];
            d2 += double(h[j + 2]) * error[j + 2];
            d3 += double(h[j + 3]) * error[j + 3];
          }
          for (; j < k; ++j)
            d0 += double(h[j]) * error[j];
          total += error[i] * ((d0 + d1) + (d2 + d3));
        }
      }
    }
    if (total < bestError) {
      bestError = total;
      best = scales;
    }
  }
  return best;
}

} // namespace kiln
