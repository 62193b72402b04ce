//===- RuntimeAPI.cpp - the C API of include/kiln/runtime/Runtime.h -------===//

#include "kiln/runtime/HostExecution.h"
#include "kiln/runtime/Runtime.h"

#include "Runtime/HostCode.h"
#include "Runtime/Session.h"
#include "Runtime/ThreadPool.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

using namespace kiln::rt;

struct kiln_model {
  std::unique_ptr<Model> model;
  std::string device;
  // Set by kiln_model_distribute; MPI stops only after the model (its
  // threads and step function) is gone.
  std::unique_ptr<Communicator> comm;
  ~kiln_model() {
    model.reset();
    comm.reset();
  }
};

struct kiln_host_code {
  std::unique_ptr<HostCode> code;
};

struct kiln_thread_pool {
  std::unique_ptr<ThreadPool> pool;
};

struct kiln_session {
  kiln_model *owner;
  std::unique_ptr<Session> session;
};

struct kiln_session_batch {
  std::unique_ptr<SessionBatch> batch;
  // Handles of the batch's sessions; they do not own them.
  std::vector<kiln_session> sessions;
  ~kiln_session_batch() {
    for (kiln_session &s : sessions)
      (void)s.session.release();
  }
};

/// Error strings handed out by the API: one per thread, so a message stays
/// valid until the next failing call on the same thread.
static thread_local std::string lastError;
static thread_local std::string lastPiece;

static int fail(const char **err, std::string message) {
  lastError = std::move(message);
  if (err)
    *err = lastError.c_str();
  return KILN_ERROR;
}

static SamplingParams toSampling(const kiln_sampling_params &p) {
  SamplingParams s;
  s.temperature = p.temperature;
  s.topK = p.top_k;
  s.topP = p.top_p;
  s.minP = p.min_p;
  s.repeatPenalty = p.repeat_penalty;
  s.repeatLastN = p.repeat_last_n;
  s.seed = p.seed;
  return s;
}

