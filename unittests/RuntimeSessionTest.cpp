//===- RuntimeSessionTest.cpp - model, session and C API end to end -------===//
//
// Uses the fake host-code object of test/Runtime/Inputs/fake-model.c, which
// predicts (last token + 1) % 30 and checks its KV cache, through the C API.
//
//===----------------------------------------------------------------------===//

#include "Compiler/ArtifactWriter.h"
#include "Runtime/Session.h"
#include "kiln/runtime/HostExecution.h"
#include "kiln/runtime/Runtime.h"

#include <algorithm>
#include <atomic>
#include <fstream>
#include <gtest/gtest.h>
#include <iterator>
#include <unistd.h>

namespace {

std::string readFile(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in) << path;
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

class SessionTest : public ::testing::Test {
protected:
  void SetUp() override {
    std::string inputs = KILN_RUNTIME_TEST_INPUTS;
    kiln::ArtifactBuilder b;
    b.addSection("manifest", KILN_SECTION_MANIFEST,
                 readFile(inputs + "/fake-manifest.json"));
    b.addSection("vocab", KILN_SECTION_VOCAB,
                 readFile(inputs + "/fake-vocab.json"));
    b.addSection("weights", KILN_SECTION_WEIGHTS,
                 readFile(inputs + "/fake-weights.txt"));
    std::string so = readFile(KILN_FAKE_MODEL_PATH);
    b.addSection("host.x86-64-v4", KILN_SECTION_HOST_CODE, so);
    b.addSection("host.x86-64-v3", KILN_SECTION_HOST_CODE, so);
    path = "/tmp/kiln-session-test-" + std::to_string(::getpid()) + ".kiln";
    std::string err;
    ASSERT_TRUE(kiln::writeArtifact(path, b, err)) << err;
    const char *e = nullptr;
    ASSERT_EQ(kiln_model_load(path.c_str(), 3, &model, &e), KILN_OK) << e;
  }
  void TearDown() override {
    kiln_model_free(model);
    ::unlink(path.c_str());
  }

  std::string path;
  kiln_model *model = nullptr;
};

int collect(const char *piece, size_t size, void *user) {
  static_cast<std::string *>(user)->append(piece, size);
  return 0;
}

} // namespace

TEST_F(SessionTest, GenerateGreedy) {
  kiln_session *s = nullptr;
  const char *err = nullptr;
  ASSERT_EQ(kiln_session_create(model, 0, &s, &err), KILN_OK) << err;
  kiln_generate_params p;
  kiln_model_default_params(model, &p);
  p.sampling.temperature = 0;
  p.n_predict = 6;
  std::string out;
  kiln_generate_stats st;
  ASSERT_EQ(kiln_generate(s, "abcdefgh", &p, collect, &out, &st, &err), KILN_OK)
      << err;
  EXPECT_EQ(out, "ijklmn");
  EXPECT_EQ(st.n_prompt, 10);
  EXPECT_EQ(st.n_generated, 6);
  EXPECT_EQ(kiln_session_n_past(s), 15); // the last sampled token is pending

  // The session continues: no BOS in the middle, positions keep counting.
  out.clear();
  p.n_predict = 2;
  ASSERT_EQ(kiln_generate(s, "p", &p, collect, &out, &st, &err), KILN_OK)
      << err;
  EXPECT_EQ(st.n_prompt, 2); // "▁" "p"
  EXPECT_EQ(out, "qr");

  kiln_session_reset(s);
  EXPECT_EQ(kiln_session_n_past(s), 0);
  out.clear();
  ASSERT_EQ(kiln_generate(s, "a", &p, collect, &out, &st, &err), KILN_OK);
  EXPECT_EQ(out, "bc");
  kiln_session_free(s);
}

