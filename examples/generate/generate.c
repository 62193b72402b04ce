/*===- generate.c - load a compiled model, generate, stream the tokens -----===*
 *
 * The smallest embedding of the Kiln runtime: load a .kiln artifact (or an
 * executable from kiln-compile --emit=exe), open a session and generate
 * greedily, printing each piece of text as soon as it is sampled.
 *
 *   kiln-generate MODEL.kiln PROMPT [N_TOKENS]
 *
 *===----------------------------------------------------------------------===*/

#include <kiln/runtime/Runtime.h>

#include <stdio.h>
#include <stdlib.h>

/* Called once per generated token with its text. */
static int printPiece(const char *piece, size_t size, void *user) {
  int *pieces = (int *)user;
  fwrite(piece, 1, size, stdout);
  fflush(stdout);
  ++*pieces;
  return 0; /* nonzero would stop the generation */
}

int main(int argc, char **argv) {
  if (argc < 3 || argc > 4) {
    fprintf(stderr, "usage: %s MODEL.kiln PROMPT [N_TOKENS]\n", argv[0]);
    return 1;
  }
  int nTokens = argc == 4 ? atoi(argv[3]) : 32;
  if (nTokens <= 0) {
    fprintf(stderr, "kiln-generate: error: N_TOKENS must be > 0\n");
    return 1;
  }

  const char *err = NULL;
  kiln_model *model = NULL;
  if (kiln_model_load(argv[1], /*n_threads=*/2, &model, &err) != KILN_OK) {
    fprintf(stderr, "kiln-generate: error: %s\n", err);
    return 1;
  }
  kiln_session *session = NULL;
  if (kiln_session_create(model, /*n_ctx=*/0, &session, &err) != KILN_OK) {
    fprintf(stderr, "kiln-generate: error: %s\n", err);
    kiln_model_free(model);
    return 1;
  }

  kiln_generate_params params;
  kiln_model_default_params(model, &params);
  params.n_predict = nTokens;
  params.sampling.temperature = 0; /* greedy: the same text every run */
  int pieces = 0;
  kiln_generate_stats stats;
  int status = kiln_generate(session, argv[2], &params, printPiece, &pieces,
                             &stats, &err);
  printf("\n");
  if (status != KILN_OK)
    fprintf(stderr, "kiln-generate: error: %s\n", err);
  else
    fprintf(stderr, "kiln-generate: %d prompt tokens, %d pieces streamed\n",
            stats.n_prompt, pieces);

  kiln_session_free(session);
  kiln_model_free(model);
  return status == KILN_OK ? 0 : 1;
}