extern "C" {

int kiln_model_load_on(const char *path, int32_t n_threads, const char *device,
                       kiln_model **model, const char **err) {
  if (!path || !model)
    return fail(err, "kiln_model_load: path and model must not be NULL");
  *model = nullptr;
  if (!device || !*device)
    device = std::getenv("KILN_DEVICE");
  std::string why;
  std::unique_ptr<Model> m =
      Model::load(path, n_threads, device ? device : "", why);
  if (!m)
    return fail(err, why);
  std::string description = m->getDeviceDescription();
  *model = new kiln_model{std::move(m), std::move(description)};
  return KILN_OK;
}

int kiln_model_load(const char *path, int32_t n_threads, kiln_model **model,
                    const char **err) {
  return kiln_model_load_on(path, n_threads, nullptr, model, err);
}

const char *kiln_model_device(const kiln_model *model) {
  return model->device.c_str();
}

void kiln_model_free(kiln_model *model) { delete model; }

int kiln_model_distribute(kiln_model *model, int32_t tp, int32_t pp,
                          int32_t dp, const char **err) {
  if (!model)
    return fail(err, "kiln_model_distribute: model must not be NULL");
  if (model->comm)
    return fail(err, "the model is distributed already");
  if (tp < 1 || pp < 1 || dp < 1)
    return fail(err, "tp, pp and dp must be >= 1, got " + std::to_string(tp) +
                         ", " + std::to_string(pp) + ", " + std::to_string(dp));
  const Manifest &man = model->model->getManifest();
  if (man.distribution.tp != tp || man.distribution.pp != pp)
    return fail(err, "the artifact is split for tp=" +
                         std::to_string(man.distribution.tp) + " pp=" +
                         std::to_string(man.distribution.pp) +
                         " (kiln-compile --tp/--pp), not tp=" +
                         std::to_string(tp) + " pp=" + std::to_string(pp));
  std::string why;
  std::unique_ptr<Communicator> comm = Communicator::open(tp, pp, dp, why);
  if (!comm || !model->model->distribute(*comm, why))
    return fail(err, why);
  model->comm = std::move(comm);
  return KILN_OK;
}

int32_t kiln_model_replica(const kiln_model *model) {
  return model->comm ? model->comm->getGroup() : 0;
}

int32_t kiln_model_rank(const kiln_model *model) {
  return model->comm ? model->comm->getRank() : 0;
}

double kiln_model_comm_seconds(const kiln_model *model) {
  return model->comm ? model->comm->getSeconds() : 0.0;
}

int64_t kiln_model_comm_calls(const kiln_model *model) {
  return model->comm ? model->comm->getCalls() : 0;
}

int32_t kiln_model_n_vocab(const kiln_model *model) {
  return int32_t(model->model->getManifest().model.nVocab);
}

int32_t kiln_model_n_embd(const kiln_model *model) {
  return int32_t(model->model->getManifest().model.nEmbd);
}

int32_t kiln_model_is_encoder(const kiln_model *model) {
  return model->model->getManifest().model.encoder ? 1 : 0;
}

int32_t kiln_model_n_ctx(const kiln_model *model) {
  return int32_t(model->model->getManifest().model.nCtx);
}

int32_t kiln_model_max_tokens(const kiln_model *model) {
  return int32_t(model->model->getManifest().entry.maxTokens);
}

int32_t kiln_model_n_taps(const kiln_model *model) {
  return int32_t(model->model->getManifest().taps.size());
}

int kiln_model_tap(const kiln_model *model, int32_t i, const char **weights,
                   int32_t *n_cols, const char **err) {
  if (!model || !weights || !n_cols)
    return fail(err, "kiln_model_tap: model, weights and n_cols must not be "
                     "NULL");
  const std::vector<CalibrationTap> &taps = model->model->getManifest().taps;
  if (i < 0 || size_t(i) >= taps.size())
    return fail(err, "kiln_model_tap: tap " + std::to_string(i) +
                         " out of range (the model has " +
                         std::to_string(taps.size()) + ")");
  *weights = taps[i].weightList.c_str();
  *n_cols = int32_t(taps[i].cols);
  return KILN_OK;
}

const float *kiln_session_tap(const kiln_session *session, int32_t i,
                              int32_t *n_rows) {
  int64_t rows = 0;
  const float *data =
      i < 0 ? nullptr : session->session->getTap(size_t(i), rows);
  if (n_rows)
    *n_rows = int32_t(rows);
  return data;
}

const char *kiln_model_host_variant(const kiln_model *model) {
  return model->model->getHostVariant().c_str();
}

void kiln_model_default_params(const kiln_model *model,
                               kiln_generate_params *params) {
  const SamplingParams &s = model->model->getManifest().sampling;
  std::memset(params, 0, sizeof(*params));
  params->sampling.temperature = s.temperature;
  params->sampling.top_k = s.topK;
  params->sampling.top_p = s.topP;
  params->sampling.min_p = s.minP;
  params->sampling.repeat_penalty = s.repeatPenalty;
  params->sampling.repeat_last_n = s.repeatLastN;
  params->sampling.seed = 0;
  params->n_predict = 64;
  params->chat = 0;
}

int kiln_tokenize(const kiln_model *model, const char *text,
                  int32_t add_special, int32_t parse_special, int32_t *tokens,
                  size_t capacity, size_t *n_tokens, const char **err) {
  if (!model || !text || !n_tokens || (capacity && !tokens))
    return fail(err, "kiln_tokenize: model, text, n_tokens (and tokens when "
                     "capacity > 0) must not be NULL");
  std::vector<int32_t> ids = model->model->getTokenizer().encode(
      text, add_special != 0, parse_special != 0);
  *n_tokens = ids.size();
  if (size_t n = std::min(capacity, ids.size()))
    std::memcpy(tokens, ids.data(), n * sizeof(int32_t));
  return KILN_OK;
}

const char *kiln_token_to_piece(const kiln_model *model, int32_t token,
                                size_t *size) {
  lastPiece = model->model->getTokenizer().tokenToPiece(token);
  if (size)
    *size = lastPiece.size();
  return lastPiece.c_str();
}

int kiln_session_create(kiln_model *model, int32_t n_ctx,
                        kiln_session **session, const char **err) {
  if (!model || !session)
    return fail(err, "kiln_session_create: model and session must not be NULL");
  *session = nullptr;
  std::string why;
  std::unique_ptr<Session> s = Session::create(*model->model, n_ctx, why);
  if (!s)
    return fail(err, why);
  *session = new kiln_session{model, std::move(s)};
  return KILN_OK;
}

void kiln_session_free(kiln_session *session) { delete session; }

void kiln_session_reset(kiln_session *session) { session->session->reset(); }

int32_t kiln_session_n_past(const kiln_session *session) {
  return int32_t(session->session->getNPast());
}

int kiln_eval(kiln_session *session, const int32_t *tokens, size_t n,
              int32_t n_logit_rows, const char **err) {
  if (!session || (n && !tokens))
    return fail(err, "kiln_eval: session and tokens must not be NULL");
  std::string why;
  Session &s = *session->session;
  if (!s.forward(tokens, n, s.getNPast(), n_logit_rows, why))
    return fail(err, why);
  return KILN_OK;
}

int kiln_session_batch_create(kiln_model *model, int32_t n_sequences,
                              int32_t n_ctx, kiln_session_batch **batch,
                              const char **err) {
  if (!model || !batch)
    return fail(err, "kiln_session_batch_create: model and batch must not be "
                     "NULL");
  *batch = nullptr;
  std::string why;
  std::unique_ptr<SessionBatch> b =
      SessionBatch::create(*model->model, n_sequences, n_ctx, why);
  if (!b)
    return fail(err, why);
  auto handle = std::make_unique<kiln_session_batch>();
  for (int32_t i = 0; i < b->size(); ++i)
    handle->sessions.push_back(
        kiln_session{model, std::unique_ptr<Session>(&b->getSession(i))});
  handle->batch = std::move(b);
  *batch = handle.release();
  return KILN_OK;
}

void kiln_session_batch_free(kiln_session_batch *batch) { delete batch; }

kiln_session *kiln_session_batch_session(kiln_session_batch *batch,
                                         int32_t i) {
  if (!batch || i < 0 || i >= int32_t(batch->sessions.size()))
    return nullptr;
  return &batch->sessions[i];
}

int kiln_eval_batch(kiln_session_batch *batch, const int32_t *sessions,
                    const int32_t *tokens, size_t n, const float **logits,
                    const char **err) {
  if (!batch || !logits || (n && (!sessions || !tokens)))
    return fail(err, "kiln_eval_batch: batch, sessions, tokens and logits "
                     "must not be NULL");
  std::string why;
  const float *out = batch->batch->forward(sessions, tokens, n, why);
  if (!out)
    return fail(err, why);
  *logits = out;
  return KILN_OK;
}

int kiln_embed(kiln_session *session, const char *text, float *embedding,
               size_t capacity, const char **err) {
  if (!session || !text || !embedding)
    return fail(err, "kiln_embed: session, text and embedding must not be "
                     "NULL");
  Session &s = *session->session;
  const Manifest &man = s.getModel().getManifest();
  if (capacity < size_t(man.model.nEmbd))
    return fail(err, "kiln_embed: room for " + std::to_string(capacity) +
                         " floats, the embedding has " +
                         std::to_string(man.model.nEmbd));
  std::vector<int32_t> ids = s.embeddingTokens(text);
  std::string why;
  const float *e = s.embed(ids.data(), ids.size(), why);
  if (!e)
    return fail(err, why);
  std::copy(e, e + man.model.nEmbd, embedding);
  return KILN_OK;
}

const float *kiln_logits(const kiln_session *session, int32_t *n_rows) {
  int rows = 0;
  const float *l = session->session->getLogits(&rows);
  if (n_rows)
    *n_rows = rows;
  return l;
}

int kiln_generate(kiln_session *session, const char *prompt,
                  const kiln_generate_params *params,
                  kiln_piece_callback on_piece, void *user,
                  kiln_generate_stats *stats, const char **err) {
  if (!session || !prompt || !params)
    return fail(err,
                "kiln_generate: session, prompt and params must not be NULL");
  GenerateOptions opts;
  opts.sampling = toSampling(params->sampling);
  opts.nPredict = params->n_predict;
  opts.chat = params->chat != 0;
  GenerateStats st;
  std::string why;
  bool ok = session->session->generate(
      prompt, opts,
      [&](const std::string &piece) {
        return !on_piece || on_piece(piece.data(), piece.size(), user) == 0;
      },
      st, why);
  if (stats) {
    stats->n_prompt = st.nPrompt;
    stats->n_generated = st.nGenerated;
    stats->prompt_seconds = st.promptSeconds;
    stats->generate_seconds = st.generateSeconds;
    stats->stopped_at_eog = st.stoppedAtEog;
  }
  return ok ? KILN_OK : fail(err, why);
}

//===----------------------------------------------------------------------===//
// HostExecution.h
//===----------------------------------------------------------------------===//

static_assert(KILN_THREAD_POOL_MAX_THREADS == ThreadPool::kMaxThreads,
              "HostExecution.h states the pool's limit");

int kiln_host_code_load(const void *data, uint64_t size, const char *name,
                        kiln_host_code **code, const char **err) {
  if (!data || !code)
    return fail(err, "kiln_host_code_load: data and code must not be NULL");
  *code = nullptr;
  std::string why;
  std::unique_ptr<HostCode> loaded = HostCode::load(
      static_cast<const uint8_t *>(data), size, name ? name : "host code", why);
  if (!loaded)
    return fail(err, why);
  *code = new kiln_host_code{std::move(loaded)};
  return KILN_OK;
}

void *kiln_host_code_symbol(const kiln_host_code *code, const char *symbol) {
  return code && symbol ? code->code->lookup(symbol) : nullptr;
}

void kiln_host_code_free(kiln_host_code *code) { delete code; }

int kiln_thread_pool_create(int32_t n_threads, kiln_thread_pool **pool,
                            const char **err) {
  if (!pool)
    return fail(err, "kiln_thread_pool_create: pool must not be NULL");
  *pool = nullptr;
  std::string why;
  std::unique_ptr<ThreadPool> created = ThreadPool::create(n_threads, why);
  if (!created)
    return fail(err, why);
  *pool = new kiln_thread_pool{std::move(created)};
  return KILN_OK;
}

int32_t kiln_thread_pool_size(const kiln_thread_pool *pool) {
  return pool ? pool->pool->size() : 0;
}

KilnRtContext *kiln_thread_pool_context(kiln_thread_pool *pool) {
  return pool ? pool->pool->getContext() : nullptr;
}

void kiln_thread_pool_run(kiln_thread_pool *pool,
                          void (*fn)(void *ctx, int32_t tid, int32_t n_threads),
                          void *ctx) {
  if (pool && fn)
    pool->pool->run(fn, ctx);
}

void kiln_thread_pool_free(kiln_thread_pool *pool) { delete pool; }

} // extern "C"
