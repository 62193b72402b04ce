// Kiln kernel driver: loads a kiln-compile --emit=so shared object holding
// `linear` (one kiln.linear, see make_case.py) and calls it on T tokens in a
// loop on the runtime's own thread pool (lib/Runtime/ThreadPool.cpp, the
// barrier generated code calls), rotating over weight copies (cold: the
// copies together are ROTATE_BYTES, past the last-level cache).
//
//   kiln_kernel SO WEIGHTS N K T ITERS THREADS ROTATE_BYTES [warm]
//   kiln_kernel bw MIB THREADS REPEATS SLICE_MIB
//     streaming-read bandwidth (GB/s) through MIB, one pool run per slice
#include "Runtime/ThreadPool.h"
#include "common.h"

#include <cmath>
#include <dlfcn.h>
#include <immintrin.h>

using namespace bench;

using LinearFn = void (*)(KilnMemRef2D *x, KilnMemRef2D *y, KilnMemRef1D *w,
                          KilnMemRef1D *scratch, KilnRtContext *rt,
                          int32_t tid, int32_t nth);

static KilnMemRef1D bytes1D(void *p, size_t n) {
  return {p, p, 0, {int64_t(n)}, {1}};
}

// Sums a range as 4 streams read in lockstep (one per quarter, as a kernel
// working on several rows at once reads them), AVX-512 loads only: more
// misses in flight than one stream gets from the prefetchers.
__attribute__((target("avx512f"))) static double readRange512(const float *p,
                                                              size_t n) {
  size_t q = n / 4 / 32 * 32;
  const float *p0 = p, *p1 = p + q, *p2 = p + 2 * q, *p3 = p + 3 * q;
  __m512 a = _mm512_setzero_ps(), b = a, c = a, d = a;
  for (size_t i = 0; i < q; i += 32) {
    a = _mm512_add_ps(a, _mm512_add_ps(_mm512_load_ps(p0 + i),
                                       _mm512_load_ps(p0 + i + 16)));
    b = _mm512_add_ps(b, _mm512_add_ps(_mm512_load_ps(p1 + i),
                                       _mm512_load_ps(p1 + i + 16)));
    c = _mm512_add_ps(c, _mm512_add_ps(_mm512_load_ps(p2 + i),
                                       _mm512_load_ps(p2 + i + 16)));
    d = _mm512_add_ps(d, _mm512_add_ps(_mm512_load_ps(p3 + i),
                                       _mm512_load_ps(p3 + i + 16)));
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a, b),
                                            _mm512_add_ps(c, d)));
}

// The same with AVX2 loads (the widest an AVX2-only CPU's kernels use).
__attribute__((target("avx2"))) static double readRange256(const float *p,
                                                           size_t n) {
  size_t q = n / 4 / 16 * 16;
  const float *ps[4] = {p, p + q, p + 2 * q, p + 3 * q};
  __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(),
                   _mm256_setzero_ps(), _mm256_setzero_ps()};
  for (size_t i = 0; i < q; i += 16)
    for (int s = 0; s < 4; ++s)
      acc[s] = _mm256_add_ps(acc[s],
                             _mm256_add_ps(_mm256_load_ps(ps[s] + i),
                                           _mm256_load_ps(ps[s] + i + 8)));
  __m256 sum = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]),
                             _mm256_add_ps(acc[2], acc[3]));
  float lanes[8];
  _mm256_storeu_ps(lanes, sum);
  double total = 0;
  for (float v : lanes)
    total += v;
  return total;
}

static double readRange(const float *p, size_t n) {
  return __builtin_cpu_supports("avx512f") ? readRange512(p, n)
                                           : readRange256(p, n);
}

