// ggml peer of kiln_kernel: the same weight bytes as an N x K ggml tensor of
// TYPE, y = mul_mat(W, x) with f32 x of T tokens (ggml quantizes x to its
// vec_dot type inside the op, as Kiln's int8 activations do), computed by
// ggml's CPU backend on a persistent ggml threadpool, rotating over copies.
// Plain (not repacked) CPU buffers: the path test-backend-ops measures.
//
//   ggml_kernel TYPE WEIGHTS N K T ITERS THREADS ROTATE_BYTES [warm]
#include "common.h"
#include <cmath>
#include <strings.h>
#include "ggml-cpu.h"
#include "ggml.h"

using namespace bench;

int main(int argc, char **argv) {
  if (argc < 9) {
    std::fprintf(stderr, "usage: ggml_kernel TYPE WEIGHTS N K T ITERS THREADS "
                         "ROTATE_BYTES [warm]\n");
    return 2;
  }
  // TYPE is ggml's type name in lower case (make_case.py's keys).
  ggml_type type = GGML_TYPE_COUNT;
  for (int i = 0; i < GGML_TYPE_COUNT; ++i) {
    const char *name = ggml_type_name(ggml_type(i));
    if (name && !strcasecmp(name, argv[1]))
      type = ggml_type(i);
  }
  if (type == GGML_TYPE_COUNT) {
    std::fprintf(stderr, "unknown type %s\n", argv[1]);
    return 2;
  }
  std::vector<char> w = readFile(argv[2]);
  int64_t N = std::atoll(argv[3]), K = std::atoll(argv[4]),
          T = std::atoll(argv[5]);
  int iters = std::atoi(argv[6]), threads = std::atoi(argv[7]);
  size_t rotate = size_t(std::atoll(argv[8]));
  bool warm = argc > 9 && !std::strcmp(argv[9], "warm");
  int copies = warm ? 1 : coldCopies(w.size(), rotate);
  if (ggml_row_size(type, K) * N != w.size()) {
    std::fprintf(stderr, "weights are %zu bytes, %s %lldx%lld needs %zu\n",
                 w.size(), argv[1], (long long)N, (long long)K,
                 ggml_row_size(type, K) * N);
    return 1;
  }
  ggml_init_params ip = {};
  ip.mem_size = copies * (w.size() + size_t(T) * N * 4 + (1 << 16)) +
                size_t(T) * K * 4 + (64 << 20);
  ip.no_alloc = false;
  ggml_context *ctx = ggml_init(ip);
  ggml_tensor *x = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, K, T);
  for (int64_t i = 0; i < T * K; ++i)
    ((float *)x->data)[i] = float((i * 2654435761u) % 1000) / 500.0f - 1.0f;
  std::vector<ggml_cgraph *> graphs;
  for (int c = 0; c < copies; ++c) {
    ggml_tensor *W = ggml_new_tensor_2d(ctx, type, K, N);
    std::memcpy(W->data, w.data(), w.size());
    ggml_tensor *y = ggml_mul_mat(ctx, W, x);
    ggml_cgraph *g = ggml_new_graph(ctx);
    ggml_build_forward_expand(g, y);
    graphs.push_back(g);
  }
  ggml_threadpool_params tpp = ggml_threadpool_params_default(threads);
  ggml_threadpool *tp = ggml_threadpool_new(&tpp);
  ggml_cplan plan = ggml_graph_plan(graphs[0], threads, tp);
  std::vector<uint8_t> work(plan.work_size + 64);
  plan.work_data = work.data();
  std::vector<double> us;
  // Copies untouched since they were written: two warm-up calls suffice.
  int warmup = 2;
  for (int i = 0; i < warmup + iters; ++i) {
    double t0 = nowUs();
    ggml_graph_compute(graphs[i % copies], &plan);
    double t = nowUs() - t0;
    if (i >= warmup)
      us.push_back(t);
  }
  double check = 0;
  ggml_tensor *y = ggml_graph_node(graphs[0], -1);
  for (int64_t i = 0; i < T * N; ++i)
    check += std::fabs(((float *)y->data)[i]);
  report("ggml", us, w.size(), copies, check);
  ggml_threadpool_free(tp);
  ggml_free(ctx);
  return 0;
}
