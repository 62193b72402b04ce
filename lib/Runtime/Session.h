//===- Session.h - a loaded model and its inference sessions ----*- C++ -*-===//
//
// Model: a verified artifact, the host-code variant chosen for this CPU, the
// tokenizer, and the thread pool or, for a cuda artifact, the GPU. Session: one
// sequence's KV cache, scratch memory and position, and forward() that feeds
// tokens to the generated step function in chunks of at most the manifest's
// max_tokens. SessionBatch: sessions whose KV caches are slots of one
// buffer, so that one call of the manifest's batch_entry decodes a token of
// each of several of them.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_SESSION_H
#define KILN_RUNTIME_SESSION_H

#include "Runtime/ArtifactLoader.h"
#include "Runtime/Communicator.h"
#include "Runtime/CudaDevice.h"
#include "Runtime/NcclCommunicator.h"
#include "Runtime/HostCode.h"
#include "Runtime/Sampler.h"
#include "Runtime/ThreadPool.h"
#include "Runtime/Tokenizer.h"
#include "kiln/runtime/HostABI.h"

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace kiln::rt {

class Model {
public:
  /// Loads `path` for this CPU (see detectHostCpuFeatures) to run on
  /// `device`: "cpu", "cuda", "cuda:N", or "" for the first of the
  /// manifest's targets that this machine can run.
  static std::unique_ptr<Model> load(const std::string &path, int threads,
                                     const std::string &device,
                                     std::string &err);
  /// Same, with an explicit feature set (tests use fake CPUs).
  static std::unique_ptr<Model> load(const std::string &path, int threads,
                                     const std::string &device,
                                     uint64_t cpuFeatures, std::string &err);

  /// Makes this process rank comm.getRank() of a model group: runs that
  /// rank's step function of a distributed artifact (kiln-shard), or the
  /// whole model as one data-parallel replica (groups of one rank). `comm`
  /// must outlive the model. Fails when the group's size is not the
  /// artifact's tp * pp.
  bool distribute(Communicator &comm, std::string &err);
  /// The communicator distribute() attached, or nullptr.
  Communicator *getCommunicator() const { return communicator; }
  /// The GPU ranks' NCCL communicator distribute() opened, or nullptr.
  NcclCommunicator *getNcclCommunicator() const { return nccl.get(); }
  /// Scratch bytes of the step function this process runs.
  int64_t getScratchBytes() const { return scratchBytes; }

  const Manifest &getManifest() const { return artifact->getManifest(); }
  const Tokenizer &getTokenizer() const { return *tokenizer; }
  ThreadPool &getPool() { return *pool; }
  KilnForwardFn getForward() const { return forward; }
  /// The step over several sequences (manifest batch_entry), or null.
  KilnForwardBatchFn getForwardBatch() const { return forwardBatch; }
  const SectionView &getWeights() const { return *weights; }
  const std::string &getHostVariant() const { return hostVariant; }
  /// The GPU the model runs on, or nullptr when it runs on the CPU.
  CudaDevice *getCudaDevice() const { return gpu.get(); }
  const DeviceBuffer &getDeviceWeights() const { return deviceWeights; }
  /// "cpu" or the CUDA device's description.
  std::string getDeviceDescription() const {
    return gpu ? gpu->getDescription() : "cpu";
  }

private:
  Model() = default;
  bool chooseDevice(const std::string &device, std::string &err);
  // Declared first so that it is destroyed last: the device buffers below
  // (and every session's) give their memory back through it.
  std::unique_ptr<CudaDevice> gpu;
  DeviceBuffer deviceWeights; // the weights section, uploaded once
  std::unique_ptr<NcclCommunicator> nccl; // on gpu's stream
  std::unique_ptr<Artifact> artifact;
  std::unique_ptr<HostCode> hostCode;
  KilnForwardFn forward = nullptr; // the manifest's entry symbol in hostCode
  KilnForwardBatchFn forwardBatch = nullptr; // batch_entry's symbol
  std::unique_ptr<Tokenizer> tokenizer;
  std::unique_ptr<ThreadPool> pool;
  const SectionView *weights = nullptr;
  std::string hostVariant;
  Communicator *communicator = nullptr;
  int64_t scratchBytes = 0;
};

/// Anonymous zeroed memory from mmap: page-aligned and released on
/// destruction; reset() gives the pages back so they read as zero again.
class Buffer {
public:
  Buffer() = default;
  ~Buffer();
  Buffer(const Buffer &) = delete;
  Buffer &operator=(const Buffer &) = delete;
  bool allocate(uint64_t size, const char *what, std::string &err);
  void zero() { zero(0, mapped); }
  /// Zeroes bytes [offset, offset + size).
  void zero(uint64_t offset, uint64_t size);
  uint8_t *data() const { return static_cast<uint8_t *>(ptr); }
  uint64_t size() const { return bytes; }

private:
  void *ptr = nullptr;
  uint64_t bytes = 0;
  uint64_t mapped = 0;
};

struct GenerateOptions {
  SamplingParams sampling;
  int32_t nPredict = 64;
  bool chat = false;
};

struct GenerateStats {
  int32_t nPrompt = 0, nGenerated = 0;
  double promptSeconds = 0, generateSeconds = 0;
  bool stoppedAtEog = false;
};

class Session {
public:
  /// nCtx = 0 takes the manifest's n_ctx; a larger one is an error.
  static std::unique_ptr<Session> create(Model &model, int64_t nCtx,
                                         std::string &err);

  /// Runs `n` tokens at positions [pos, pos + n) (pos <= getNPast(); later
  /// positions are forgotten) and returns the logits of the last
  /// `nLogitRows` tokens, row-major, or nullptr with a message.
  const float *forward(const int32_t *tokens, size_t n, int64_t pos,
                       int nLogitRows, std::string &err);

  /// An encoder's sentence embedding of `n` tokens (1 <= n <= max_tokens),
  /// n_embd floats, or nullptr with a message. Each call is independent.
  const float *embed(const int32_t *tokens, size_t n, std::string &err);

  /// The tokens embed() takes for `text`: with its special tokens, cut to
  /// what one step takes.
  std::vector<int32_t> embeddingTokens(const std::string &text) const;

  /// Tokenizes and evaluates `prompt` after the current sequence, then
  /// samples; onPiece gets each token's text and returns false to stop.
  bool generate(const std::string &prompt, const GenerateOptions &opts,
                const std::function<bool(const std::string &)> &onPiece,
                GenerateStats &stats, std::string &err);

  void reset();
  int64_t getNPast() const { return int64_t(history.size()); }
  int64_t getContextSize() const { return nCtx; }
  const float *getLogits(int *rows) const {
    if (rows)
      *rows = logitRows;
    return logitRows ? logits.data() : nullptr;
  }
  Model &getModel() { return model; }
  /// The rows of the manifest's tap `i` that the last step on the CPU left
  /// in scratch ([rows][cols] floats), or nullptr (no step yet, a GPU
  /// session, no such tap).
  const float *getTap(size_t i, int64_t &rows) const;

private:
  friend class SessionBatch;
  explicit Session(Model &model) : model(model) {}
  /// A session whose KV cache is bytes [kvOffset, kvOffset +
  /// kv_cache_bytes) of `sharedCache` (null: a cache of its own).
  static std::unique_ptr<Session> create(Model &model, int64_t nCtx,
                                         Buffer *sharedCache,
                                         uint64_t kvOffset, std::string &err);
  const float *forwardOnDevice(const int32_t *tokens, size_t n, int64_t pos,
                               int nLogitRows, std::string &err);
  Model &model;
  int64_t nCtx = 0;
  Buffer kvCache, scratch;
  Buffer *cacheBuffer = &kvCache; // kvCache or a SessionBatch's
  uint64_t cacheOffset = 0;
  // On a CUDA model the step reads and writes these instead; tokens and
  // logits pass through device copies of the host arrays.
  DeviceBuffer deviceKvCache, deviceScratch, deviceTokens, deviceLogits;
  std::vector<float> logits; // [max_tokens][n_vocab]; an encoder's [1][n_embd]
  int logitRows = 0;
  int64_t lastStepTokens = 0; // tokens of the last CPU step (taps)
  std::vector<int32_t> history; // tokens in the cache, by position
};

class SessionBatch {
public:
  /// `sequences` sessions of context nCtx (0: the manifest's n_ctx) over one
  /// cache of `sequences` slots; fails unless the artifact has a
  /// batch_entry (kiln-compile --batched-step).
  static std::unique_ptr<SessionBatch> create(Model &model, int32_t sequences,
                                              int64_t nCtx, std::string &err);

  /// Session `i`: use its forward() to evaluate a prompt alone.
  Session &getSession(int32_t i) { return *sessions[i]; }
  int32_t size() const { return int32_t(sessions.size()); }

  /// One step: token tokens[i] appended to session which[i] (each session
  /// at most once, 1 <= count <= max_tokens). Returns count rows of logits,
  /// row i session which[i]'s, or nullptr with a message.
  const float *forward(const int32_t *which, const int32_t *tokens,
                       size_t count, std::string &err);

private:
  explicit SessionBatch(Model &model) : model(model) {}
  Model &model;
  Buffer kvCache, scratch; // kvCache: one slot of kv_cache_bytes a session
  std::vector<std::unique_ptr<Session>> sessions;
  std::vector<int32_t> positions;
  std::vector<float> logits; // [max_tokens][n_vocab]
};

} // namespace kiln::rt

#endif // KILN_RUNTIME_SESSION_H
