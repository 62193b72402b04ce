//===- Measure.cpp - kiln-run --bench and --perplexity --------------------===//

#include "Measure.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <random>
#include <sstream>
#include <vector>

namespace kiln::run {
namespace {

using Clock = std::chrono::steady_clock;

double seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

struct Sample {
  std::string test; // "pp512" / "tg128"
  int nTokens = 0;
  std::vector<double> tokensPerSecond;
  double mean() const {
    double s = 0;
    for (double v : tokensPerSecond)
      s += v;
    return tokensPerSecond.empty() ? 0 : s / tokensPerSecond.size();
  }
  double stddev() const {
    size_t n = tokensPerSecond.size();
    if (n < 2)
      return 0;
    double m = mean(), s = 0;
    for (double v : tokensPerSecond)
      s += (v - m) * (v - m);
    return std::sqrt(s / (n - 1));
  }
};

std::string baseName(const std::string &path) {
  size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

long long fileSize(const std::string &path) {
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  return f ? (long long)f.tellg() : -1;
}

} // namespace

bool runBench(kiln_model *model, const BenchOptions &opts, std::string &err) {
  const char *e = nullptr;
  int nCtx = std::max(opts.nPrompt, opts.nGen);
  if (nCtx > kiln_model_n_ctx(model)) {
    err = "--bench needs a context of " + std::to_string(nCtx) +
          " tokens but the model has " +
          std::to_string(kiln_model_n_ctx(model));
    return false;
  }
  kiln_session *session = nullptr;
  if (kiln_session_create(model, nCtx, &session, &e)) {
    err = e;
    return false;
  }
  std::mt19937 rng(42);
  std::uniform_int_distribution<int32_t> pick(0, kiln_model_n_vocab(model) - 1);
  auto randomTokens = [&](int n) {
    std::vector<int32_t> t(n);
    for (int32_t &v : t)
      v = pick(rng);
    return t;
  };

  // One pass of a test; returns its seconds, or < 0 on error.
  auto prompt = [&](int n) -> double {
    std::vector<int32_t> t = randomTokens(n);
    kiln_session_reset(session);
    auto t0 = Clock::now();
    if (kiln_eval(session, t.data(), t.size(), 1, &e))
      return -1;
    return seconds(t0, Clock::now());
  };
  auto generate = [&](int n) -> double {
    std::vector<int32_t> t = randomTokens(n);
    kiln_session_reset(session);
    auto t0 = Clock::now();
    for (int i = 0; i < n; ++i)
      if (kiln_eval(session, &t[i], 1, 1, &e))
        return -1;
    return seconds(t0, Clock::now());
  };

  std::vector<Sample> samples;
  for (int kind = 0; kind < 2; ++kind) {
    int n = kind == 0 ? opts.nPrompt : opts.nGen;
    if (n <= 0)
      continue;
    Sample s;
    s.test = (kind == 0 ? "pp" : "tg") + std::to_string(n);
    s.nTokens = n;
    auto once = [&]() { return kind == 0 ? prompt(n) : generate(n); };
    if (once() < 0) { // warm-up, as llama-bench
      err = e;
      kiln_session_free(session);
      return false;
    }
    for (int r = 0; r < opts.repetitions; ++r) {
      double sec = once();
      if (sec < 0) {
        err = e;
        kiln_session_free(session);
        return false;
      }
      s.tokensPerSecond.push_back(sec > 0 ? n / sec : 0);
    }
    samples.push_back(s);
  }
  kiln_session_free(session);

  std::string name = baseName(opts.modelPath);
  double mib = fileSize(opts.modelPath) / (1024.0 * 1024.0);
  std::string on = kiln_model_device(model);
  std::string backend =
      on == "cpu" ? std::string("CPU (") + kiln_model_host_variant(model) + ")"
                  : "CUDA " + on;
  if (opts.json) {
    std::printf("[\n");
    for (size_t i = 0; i < samples.size(); ++i) {
      const Sample &s = samples[i];
      std::printf("  {\"model\": \"%s\", \"size_mib\": %.2f, \"backend\": "
                  "\"%s\", \"threads\": %d, \"test\": \"%s\", \"n_tokens\": "
                  "%d, \"avg_ts\": %.4f, \"stddev_ts\": %.4f, \"samples_ts\": [",
                  name.c_str(), mib, backend.c_str(), opts.threads,
                  s.test.c_str(), s.nTokens, s.mean(), s.stddev());
      for (size_t j = 0; j < s.tokensPerSecond.size(); ++j)
        std::printf("%s%.4f", j ? ", " : "", s.tokensPerSecond[j]);
      std::printf("]}%s\n", i + 1 < samples.size() ? "," : "");
    }
    std::printf("]\n");
  } else {
    std::printf("| model | size | backend | threads | test | t/s |\n"
                "| --- | ---: | --- | ---: | ---: | ---: |\n");
    for (const Sample &s : samples)
      std::printf("| %s | %.2f MiB | %s | %d | %s | %.2f ± %.2f |\n",
                  name.c_str(), mib, backend.c_str(), opts.threads,
                  s.test.c_str(), s.mean(), s.stddev());
  }
  std::fflush(stdout);
  return true;
}

bool readTextFile(const std::string &path, std::string &text,
                  std::string &err) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    err = path + ": cannot open";
    return false;
  }
  std::stringstream buf;
  buf << in.rdbuf();
  text = buf.str();
  return true;
}

