//===- SequenceScheduler.cpp - kiln-server's decode loop ------------------===//

#include "SequenceScheduler.h"

#include <algorithm>
#include <cstdio>

using namespace kiln;
using namespace kiln::server;

namespace {
/// Length of the longest prefix of `s` that does not end inside a UTF-8
/// character (a token may stop mid-character; its next one completes it).
size_t completeUtf8Prefix(const std::string &s) {
  size_t n = s.size();
  // A character is at most 4 bytes: look back at most 3 for its lead byte.
  for (size_t back = 1; back <= 3 && back <= n; ++back) {
    unsigned char c = static_cast<unsigned char>(s[n - back]);
    if ((c & 0xC0) == 0x80)
      continue; // continuation byte
    size_t length = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
    return length > back ? n - back : n;
  }
  return n;
}
} // namespace

bool TokenStream::take(Chunk &chunk, std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mutex);
  auto hasNews = [&] {
    return (finished && !delivered) || completeUtf8Prefix(pending) > 0;
  };
  if (!ready.wait_for(lock, timeout, hasNews))
    return false;
  chunk = Chunk();
  size_t cut = finished ? pending.size() : completeUtf8Prefix(pending);
  chunk.text = pending.substr(0, cut);
  pending.erase(0, cut);
  chunk.completionTokens = completionTokens;
  if (finished) {
    delivered = true;
    chunk.finished = true;
    chunk.finishReason = finishReason;
    chunk.error = error;
    chunk.promptTokens = promptTokens;
  }
  return true;
}

void TokenStream::append(const std::string &piece, int32_t generated) {
  {
    std::lock_guard<std::mutex> lock(mutex);
    pending += piece;
    completionTokens = generated;
  }
  ready.notify_all();
}

void TokenStream::finish(const std::string &reason, const std::string &why,
                         int32_t prompt, int32_t generated) {
  {
    std::lock_guard<std::mutex> lock(mutex);
    finished = true;
    finishReason = reason;
    error = why;
    promptTokens = prompt;
    completionTokens = generated;
  }
  ready.notify_all();
}

std::unique_ptr<SequenceScheduler>
SequenceScheduler::create(rt::Model &model, const SchedulerLimits &limits,
                          std::string &err) {
  const rt::Manifest &man = model.getManifest();
  if (limits.maxSequences < 1) {
    err = "--max-sequences must be >= 1, got " +
          std::to_string(limits.maxSequences);
    return nullptr;
  }
  std::unique_ptr<SequenceScheduler> s(new SequenceScheduler(model));
  if (man.model.encoder) {
    s->embedSession = rt::Session::create(model, limits.contextPerSequence, err);
    if (!s->embedSession)
      return nullptr;
    s->contextPerSequence = s->embedSession->getContextSize();
  } else {
    s->slots.resize(limits.maxSequences);
    if (model.getForwardBatch()) {
      s->batch = rt::SessionBatch::create(model, limits.maxSequences,
                                          limits.contextPerSequence, err);
      if (!s->batch)
        return nullptr;
      for (int32_t i = 0; i < limits.maxSequences; ++i)
        s->slots[i].session = &s->batch->getSession(i);
    } else {
      for (Slot &slot : s->slots) {
        s->sessions.push_back(
            rt::Session::create(model, limits.contextPerSequence, err));
        if (!s->sessions.back())
          return nullptr;
        slot.session = s->sessions.back().get();
      }
    }
    s->contextPerSequence = s->slots.front().session->getContextSize();
  }
  s->thread = std::thread([p = s.get()] { p->run(); });
  return s;
}

SequenceScheduler::~SequenceScheduler() {
  {
    std::lock_guard<std::mutex> lock(mutex);
    stopping = true;
  }
  wake.notify_all();
  if (thread.joinable())
    thread.join();
  // Clients still waiting learn that their sequence ended with the server.
  for (Slot &slot : slots)
    if (slot.stream)
      slot.stream->finish("", "the server is shutting down", 0,
                          slot.generated);
}

std::shared_ptr<TokenStream>
SequenceScheduler::submit(std::vector<int32_t> prompt, int32_t maxNewTokens,
                          const rt::SamplingParams &sampling,
                          bool ignoreEos, bool &busy, std::string &err) {
  busy = false;
  if (slots.empty()) {
    err = "the model is an encoder: it computes embeddings (/v1/embeddings), "
          "not completions";
    return nullptr;
  }
  if (prompt.empty()) {
    err = "the prompt is empty: there is no token to continue from";
    return nullptr;
  }
  if (maxNewTokens < 1) {
    err = "max_tokens must be >= 1, got " + std::to_string(maxNewTokens);
    return nullptr;
  }
  if (int64_t(prompt.size()) + maxNewTokens > contextPerSequence) {
    err = "prompt of " + std::to_string(prompt.size()) + " tokens + " +
          std::to_string(maxNewTokens) +
          " to generate exceed the context of " +
          std::to_string(contextPerSequence) + " tokens per sequence (--ctx)";
    return nullptr;
  }
  if (!rt::validateSamplingParams(sampling, err))
    return nullptr;
  auto stream = std::make_shared<TokenStream>();
  {
    std::lock_guard<std::mutex> lock(mutex);
    Slot *free = nullptr;
    for (Slot &slot : slots)
      if (!slot.stream) {
        free = &slot;
        break;
      }
    if (!free) {
      busy = true;
      err = "all " + std::to_string(slots.size()) +
            " sequences are busy (--max-sequences); retry later";
      return nullptr;
    }
    free->stream = stream;
    free->sampler = std::make_unique<rt::Sampler>(
        sampling, int32_t(model.getManifest().model.nVocab));
    free->seen = prompt;
    free->prompt = std::move(prompt);
    free->maxNewTokens = maxNewTokens;
    free->generated = 0;
    free->prefilled = false;
    free->ignoreEos = ignoreEos;
    ++active;
  }
  wake.notify_all();
  return stream;
}

