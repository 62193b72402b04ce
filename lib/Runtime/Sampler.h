//===- Sampler.h - choose the next token from logits ------------*- C++ -*-===//
//
// Plain scalar C++ over one logits row (the runtime's only work on model
// output). The chain follows llama.cpp's default order: repetition penalty,
// top-k, top-p, min-p, temperature, then a draw from the softmax. A
// temperature of 0 is greedy (argmax after the penalty).
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_SAMPLER_H
#define KILN_RUNTIME_SAMPLER_H

#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace kiln::rt {

struct SamplingParams {
  float temperature = 0.8f;   // 0 = greedy
  int32_t topK = 40;          // 0 = off
  float topP = 0.95f;         // in (0, 1]; 1 = off
  float minP = 0.05f;         // in [0, 1]; 0 = off
  float repeatPenalty = 1.0f; // > 0; 1 = off
  int32_t repeatLastN = 64;   // >= 0 tokens of history the penalty looks at
  uint64_t seed = 0;
};

/// Returns false with a one-line message if a parameter is out of range.
bool validateSamplingParams(const SamplingParams &p, std::string &err);

class Sampler {
public:
  /// `p` must have passed validateSamplingParams.
  Sampler(const SamplingParams &p, int32_t nVocab);

  /// Picks a token from `logits` (nVocab floats, not modified). `history`
  /// holds the tokens seen so far (prompt and generated), oldest first.
  int32_t sample(const float *logits, const int32_t *history,
                 size_t historySize);

  const SamplingParams &getParams() const { return params; }

private:
  double uniform();

  SamplingParams params;
  int32_t nVocab;
  std::mt19937_64 rng;
  // Reused every call so sampling allocates nothing per token.
  std::vector<float> penalized;
  std::vector<int32_t> candidates;
  std::vector<double> probs;
  std::vector<uint8_t> penalizedMark;
};

} // namespace kiln::rt

#endif // KILN_RUNTIME_SAMPLER_H
