/*===- Runtime.h - C API of the Kiln runtime (libkiln_runtime.so) ---------===*
 *
 * Load a verified .kiln artifact, create sessions (KV cache + position), and
 * generate text. Every function that can fail returns KILN_OK or KILN_ERROR
 * and, on error, sets *err (when err is not NULL) to a one-line message owned
 * by the library: it stays valid until the next failing call on the same
 * thread. Nothing aborts on bad input.
 *
 * Loading an artifact runs the native code inside it: only load artifacts
 * you trust, as you would a shared library.
 *
 * Threading: a model may be shared by sessions, but calls on one model
 * (including its sessions) must not overlap: the model's thread pool runs
 * one forward pass at a time.
 *
 *===----------------------------------------------------------------------===*/

#ifndef KILN_RUNTIME_RUNTIME_H
#define KILN_RUNTIME_RUNTIME_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define KILN_RT_API __attribute__((visibility("default")))
#else
#define KILN_RT_API
#endif

#define KILN_OK 0
#define KILN_ERROR 1

typedef struct kiln_model kiln_model;
typedef struct kiln_session kiln_session;

typedef struct kiln_sampling_params {
  float temperature;     /* >= 0; 0 = greedy */
  int32_t top_k;         /* >= 0; 0 = off */
  float top_p;           /* (0, 1]; 1 = off */
  float min_p;           /* [0, 1]; 0 = off */
  float repeat_penalty;  /* > 0; 1 = off */
  int32_t repeat_last_n; /* >= 0 */
  uint64_t seed;
} kiln_sampling_params;

typedef struct kiln_generate_params {
  kiln_sampling_params sampling;
  int32_t n_predict; /* > 0: tokens to generate at most */
  int32_t chat;      /* wrap the prompt in the model's chat template */
} kiln_generate_params;

typedef struct kiln_generate_stats {
  int32_t n_prompt;        /* prompt tokens evaluated */
  int32_t n_generated;     /* tokens sampled */
  double prompt_seconds;   /* prompt evaluation */
  double generate_seconds; /* sampling + decoding after the prompt */
  int32_t stopped_at_eog;  /* 1 if an end-of-generation token ended it */
} kiln_generate_stats;

/* Called with each generated piece of text (raw bytes, not NUL-terminated;
 * a UTF-8 character may span two pieces). Return nonzero to stop. */
typedef int (*kiln_piece_callback)(const char *piece, size_t size, void *user);

/* Maps and verifies the artifact at `path`, picks the host-code variant for
 * this CPU, loads it and starts `n_threads` threads (1 to 1024), or, on a
 * GPU, uploads the weights and loads the kernels. `device` is "cpu", "cuda"
 * (device 0), "cuda:N", or NULL or "" for $KILN_DEVICE when set, else the
 * first of the artifact's targets that this machine can run. The CUDA
 * driver (libcuda.so.1, or $KILN_LIBCUDA) is loaded only to run on a GPU. */
KILN_RT_API int kiln_model_load_on(const char *path, int32_t n_threads,
                                   const char *device, kiln_model **model,
                                   const char **err);
/* kiln_model_load_on(path, n_threads, NULL, model, err). */
KILN_RT_API int kiln_model_load(const char *path, int32_t n_threads,
                                kiln_model **model, const char **err);
KILN_RT_API void kiln_model_free(kiln_model *model);

KILN_RT_API int32_t kiln_model_n_vocab(const kiln_model *model);
/* Width of the model's hidden state; an encoder's embeddings have this
 * many floats. */
KILN_RT_API int32_t kiln_model_n_embd(const kiln_model *model);
/* 1 for an encoder (kiln_embed), 0 for a decoder (kiln_eval, generate). */
KILN_RT_API int32_t kiln_model_is_encoder(const kiln_model *model);
KILN_RT_API int32_t kiln_model_n_ctx(const kiln_model *model);
/* Most tokens one step of the generated code takes (the manifest's
 * max_tokens): kiln_eval keeps at most this many rows of logits. */
KILN_RT_API int32_t kiln_model_max_tokens(const kiln_model *model);
/* Name of the host-code section chosen for this CPU. */
KILN_RT_API const char *kiln_model_host_variant(const kiln_model *model);
/* Where the model runs: "cpu", or e.g. "cuda:0 (NVIDIA H200, sm_90, cubin
 * sm_90a)". */
KILN_RT_API const char *kiln_model_device(const kiln_model *model);
/* Distributed runs, in a process mpirun started: makes it one rank of `dp`
 * data-parallel replicas of tp * pp ranks each, talking over MPI (OpenMPI's
 * libmpi.so.40, or $KILN_MPI_LIBRARY, loaded now). The MPI world must have
 * dp * tp * pp ranks, and the artifact must be split for tp and pp
 * (kiln-compile --tp/--pp; 1 and 1 for a whole model). Call once, before
 * kiln_session_create; every rank of a replica then runs the same calls
 * (same prompt, same sampling) and gets the same logits. */
KILN_RT_API int kiln_model_distribute(kiln_model *model, int32_t tp,
                                      int32_t pp, int32_t dp,
                                      const char **err);
/* This process's replica (0 to dp - 1) and rank in it; 0 and 0 when the
 * model is not distributed. */
KILN_RT_API int32_t kiln_model_replica(const kiln_model *model);
KILN_RT_API int32_t kiln_model_rank(const kiln_model *model);
/* Seconds spent communicating with other ranks so far, and how many
 * exchanges (0 when not distributed). */
