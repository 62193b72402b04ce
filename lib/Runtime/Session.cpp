//===- Session.cpp - a loaded model and its inference sessions ------------===//

#include "Runtime/Session.h"

#include "Runtime/CpuFeatures.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <sys/mman.h>
#include <unistd.h>

using namespace kiln::rt;

std::unique_ptr<Model> Model::load(const std::string &path, int threads,
                                   const std::string &device,
                                   std::string &err) {
  return load(path, threads, device, detectHostCpuFeatures(), err);
}

/// "cuda" -> 0, "cuda:N" -> N, anything else -> -1.
static int cudaOrdinal(const std::string &device) {
  if (device == "cuda")
    return 0;
  if (device.compare(0, 5, "cuda:") != 0 || device.size() == 5 ||
      device.size() > 9 ||
      device.find_first_not_of("0123456789", 5) != std::string::npos)
    return -1;
  return std::stoi(device.substr(5));
}

static std::string targetList(const Manifest &man) {
  std::string list;
  for (const std::string &t : man.targets)
    list += (list.empty() ? "" : ", ") + t;
  return list;
}

/// Opens the CUDA device for `device` ("cuda[:N]") or picks the CPU, as the
/// manifest's targets allow; "" tries the targets in order.
bool Model::chooseDevice(const std::string &device, std::string &err) {
  const Manifest &man = artifact->getManifest();
  const std::string &path = artifact->getPath();
  if (device == "cpu") {
    if (man.targetsCpu)
      return true;
    err = path + ": the artifact has no CPU code (targets: " + targetList(man) +
          ")";
    return false;
  }
  if (!device.empty()) {
    int ordinal = cudaOrdinal(device);
    if (ordinal < 0) {
      err = "device must be cpu, cuda or cuda:N, got '" + device + "'";
      return false;
    }
    if (!man.targetsCuda) {
      err = path +
            ": the artifact has no CUDA code (targets: " + targetList(man) +
            ")";
      return false;
    }
    gpu = CudaDevice::open(*artifact, ordinal, err);
    if (!gpu)
      err = path + ": cannot run on " + device + ": " + err;
    return gpu != nullptr;
  }
  std::string why;
  for (const std::string &target : man.targets) {
    if (target == "cpu")
      return true;
    gpu = CudaDevice::open(*artifact, 0, why);
    if (gpu)
      return true;
  }
  err = path + ": cannot run on cuda:0 (the artifact targets " +
        targetList(man) + " only): " + why;
  return false;
}