bool tokenizeText(kiln_model *model, const std::string &text,
                  std::vector<int32_t> &ids, std::string &err) {
  const char *e = nullptr;
  size_t n = 0;
  ids.resize(text.size() + 16);
  bool ok = kiln_tokenize(model, text.c_str(), 1, 0, ids.data(), ids.size(),
                          &n, &e) == 0;
  if (ok && n > ids.size()) { // n is the count the text needs
    ids.resize(n);
    ok = kiln_tokenize(model, text.c_str(), 1, 0, ids.data(), ids.size(), &n,
                       &e) == 0;
  }
  if (!ok) {
    err = e ? e : "tokenizing failed";
    return false;
  }
  ids.resize(n);
  return true;
}

bool runPerplexity(kiln_model *model, const PerplexityOptions &opts,
                   std::string &err) {
  const char *e = nullptr;
  std::string text;
  if (!readTextFile(opts.textPath, text, err))
    return false;

  int nCtx = opts.nCtx ? opts.nCtx : std::min(512, kiln_model_n_ctx(model));
  if (nCtx < 2 || nCtx > kiln_model_n_ctx(model)) {
    err = "perplexity context " + std::to_string(nCtx) + " must be 2 to " +
          std::to_string(kiln_model_n_ctx(model)) + " (the model's n_ctx)";
    return false;
  }

  std::vector<int32_t> tokens, bos;
  if (!tokenizeText(model, text, tokens, err) ||
      !tokenizeText(model, "", bos, err))
    return false;
  size_t nChunks = tokens.size() / size_t(nCtx);
  if (opts.maxChunks > 0)
    nChunks = std::min(nChunks, size_t(opts.maxChunks));
  if (nChunks == 0) {
    err = opts.textPath + ": " + std::to_string(tokens.size()) +
          " tokens, fewer than one chunk of " + std::to_string(nCtx) +
          " (use a longer text or a smaller --ctx)";
    return false;
  }

  kiln_session *session = nullptr;
  if (kiln_session_create(model, nCtx, &session, &e)) {
    err = e;
    return false;
  }
  const int nVocab = kiln_model_n_vocab(model);
  const int batch = std::max(1, std::min(kiln_model_max_tokens(model), nCtx));
  // As llama-perplexity: the first half of each chunk is context only.
  const int first = nCtx / 2;
  double nll = 0, nll2 = 0;
  size_t count = 0;
  auto t0 = Clock::now();
  std::fprintf(stderr,
               "%s: perplexity: %zu tokens, %zu chunks of %d, batch %d\n",
               opts.programName.c_str(), tokens.size(), nChunks, nCtx, batch);
  for (size_t c = 0; c < nChunks; ++c) {
    std::vector<int32_t> chunk(tokens.begin() + c * nCtx,
                               tokens.begin() + (c + 1) * nCtx);
    if (bos.size() == 1)
      chunk[0] = bos[0];
    kiln_session_reset(session);
    for (int start = 0; start < nCtx; start += batch) {
      int n = std::min(batch, nCtx - start);
      if (kiln_eval(session, chunk.data() + start, n, n, &e)) {
        err = e;
        kiln_session_free(session);
        return false;
      }
      int rows = 0;
      const float *logits = kiln_logits(session, &rows);
      for (int r = 0; r < rows; ++r) {
        int pos = start + r;
        if (pos < first || pos + 1 >= nCtx)
          continue;
        const float *row = logits + size_t(r) * nVocab;
        double mx = row[0];
        for (int v = 1; v < nVocab; ++v)
          mx = std::max(mx, double(row[v]));
        double sum = 0;
        for (int v = 0; v < nVocab; ++v)
          sum += std::exp(double(row[v]) - mx);
        double l = std::log(sum) + mx - double(row[chunk[pos + 1]]);
        nll += l;
        nll2 += l * l;
        ++count;
      }
    }
    std::fprintf(stderr, "[%zu]%.4f%s", c + 1, std::exp(nll / count),
                 c + 1 == nChunks ? "\n" : ",");
  }
  kiln_session_free(session);
  double mean = nll / count;
  double ppl = std::exp(mean);
  // Standard error of the mean NLL, propagated to PPL (llama-perplexity's).
  double var = count > 1 ? (nll2 / count - mean * mean) / (count - 1) : 0;
  double pplErr = std::sqrt(std::max(var, 0.0)) * ppl;
  double sec = seconds(t0, Clock::now());
  std::fprintf(stderr,
               "%s: perplexity: %zu tokens scored in %.2f s (%.2f "
               "tokens/s evaluated)\n",
               opts.programName.c_str(), count, sec, sec > 0 ? nChunks * nCtx / sec : 0.0);
  std::printf("Final estimate: PPL = %.4f +/- %.5f\n", ppl, pplErr);
  std::fflush(stdout);
  return true;
}

} // namespace kiln::run