TEST_F(SessionTest, EvalReturnsRequestedLogitRows) {
  kiln_session *s = nullptr;
  const char *err = nullptr;
  ASSERT_EQ(kiln_session_create(model, 0, &s, &err), KILN_OK) << err;
  int32_t toks[] = {1, 4, 5, 6, 7, 8, 9}; // 7 tokens: chunks of 3 and 4
  ASSERT_EQ(kiln_eval(s, toks, 7, 4, &err), KILN_OK) << err;
  int32_t rows = 0;
  const float *l = kiln_logits(s, &rows);
  ASSERT_TRUE(l);
  ASSERT_EQ(rows, 4);
  int32_t vocab = kiln_model_n_vocab(model);
  for (int r = 0; r < 4; ++r) {
    int best = int(std::max_element(l + r * vocab, l + (r + 1) * vocab) -
                   (l + r * vocab));
    EXPECT_EQ(best, toks[3 + r] + 1) << "row " << r;
  }
  // More rows than the step function can return at once.
  EXPECT_EQ(kiln_eval(s, toks, 7, 5, &err), KILN_ERROR);
  EXPECT_STREQ(err, "logit rows 5 must be 1 to 4");
  int32_t bad[] = {3, 30};
  EXPECT_EQ(kiln_eval(s, bad, 2, 1, &err), KILN_ERROR);
  EXPECT_STREQ(err, "token id 30 at index 1 is outside the vocabulary [0, 30)");
  kiln_session_free(s);
}

TEST_F(SessionTest, ContextLimits) {
  kiln_session *s = nullptr;
  const char *err = nullptr;
  EXPECT_EQ(kiln_session_create(model, 65, &s, &err), KILN_ERROR);
  EXPECT_STREQ(err,
               "context size 65 must be 1 to 64 (the model's n_ctx), or 0");
  ASSERT_EQ(kiln_session_create(model, 8, &s, &err), KILN_OK) << err;
  std::vector<int32_t> toks(9, 4);
  EXPECT_EQ(kiln_eval(s, toks.data(), 9, 1, &err), KILN_ERROR);
  EXPECT_STREQ(err, "context full: 9 tokens at position 0 exceed the context "
                    "of 8 tokens");
  ASSERT_EQ(kiln_eval(s, toks.data(), 8, 1, &err), KILN_OK) << err;
  EXPECT_EQ(kiln_eval(s, toks.data(), 1, 1, &err), KILN_ERROR);
  kiln_generate_params p;
  kiln_model_default_params(model, &p);
  kiln_session_reset(s);
  p.n_predict = 6;
  EXPECT_EQ(kiln_generate(s, "ab", &p, collect, nullptr, nullptr, &err),
            KILN_ERROR);
  EXPECT_STREQ(err, "prompt of 4 tokens + 6 to generate exceed the context of "
                    "8 tokens");
  p.sampling.top_p = 0;
  p.n_predict = 1;
  EXPECT_EQ(kiln_generate(s, "ab", &p, collect, nullptr, nullptr, &err),
            KILN_ERROR);
  EXPECT_STREQ(err, "top-p must be in (0, 1], got 0");
  kiln_session_free(s);
}

TEST_F(SessionTest, TokenizeAndLoadErrors) {
  int32_t ids[8];
  size_t n = 0;
  const char *err = nullptr;
  ASSERT_EQ(kiln_tokenize(model, "abc", 1, 1, ids, 8, &n, &err), KILN_OK);
  ASSERT_EQ(n, 5u);
  EXPECT_EQ(ids[0], 1);
  EXPECT_EQ(ids[4], 6);
  ASSERT_EQ(kiln_tokenize(model, "abc", 0, 1, ids, 2, &n, &err), KILN_OK);
  EXPECT_EQ(n, 4u) << "full count even when the buffer is short";
  size_t size = 0;
  EXPECT_EQ(std::string(kiln_token_to_piece(model, 5, &size)), "b");

  kiln_model *m = nullptr;
  EXPECT_EQ(kiln_model_load(path.c_str(), 0, &m, &err), KILN_ERROR);
  EXPECT_STREQ(err, "thread count must be 1 to 1024, got 0");
  EXPECT_EQ(kiln_model_load("/nonexistent.kiln", 1, &m, &err), KILN_ERROR);
  EXPECT_STREQ(err,
               "/nonexistent.kiln: cannot open: No such file or directory");
  EXPECT_EQ(m, nullptr);
}

