//===- Session.cpp - a loaded model and its inference sessions ------------===//

#include "Runtime/Session.h"

#include "Runtime/CpuFeatures.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <sys/mman.h>

using namespace kiln::rt;

std::unique_ptr<Model> Model::load(const std::string &path, int threads,
                                   std::string &err) {
  return load(path, threads, detectHostCpuFeatures(), err);
}

std::unique_ptr<Model> Model::load(const std::string &path, int threads,
                                   uint64_t cpuFeatures, std::string &err) {
  // Check the cheap argument before reading a possibly huge file.
  if (threads < 1 || threads > ThreadPool::kMaxThreads) {
    err = "thread count must be 1 to " +
          std::to_string(ThreadPool::kMaxThreads) + ", got " +
          std::to_string(threads);
    return nullptr;
  }
  std::unique_ptr<Model> m(new Model());
  m->artifact = Artifact::open(path, err);
  if (!m->artifact)
    return nullptr;
  const Manifest &man = m->artifact->getManifest();

  std::string why;
  uint64_t minimum = m->artifact->getHeader().minCpuFeatures;
  if (minimum & ~cpuFeatures) {
    err = path + ": this CPU lacks " + cpuFeatureNames(minimum & ~cpuFeatures) +
          ", which every host code variant of the artifact needs";
    return nullptr;
  }
  // GPU execution is not part of this runtime yet: an artifact that needs a
  // GPU is refused before any of it runs.
  const char *gpuArchs = m->artifact->getHeader().gpuArchs;
  if (gpuArchs[0] != '\0') {
    err = path + ": the artifact needs a GPU (" + std::string(gpuArchs) +
          "), and this runtime runs CPU host code only";
    return nullptr;
  }
  int variant = chooseHostVariant(man.host, cpuFeatures, why);
  if (variant < 0) {
    err = path + ": " + why;
    return nullptr;
  }
  m->hostVariant = man.host[variant].section;
  const SectionView *code = m->artifact->find(m->hostVariant);
  m->hostCode = HostCode::load(code->data, code->size, m->hostVariant, why);
  if (!m->hostCode) {
    err = path + ": " + why;
    return nullptr;
  }
  m->forward =
      reinterpret_cast<KilnForwardFn>(m->hostCode->lookup(man.entry.symbol));
  if (!m->forward) {
    err = path + ": host code '" + m->hostVariant + "' has no entry symbol '" +
          man.entry.symbol + "'";
    return nullptr;
  }

  m->tokenizer =
      Tokenizer::fromJSON(m->artifact->find(man.tokenizerSection)->text(), why);
  if (!m->tokenizer) {
    err = path + ": vocabulary section '" + man.tokenizerSection + "': " + why;
    return nullptr;
  }
  if (int64_t(m->tokenizer->size()) > man.model.nVocab) {
    err = path + ": the vocabulary has " +
          std::to_string(m->tokenizer->size()) +
          " tokens but the model's logits cover only n_vocab = " +
          std::to_string(man.model.nVocab);
    return nullptr;
  }
  m->weights = m->artifact->find(man.weightsSection);
  m->pool = ThreadPool::create(threads, err);
  if (!m->pool)
    return nullptr;
  return m;
}

Buffer::~Buffer() {
  if (ptr)
    ::munmap(ptr, mapped);
}

bool Buffer::allocate(uint64_t size, const char *what, std::string &err) {
  // Even an empty buffer gets a page, so generated code never sees null.
  uint64_t want = size ? size : 1;
  void *p = ::mmap(nullptr, want, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    err = std::string("cannot allocate the ") + what + " (" +
          std::to_string(size) + " bytes): " + std::strerror(errno);
    return false;
  }
  ptr = p;
  bytes = size;
  mapped = want;
  return true;
}

void Buffer::zero() {
  // Anonymous private pages read as zero again after MADV_DONTNEED, without
  // touching memory the model never used.
  if (ptr && ::madvise(ptr, mapped, MADV_DONTNEED) != 0)
    std::memset(ptr, 0, mapped);
}

