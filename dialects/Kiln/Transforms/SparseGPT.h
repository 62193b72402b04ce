//===- SparseGPT.h - pruning with OBS updates of the kept weights -*- C++ -*-===//
//
// SparseGPT (Frantar and Alistarh 2023, "SparseGPT: Massive Language Models
// Can Be Accurately Pruned in One-Shot", Algorithm 1) as plain C++: the
// columns of W are visited left to right in blocks of 128; within a block
// the mask is chosen by w^2 / [U]_jj^2 (U the upper Cholesky factor of
// H^-1, H = X^T X of the layer's inputs, damped by 1% of its mean
// diagonal), and the error of each pruned column is spread over the columns
// not yet visited through U's row, so the kept weights make up for the
// pruned ones.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_TRANSFORMS_SPARSEGPT_H
#define KILN_TRANSFORMS_SPARSEGPT_H

#include "Kiln/Transforms/PruneOptions.h"

#include "llvm/Support/Error.h"

#include <cstdint>
#include <vector>

namespace kiln {

/// Prunes `weights` (rows x k, row-major) in place under `options`' pattern
/// (unstructured: each row keeps k - round(rate k) values; nm: every run of
/// m keeps n) and returns the mask (1: kept). `hessian` is X^T X (k x k,
/// row-major, any positive scale). Fails (one line) when H + damping is
/// not positive definite.
llvm::Expected<std::vector<uint8_t>>
pruneSparseGPT(std::vector<float> &weights, int64_t rows, int64_t k,
               const float *hessian, const PruneOptions &options);

} // namespace kiln

#endif // KILN_TRANSFORMS_SPARSEGPT_H
