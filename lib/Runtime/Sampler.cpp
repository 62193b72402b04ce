//===- Sampler.cpp - choose the next token from logits --------------------===//

#include "Runtime/Sampler.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

using namespace kiln::rt;

/// "0.95", not std::to_string's "0.950000".
static std::string str(float v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%g", double(v));
  return buf;
}

bool kiln::rt::validateSamplingParams(const SamplingParams &p,
                                      std::string &err) {
  if (!std::isfinite(p.temperature) || p.temperature < 0) {
    err = "temperature must be a finite number >= 0, got " + str(p.temperature);
    return false;
  }
  if (p.topK < 0) {
    err = "top-k must be >= 0 (0 disables it), got " + std::to_string(p.topK);
    return false;
  }
  if (!(p.topP > 0 && p.topP <= 1)) {
    err = "top-p must be in (0, 1], got " + str(p.topP);
    return false;
  }
  if (!(p.minP >= 0 && p.minP <= 1)) {
    err = "min-p must be in [0, 1], got " + str(p.minP);
    return false;
  }
  if (!std::isfinite(p.repeatPenalty) || p.repeatPenalty <= 0) {
    err = "repeat penalty must be a finite number > 0, got " +
          str(p.repeatPenalty);
    return false;
  }
  if (p.repeatLastN < 0) {
    err = "repeat-last-n must be >= 0, got " + std::to_string(p.repeatLastN);
    return false;
  }
  return true;
}

Sampler::Sampler(const SamplingParams &p, int32_t nVocab)
    : params(p), nVocab(nVocab), rng(p.seed) {
  penalized.resize(nVocab);
  candidates.reserve(nVocab);
  probs.reserve(nVocab);
  penalizedMark.assign(nVocab, 0);
}

double Sampler::uniform() {
  // 53 random mantissa bits: the same draw on every standard library, unlike
  // std::uniform_real_distribution.
  return double(rng() >> 11) * 0x1.0p-53;
}

int32_t Sampler::sample(const float *logits, const int32_t *history,
                        size_t historySize) {
  std::copy(logits, logits + nVocab, penalized.begin());

  // Repetition penalty as in CTRL (arXiv:1909.05858) and llama.cpp: divide a
  // positive logit, multiply a negative one, once per distinct recent token.
  if (params.repeatPenalty != 1.0f && params.repeatLastN > 0) {
    size_t n = std::min<size_t>(historySize, size_t(params.repeatLastN));
    const int32_t *recent = history + (historySize - n);
    for (size_t i = 0; i < n; ++i) {
      int32_t t = recent[i];
      if (t < 0 || t >= nVocab || penalizedMark[t])
        continue;
      penalizedMark[t] = 1;
      float &l = penalized[t];
      l = l > 0 ? l / params.repeatPenalty : l * params.repeatPenalty;
    }
    for (size_t i = 0; i < n; ++i)
      if (recent[i] >= 0 && recent[i] < nVocab)
        penalizedMark[recent[i]] = 0;
  }

  auto better = [&](int32_t a, int32_t b) {
    float la = penalized[a], lb = penalized[b];
    // NaN logits rank last so they are never chosen over a number.
    if (std::isnan(la) != std::isnan(lb))
      return std::isnan(lb);
    return la > lb || (la == lb && a < b);
  };

  if (params.temperature == 0.0f) {
    int32_t best = 0;
    for (int32_t i = 1; i < nVocab; ++i)
      if (better(i, best))
        best = i;
    return best;
  }

  candidates.resize(nVocab);
  for (int32_t i = 0; i < nVocab; ++i)
    candidates[i] = i;
  size_t kept = candidates.size();
  if (params.topK > 0 && size_t(params.topK) < kept) {
    kept = params.topK;
    std::partial_sort(candidates.begin(), candidates.begin() + kept,
                      candidates.end(), better);
  } else if (params.topP < 1.0f || params.minP > 0.0f) {
    std::sort(candidates.begin(), candidates.end(), better);
  } else {
    // No filter needs the order; keep the best first for the draw anyway.
    std::iter_swap(
        candidates.begin(),
        std::min_element(candidates.begin(), candidates.end(), better));
  }
  candidates.resize(kept);

  float maxLogit = penalized[candidates[0]];
  if (!std::isfinite(maxLogit))
    return candidates[0];

  // Top-p (Holtzman et al., arXiv:1904.09751) and min-p on the untempered
  // distribution, as llama.cpp's default chain does.
  if (params.topP < 1.0f || params.minP > 0.0f) {
    probs.resize(kept);
    double sum = 0;
    for (size_t i = 0; i < kept; ++i)
      sum += probs[i] = std::exp(double(penalized[candidates[i]]) - maxLogit);
    if (params.topP < 1.0f) {
      double cum = 0;
      size_t n = 0;
      while (n < kept) {
        cum += probs[n++] / sum;
        if (cum >= params.topP)
          break;
      }
      kept = n;
    }
    if (params.minP > 0.0f) {
      // probs[0] is exp(0) = 1: the maximum.
      size_t n = 1;
      while (n < kept && probs[n] >= params.minP)
        ++n;
      kept = n;
    }
    candidates.resize(kept);
  }

  probs.resize(kept);
  double sum = 0;
  double invTemp = 1.0 / params.temperature;
  for (size_t i = 0; i < kept; ++i)
    sum += probs[i] =
        std::exp((double(penalized[candidates[i]]) - maxLogit) * invTemp);
  double r = uniform() * sum;
  for (size_t i = 0; i < kept; ++i) {
    r -= probs[i];
    if (r < 0)
      return candidates[i];
  }
  return candidates[kept - 1];
}
