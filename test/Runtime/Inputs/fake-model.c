/* A stand-in for generated host code, for end-to-end runtime tests without
 * the compiler. It follows kiln/runtime/HostABI.h and predicts
 * (last token + step) % vocab with certainty, where `step` is the decimal
 * number at the start of the weights section. It also checks what a real
 * model relies on: the KV cache keeps every earlier position (it stores
 * token + 1 per position), the barrier orders the threads, and the token
 * count and logit rows are within the ABI's bounds. Any violation makes it
 * predict token 0 for every row, which the tests look for. */

#include "kiln/runtime/HostABI.h"

#include <stdint.h>

void _mlir_ciface_forward(KilnMemRef1D *tokens, int64_t position,
                          KilnMemRef1D *kvCache, KilnMemRef2D *logits,
                          KilnMemRef1D *weights, KilnMemRef1D *scratch,
                          KilnRtContext *rt, int32_t tid, int32_t nth) {
  const int32_t *tok = (const int32_t *)tokens->aligned + tokens->offset;
  int64_t nTokens = tokens->sizes[0];
  int32_t *kv = (int32_t *)kvCache->aligned;
  int64_t kvSlots = kvCache->sizes[0] / 4;
  float *out = (float *)logits->aligned + logits->offset;
  int64_t rows = logits->sizes[0], vocab = logits->sizes[1];
  int64_t rowStride = logits->strides[0];
  const char *w = (const char *)weights->aligned;

  /* Thread 0 writes the cache; everyone reads it after the barrier. */
  if (tid == 0)
    for (int64_t i = 0; i < nTokens && position + i < kvSlots; ++i)
      kv[position + i] = tok[i] + 1;
  rt->barrier(rt);

  int ok = nTokens >= 1 && rows >= 1 && rows <= nTokens &&
           position + nTokens <= kvSlots &&
           ((uintptr_t)scratch->aligned % 64) == 0;
  for (int64_t p = 0; ok && p < position + nTokens; ++p)
    ok = kv[p] != 0;
  int64_t step = 0;
  for (int64_t i = 0; i < weights->sizes[0] && w[i] >= '0' && w[i] <= '9'; ++i)
    step = step * 10 + (w[i] - '0');

  for (int64_t r = 0; r < rows; ++r) {
    int64_t last = tok[nTokens - rows + r];
    int64_t next = ok ? (last + step) % vocab : 0;
    for (int64_t v = tid; v < vocab; v += nth)
      out[r * rowStride + v] = v == next ? 10.0f : -10.0f;
  }
  /* The caller reads the logits only after every thread is done. */
  rt->barrier(rt);
}
