//===- RuntimeCoreTest.cpp - CPU variants, thread pool, sampler -----------===//

#include "Runtime/CpuFeatures.h"
#include "Runtime/Sampler.h"
#include "Runtime/ThreadPool.h"
#include "kiln/runtime/Artifact.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <gtest/gtest.h>
#include <set>

using namespace kiln::rt;

namespace {
std::vector<HostVariant> twoVariants() {
  HostVariant v4{"host.x86-64-v4",
                 {"avx512f", "avx512bw", "avx512vl"},
                 KILN_CPU_AVX512F | KILN_CPU_AVX512BW | KILN_CPU_AVX512VL |
                     KILN_CPU_AVX2 | KILN_CPU_FMA};
  HostVariant v3{"host.x86-64-v3",
                 {"avx2", "fma", "f16c"},
                 KILN_CPU_AVX2 | KILN_CPU_FMA | KILN_CPU_F16C};
  return {v3, v4}; // manifest order must not decide between them
}
} // namespace

TEST(CpuVariant, PicksBestRunnable) {
  std::string err;
  uint64_t all = ~uint64_t(0);
  EXPECT_EQ(chooseHostVariant(twoVariants(), all, err), 1);
  uint64_t zen3 = KILN_CPU_AVX2 | KILN_CPU_FMA | KILN_CPU_F16C | KILN_CPU_BMI2;
  EXPECT_EQ(chooseHostVariant(twoVariants(), zen3, err), 0);
  // AVX-512 without F16C cannot run v3 but can run v4.
  uint64_t odd = KILN_CPU_AVX512F | KILN_CPU_AVX512BW | KILN_CPU_AVX512VL |
                 KILN_CPU_AVX2 | KILN_CPU_FMA;
  EXPECT_EQ(chooseHostVariant(twoVariants(), odd, err), 1);
}

TEST(CpuVariant, NamesMissingFeatures) {
  std::string err;
  EXPECT_EQ(chooseHostVariant(twoVariants(), KILN_CPU_AVX2, err), -1);
  EXPECT_EQ(err, "no host code variant runs on this CPU (it has: avx2): "
                 "'host.x86-64-v3' needs missing fma f16c; 'host.x86-64-v4' "
                 "needs missing fma avx512f avx512bw avx512vl");
}

TEST(CpuVariant, DetectionIsConsistent) {
  uint64_t f = detectHostCpuFeatures();
  // AVX-512 subsets imply the foundation; every x86-64-v4 CPU has AVX2.
  if (f & (KILN_CPU_AVX512BW | KILN_CPU_AVX512VL | KILN_CPU_AVX512VNNI))
    EXPECT_TRUE(f & KILN_CPU_AVX512F);
  if (f & KILN_CPU_AVX512F)
    EXPECT_TRUE(f & KILN_CPU_AVX2);
  ::setenv("KILN_CPU_FEATURES", "avx2,fma", 1);
  EXPECT_EQ(detectHostCpuFeatures(), f & (KILN_CPU_AVX2 | KILN_CPU_FMA));
  ::unsetenv("KILN_CPU_FEATURES");
}

TEST(ThreadPool, RejectsBadSizes) {
  std::string err;
  EXPECT_FALSE(ThreadPool::create(0, err));
  EXPECT_EQ(err, "thread count must be 1 to 1024, got 0");
  EXPECT_FALSE(ThreadPool::create(1025, err));
}

TEST(ThreadPool, BarrierOrdersPhasesOverManyIterations) {
  // More threads than this machine's cores, so the futex path is exercised.
  for (int nth : {1, 2, 3, 5}) {
    std::string err;
    auto pool = ThreadPool::create(nth, err);
    ASSERT_TRUE(pool) << err;
    std::vector<std::atomic<int>> slot(nth);
    std::atomic<int> errors{0}, calls{0};
    constexpr int kIters = 3000;
    auto body = [&](int tid, int n) {
      EXPECT_EQ(n, nth);
      calls.fetch_add(1);
      KilnRtContext *rt = pool->getContext();
      for (int it = 0; it < kIters; ++it) {
        slot[tid].store(it, std::memory_order_relaxed);
        rt->barrier(rt);
        for (int j = 0; j < n; ++j)
          if (slot[j].load(std::memory_order_relaxed) != it)
            errors.fetch_add(1);
        rt->barrier(rt);
      }
    };
    for (int run = 0; run < 5; ++run)
      pool->run(body);
    EXPECT_EQ(errors.load(), 0) << nth << " threads";
    EXPECT_EQ(calls.load(), 5 * nth);
  }
}

TEST(ThreadPool, RunWaitsForEveryThread) {
  std::string err;
  auto pool = ThreadPool::create(4, err);
  ASSERT_TRUE(pool) << err;
  std::atomic<long> counter{0};
  for (int run = 0; run < 2000; ++run) {
    auto body = [&](int tid, int) { counter.fetch_add(tid + 1); };
    pool->run(body);
    // 1 + 2 + 3 + 4 per run, all done before run() returned.
    ASSERT_EQ(counter.load(), 10L * (run + 1));
  }
}

namespace {
std::vector<float> peaked(int n, int peak) {
  std::vector<float> l(n);
  for (int i = 0; i < n; ++i)
    l[i] = std::sin(float(i)) * 2.0f;
  l[peak] = 5.0f;
  return l;
}
} // namespace

