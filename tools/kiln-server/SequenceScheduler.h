//===- SequenceScheduler.h - kiln-server's decode loop ----------*- C++ -*-===//
//
// One thread owns the model: the runtime runs one forward pass at a time on
// its pool, so every step, of every request, goes through here. A request
// takes one of --max-sequences slots (a runtime Session) and leaves it when it
// finishes or its client goes away; requests join and leave between steps
// (continuous batching). A new request's prompt is evaluated in a step of its
// own; then every sequence past its prompt decodes its next token in one
// shared step (a SessionBatch: the sessions' KV caches are slots of one
// cache) when the artifact has the step over several sequences (kiln-compile
// --batched-step); without it the sequences take turns, one token each.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_TOOLS_KILN_SERVER_SEQUENCESCHEDULER_H
#define KILN_TOOLS_KILN_SERVER_SEQUENCESCHEDULER_H

#include "Runtime/Sampler.h"
#include "Runtime/Session.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace kiln::server {

/// The text one request generates, handed from the scheduler thread to the
/// HTTP thread that answers the request.
class TokenStream {
public:
  /// What take() returns: text generated since the last call, cut at a UTF-8
  /// character boundary until the end (a JSON string must be valid UTF-8).
  struct Chunk {
    std::string text;
    bool finished = false;
    std::string finishReason; // "stop" (end of generation) or "length"
    std::string error;        // set when the runtime failed the step
    int32_t promptTokens = 0, completionTokens = 0;
  };

  /// Waits up to `timeout` for new text or the end; false if neither came.
  bool take(Chunk &chunk, std::chrono::milliseconds timeout);
  /// The client went away: the scheduler frees the sequence at its next step.
  void cancel() { cancelled = true; }
  bool isCancelled() const { return cancelled; }

  // Called by the scheduler thread.
  void append(const std::string &piece, int32_t completionTokens);
  void finish(const std::string &reason, const std::string &error,
              int32_t promptTokens, int32_t completionTokens);

private:
  std::mutex mutex;
  std::condition_variable ready;
  std::string pending; // bytes not yet taken, possibly a partial character
  bool finished = false;
  bool delivered = false; // the final chunk was taken
  std::string finishReason, error;
  int32_t promptTokens = 0, completionTokens = 0;
  std::atomic<bool> cancelled{false};
};

struct SchedulerLimits {
  int32_t maxSequences = 4;
  int64_t contextPerSequence = 0; // 0: the model's n_ctx
};

class SequenceScheduler {
public:
  /// Creates the sequence slots (their KV caches are mapped lazily, so idle
  /// slots cost address space, not memory) and starts the scheduler thread.
  static std::unique_ptr<SequenceScheduler>
  create(rt::Model &model, const SchedulerLimits &limits, std::string &err);
  ~SequenceScheduler();

  /// Starts generating up to `maxNewTokens` after `prompt` in a free slot.
  /// With `ignoreEos`, end-of-generation tokens are text like any other.
  /// Fails with a message if the prompt and maxNewTokens do not fit the
  /// context of a sequence, or, with `busy` set, if every slot is taken.
  std::shared_ptr<TokenStream> submit(std::vector<int32_t> prompt,
                                      int32_t maxNewTokens,
                                      const rt::SamplingParams &sampling,
                                      bool ignoreEos, bool &busy,
                                      std::string &err);

  /// An encoder's sentence embedding of `text` (as kiln_embed computes it)
  /// and the number of tokens it took, computed on the scheduler thread
  /// between steps.
  bool embed(const std::string &text, std::vector<float> &out,
             int32_t &nTokens, std::string &err);

  int32_t getActiveSequences();
  int32_t getMaxSequences() const { return int32_t(slots.size()); }
  int64_t getContextPerSequence() const { return contextPerSequence; }
  /// Whether one step decodes every sequence's next token (the artifact has
  /// the step over several sequences) rather than one sequence's.
  bool decodesTogether() const { return bool(batch); }

private:
  struct Slot {
    rt::Session *session = nullptr; // the batch's, or one of `sessions`
    std::shared_ptr<TokenStream> stream; // null: the slot is free
    std::unique_ptr<rt::Sampler> sampler;
    std::vector<int32_t> prompt;
    std::vector<int32_t> seen; // prompt and generated tokens, for penalties
    int32_t maxNewTokens = 0, generated = 0;
    bool prefilled = false, ignoreEos = false;
    int32_t lastToken = 0;
  };
  struct EmbedJob {
    const std::string *text;
    std::vector<float> *out;
    int32_t *nTokens;
    std::string *err;
    bool ok = false, done = false;
  };

  explicit SequenceScheduler(rt::Model &model) : model(model) {}
  void run();
  /// Samples `slot`'s next token from `logits` and hands it to its stream;
  /// false when the sequence is over.
  bool emit(Slot &slot, const float *logits);
  /// One step for the next token of each of the `decoding` slots.
  void decode(const std::vector<size_t> &decoding);
  void release(Slot &slot);

  rt::Model &model;
  int64_t contextPerSequence = 0;
  std::vector<Slot> slots;
  std::unique_ptr<rt::SessionBatch> batch; // with a batched step
  std::vector<std::unique_ptr<rt::Session>> sessions; // without one
  std::unique_ptr<rt::Session> embedSession; // encoders only
  std::vector<int32_t> stepSessions, stepTokens; // decode()'s, reused

  std::mutex mutex;
  std::condition_variable wake, embedded;
  std::deque<EmbedJob *> embedJobs;
  int32_t active = 0;
  bool stopping = false;
  std::thread thread;
};

} // namespace kiln::server

#endif // KILN_TOOLS_KILN_SERVER_SEQUENCESCHEDULER_H
