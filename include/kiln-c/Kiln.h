/*===- kiln-c/Kiln.h - the stable C API of Kiln (libkiln_capi.so) ---------===*
 *
 * What embedders and the Python bindings use: compile a model or an MLIR
 * module, load and run compiled models, and, for compiler engineers, compile
 * a module of kiln functions and call them on caller-owned buffers.
 *
 * Loading, tokenizing, evaluating and generating are the runtime's C API
 * (kiln/runtime/Runtime.h, included below and exported by the same library
 * through libkiln_runtime.so); this header adds the compiler side.
 *
 * Errors: every function that can fail returns KILN_OK or KILN_ERROR and, on
 * error, sets *err (when err is not NULL) to a one-line message owned by the
 * library, valid until the next failing call on the same thread. Nothing
 * aborts on bad input.
 *
 *===----------------------------------------------------------------------===*/

#ifndef KILN_C_KILN_H
#define KILN_C_KILN_H

#include "kiln/runtime/Runtime.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define KILN_C_API KILN_RT_API

/* Version of this header's API; bumped on incompatible changes. */
#define KILN_C_API_VERSION 1
KILN_C_API int32_t kiln_capi_version(void);

/*===--------------------------------------------------------------------===*
 * Compiling a model file (.gguf) or an MLIR module (.mlir) to a file.
 *===--------------------------------------------------------------------===*/

typedef struct kiln_compile_options kiln_compile_options;

KILN_C_API int kiln_compile_options_create(kiln_compile_options **options,
                                           const char **err);
KILN_C_API void kiln_compile_options_free(kiln_compile_options *options);

/* Sets one option; an unknown key or an invalid value is an error (nothing is
 * ignored). Keys:
 *   target       "cpu"
 *   activations  "int8" | "f32"   (linear layers over integer-coded weights)
 *   ctx          context length, integer >= 0 (0: min(model context, 4096))
 *   max_tokens   tokens per forward step, integer >= 1
 *   emit         "kiln" | "mlir" | "llvm-mlir" | "llvm" | "asm" | "so" | "gguf"
 *   cpu          CPU variant for the single-variant emit kinds
 *   quantize     kiln-compile's --quantize value, e.g. "bits=4,group=32" or
 *                "bits=4,group=32,asym,format=gguf" (.gguf inputs)
 *   prune        kiln-compile's --prune value, e.g. "pattern=nm,n=2,m=4"
 *                (.gguf inputs; applied before quantize)
 */
KILN_C_API int kiln_compile_options_set(kiln_compile_options *options,
                                        const char *key, const char *value,
                                        const char **err);

/* Called with the current stage and the fraction done, in [0, 1]. */
typedef void (*kiln_progress_callback)(const char *stage, double fraction,
                                       void *user);

/* Compiles `input` (.gguf model or .mlir module) to `output`, written
 * atomically. `options` may be NULL (defaults), `progress` may be NULL. */
KILN_C_API int kiln_compile(const char *input, const char *output,
                            const kiln_compile_options *options,
                            kiln_progress_callback progress, void *user,
                            const char **err);

/*===--------------------------------------------------------------------===*
 * Compiling kiln functions in memory and calling them (for compiler work).
 *
 * Every step function of the module (a func.func that uses kiln ops or
 * types) is lowered as kiln-compile lowers an .mlir module, compiled for the
 * best CPU variant this machine runs, and loaded. A function's arguments, in order, are its own arguments followed
 * by one buffer per (untied) result; the weights buffer, the scratch buffer
 * (`kiln.scratch_bytes` of the lowered function, allocated here), the
 * runtime context with its barrier and the thread ids are passed by
 * kiln_function_call.
 *===--------------------------------------------------------------------===*/

typedef struct kiln_mlir_module kiln_mlir_module;

/* Element types of buffers. */
typedef enum kiln_dtype {
  KILN_DTYPE_F32 = 0,
  KILN_DTYPE_F16 = 1,
  KILN_DTYPE_BF16 = 2,
  KILN_DTYPE_F64 = 3,
  KILN_DTYPE_I8 = 4,
  KILN_DTYPE_I16 = 5,
  KILN_DTYPE_I32 = 6,
  KILN_DTYPE_I64 = 7,
  KILN_DTYPE_U8 = 8,
} kiln_dtype;

typedef enum kiln_arg_kind {
  KILN_ARG_TENSOR = 0,  /* a tensor argument: a buffer */
  KILN_ARG_RESULT = 1,  /* a result's buffer, written by the call */
  KILN_ARG_BYTES = 2,   /* a byte buffer (a KV cache), read and written */
  KILN_ARG_INTEGER = 3, /* a scalar index or integer, passed in `scalar` */
} kiln_arg_kind;