std::unique_ptr<Session> Session::create(Model &model, int64_t nCtx,
                                         std::string &err) {
  const Manifest &man = model.getManifest();
  if (nCtx < 0 || nCtx > man.model.nCtx) {
    err = "context size " + std::to_string(nCtx) + " must be 1 to " +
          std::to_string(man.model.nCtx) + " (the model's n_ctx), or 0";
    return nullptr;
  }
  std::unique_ptr<Session> s(new Session(model));
  s->nCtx = nCtx ? nCtx : man.model.nCtx;
  if (!s->kvCache.allocate(man.entry.kvCacheBytes, "KV cache", err) ||
      !s->scratch.allocate(man.entry.scratchBytes, "scratch memory", err))
    return nullptr;
  s->logits.assign(man.model.encoder
                       ? size_t(man.model.nEmbd)
                       : size_t(man.entry.maxTokens) * man.model.nVocab,
                   0.0f);
  s->history.reserve(s->nCtx);
  return s;
}

void Session::reset() {
  history.clear();
  logitRows = 0;
  kvCache.zero();
}

namespace {
/// Everything one call of the step function needs, shared by all threads.
struct StepCall {
  KilnForwardFn fn;
  KilnMemRef1D tokens, kv, weights, scratch;
  KilnMemRef2D logits;
  int64_t position;
  KilnRtContext *rt;

  void operator()(int tid, int nth) {
    fn(&tokens, position, &kv, &logits, &weights, &scratch, rt, tid, nth);
  }
};

KilnMemRef1D bytes1D(void *p, uint64_t size) {
  return {p, p, 0, {int64_t(size)}, {1}};
}
} // namespace

const float *Session::embed(const int32_t *tokens, size_t n,
                            std::string &err) {
  const Manifest &man = model.getManifest();
  if (!man.model.encoder) {
    err = "the model is a decoder: it computes logits, not embeddings";
    return nullptr;
  }
  // Attention sees the whole sequence, so it is one step, from position 0.
  int64_t limit = std::min<int64_t>(man.entry.maxTokens, nCtx);
  if (n == 0 || int64_t(n) > limit) {
    err = "an embedding takes 1 to " + std::to_string(limit) +
          " tokens, got " + std::to_string(n);
    return nullptr;
  }
  for (size_t i = 0; i < n; ++i) {
    if (tokens[i] < 0 || tokens[i] >= man.model.nVocab) {
      err = "token id " + std::to_string(tokens[i]) + " at index " +
            std::to_string(i) + " is outside the vocabulary [0, " +
            std::to_string(man.model.nVocab) + ")";
      return nullptr;
    }
  }
  history.clear();
  logitRows = 0;
  const SectionView &w = model.getWeights();
  StepCall call;
  call.fn = model.getForward();
  call.kv = bytes1D(kvCache.data(), kvCache.size());
  call.weights = bytes1D(const_cast<uint8_t *>(w.data), w.size);
  call.scratch = bytes1D(scratch.data(), scratch.size());
  call.rt = model.getPool().getContext();
  int32_t *ids = const_cast<int32_t *>(tokens);
  call.tokens = {ids, ids, 0, {int64_t(n)}, {1}};
  int64_t width = man.model.nEmbd;
  call.logits = {logits.data(), logits.data(), 0, {1, width}, {width, 1}};
  call.position = 0;
  model.getPool().run(call);
  logitRows = 1;
  return logits.data();
}

