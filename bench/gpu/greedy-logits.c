/* Greedy decoding through the runtime's C API, for comparing devices:
 *   greedy-logits MODEL.kiln DEVICE "PROMPT" N_STEPS OUT.bin [REPEATS]
 * Evaluates the prompt, then N_STEPS times takes the argmax and evaluates
 * it. OUT.bin: int32 n_vocab, int32 n_steps, then per step the int32 token
 * chosen and the float32 logits it was chosen from. Prints the tokens, and,
 * with REPEATS > 0, times that many runs of the decode steps (session reset
 * and prompt evaluated first, outside the timing) and prints the median
 * decode rate. Used by scripts/gpu/h200-run.sh. */

#include "kiln/runtime/Runtime.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static int argmax(const float *v, int n) {
  int best = 0;
  for (int i = 1; i < n; ++i)
    if (v[i] > v[best])
      best = i;
  return best;
}

static void die(const char *what, const char *err) {
  fprintf(stderr, "greedy-logits: %s: %s\n", what, err ? err : "");
  exit(1);
}

int main(int argc, char **argv) {
  if (argc < 6)
    die("usage", "MODEL DEVICE PROMPT N_STEPS OUT.bin [REPEATS]");
  int steps = atoi(argv[4]), repeats = argc > 6 ? atoi(argv[6]) : 0;
  const char *err = NULL;
  kiln_model *model = NULL;
  const char *threads = getenv("KILN_THREADS"); /* CPU only; default 2 */
  if (kiln_model_load_on(argv[1], threads ? atoi(threads) : 2, argv[2], &model,
                         &err))
    die("load", err);
  fprintf(stderr, "greedy-logits: running on %s\n", kiln_model_device(model));
  int nVocab = kiln_model_n_vocab(model);
  int32_t prompt[512];
  size_t nPrompt = 0;
  if (kiln_tokenize(model, argv[3], 1, 1, prompt, 512, &nPrompt, &err) ||
      nPrompt > 512)
    die("tokenize", err);
  kiln_session *s = NULL;
  if (kiln_session_create(model, 0, &s, &err))
    die("session", err);
  FILE *out = fopen(argv[5], "wb");
  if (!out)
    die("open", argv[5]);
  fwrite(&nVocab, 4, 1, out);
  fwrite(&steps, 4, 1, out);
  if (kiln_eval(s, prompt, nPrompt, 1, &err))
    die("eval prompt", err);
  printf("tokens:");
  for (int i = 0; i < steps; ++i) {
    const float *logits = kiln_logits(s, NULL);
    int32_t next = argmax(logits, nVocab);
    fwrite(&next, 4, 1, out);
    fwrite(logits, 4, nVocab, out);
    printf(" %d", next);
    if (i + 1 < steps && kiln_eval(s, &next, 1, 1, &err))
      die("eval", err);
  }
  printf("\n");
  fclose(out);

  double rates[64];
  if (repeats > 64)
    repeats = 64;
  for (int r = 0; r < repeats; ++r) {
    kiln_session_reset(s);
    if (kiln_eval(s, prompt, nPrompt, 1, &err))
      die("eval prompt", err);
    int32_t next = argmax(kiln_logits(s, NULL), nVocab);
    double t0 = now();
    for (int i = 0; i < steps; ++i) {
      if (kiln_eval(s, &next, 1, 1, &err))
        die("eval", err);
      next = argmax(kiln_logits(s, NULL), nVocab);
    }
    rates[r] = steps / (now() - t0);
  }
  if (repeats > 0) {
    qsort(rates, repeats, sizeof(double), cmp);
    printf("decode: %d tokens after a %zu-token prompt, median of %d runs: "
           "%.1f tokens/s (min %.1f, max %.1f)\n",
           steps, nPrompt, repeats, rates[repeats / 2], rates[0],
           rates[repeats - 1]);
  }
  kiln_session_free(s);
  kiln_model_free(model);
  return 0;
}