/* Describes one argument of a compiled function. `shape` has `rank` sizes,
 * -1 for a dynamic one; it stays valid while the module lives. Dynamic sizes
 * of tensors and results are the token count: one value for the whole call,
 * between 1 and `max_tokens`. */
typedef struct kiln_arg_info {
  const char *name; /* the argument's SSA name without '%', "result<i>" */
  int32_t kind;     /* kiln_arg_kind */
  int32_t dtype;    /* kiln_dtype (tensors, results, bytes) */
  int32_t rank;
  const int64_t *shape;
} kiln_arg_info;

/* One argument of a call. `data` points at element [0, ..., 0]; `strides`
 * are in elements (NULL: row-major contiguous); `scalar` carries
 * KILN_ARG_INTEGER values. */
typedef struct kiln_buffer {
  void *data;
  int32_t dtype;
  int32_t rank;
  const int64_t *shape;
  const int64_t *strides;
  int64_t scalar;
} kiln_buffer;

/* Parses and compiles `text` (`size` bytes) with kiln-compile's .mlir route
 * (the same passes and kernels as `kiln-compile --emit=so`). `pipeline` (may
 * be NULL or empty) holds space-separated key=value options:
 * activations=int8|f32, max-tokens=N (bound of dynamic token sizes; default:
 * each function's kiln.max_tokens), cpu=x86-64-v4|x86-64-v3 (default: the
 * best this CPU runs; kernels use that variant's instruction set) or
 * cpu=generic (portable kernels, code for the best variant),
 * unstructured=auto|bitmap|dense (how Q4_0/Q8_0 weights pruned unstructured
 * are stored; kiln-compile --unstructured). Unknown keys are an error.
 *
 * kiln_compile_mlir_weights takes the bytes of the file the module's
 * #kiln.external attributes name (`weights`, `weights_size`; copied, so the
 * caller may free them on return). Weights that the kernels want in their
 * own layout are packed now (kiln-pack-weights: with int8 activations,
 * integer-coded weights use the interleaved 16-row layout of kiln-compile's
 * artifacts) and the module keeps the packed bytes: its calls read them and
 * take no weights. kiln_compile_mlir is the form without weights (the same
 * as `weights` NULL): nothing is packed, the code reads the weight file as it
 * is, and each call passes it. */
KILN_C_API int kiln_compile_mlir(const char *text, size_t size,
                                 const char *pipeline,
                                 kiln_mlir_module **module, const char **err);
KILN_C_API int kiln_compile_mlir_weights(const char *text, size_t size,
                                         const char *pipeline,
                                         const void *weights,
                                         size_t weights_size,
                                         kiln_mlir_module **module,
                                         const char **err);
KILN_C_API void kiln_mlir_module_free(kiln_mlir_module *module);

/* Functions in the module, in source order. */
KILN_C_API int32_t
kiln_mlir_module_num_functions(const kiln_mlir_module *module);
KILN_C_API const char *
kiln_mlir_module_function_name(const kiln_mlir_module *module, int32_t index);
/* Index of the function called `name`, or -1 (and an error). */
KILN_C_API int kiln_mlir_module_lookup(const kiln_mlir_module *module,
                                       const char *name, int32_t *index,
                                       const char **err);

KILN_C_API int32_t kiln_function_num_args(const kiln_mlir_module *module,
                                          int32_t function);
KILN_C_API int kiln_function_arg(const kiln_mlir_module *module,
                                 int32_t function, int32_t arg,
                                 kiln_arg_info *info, const char **err);
/* The token bound of dynamic sizes and the scratch bytes of a call. */
KILN_C_API int64_t kiln_function_max_tokens(const kiln_mlir_module *module,
                                            int32_t function);
KILN_C_API int64_t kiln_function_scratch_bytes(const kiln_mlir_module *module,
                                               int32_t function);

/* Calls function `function` on `n_threads` threads (1 to 1024) with
 * `n_args` buffers (kiln_function_num_args of them) and the weights bytes
 * (the file the module's #kiln.external attributes name; may be NULL when it
 * has none; must be NULL when the module was compiled with its weights by
 * kiln_compile_mlir_weights, whose packed bytes are used). Checks every buffer's dtype, rank and static sizes, that all
 * dynamic sizes agree and stay within max_tokens, and that inputs do not
 * overlap results. Calls on one module must not overlap. */
KILN_C_API int kiln_function_call(kiln_mlir_module *module, int32_t function,
                                  const kiln_buffer *args, size_t n_args,
                                  const void *weights, size_t weights_size,
                                  int32_t n_threads, const char **err);

#ifdef __cplusplus
}
#endif

#endif /* KILN_C_KILN_H */
