/*===- HostABI.h - contract between generated host code and the runtime ---===*
 *
 * Plain C. Generated CPU code (lib/Conversion/KilnToCPU) and the runtime
 * (lib/Runtime) both follow this header; it is the only thing they share.
 *
 * A model's generated step function is SPMD: the runtime calls it on every
 * thread of its pool at once with the same arguments and a different `tid`.
 * Each generated kernel takes its share of the work from (tid, nth), and the
 * generated code calls `rt->barrier(rt)` where a kernel needs the results of
 * the one before. The runtime itself never touches tensor data.
 *
 *===----------------------------------------------------------------------===*/

#ifndef KILN_RUNTIME_HOSTABI_H
#define KILN_RUNTIME_HOSTABI_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* MLIR's ranked memref descriptors (the `llvm.emit_c_interface` ABI). */
typedef struct KilnMemRef1D {
  void *allocated;
  void *aligned;
  int64_t offset;
  int64_t sizes[1];
  int64_t strides[1];
} KilnMemRef1D;

typedef struct KilnMemRef2D {
  void *allocated;
  void *aligned;
  int64_t offset;
  int64_t sizes[2];
  int64_t strides[2];
} KilnMemRef2D;

/* What KilnRtContext::communicate does with `count` floats. */
typedef enum KilnCommOp {
  KILN_COMM_ALL_REDUCE_SUM = 0, /* out = sum over the group's ranks of in */
  KILN_COMM_SEND = 1,           /* in to rank `peer` */
  KILN_COMM_RECV = 2            /* out from rank `peer` */
} KilnCommOp;

/* Handed to every call of a generated function. Generated CPU code reads
 * only `barrier` (at offset 0) and `communicate` (the fourth pointer);
 * generated CUDA host code reads only `launch` and `communicate`. The rest
 * belongs to the runtime. */
typedef struct KilnRtContext {
  void (*barrier)(struct KilnRtContext *rt);
  void *pool;
  /* Launches kernel `kernel` (an index into the manifest's cuda.kernels) on
   * the runtime's stream. `params` follows cuLaunchKernel's kernelParams:
   * params[i] points at the i-th argument's value; a memref argument is one
   * 64-bit device pointer (bare-pointer convention), index/i64 scalars are
   * int64_t, f32 scalars float. Returns 0 or a CUresult; generated code may
   * ignore it because the runtime records the first error and fails the step.
   * Null in a CPU session. */
  int32_t (*launch)(struct KilnRtContext *rt, int32_t kernel,
                    const uint32_t grid[3], const uint32_t block[3],
                    uint32_t shared_bytes, void **params);
  /* Communication with the other ranks of a distributed model's group
   * (kiln-shard; `peer` is a rank of the group). Every thread of the pool
   * calls it with its `tid`; thread 0 communicates and all return once
   * `out` is complete (or `in` may be overwritten). In a cuda session the
   * step calls it once (tid 0) with device addresses and it only enqueues
   * the exchange on the runtime's stream (NCCL), like `launch`. A failure
   * is recorded and fails the step. Null in a session that is not
   * distributed. */
  void (*communicate)(struct KilnRtContext *rt, int32_t op, int32_t peer,
                      const float *in, float *out, int64_t count,
                      int32_t tid);
  void *communicator; /* the runtime's */
} KilnRtContext;

/* The step function of a compiled decoder model (symbol named in the
 * manifest, "_mlir_ciface_forward" by default):
 *   tokens   i32 [T]          T new tokens, 1 <= T <= manifest max_tokens
 *   position                  position of tokens[0] in the sequence
 *   kv_cache bytes            manifest kv_cache_bytes, zeroed once per session
 *   logits   f32 [R, vocab]   logits of the last R tokens (R = sizes[0],
 *                             1 <= R <= T)
 *   weights  bytes            the artifact's weights section, mapped
 *   scratch  bytes            manifest scratch_bytes, 64-byte aligned
 *
 * For a cuda artifact the runtime calls the same function once per step
 * (tid = 0, nth = 1) with DEVICE addresses in tokens, kv_cache, logits,
 * weights and scratch; the function only computes launch parameters and
 * calls rt->launch, it never touches tensor data.
 */
typedef void (*KilnForwardFn)(KilnMemRef1D *tokens, int64_t position,
                              KilnMemRef1D *kv_cache, KilnMemRef2D *logits,
                              KilnMemRef1D *weights, KilnMemRef1D *scratch,
                              KilnRtContext *rt, int32_t tid, int32_t nth);

/* The step over tokens of several sequences (manifest batch_entry, CPU
 * only; kiln-compile --batched-step), called like KilnForwardFn:
 *   tokens    i32 [T]         T tokens, 1 <= T <= manifest max_tokens
 *   slots     i32 [T]         each token's sequence: its cache slot
 *   positions i32 [T]         each token's position in its sequence; the
 *                             tokens of one sequence in position order
 *   kv_cache  bytes           S caches of kv_cache_bytes, slot s at byte
 *                             s * kv_cache_bytes
 *   logits    f32 [R, vocab]  logits of the last R tokens
 *   scratch   bytes           batch_entry scratch_bytes
 */
typedef void (*KilnForwardBatchFn)(KilnMemRef1D *tokens, KilnMemRef1D *slots,
                                   KilnMemRef1D *positions,
                                   KilnMemRef1D *kv_cache, KilnMemRef2D *logits,
                                   KilnMemRef1D *weights, KilnMemRef1D *scratch,
                                   KilnRtContext *rt, int32_t tid,
                                   int32_t nth);

#ifdef __cplusplus
}
#endif

#endif /* KILN_RUNTIME_HOSTABI_H */
