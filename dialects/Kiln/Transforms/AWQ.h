//===- AWQ.h - activation-aware per-channel weight scales ------*- C++ -*-===//
//
// AWQ (Lin et al., "AWQ: Activation-aware Weight Quantization for LLM
// Compression and Acceleration", MLSys 2024, section 3.2): the linear layers
// that read one input scale its columns, W' = W diag(s) and x' = x / s (kiln-
// quantize folds 1/s into the rms_norm that computes x), with
// s = mean|x|^alpha, so the channels that carry large activations lose less
// to rounding. alpha is searched on a grid for the smallest output error of
// the rounded layers on the calibration inputs, tr(dW H dW^T) with
// H = E[x x^T] and dW = Q(W diag(s)) diag(1/s) - W. Plain C++ (no MLIR).
//
//===----------------------------------------------------------------------===//

#ifndef KILN_TRANSFORMS_AWQ_H
#define KILN_TRANSFORMS_AWQ_H

#include "Kiln/Transforms/RoundToNearest.h"

#include <cstdint>
#include <functional>
#include <vector>

namespace kiln {

/// One weight matrix of the layers that share an input: `rows` rows of k.
struct ScaledMatrix {
  const float *values;
  int64_t rows;
};

/// The column scales s (k of them, s = 1 for alpha = 0, which plain
/// rounding is) with the smallest output error for `matrices` rounded by
/// `encodeRow` (a row encoder that reports what the decoder reads through a
/// RoundingFeedback), given the input's mean |x| and Hessian.
std::vector<float> searchActivationScales(
    const std::function<void(const float *, RoundingFeedback *)> &encodeRow,
    const std::vector<ScaledMatrix> &matrices, int64_t k,
    const float *meanAbs, const float *hessian);

} // namespace kiln

#endif // KILN_TRANSFORMS_AWQ_H
