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

/* Handed to every call of a generated function. Generated code reads only
 * `barrier` (at offset 0); the rest belongs to the runtime. */
typedef struct KilnRtContext {
  void (*barrier)(struct KilnRtContext *rt);
  void *pool;
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
 */
typedef void (*KilnForwardFn)(KilnMemRef1D *tokens, int64_t position,
                              KilnMemRef1D *kv_cache, KilnMemRef2D *logits,
                              KilnMemRef1D *weights, KilnMemRef1D *scratch,
                              KilnRtContext *rt, int32_t tid, int32_t nth);

#ifdef __cplusplus
}
#endif

#endif /* KILN_RUNTIME_HOSTABI_H */