const float *Session::forward(const int32_t *tokens, size_t n, int64_t pos,
                              int nLogitRows, std::string &err) {
  const Manifest &man = model.getManifest();
  if (man.model.encoder) {
    err = "the model is an encoder: it computes embeddings (kiln_embed), "
          "not logits";
    return nullptr;
  }
  const int64_t maxTokens = man.entry.maxTokens;
  const int64_t nVocab = man.model.nVocab;
  if (n == 0) {
    err = "no tokens to evaluate";
    return nullptr;
  }
  if (pos < 0 || pos > getNPast()) {
    err = "position " + std::to_string(pos) + " is past the " +
          std::to_string(getNPast()) + " tokens in the session";
    return nullptr;
  }
  if (uint64_t(pos) + n > uint64_t(nCtx)) {
    err = "context full: " + std::to_string(n) + " tokens at position " +
          std::to_string(pos) + " exceed the context of " +
          std::to_string(nCtx) + " tokens";
    return nullptr;
  }
  int64_t maxRows = std::min<int64_t>(int64_t(n), maxTokens);
  if (nLogitRows < 1 || nLogitRows > maxRows) {
    err = "logit rows " + std::to_string(nLogitRows) + " must be 1 to " +
          std::to_string(maxRows);
    return nullptr;
  }
  for (size_t i = 0; i < n; ++i) {
    // Generated code indexes the embedding table with these ids unchecked.
    if (tokens[i] < 0 || tokens[i] >= nVocab) {
      err = "token id " + std::to_string(tokens[i]) + " at index " +
            std::to_string(i) + " is outside the vocabulary [0, " +
            std::to_string(nVocab) + ")";
      return nullptr;
    }
  }

  history.resize(pos);
  logitRows = 0;
  ThreadPool &pool = model.getPool();
  const SectionView &w = model.getWeights();
  StepCall call;
  call.fn = model.getForward();
  call.kv = bytes1D(kvCache.data(), kvCache.size());
  // The weights are mapped read-only; generated code only reads them.
  call.weights = bytes1D(const_cast<uint8_t *>(w.data), w.size);
  call.scratch = bytes1D(scratch.data(), scratch.size());
  call.rt = pool.getContext();

  // The first chunk takes the remainder so the last one is full and can
  // return up to max_tokens rows of logits.
  size_t nChunks = (n + maxTokens - 1) / maxTokens;
  size_t chunk = n - (nChunks - 1) * maxTokens;
  size_t done = 0;
  while (done < n) {
    bool last = done + chunk == n;
    int64_t rows = last ? nLogitRows : 1;
    call.tokens = {const_cast<int32_t *>(tokens + done),
                   const_cast<int32_t *>(tokens + done),
                   0,
                   {int64_t(chunk)},
                   {1}};
    call.logits = {
        logits.data(), logits.data(), 0, {rows, nVocab}, {nVocab, 1}};
    call.position = pos + int64_t(done);
    pool.run(call);
    history.insert(history.end(), tokens + done, tokens + done + chunk);
    done += chunk;
    chunk = maxTokens;
  }
  logitRows = nLogitRows;
  return logits.data();
}

bool Session::generate(const std::string &prompt, const GenerateOptions &opts,
                       const std::function<bool(const std::string &)> &onPiece,
                       GenerateStats &stats, std::string &err) {
  using Clock = std::chrono::steady_clock;
  stats = GenerateStats();
  if (!validateSamplingParams(opts.sampling, err))
    return false;
  if (opts.nPredict <= 0) {
    err = "number of tokens to generate must be > 0, got " +
          std::to_string(opts.nPredict);
    return false;
  }
  const Tokenizer &tok = model.getTokenizer();
  std::string text = prompt;
  if (opts.chat && !tok.applyChatTemplate(prompt, text, err))
    return false;
  // BOS only at the start of a sequence; special tokens in the text count
  // as such, as llama-cli does.
  std::vector<int32_t> tokens = tok.encode(text, history.empty(), true);
  if (tokens.empty()) {
    err = "the prompt is empty: there is no token to continue from";
    return false;
  }
  int64_t needed = getNPast() + int64_t(tokens.size()) + opts.nPredict;
  if (needed > nCtx) {
    err = "prompt of " + std::to_string(tokens.size()) + " tokens + " +
          std::to_string(opts.nPredict) + " to generate" +
          (history.empty()
               ? std::string()
               : " after " + std::to_string(getNPast()) + " in the session") +
          " exceed the context of " + std::to_string(nCtx) + " tokens";
    return false;
  }

  const int32_t nVocab = int32_t(model.getManifest().model.nVocab);
  Sampler sampler(opts.sampling, nVocab);
  std::vector<int32_t> seen(history);
  seen.reserve(needed);
  seen.insert(seen.end(), tokens.begin(), tokens.end());

  auto t0 = Clock::now();
  const float *out = forward(tokens.data(), tokens.size(), getNPast(), 1, err);
  if (!out)
    return false;
  auto t1 = Clock::now();
  stats.nPrompt = int32_t(tokens.size());
  stats.promptSeconds = std::chrono::duration<double>(t1 - t0).count();

  for (int32_t i = 0; i < opts.nPredict; ++i) {
    int32_t next = sampler.sample(out, seen.data(), seen.size());
    ++stats.nGenerated;
    if (tok.isEndOfGeneration(next)) {
      stats.stoppedAtEog = true;
      break;
    }
    seen.push_back(next);
    if (!onPiece(tok.tokenToPiece(next)))
      break;
    if (i + 1 == opts.nPredict)
      break;
    out = forward(&next, 1, getNPast(), 1, err);
    if (!out)
      return false;
  }
  stats.generateSeconds =
      std::chrono::duration<double>(Clock::now() - t1).count();
  return true;
}