TEST(Sampler, RejectsInvalidParams) {
  std::string err;
  SamplingParams p;
  EXPECT_TRUE(validateSamplingParams(p, err)) << err;
  auto bad = [&](auto edit, const char *msg) {
    SamplingParams q;
    edit(q);
    EXPECT_FALSE(validateSamplingParams(q, err));
    EXPECT_NE(err.find(msg), std::string::npos) << err;
  };
  bad([](SamplingParams &q) { q.temperature = -0.1f; }, "temperature");
  bad([](SamplingParams &q) { q.temperature = NAN; }, "temperature");
  bad([](SamplingParams &q) { q.topK = -1; }, "top-k");
  bad([](SamplingParams &q) { q.topP = 0; }, "top-p must be in (0, 1], got 0");
  bad([](SamplingParams &q) { q.topP = 1.01f; }, "top-p");
  bad([](SamplingParams &q) { q.minP = -0.5f; }, "min-p");
  bad([](SamplingParams &q) { q.minP = 2; }, "min-p");
  bad([](SamplingParams &q) { q.repeatPenalty = 0; }, "repeat penalty");
  bad([](SamplingParams &q) { q.repeatLastN = -1; }, "repeat-last-n");
}

TEST(Sampler, GreedyPicksArgmax) {
  SamplingParams p;
  p.temperature = 0;
  Sampler s(p, 100);
  for (int peak : {0, 17, 99}) {
    auto l = peaked(100, peak);
    EXPECT_EQ(s.sample(l.data(), nullptr, 0), peak);
  }
}

TEST(Sampler, TopK1EqualsGreedy) {
  SamplingParams g;
  g.temperature = 0;
  SamplingParams k;
  k.temperature = 1.5f;
  k.topK = 1;
  k.topP = 1;
  k.minP = 0;
  Sampler greedy(g, 1000), top1(k, 1000);
  for (int i = 0; i < 50; ++i) {
    std::vector<float> l(1000);
    for (int j = 0; j < 1000; ++j)
      l[j] = std::sin(float(j * (i + 3)));
    EXPECT_EQ(top1.sample(l.data(), nullptr, 0),
              greedy.sample(l.data(), nullptr, 0));
  }
}

TEST(Sampler, SeededSamplingIsReproducible) {
  SamplingParams p;
  p.temperature = 1.0f;
  p.topK = 0;
  p.topP = 1;
  p.minP = 0;
  p.seed = 1234;
  std::vector<float> flat(50, 0.0f);
  auto draw = [&](uint64_t seed) {
    SamplingParams q = p;
    q.seed = seed;
    Sampler s(q, 50);
    std::vector<int32_t> out;
    for (int i = 0; i < 200; ++i)
      out.push_back(s.sample(flat.data(), nullptr, 0));
    return out;
  };
  EXPECT_EQ(draw(1234), draw(1234));
  EXPECT_NE(draw(1234), draw(4321));
  // A uniform distribution over 50 tokens: 200 draws hit many of them.
  auto d = draw(1);
  std::sort(d.begin(), d.end());
  EXPECT_GT(std::unique(d.begin(), d.end()) - d.begin(), 30);
}

TEST(Sampler, FrequenciesFollowTheSoftmax) {
  // Logits log(0.5), log(0.3), log(0.2) at temperature 1.
  std::vector<float> l = {std::log(0.5f), std::log(0.3f), std::log(0.2f)};
  SamplingParams p;
  p.temperature = 1;
  p.topK = 0;
  p.topP = 1;
  p.minP = 0;
  p.seed = 7;
  Sampler s(p, 3);
  int count[3] = {};
  for (int i = 0; i < 20000; ++i)
    ++count[s.sample(l.data(), nullptr, 0)];
  EXPECT_NEAR(count[0] / 20000.0, 0.5, 0.02);
  EXPECT_NEAR(count[1] / 20000.0, 0.3, 0.02);
  EXPECT_NEAR(count[2] / 20000.0, 0.2, 0.02);
}

TEST(Sampler, TopPAndMinPCutTheTail) {
  std::vector<float> l = {std::log(0.5f), std::log(0.3f), std::log(0.15f),
                          std::log(0.05f)};
  auto support = [&](float topP, float minP) {
    SamplingParams p;
    p.temperature = 1;
    p.topK = 0;
    p.topP = topP;
    p.minP = minP;
    Sampler s(p, 4);
    std::set<int32_t> seen;
    for (int i = 0; i < 3000; ++i)
      seen.insert(s.sample(l.data(), nullptr, 0));
    return seen;
  };
  EXPECT_EQ(support(0.45f, 0), (std::set<int32_t>{0}));
  EXPECT_EQ(support(0.7f, 0), (std::set<int32_t>{0, 1}));
  // min-p 0.2: keeps p >= 0.1 (0.5, 0.3, 0.15).
  EXPECT_EQ(support(1, 0.2f), (std::set<int32_t>{0, 1, 2}));
  EXPECT_EQ(support(1, 0), (std::set<int32_t>{0, 1, 2, 3}));
}

TEST(Sampler, RepetitionPenaltyDemotesRecentTokens) {
  std::vector<float> l = {2.0f, 1.9f, -1.0f};
  SamplingParams p;
  p.temperature = 0;
  p.repeatPenalty = 1.5f;
  p.repeatLastN = 2;
  Sampler s(p, 3);
  int32_t recent[] = {0, 0};
  EXPECT_EQ(s.sample(l.data(), recent, 2), 1); // 2.0 / 1.5 < 1.9
  int32_t old[] = {0, 2, 2};                   // token 0 is outside last 2
  EXPECT_EQ(s.sample(l.data(), old, 3), 0);
  EXPECT_EQ(l[0], 2.0f) << "the caller's logits must not change";
}
