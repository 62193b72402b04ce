//===- GPTQ.h - quantization with second-order error feedback --*- C++ -*-===//
//
// GPTQ (Frantar et al., "GPTQ: Accurate Post-Training Quantization for
// Generative Pre-trained Transformers", ICLR 2023, Algorithm 1): a weight row
// is rounded one column at a time and each rounding error is moved onto the
// columns not yet rounded, weighted by the inverse of the layer's input
// Hessian H = E[x x^T], so that the layer's output error on the calibration
// inputs, not its weights' error, is small. Plain C++ (no MLIR).
//
// Rows are independent (the update of row r reads only row r), so rows are
// quantized one after another with the same factor; each row's updates stay
// in cache, which is what the paper's lazy batch updates buy for its
// column-at-a-time order over the whole matrix.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_TRANSFORMS_GPTQ_H
#define KILN_TRANSFORMS_GPTQ_H

#include "Kiln/Transforms/RoundToNearest.h"

#include "llvm/Support/Error.h"

#include <cstdint>
#include <functional>
#include <vector>

namespace kiln {

/// The upper-triangular U with U^T U = (H + damping * mean(diag H) * I)^-1
/// (GPTQ's "Cholesky form" of the inverse Hessian), row-major k x k in
/// float64. A column the calibration never saw (H_jj = 0) gets H_jj = 1, so
/// its rounding error moves nowhere. Fails (one line) when the damped
/// Hessian is not positive definite.
llvm::Expected<std::vector<double>>
factorInverseHessian(const float *hessian, int64_t k, double damping);

/// Quantizes one row of `k` weights with `encodeRow` (a row encoder that
/// reports each rounding through a RoundingFeedback, e.g.
/// RowEncoding::quantizeRow), moving each rounding error onto the later
/// columns through `factor` (factorInverseHessian's U).
void quantizeRowGPTQ(
    const std::function<void(const float *, RoundingFeedback *)> &encodeRow,
    const float *row, int64_t k, const std::vector<double> &factor);

} // namespace kiln

#endif // KILN_TRANSFORMS_GPTQ_H