KILN_RT_API double kiln_model_comm_seconds(const kiln_model *model);
KILN_RT_API int64_t kiln_model_comm_calls(const kiln_model *model);
/* The artifact's manifest sampling defaults (seed 0, repeat_last_n 64). */
KILN_RT_API void kiln_model_default_params(const kiln_model *model,
                                           kiln_generate_params *params);

/* Token ids of `text`. At most `capacity` ids are stored; *n_tokens gets
 * the full count (call again with a larger buffer if it exceeds capacity). */
KILN_RT_API int kiln_tokenize(const kiln_model *model, const char *text,
                              int32_t add_special, int32_t parse_special,
                              int32_t *tokens, size_t capacity,
                              size_t *n_tokens, const char **err);
/* The bytes of one token, valid until the next call on this thread. */
KILN_RT_API const char *kiln_token_to_piece(const kiln_model *model,
                                            int32_t token, size_t *size);

/* A session owns a KV cache (zeroed) and scratch memory. n_ctx = 0 uses the
 * manifest's context; otherwise 1 <= n_ctx <= the manifest's. */
KILN_RT_API int kiln_session_create(kiln_model *model, int32_t n_ctx,
                                    kiln_session **session, const char **err);
KILN_RT_API void kiln_session_free(kiln_session *session);
/* Forgets all tokens (position back to 0). */
KILN_RT_API void kiln_session_reset(kiln_session *session);
/* Tokens currently in the KV cache. */
KILN_RT_API int32_t kiln_session_n_past(const kiln_session *session);

/* Evaluates `n` tokens at the session's current position and keeps the
 * logits of the last `n_logit_rows` of them (1 <= n_logit_rows <=
 * min(n, manifest max_tokens)). */
KILN_RT_API int kiln_eval(kiln_session *session, const int32_t *tokens,
                          size_t n, int32_t n_logit_rows, const char **err);
/* An encoder's sentence embedding of `text` (tokenized with its special
 * tokens, cut to the manifest's max_tokens) into `embedding`, which has room
 * for `capacity` >= kiln_model_n_embd floats. */
KILN_RT_API int kiln_embed(kiln_session *session, const char *text,
                           float *embedding, size_t capacity,
                           const char **err);
/* Logits of the last kiln_eval, row-major [n_logit_rows][n_vocab]; NULL
 * before the first one. Valid until the next kiln_eval or kiln_generate. */
KILN_RT_API const float *kiln_logits(const kiln_session *session,
                                     int32_t *n_rows);

/* Sessions that decode together: `n_sequences` sessions (n_ctx as for
 * kiln_session_create) whose KV caches are slots of one buffer, for an
 * artifact from kiln-compile --batched-step. kiln_session_batch_session(b, i)
 * is session i, owned by the batch (never kiln_session_free it): kiln_eval
 * it to evaluate a prompt alone;
 * kiln_eval_batch appends tokens[i] to session sessions[i] (each at most
 * once, 1 <= n <= max_tokens) in one step and sets *logits to n rows of
 * [n_vocab] floats, row i session sessions[i]'s, valid until the next
 * kiln_eval_batch. */
typedef struct kiln_session_batch kiln_session_batch;
KILN_RT_API int kiln_session_batch_create(kiln_model *model,
                                          int32_t n_sequences, int32_t n_ctx,
                                          kiln_session_batch **batch,
                                          const char **err);
KILN_RT_API void kiln_session_batch_free(kiln_session_batch *batch);
KILN_RT_API kiln_session *kiln_session_batch_session(kiln_session_batch *batch,
                                                     int32_t i);
KILN_RT_API int kiln_eval_batch(kiln_session_batch *batch,
                                const int32_t *sessions, const int32_t *tokens,
                                size_t n, const float **logits,
                                const char **err);

/* Calibration taps (an artifact from kiln-compile --calibration-taps): after
 * each step the input of the model's linear layers is still in scratch. The
 * number of distinct inputs (0 for other artifacts); for input i, the tensor
 * names of the weights that multiply it (comma-separated, valid as long as
 * the model) and its width. */
KILN_RT_API int32_t kiln_model_n_taps(const kiln_model *model);
KILN_RT_API int kiln_model_tap(const kiln_model *model, int32_t i,
                               const char **weights, int32_t *n_cols,
                               const char **err);
/* Input i as the last step of the last kiln_eval computed it: [n_rows][n_cols]
 * floats for that step's tokens (kiln_eval runs more than max_tokens tokens in
 * several steps: only the last one's are here; the output head's input has
 * only the rows whose logits were kept, so ask for all of them). NULL with
 * *n_rows = 0 before an eval, after a reset, on a GPU, or for no such tap.
 * Valid until the next call on the session. */
KILN_RT_API const float *kiln_session_tap(const kiln_session *session,
                                          int32_t i, int32_t *n_rows);

/* Tokenizes `prompt` (BOS added when the session is empty), evaluates it and
 * samples up to params->n_predict tokens, calling `on_piece` for each one's
 * text, until an end-of-generation token. Continues the session's sequence.
 * Prompt + n_predict past the context is an error before anything runs.
 * `stats` may be NULL. */
KILN_RT_API int kiln_generate(kiln_session *session, const char *prompt,
                              const kiln_generate_params *params,
                              kiln_piece_callback on_piece, void *user,
                              kiln_generate_stats *stats, const char **err);

#ifdef __cplusplus
}
#endif

#endif /* KILN_RUNTIME_RUNTIME_H */
