//===- PruneOptions.h - what kiln-prune is asked to do ----------*- C++ -*-===//
//
// One description of a pruning request, shared by the kiln-prune pass
// options, kiln-compile --prune=..., the C API and Python, with the one-line
// errors for what cannot be pruned.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_TRANSFORMS_PRUNEOPTIONS_H
#define KILN_TRANSFORMS_PRUNEOPTIONS_H

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <string>

namespace kiln {

enum class PrunePattern { Unstructured, NM, Block };

/// How the weights to zero are chosen.
/// - magnitude: the smallest |w|.
/// - wanda: the smallest |w_ij| * ||x_j||, x_j the layer's j-th input over
///   the calibration tokens (Sun et al. 2023, "A Simple and Effective
///   Pruning Approach for Large Language Models"), compared within a row.
/// - sparsegpt: SparseGPT.h; the kept weights are updated to make up for
///   the pruned ones.
enum class PruneCriterion { Magnitude, Wanda, SparseGPT };

struct PruneOptions {
  PrunePattern pattern = PrunePattern::Unstructured;
  /// Share of each row's values zeroed (unstructured), or of each weight's
  /// blocks (block); N:M sparsity has the rate 1 - n/m.
  double rate = 0.5;
  unsigned n = 2, m = 4;
  unsigned blockRows = 4, blockCols = 4;
  PruneCriterion criterion = PruneCriterion::Magnitude;
  /// The calibration statistics (.kstats, lib/Calibration/CalibrationStats.h)
  /// wanda and sparsegpt read.
  std::string calibration;

  /// Checks what does not depend on a weight's shape.
  llvm::Error validate() const;
  /// Checks that the pattern tiles a weight of `rows` x `k`.
  llvm::Error validateShape(int64_t rows, int64_t k) const;
};

/// Parses kiln-compile's --prune value: comma-separated
/// `pattern=unstructured|nm|block`, `rate=R`, `n=N`, `m=M`, `block=RxC`,
/// `criterion=magnitude|wanda|sparsegpt`, `calibration=FILE`; e.g.
/// "pattern=nm,n=2,m=4". Unknown or malformed items, and options validate()
/// refuses, are one-line errors.
llvm::Expected<PruneOptions> parsePruneOptions(llvm::StringRef text);

bool parsePrunePattern(llvm::StringRef name, PrunePattern &pattern);
bool parsePruneCriterion(llvm::StringRef name, PruneCriterion &criterion);
/// "RxC" (e.g. "4x4") as block rows and columns, both positive.
bool parseBlockShape(llvm::StringRef text, unsigned &rows, unsigned &cols);

} // namespace kiln

#endif // KILN_TRANSFORMS_PRUNEOPTIONS_H
