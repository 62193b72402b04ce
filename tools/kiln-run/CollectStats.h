//===- CollectStats.h - kiln-run --collect-stats --------------------------===//
//
// Calibration through Kiln itself: runs an artifact compiled with
// --calibration-taps (the float model, f32 activations) on a text and writes
// the statistics of every linear layer's input (lib/Calibration/
// CalibrationStats.h) that GPTQ, AWQ and the pruning methods read.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_TOOLS_KILN_RUN_COLLECTSTATS_H
#define KILN_TOOLS_KILN_RUN_COLLECTSTATS_H

#include "kiln/runtime/Runtime.h"

#include <string>

namespace kiln::run {

struct CollectStatsOptions {
  std::string textPath;
  std::string outputPath;
  int nCtx = 0;      // tokens per chunk; 0 = min(512, the model's n_ctx)
  int maxChunks = 0; // 0 = all
};

/// Tokenizes the text (an empty file, or one that is not UTF-8 text, is an
/// error), evaluates it in chunks of nCtx tokens from an empty session each
/// (BOS first, as --perplexity; a shorter last chunk too), adds every step's
/// taps to the sums and writes the means to outputPath. With a `teacher`
/// (the uncompressed model, its taps the same inputs of the same widths) it
/// runs the same chunks too and the file also holds the cross moments of
/// the two models' inputs. Returns false with `err` set (one line) on any
/// error.
bool collectStatistics(kiln_model *model, kiln_model *teacher,
                       const CollectStatsOptions &opts, std::string &err);

} // namespace kiln::run

#endif // KILN_TOOLS_KILN_RUN_COLLECTSTATS_H
