//===- Cholesky.h - dense symmetric positive definite solves ----*- C++ -*-===//
//
// The float64 Cholesky factorization, inverse and solve that SparseGPT and
// kiln-distill use on X^T X of a layer's inputs (K x K, row-major).
//
//===----------------------------------------------------------------------===//

#ifndef KILN_TRANSFORMS_CHOLESKY_H
#define KILN_TRANSFORMS_CHOLESKY_H

#include <cstdint>
#include <vector>

namespace kiln {

/// In place: the lower Cholesky factor L of the symmetric n x n matrix `a`
/// (A = L L^T; the upper triangle is cleared). False if A is not positive
/// definite.
bool choleskyLower(std::vector<double> &a, int64_t n);

/// The inverse of A = L L^T, given L (lower), n x n.
std::vector<double> inverseFromCholesky(const std::vector<double> &l,
                                        int64_t n);

/// In place: x = A^-1 b for A = L L^T, given L (lower), n x n.
void solveCholesky(const std::vector<double> &l, int64_t n, double *b);

/// Adds `fraction` of the mean diagonal of the n x n matrix `a` to its
/// diagonal (SparseGPT's and GPTQ's damping, fraction 0.01).
void dampDiagonal(std::vector<double> &a, int64_t n, double fraction);

} // namespace kiln

#endif // KILN_TRANSFORMS_CHOLESKY_H