TEST_F(SessionTest, TwoModelsLoadSideBySide) {
  // The same host code loaded twice must give two independent objects.
  kiln_model *m2 = nullptr;
  const char *err = nullptr;
  ASSERT_EQ(kiln_model_load(path.c_str(), 1, &m2, &err), KILN_OK) << err;
  kiln_session *a = nullptr, *b = nullptr;
  ASSERT_EQ(kiln_session_create(model, 0, &a, &err), KILN_OK);
  ASSERT_EQ(kiln_session_create(m2, 0, &b, &err), KILN_OK);
  kiln_generate_params p;
  kiln_model_default_params(model, &p);
  p.sampling.temperature = 0;
  p.n_predict = 3;
  std::string outA, outB;
  ASSERT_EQ(kiln_generate(a, "a", &p, collect, &outA, nullptr, &err), KILN_OK);
  ASSERT_EQ(kiln_generate(b, "k", &p, collect, &outB, nullptr, &err), KILN_OK);
  EXPECT_EQ(outA, "bcd");
  EXPECT_EQ(outB, "lmn");
  kiln_session_free(a);
  kiln_session_free(b);
  kiln_model_free(m2);
}

TEST(SessionAlloc, UnallocatableKVCacheIsAnError) {
  // 32 TiB: refused by mmap under the kernel's default overcommit heuristic.
  // With overcommit_memory=1 the kernel promises anything; nothing to test.
  std::ifstream oc("/proc/sys/vm/overcommit_memory");
  int mode = -1;
  oc >> mode;
  if (mode == 1)
    GTEST_SKIP() << "overcommit_memory=1 accepts any allocation";
  std::string inputs = KILN_RUNTIME_TEST_INPUTS;
  std::string manifest = readFile(inputs + "/fake-manifest.json");
  size_t at = manifest.find("\"kv_cache_bytes\": 256");
  ASSERT_NE(at, std::string::npos);
  manifest.replace(at, 21, "\"kv_cache_bytes\": 35184372088832");
  kiln::ArtifactBuilder b;
  b.addSection("manifest", KILN_SECTION_MANIFEST, manifest);
  b.addSection("vocab", KILN_SECTION_VOCAB,
               readFile(inputs + "/fake-vocab.json"));
  b.addSection("weights", KILN_SECTION_WEIGHTS, "1");
  std::string so = readFile(KILN_FAKE_MODEL_PATH);
  b.addSection("host.x86-64-v4", KILN_SECTION_HOST_CODE, so);
  b.addSection("host.x86-64-v3", KILN_SECTION_HOST_CODE, so);
  std::string path = "/tmp/kiln-alloc-test-" + std::to_string(::getpid()) +
                     ".kiln",
              err;
  ASSERT_TRUE(kiln::writeArtifact(path, b, err)) << err;
  kiln_model *m = nullptr;
  const char *e = nullptr;
  ASSERT_EQ(kiln_model_load(path.c_str(), 1, &m, &e), KILN_OK) << e;
  kiln_session *s = nullptr;
  EXPECT_EQ(kiln_session_create(m, 0, &s, &e), KILN_ERROR);
  EXPECT_STREQ(e, "cannot allocate the KV cache (35184372088832 bytes): "
                  "Cannot allocate memory");
  kiln_model_free(m);
  ::unlink(path.c_str());
}

/// The fake model's manifest, vocabulary, weights and host code for both
/// CPU variants.
static kiln::ArtifactBuilder fakeModelSections() {
  std::string inputs = KILN_RUNTIME_TEST_INPUTS;
  kiln::ArtifactBuilder b;
  b.addSection("manifest", KILN_SECTION_MANIFEST,
               readFile(inputs + "/fake-manifest.json"));
  b.addSection("vocab", KILN_SECTION_VOCAB,
               readFile(inputs + "/fake-vocab.json"));
  b.addSection("weights", KILN_SECTION_WEIGHTS, "1");
  std::string so = readFile(KILN_FAKE_MODEL_PATH);
  b.addSection("host.x86-64-v4", KILN_SECTION_HOST_CODE, so);
  b.addSection("host.x86-64-v3", KILN_SECTION_HOST_CODE, so);
  return b;
}

TEST(SessionAlloc, MinimumCpuFeaturesAreChecked) {
  kiln::ArtifactBuilder b = fakeModelSections();
  b.setMinCpuFeatures(KILN_CPU_AVX2 | KILN_CPU_FMA);
  std::string path = "/tmp/kiln-minfeat-test-" + std::to_string(::getpid()) +
                     ".kiln",
              err;
  ASSERT_TRUE(kiln::writeArtifact(path, b, err)) << err;
  ::setenv("KILN_CPU_FEATURES", "avx2", 1);
  kiln_model *m = nullptr;
  const char *e = nullptr;
  EXPECT_EQ(kiln_model_load(path.c_str(), 1, &m, &e), KILN_ERROR);
  ::unsetenv("KILN_CPU_FEATURES");
  EXPECT_EQ(std::string(e), path + ": this CPU lacks fma, which every host "
                                   "code variant of the artifact needs");
  ::unlink(path.c_str());
}