std::unique_ptr<Model> Model::load(const std::string &path, int threads,
                                   const std::string &device,
                                   uint64_t cpuFeatures, std::string &err) {
  // Check the cheap argument before reading a possibly huge file.
  if (threads < 1 || threads > ThreadPool::kMaxThreads) {
    err = "thread count must be 1 to " +
          std::to_string(ThreadPool::kMaxThreads) + ", got " +
          std::to_string(threads);
    return nullptr;
  }
  if (!device.empty() && device != "cpu" && cudaOrdinal(device) < 0) {
    err = "device must be cpu, cuda or cuda:N, got '" + device + "'";
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
  int variant = chooseHostVariant(man.host, cpuFeatures, why);
  if (variant < 0) {
    err = path + ": " + why;
    return nullptr;
  }
  if (!m->chooseDevice(device, err))
    return nullptr;
  m->hostVariant = man.host[variant].section;
  const SectionView *code = m->artifact->find(m->hostVariant);
  m->hostCode = HostCode::load(code->data, code->size, m->hostVariant, why);
  if (!m->hostCode) {
    err = path + ": " + why;
    return nullptr;
  }
  const std::string &symbol = m->gpu ? man.cuda.symbol : man.entry.symbol;
  m->forward = reinterpret_cast<KilnForwardFn>(m->hostCode->lookup(symbol));
  if (!m->forward) {
    err = path + ": host code '" + m->hostVariant + "' has no entry symbol '" +
          symbol + "'";
    return nullptr;
  }

  if (!man.batchEntry.symbol.empty() && !m->gpu) {
    m->forwardBatch = reinterpret_cast<KilnForwardBatchFn>(
        m->hostCode->lookup(man.batchEntry.symbol));
    if (!m->forwardBatch) {
      err = path + ": host code '" + m->hostVariant +
            "' has no batch_entry symbol '" + man.batchEntry.symbol + "'";
      return nullptr;
    }
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
  m->scratchBytes = man.entry.scratchBytes;
  m->weights = m->artifact->find(man.weightsSection);
  if (m->gpu) {
    // Uploaded once; every session's steps read this copy.
    if (!m->gpu->allocate(m->weights->size, "weights section", m->deviceWeights,
                          err) ||
        !m->gpu->upload(m->deviceWeights, m->weights->data, m->weights->size,
                        err) ||
        !m->gpu->finishStep(err)) {
      err = path + ": " + err;
      return nullptr;
    }
    // The step runs on the calling thread: no pool.
    return m;
  }
  m->pool = ThreadPool::create(threads, err);
  if (!m->pool)
    return nullptr;
  return m;
}

bool Model::distribute(Communicator &comm, std::string &err) {
  const Manifest &man = getManifest();
  const std::string &path = artifact->getPath();
  const auto &ranks = man.distribution.ranks;
  int64_t needed = ranks.empty() ? 1 : int64_t(ranks.size());
  if (comm.getGroupSize() != needed) {
    err = path + ": the artifact is split over " + std::to_string(needed) +
          " rank(s) (tp=" + std::to_string(man.distribution.tp) +
          ", pp=" + std::to_string(man.distribution.pp) +
          ") but the run gives each replica " +
          std::to_string(comm.getGroupSize());
    return false;
  }
  if (gpu) {
    // A replica's GPU ranks talk through NCCL on the device's stream.
    if (!ranks.empty()) {
      err = path + ": a model split over GPU ranks (tp/pp) cannot run yet: "
                   "cuda artifacts run as whole-model replicas (--dp)";
      return false;
    }
    nccl = NcclCommunicator::open(&comm, /*tp=*/1, gpu->getStream(), err);
    if (!nccl)
      return false;
    gpu->attachCommunicator(&NcclCommunicator::communicate, nccl.get());
    communicator = &comm;
    return true;
  }
  if (!ranks.empty()) {
    const Manifest::RankEntry &mine = ranks[comm.getRank()];
    forward = reinterpret_cast<KilnForwardFn>(hostCode->lookup(mine.symbol));
    if (!forward) {
      err = path + ": host code '" + hostVariant + "' has no step symbol '" +
            mine.symbol + "' for rank " + std::to_string(comm.getRank());
      return false;
    }
    scratchBytes = mine.scratchBytes;
  }
  KilnRtContext *rt = pool->getContext();
  rt->communicate = communicateOnPool;
  rt->communicator = &comm;
  communicator = &comm;
  return true;
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

void Buffer::zero(uint64_t offset, uint64_t size) {
  if (!ptr || size == 0)
    return;
  // Anonymous private pages read as zero again after MADV_DONTNEED, without
  // touching memory the model never used; partial pages at the ends of the
  // range are cleared by hand (the mapping's last page is all this buffer's).
  uint64_t page = uint64_t(::sysconf(_SC_PAGESIZE));
  uint64_t end = offset + size;
  uint64_t first = (offset + page - 1) / page * page;
  uint64_t last = end == mapped ? end : end / page * page;
  if (first < last &&
      ::madvise(data() + first, last - first, MADV_DONTNEED) == 0) {
    std::memset(data() + offset, 0, first - offset);
    std::memset(data() + last, 0, end - last);
    return;
  }
  std::memset(data() + offset, 0, size);
}

std::unique_ptr<Session> Session::create(Model &model, int64_t nCtx,
                                         std::string &err) {
  return create(model, nCtx, nullptr, 0, err);
}

std::unique_ptr<Session> Session::create(Model &model, int64_t nCtx,
                                         Buffer *sharedCache,
                                         uint64_t kvOffset, std::string &err) {
  const Manifest &man = model.getManifest();
  if (nCtx < 0 || nCtx > man.model.nCtx) {
    err = "context size " + std::to_string(nCtx) + " must be 1 to " +
          std::to_string(man.model.nCtx) + " (the model's n_ctx), or 0";
    return nullptr;
  }
  const auto &dist = man.distribution;
  if (!dist.ranks.empty() && !model.getCommunicator()) {
    err = "the model is split over " + std::to_string(dist.ranks.size()) +
          " ranks (tp=" + std::to_string(dist.tp) +
          ", pp=" + std::to_string(dist.pp) + "): run it with mpirun -np " +
          std::to_string(dist.ranks.size()) + " kiln-run --tp " +
          std::to_string(dist.tp) + " --pp " + std::to_string(dist.pp);
    return nullptr;
  }
  std::unique_ptr<Session> s(new Session(model));
  s->nCtx = nCtx ? nCtx : man.model.nCtx;
  if (CudaDevice *gpu = model.getCudaDevice()) {
    if (!gpu->allocate(man.entry.kvCacheBytes, "KV cache", s->deviceKvCache,
                       err) ||
        !gpu->allocate(man.entry.scratchBytes, "scratch memory",
                       s->deviceScratch, err) ||
        !gpu->allocate(man.entry.maxTokens * sizeof(int32_t), "token buffer",
                       s->deviceTokens, err) ||
        !gpu->allocate(man.entry.maxTokens * man.model.nVocab * sizeof(float),
                       "logits buffer", s->deviceLogits, err) ||
        !gpu->finishStep(err))
      return nullptr;
  } else if (sharedCache) {
    s->cacheBuffer = sharedCache;
    s->cacheOffset = kvOffset;
    if (!s->scratch.allocate(model.getScratchBytes(), "scratch memory", err))
      return nullptr;
  } else if (!s->kvCache.allocate(man.entry.kvCacheBytes, "KV cache", err) ||
             !s->scratch.allocate(model.getScratchBytes(), "scratch memory",
                                  err)) {
    return nullptr;
  }
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
  lastStepTokens = 0;
  cacheBuffer->zero(cacheOffset, model.getManifest().entry.kvCacheBytes);
  // A failure here shows up at the next step, which fails with it.
  std::string ignored;
  if (CudaDevice *gpu = model.getCudaDevice())
    gpu->zero(deviceKvCache, ignored);
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

std::vector<int32_t> Session::embeddingTokens(const std::string &text) const {
  const Manifest &man = model.getManifest();
  std::vector<int32_t> ids = model.getTokenizer().encode(
      text, /*addSpecial=*/true, /*parseSpecial=*/false);
  // Too long: cut the text, keep the closing token (sentence-transformers
  // truncates to its max_seq_length the same way).
  size_t limit = size_t(std::min<int64_t>(man.entry.maxTokens, nCtx));
  if (ids.size() > limit && limit >= 2) {
    int32_t last = ids.back();
    ids.resize(limit - 1);
    ids.push_back(last);
  }
  return ids;
}

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
  lastStepTokens = 0;
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

const float *Session::getTap(size_t i, int64_t &rows) const {
  const std::vector<CalibrationTap> &taps = model.getManifest().taps;
  rows = 0;
  if (i >= taps.size() || !lastStepTokens)
    return nullptr;
  rows = lastStepTokens;
  // The manifest parser checked that max_tokens rows fit in scratch.
  return reinterpret_cast<const float *>(scratch.data() + taps[i].offset);
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
  lastStepTokens = 0;
  if (model.getCudaDevice())
    return forwardOnDevice(tokens, n, pos, nLogitRows, err);
  ThreadPool &pool = model.getPool();
  const SectionView &w = model.getWeights();
  StepCall call;
  call.fn = model.getForward();
  call.kv = bytes1D(cacheBuffer->data() + cacheOffset, man.entry.kvCacheBytes);
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
    if (Communicator *comm = model.getCommunicator();
        comm && comm->takeError(err))
      return nullptr;
    lastStepTokens = int64_t(chunk);
    history.insert(history.end(), tokens + done, tokens + done + chunk);
    done += chunk;
    chunk = maxTokens;
  }
  logitRows = nLogitRows;
  return logits.data();
}

namespace {
/// One call of the step over several sequences, shared by all threads.
struct BatchStepCall {
  KilnForwardBatchFn fn;
  KilnMemRef1D tokens, slots, positions, kv, weights, scratch;
  KilnMemRef2D logits;
  KilnRtContext *rt;

  void operator()(int tid, int nth) {
    fn(&tokens, &slots, &positions, &kv, &logits, &weights, &scratch, rt, tid,
       nth);
  }
};

KilnMemRef1D ids1D(const int32_t *p, size_t n) {
  int32_t *q = const_cast<int32_t *>(p);
  return {q, q, 0, {int64_t(n)}, {1}};
}
} // namespace

std::unique_ptr<SessionBatch> SessionBatch::create(Model &model,
                                                   int32_t sequences,
                                                   int64_t nCtx,
                                                   std::string &err) {
  const Manifest &man = model.getManifest();
  if (!model.getForwardBatch()) {
    err = "the artifact has no step over several sequences (compile it with "
          "kiln-compile --batched-step, for the CPU)";
    return nullptr;
  }
  if (sequences < 1 || sequences > 4096) {
    err = "sequences " + std::to_string(sequences) + " must be 1 to 4096";
    return nullptr;
  }
  std::unique_ptr<SessionBatch> batch(new SessionBatch(model));
  uint64_t slotBytes = uint64_t(man.entry.kvCacheBytes);
  // Mapped lazily: an idle slot costs address space, not memory.
  if (!batch->kvCache.allocate(slotBytes * uint64_t(sequences), "KV cache",
                               err) ||
      !batch->scratch.allocate(man.batchEntry.scratchBytes,
                               "batch scratch memory", err))
    return nullptr;
  for (int32_t i = 0; i < sequences; ++i) {
    std::unique_ptr<Session> s = Session::create(
        model, nCtx, &batch->kvCache, uint64_t(i) * slotBytes, err);
    if (!s)
      return nullptr;
    batch->sessions.push_back(std::move(s));
  }
  batch->logits.assign(size_t(man.entry.maxTokens) * man.model.nVocab, 0.0f);
  return batch;
}

const float *SessionBatch::forward(const int32_t *which,
                                   const int32_t *tokens, size_t count,
                                   std::string &err) {
  const Manifest &man = model.getManifest();
  const int64_t nVocab = man.model.nVocab;
  if (count < 1 || int64_t(count) > man.entry.maxTokens) {
    err = "a batched step takes 1 to " + std::to_string(man.entry.maxTokens) +
          " tokens, not " + std::to_string(count);
    return nullptr;
  }
  positions.resize(count);
  for (size_t i = 0; i < count; ++i) {
    if (which[i] < 0 || which[i] >= size()) {
      err = "session " + std::to_string(which[i]) + " is not one of the " +
            std::to_string(size()) + " of the batch";
      return nullptr;
    }
    for (size_t j = 0; j < i; ++j)
      if (which[j] == which[i]) {
        err = "session " + std::to_string(which[i]) +
              " appears twice in one batched step";
        return nullptr;
      }
    const Session &s = *sessions[which[i]];
    if (s.getNPast() + 1 > s.getContextSize()) {
      err = "context full: session " + std::to_string(which[i]) + " holds " +
            std::to_string(s.getNPast()) + " of its " +
            std::to_string(s.getContextSize()) + " tokens";
      return nullptr;
    }
    // Generated code indexes the embedding table with these ids unchecked.
    if (tokens[i] < 0 || tokens[i] >= nVocab) {
      err = "token id " + std::to_string(tokens[i]) + " at index " +
            std::to_string(i) + " is outside the vocabulary [0, " +
            std::to_string(nVocab) + ")";
      return nullptr;
    }
    positions[i] = int32_t(s.getNPast());
  }
  const SectionView &w = model.getWeights();
  BatchStepCall call;
  call.fn = model.getForwardBatch();
  call.tokens = ids1D(tokens, count);
  call.slots = ids1D(which, count);
  call.positions = ids1D(positions.data(), count);
  call.kv = bytes1D(kvCache.data(), kvCache.size());
  // The weights are mapped read-only; generated code only reads them.
  call.weights = bytes1D(const_cast<uint8_t *>(w.data), w.size);
  call.scratch = bytes1D(scratch.data(), scratch.size());
  call.logits = {logits.data(), logits.data(), 0, {int64_t(count), nVocab},
                 {nVocab, 1}};
  call.rt = model.getPool().getContext();
  model.getPool().run(call);
  for (size_t i = 0; i < count; ++i) {
    Session &s = *sessions[which[i]];
    s.history.push_back(tokens[i]);
    s.logitRows = 0; // its own logits are not this step's
  }
  return logits.data();
}

const float *Session::forwardOnDevice(const int32_t *tokens, size_t n,
                                      int64_t pos, int nLogitRows,
                                      std::string &err) {
  const Manifest &man = model.getManifest();
  const int64_t maxTokens = man.entry.maxTokens;
  const int64_t nVocab = man.model.nVocab;
  CudaDevice &gpu = *model.getCudaDevice();
  if (!gpu.beginStep(err))
    return nullptr;
  // Same chunking as on the CPU; the step function only launches kernels,
  // so it runs once, on this thread, with device addresses.
  StepCall call;
  call.fn = model.getForward();
  call.kv = bytes1D(deviceKvCache.address(), deviceKvCache.size());
  call.weights = bytes1D(model.getDeviceWeights().address(),
                         model.getDeviceWeights().size());
  call.scratch = bytes1D(deviceScratch.address(), deviceScratch.size());
  call.rt = gpu.getContext();
  size_t nChunks = (n + maxTokens - 1) / maxTokens;
  size_t chunk = n - (nChunks - 1) * maxTokens;
  size_t done = 0;
  int64_t rows = 1;
  while (done < n) {
    rows = done + chunk == n ? nLogitRows : 1;
    if (!gpu.upload(deviceTokens, tokens + done, chunk * sizeof(int32_t), err))
      return nullptr;
    void *t = deviceTokens.address(), *l = deviceLogits.address();
    call.tokens = {t, t, 0, {int64_t(chunk)}, {1}};
    call.logits = {l, l, 0, {rows, nVocab}, {nVocab, 1}};
    call.position = pos + int64_t(done);
    // Decode steps (one token) replay the device's CUDA graph.
    if (chunk == 1 && gpu.graphsEnabled())
      gpu.runGraphStep([&] { call(0, 1); });
    else
      call(0, 1);
    NcclCommunicator *nccl = model.getNcclCommunicator();
    if (!gpu.launchesSucceeded(err) || (nccl && nccl->takeError(err))) {
      history.resize(pos);
      return nullptr;
    }
    history.insert(history.end(), tokens + done, tokens + done + chunk);
    done += chunk;
    chunk = maxTokens;
  }
  // NCCL exchanges wait for the other ranks without a deadline: ours.
  if (NcclCommunicator *nccl = model.getNcclCommunicator();
      nccl && !gpu.waitForStream(nccl->getTimeoutSeconds(), err)) {
    nccl->abort();
    history.resize(pos);
    return nullptr;
  }
  if (!gpu.download(logits.data(), deviceLogits,
                    uint64_t(rows) * nVocab * sizeof(float), err) ||
      !gpu.finishStep(err)) {
    history.resize(pos);
    return nullptr;
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
