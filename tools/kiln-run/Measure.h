//===- Measure.h - kiln-run --bench and --perplexity ----------------------===//
//
// llama-bench-like speed measurement and llama-perplexity-like evaluation,
// both through the runtime's C API only (kiln_eval and kiln_logits).
//
//===----------------------------------------------------------------------===//

#ifndef KILN_TOOLS_KILN_RUN_MEASURE_H
#define KILN_TOOLS_KILN_RUN_MEASURE_H

#include "kiln/runtime/Runtime.h"

#include <string>
#include <vector>

namespace kiln::run {

struct BenchOptions {
  std::string modelPath;
  int nPrompt = 512;  // pp test: tokens in one prompt (0 = skip)
  int nGen = 128;     // tg test: tokens generated one by one (0 = skip)
  int repetitions = 5;
  int threads = 2;
  bool json = false;  // -o json: one JSON array instead of a markdown table
};

/// Runs the pp/tg tests (one warm-up run each, then `repetitions` timed runs
/// on random tokens from an empty session) and prints the table to stdout.
/// Returns false with `err` set on a runtime error.
bool runBench(kiln_model *model, const BenchOptions &opts, std::string &err);

struct PerplexityOptions {
  std::string textPath;
  int nCtx = 0;      // chunk size; 0 = min(512, the model's n_ctx)
  int maxChunks = 0; // 0 = all
  std::string programName = "kiln-run"; // prefixes the progress lines
};

/// The whole file at `path` in `text`, or false with `err` set.
bool readTextFile(const std::string &path, std::string &text,
                  std::string &err);

/// The tokens of `text` (no BOS, special tokens not parsed), or false with
/// `err` set.
bool tokenizeText(kiln_model *model, const std::string &text,
                  std::vector<int32_t> &ids, std::string &err);

/// Splits the file's tokens into chunks of n_ctx (BOS first), evaluates each
/// from an empty session keeping every row of logits, and scores the second
/// half of each chunk as llama-perplexity does. Prints per-chunk running PPL
/// to stderr and the final "PPL = x +/- y" to stdout.
bool runPerplexity(kiln_model *model, const PerplexityOptions &opts,
                   std::string &err);

} // namespace kiln::run

#endif // KILN_TOOLS_KILN_RUN_MEASURE_H
