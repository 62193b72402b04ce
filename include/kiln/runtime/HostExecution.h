/*===- HostExecution.h - run generated host code outside an artifact ------===*
 *
 * Plain C, part of libkiln_runtime.so: the two runtime pieces an embedder
 * needs to run code it compiled itself (the C API's kiln_compile_mlir
 * modules): a shared object loaded from memory, and the thread pool that
 * calls an SPMD step function on all its threads (kiln/runtime/HostABI.h).
 * Errors follow Runtime.h: KILN_OK or KILN_ERROR, and a one-line message in
 * *err owned by the library until the next failing call on the same thread.
 *
 * Loading host code runs native code: only load code you trust.
 *
 *===----------------------------------------------------------------------===*/

#ifndef KILN_RUNTIME_HOSTEXECUTION_H
#define KILN_RUNTIME_HOSTEXECUTION_H

#include "kiln/runtime/HostABI.h"
#include "kiln/runtime/Runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kiln_host_code kiln_host_code;
typedef struct kiln_thread_pool kiln_thread_pool;

/* Loads the ELF shared object in `data` (`size` bytes, copied) without
 * writing it to disk; `name` names it in errors. */
KILN_RT_API int kiln_host_code_load(const void *data, uint64_t size,
                                    const char *name, kiln_host_code **code,
                                    const char **err);
/* The address of `symbol` in the object, or NULL when it has none. */
KILN_RT_API void *kiln_host_code_symbol(const kiln_host_code *code,
                                        const char *symbol);
KILN_RT_API void kiln_host_code_free(kiln_host_code *code);

#define KILN_THREAD_POOL_MAX_THREADS 1024

/* Starts `n_threads - 1` workers (the caller of run is thread 0);
 * 1 <= n_threads <= KILN_THREAD_POOL_MAX_THREADS. */
KILN_RT_API int kiln_thread_pool_create(int32_t n_threads,
                                        kiln_thread_pool **pool,
                                        const char **err);
KILN_RT_API int32_t kiln_thread_pool_size(const kiln_thread_pool *pool);
/* The context generated code takes: its barrier waits for the pool's
 * threads. */
KILN_RT_API KilnRtContext *kiln_thread_pool_context(kiln_thread_pool *pool);
/* Calls fn(ctx, tid, n_threads) on every thread, the caller as tid 0, and
 * returns when all have finished. Not reentrant. */
KILN_RT_API void kiln_thread_pool_run(kiln_thread_pool *pool,
                                      void (*fn)(void *ctx, int32_t tid,
                                                 int32_t n_threads),
                                      void *ctx);
KILN_RT_API void kiln_thread_pool_free(kiln_thread_pool *pool);

#ifdef __cplusplus
}
#endif

#endif /* KILN_RUNTIME_HOSTEXECUTION_H */