// HostExecution.h: what the C API runs its compiled modules with.
TEST(HostExecution, LoadsHostCodeFromMemory) {
  std::string so = readFile(KILN_FAKE_MODEL_PATH);
  kiln_host_code *code = nullptr;
  const char *e = nullptr;
  ASSERT_EQ(kiln_host_code_load(so.data(), so.size(), "fake", &code, &e),
            KILN_OK)
      << e;
  EXPECT_NE(kiln_host_code_symbol(code, "_mlir_ciface_forward"), nullptr);
  EXPECT_EQ(kiln_host_code_symbol(code, "no_such_symbol"), nullptr);
  kiln_host_code_free(code);

  const char junk[] = "not a shared object";
  EXPECT_EQ(kiln_host_code_load(junk, sizeof(junk), "junk", &code, &e),
            KILN_ERROR);
  EXPECT_EQ(code, nullptr);
  EXPECT_NE(std::string(e).find("host code 'junk'"), std::string::npos) << e;
}

TEST(HostExecution, ThreadPoolRunsEveryThreadPastItsBarrier) {
  kiln_thread_pool *pool = nullptr;
  const char *e = nullptr;
  EXPECT_EQ(
      kiln_thread_pool_create(KILN_THREAD_POOL_MAX_THREADS + 1, &pool, &e),
      KILN_ERROR);
  EXPECT_EQ(std::string(e), "thread count must be 1 to 1024, got 1025");
  ASSERT_EQ(kiln_thread_pool_create(3, &pool, &e), KILN_OK) << e;
  EXPECT_EQ(kiln_thread_pool_size(pool), 3);
  struct Shared {
    KilnRtContext *rt;
    std::atomic<int> arrived{0}, early{0}, calls{0};
  } shared;
  shared.rt = kiln_thread_pool_context(pool);
  for (int run = 0; run < 100; ++run) {
    shared.arrived = 0;
    kiln_thread_pool_run(
        pool,
        [](void *ctx, int32_t tid, int32_t nth) {
          auto *s = static_cast<Shared *>(ctx);
          s->calls.fetch_add(1);
          s->arrived.fetch_add(tid + 1);
          s->rt->barrier(s->rt);
          // Past the barrier every thread has arrived: 1 + 2 + 3.
          if (s->arrived.load() != 6 || nth != 3)
            s->early.fetch_add(1);
        },
        &shared);
    ASSERT_EQ(shared.arrived.load(), 6);
  }
  EXPECT_EQ(shared.calls.load(), 300);
  EXPECT_EQ(shared.early.load(), 0);
  kiln_thread_pool_free(pool);
}

// A SessionBatch's session forgets its sequence by zeroing its slot of the
// shared cache, and only that: partial pages at both ends included.
TEST(BufferZero, ZeroesExactlyTheRange) {
  kiln::rt::Buffer buffer;
  std::string err;
  const uint64_t page = uint64_t(::sysconf(_SC_PAGESIZE));
  const uint64_t size = 5 * page + 123;
  ASSERT_TRUE(buffer.allocate(size, "test buffer", err)) << err;
  struct Range {
    uint64_t offset, size;
  } ranges[] = {{100, 3 * page}, {page, 2 * page}, {7, 9},
                {4 * page + 5, page + 118}, {0, size}};
  for (const Range &r : ranges) {
    std::fill(buffer.data(), buffer.data() + size, uint8_t(0xab));
    buffer.zero(r.offset, r.size);
    uint64_t wrong = 0;
    for (uint64_t i = 0; i < size; ++i) {
      bool inside = i >= r.offset && i < r.offset + r.size;
      wrong += buffer.data()[i] != (inside ? 0 : 0xab);
    }
    EXPECT_EQ(wrong, 0u) << "range [" << r.offset << ", +" << r.size << ")";
  }
}