static int bandwidth(int argc, char **argv) {
  size_t bytes = size_t(std::atoll(argv[2])) << 20;
  int threads = std::atoi(argv[3]), repeats = std::atoi(argv[4]);
  size_t n = bytes / sizeof(float);
  float *buf = static_cast<float *>(std::aligned_alloc(4096, bytes));
  std::string err;
  auto pool = kiln::rt::ThreadPool::create(threads, err);
  // First touch by the thread that reads each part.
  auto touch = [&](int tid, int nth) {
    size_t lo = n / nth * tid, hi = tid + 1 == nth ? n : n / nth * (tid + 1);
    for (size_t i = lo; i < hi; ++i)
      buf[i] = 1.0f;
  };
  pool->run(touch);
  std::vector<double> sinks(threads), gbs;
  // Each pool run reads one slice (like one GEMV call reads one weight
  // matrix), the slices one after the other through the whole buffer.
  size_t slice = std::min(n, (size_t(std::atoll(argv[5])) << 20) / sizeof(float));
  size_t nSlices = n / slice;
  const float *base = buf;
  auto read = [&](int tid, int nth) {
    size_t chunk = slice / nth / 64 * 64;
    sinks[tid] += readRange(base + chunk * tid, chunk);
  };
  for (int r = 0; r < repeats + 1; ++r) {
    double us = 0;
    for (size_t s = 0; s < nSlices; ++s) {
      base = buf + s * slice;
      double t0 = nowUs();
      pool->run(read);
      us += nowUs() - t0;
    }
    if (r) // the first pass warms the TLB and page tables
      gbs.push_back(nSlices * slice * sizeof(float) / us / 1e3);
  }
  std::sort(gbs.begin(), gbs.end());
  std::printf("{\"read_gbs_median\": %.2f, \"read_gbs_max\": %.2f, "
              "\"buffer_mib\": %zu, \"threads\": %d, \"repeats\": %d, "
              "\"sink\": %.1f}\n",
              gbs[gbs.size() / 2], gbs.back(), bytes >> 20, threads, repeats,
              sinks[0]);
  return 0;
}

int main(int argc, char **argv) {
  if (argc >= 6 && !std::strcmp(argv[1], "bw"))
    return bandwidth(argc, argv);
  if (argc < 9) {
    std::fprintf(stderr, "usage: kiln_kernel SO WEIGHTS N K T ITERS THREADS "
                         "ROTATE_BYTES [warm] | kiln_kernel bw MIB THREADS REPEATS SLICE_MIB\n");
    return 2;
  }
  void *so = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  if (!so) {
    std::fprintf(stderr, "%s\n", dlerror());
    return 1;
  }
  auto fn = reinterpret_cast<LinearFn>(dlsym(so, "_mlir_ciface_linear"));
  if (!fn) {
    std::fprintf(stderr, "no _mlir_ciface_linear in %s\n", argv[1]);
    return 1;
  }
  std::vector<char> w = readFile(argv[2]);
  int64_t N = std::atoll(argv[3]), K = std::atoll(argv[4]),
          T = std::atoll(argv[5]);
  int iters = std::atoi(argv[6]), threads = std::atoi(argv[7]);
  size_t rotate = size_t(std::atoll(argv[8]));
  bool warm = argc > 9 && !std::strcmp(argv[9], "warm");
  int copies = warm ? 1 : coldCopies(w.size(), rotate);
  std::vector<void *> ws;
  for (int c = 0; c < copies; ++c)
    ws.push_back(alignedCopy(w));
  std::vector<float> x(size_t(T * K)), y(size_t(T * N));
  for (size_t i = 0; i < x.size(); ++i)
    x[i] = float((i * 2654435761u) % 1000) / 500.0f - 1.0f;
  // Scratch: the int8 copy of the activations and any temporaries.
  size_t scratchBytes = size_t(T) * K * 4 + (16 << 20);
  void *scratch = std::aligned_alloc(64, scratchBytes);
  std::string err;
  auto pool = kiln::rt::ThreadPool::create(threads, err);
  if (!pool) {
    std::fprintf(stderr, "%s\n", err.c_str());
    return 1;
  }
  KilnMemRef2D xd{x.data(), x.data(), 0, {T, K}, {K, 1}};
  KilnMemRef2D yd{y.data(), y.data(), 0, {T, N}, {N, 1}};
  KilnMemRef1D sd = bytes1D(scratch, scratchBytes);
  KilnRtContext *rt = pool->getContext();
  std::vector<double> us;
  // Copies untouched since they were written: two warm-up calls suffice.
  int warmup = 2;
  for (int i = 0; i < warmup + iters; ++i) {
    KilnMemRef1D wd = bytes1D(ws[i % copies], w.size());
    auto call = [&](int tid, int nth) {
      fn(&xd, &yd, &wd, &sd, rt, tid, nth);
    };
    double t0 = nowUs();
    pool->run(call);
    double t = nowUs() - t0;
    if (i >= warmup)
      us.push_back(t);
  }
  double check = 0;
  for (float v : y)
    check += std::fabs(v);
  report("kiln", us, w.size(), copies, check);
  return 0;
}
