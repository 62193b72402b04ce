/* The step function of a fake cuda artifact: like generated CUDA host code,
 * it touches no tensor data and only launches kernel 0 of the manifest
 * (fake_next_token, which test/Runtime/Inputs/fake-libcuda.cpp runs) with
 * bare device pointers and int64 scalars. The kernel predicts
 * (last token + step) % vocab, as fake-model.c does on the CPU. */

#include "kiln/runtime/HostABI.h"

#include <stdint.h>

void _mlir_ciface_forward(KilnMemRef1D *tokens, int64_t position,
                          KilnMemRef1D *kvCache, KilnMemRef2D *logits,
                          KilnMemRef1D *weights, KilnMemRef1D *scratch,
                          KilnRtContext *rt, int32_t tid, int32_t nth) {
  (void)scratch;
  if (tid != 0 || nth != 1)
    return; /* the runtime calls a cuda step once; this makes the test fail */
  void *tok = (int32_t *)tokens->aligned + tokens->offset;
  int64_t nTokens = tokens->sizes[0];
  void *kv = kvCache->aligned;
  int64_t kvSlots = kvCache->sizes[0] / 4;
  void *out = logits->aligned;
  int64_t rows = logits->sizes[0], vocab = logits->sizes[1];
  void *w = weights->aligned;
  int64_t weightBytes = weights->sizes[0];
  void *params[] = {&tok, &nTokens, &position, &kv, &kvSlots,
                    &out, &rows,    &vocab,    &w,  &weightBytes};
  const uint32_t grid[3] = {1, 1, 1}, block[3] = {1, 1, 1};
  rt->launch(rt, 0, grid, block, 0, params);
}