bool SequenceScheduler::embed(const std::string &text, std::vector<float> &out,
                              int32_t &nTokens, std::string &err) {
  if (!embedSession) {
    err = "the model is a decoder: it computes completions, not embeddings";
    return false;
  }
  EmbedJob job{&text, &out, &nTokens, &err};
  std::unique_lock<std::mutex> lock(mutex);
  embedJobs.push_back(&job);
  wake.notify_all();
  embedded.wait(lock, [&] { return job.done || stopping; });
  if (!job.done) {
    err = "the server is shutting down";
    return false;
  }
  return job.ok;
}

int32_t SequenceScheduler::getActiveSequences() {
  std::lock_guard<std::mutex> lock(mutex);
  return active;
}

void SequenceScheduler::release(Slot &slot) {
  std::lock_guard<std::mutex> lock(mutex);
  slot.stream.reset();
  slot.sampler.reset();
  --active;
}

bool SequenceScheduler::emit(Slot &slot, const float *logits) {
  TokenStream &stream = *slot.stream;
  int32_t promptTokens = int32_t(slot.prompt.size());
  // The same order as Session::generate (what kiln-run does): sample, stop
  // at end of generation, else emit and count.
  int32_t next = slot.sampler->sample(logits, slot.seen.data(), slot.seen.size());
  const Tokenizer &tokenizer = model.getTokenizer();
  if (!slot.ignoreEos && tokenizer.isEndOfGeneration(next)) {
    stream.finish("stop", "", promptTokens, slot.generated);
    return false;
  }
  slot.seen.push_back(next);
  ++slot.generated;
  stream.append(tokenizer.tokenToPiece(next), slot.generated);
  if (slot.generated == slot.maxNewTokens) {
    stream.finish("length", "", promptTokens, slot.generated);
    return false;
  }
  slot.lastToken = next;
  return true;
}

void SequenceScheduler::decode(const std::vector<size_t> &decoding) {
  std::string err;
  auto fail = [&](Slot &slot) {
    slot.stream->finish("", err, int32_t(slot.prompt.size()), slot.generated);
    release(slot);
  };
  if (!batch) {
    for (size_t i : decoding) {
      Slot &slot = slots[i];
      const float *logits = slot.session->forward(
          &slot.lastToken, 1, slot.session->getNPast(), 1, err);
      if (!logits)
        fail(slot);
      else if (!emit(slot, logits))
        release(slot);
    }
    return;
  }
  // Steps of at most max_tokens sequences.
  const size_t most = size_t(model.getManifest().entry.maxTokens);
  const size_t nVocab = size_t(model.getManifest().model.nVocab);
  for (size_t first = 0; first < decoding.size(); first += most) {
    size_t count = std::min(most, decoding.size() - first);
    stepSessions.clear();
    stepTokens.clear();
    for (size_t k = first; k < first + count; ++k) {
      stepSessions.push_back(int32_t(decoding[k]));
      stepTokens.push_back(slots[decoding[k]].lastToken);
    }
    const float *logits =
        batch->forward(stepSessions.data(), stepTokens.data(), count, err);
    for (size_t k = 0; k < count; ++k) {
      Slot &slot = slots[decoding[first + k]];
      if (!logits)
        fail(slot);
      else if (!emit(slot, logits + k * nVocab))
        release(slot);
    }
  }
}

void SequenceScheduler::run() {
  std::vector<size_t> busy;
  for (;;) {
    std::vector<EmbedJob *> jobs;
    busy.clear();
    {
      std::unique_lock<std::mutex> lock(mutex);
      wake.wait(lock,
                [&] { return stopping || active > 0 || !embedJobs.empty(); });
      if (stopping)
        break;
      jobs.assign(embedJobs.begin(), embedJobs.end());
      embedJobs.clear();
      for (size_t i = 0; i < slots.size(); ++i)
        if (slots[i].stream)
          busy.push_back(i);
    }
    for (EmbedJob *job : jobs) {
      std::vector<int32_t> tokens = embedSession->embeddingTokens(*job->text);
      *job->nTokens = int32_t(tokens.size());
      const float *e = embedSession->embed(tokens.data(), tokens.size(),
                                           *job->err);
      if (e) {
        job->out->assign(e, e + model.getManifest().model.nEmbd);
        job->ok = true;
      }
      std::lock_guard<std::mutex> lock(mutex);
      job->done = true;
    }
    if (!jobs.empty())
      embedded.notify_all();
    // New requests' prompts each in a step of their own, then one step for
    // the next token of every other sequence; finished or abandoned ones
    // leave at once.
    std::vector<size_t> decoding;
    for (size_t i : busy) {
      Slot &slot = slots[i];
      if (slot.stream->isCancelled()) {
        std::fprintf(stderr,
                     "kiln-server: sequence %zu freed after %d tokens: the "
                     "client disconnected\n",
                     i, slot.generated);
        release(slot);
        continue;
      }
      if (slot.prefilled) {
        decoding.push_back(i);
        continue;
      }
      // Position 0: the runtime forgets the slot's previous sequence.
      std::string err;
      const float *logits = slot.session->forward(
          slot.prompt.data(), slot.prompt.size(), 0, 1, err);
      slot.prefilled = true;
      if (!logits) {
        slot.stream->finish("", err, int32_t(slot.prompt.size()), 0);
        release(slot);
      } else if (!emit(slot, logits)) {
        release(slot);
      }
    }
    if (!decoding.empty())
      decode(decoding);
  }
  // Embedding requests still queued fail instead of waiting forever.
  embedded.notify_all();
}
