//===- RuntimeCudaTest.cpp - the CUDA path through the C API, no GPU ------===//
//
// Runs the fake cuda artifact of test/Runtime/Inputs (fake-cuda-model.c
// launches kernel 0, which the fake driver fake-libcuda.cpp runs on the
// CPU) and checks it against the CPU fake model, then makes the fake driver
// fail the ways real ones do and checks each message.
//
//===----------------------------------------------------------------------===//

#include "Compiler/ArtifactWriter.h"
#include "kiln/runtime/Runtime.h"

#include <cstdlib>
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

std::string replaced(std::string s, const std::string &from,
                     const std::string &to) {
  size_t at = s.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  return s.replace(at, from.size(), to);
}

/// Writes the fake model as a cuda artifact (manifest and PTX as given) or,
/// with cuda = false, as the CPU artifact; returns its path.
std::string writeFakeArtifact(const std::string &name, bool cuda,
                              const std::string &manifest = "",
                              const std::string &ptx = "") {
  std::string inputs = KILN_RUNTIME_TEST_INPUTS;
  kiln::ArtifactBuilder b;
  b.addSection("manifest", KILN_SECTION_MANIFEST,
               !manifest.empty() ? manifest
               : cuda            ? readFile(inputs + "/fake-cuda-manifest.json")
                                 : readFile(inputs + "/fake-manifest.json"));
  b.addSection("vocab", KILN_SECTION_VOCAB,
               readFile(inputs + "/fake-vocab.json"));
  b.addSection("weights", KILN_SECTION_WEIGHTS,
               readFile(inputs + "/fake-weights.txt"));
  std::string so =
      readFile(cuda ? KILN_FAKE_CUDA_MODEL_PATH : KILN_FAKE_MODEL_PATH);
  b.addSection("host.x86-64-v4", KILN_SECTION_HOST_CODE, so);
  b.addSection("host.x86-64-v3", KILN_SECTION_HOST_CODE, so);
  if (cuda) {
    b.addSection("cubin.sm_90a", KILN_SECTION_CUBIN,
                 readFile(inputs + "/fake.cubin"));
    b.addSection("ptx.sm_80", KILN_SECTION_PTX,
                 ptx.empty() ? readFile(inputs + "/fake.ptx") : ptx);
  }
  std::string path = "/tmp/kiln-cuda-test-" + std::to_string(::getpid()) + "-" +
                     name + ".kiln",
              err;
  EXPECT_TRUE(kiln::writeArtifact(path, b, err)) << err;
  return path;
}

class CudaTest : public ::testing::Test {
protected:
  void SetUp() override {
    ::setenv("KILN_LIBCUDA", KILN_FAKE_LIBCUDA_PATH, 1);
    cudaPath = writeFakeArtifact("cuda", true);
  }
  void TearDown() override {
    for (const char *v : {"KILN_LIBCUDA", "KILN_FAKE_CUDA_MODE",
                          "KILN_FAKE_CUDA_CC", "KILN_FAKE_CUDA_FREE",
                          "KILN_CUDA_GRAPHS"})
      ::unsetenv(v);
    ::unlink(cudaPath.c_str());
  }
  /// The error of loading `path` and making a session, "" on success.
  static std::string loadError(const std::string &path,
                               const char *device = nullptr) {
    kiln_model *m = nullptr;
    const char *e = nullptr;
    if (kiln_model_load_on(path.c_str(), 1, device, &m, &e) != KILN_OK)
      return e;
    kiln_session *s = nullptr;
    std::string err;
    if (kiln_session_create(m, 0, &s, &e) != KILN_OK)
      err = e;
    kiln_session_free(s);
    kiln_model_free(m);
    return err;
  }
  std::string cudaPath;
};

const int32_t kPrompt[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};

} // namespace

TEST_F(CudaTest, LogitsMatchTheCpuModel) {
  std::string cpuPath = writeFakeArtifact("cpu", false);
  kiln_model *cpu = nullptr, *gpu = nullptr;
  const char *e = nullptr;
  ASSERT_EQ(kiln_model_load(cpuPath.c_str(), 2, &cpu, &e), KILN_OK) << e;
  ASSERT_EQ(kiln_model_load(cudaPath.c_str(), 2, &gpu, &e), KILN_OK) << e;
  EXPECT_STREQ(kiln_model_device(cpu), "cpu");
  EXPECT_STREQ(kiln_model_device(gpu),
               "cuda:0 (Fake GPU, sm_90, cubin sm_90a)");
  kiln_session *sc = nullptr, *sg = nullptr;
  ASSERT_EQ(kiln_session_create(cpu, 0, &sc, &e), KILN_OK) << e;
  ASSERT_EQ(kiln_session_create(gpu, 0, &sg, &e), KILN_OK) << e;
  // 10 tokens in chunks of max_tokens = 4, then single decode steps: the
  // device KV cache must keep every position (the kernel predicts token 0
  // if it does not).
  ASSERT_EQ(kiln_eval(sc, kPrompt, 10, 3, &e), KILN_OK) << e;
  ASSERT_EQ(kiln_eval(sg, kPrompt, 10, 3, &e), KILN_OK) << e;
  for (int step = 0; step < 4; ++step) {
    int32_t rc = 0, rg = 0;
    const float *lc = kiln_logits(sc, &rc), *lg = kiln_logits(sg, &rg);
    ASSERT_EQ(rc, rg);
    int32_t nVocab = kiln_model_n_vocab(cpu), argmax = 0;
    for (int32_t i = 0; i < rc * nVocab; ++i)
      ASSERT_EQ(lc[i], lg[i]) << "step " << step << " logit " << i;
    for (int32_t v = 0; v < nVocab; ++v)
      if (lg[(rg - 1) * nVocab + v] > lg[(rg - 1) * nVocab + argmax])
        argmax = v;
    EXPECT_NE(argmax, 0) << "the fake kernel saw a cleared KV cache";
    ASSERT_EQ(kiln_eval(sc, &argmax, 1, 1, &e), KILN_OK) << e;
    ASSERT_EQ(kiln_eval(sg, &argmax, 1, 1, &e), KILN_OK) << e;
  }
  EXPECT_EQ(kiln_session_n_past(sg), 14);
  kiln_session_free(sc);
  kiln_session_free(sg);
  kiln_model_free(cpu);
  kiln_model_free(gpu);
  ::unlink(cpuPath.c_str());
}

TEST_F(CudaTest, DecodeStepsRunAsOneGraph) {
  // The fake driver refuses one-token launches: decode steps succeed only as
  // the graph, and give the CPU model's logits only if every replay updated
  // the position (the kernel writes the KV cache there and checks it).
  ::setenv("KILN_FAKE_CUDA_MODE", "graph-decode", 1);
  std::string cpuPath = writeFakeArtifact("cpu", false);
  kiln_model *cpu = nullptr, *gpu = nullptr;
  const char *e = nullptr;
  ASSERT_EQ(kiln_model_load(cpuPath.c_str(), 1, &cpu, &e), KILN_OK) << e;
  ASSERT_EQ(kiln_model_load(cudaPath.c_str(), 1, &gpu, &e), KILN_OK) << e;
  int32_t nVocab = kiln_model_n_vocab(cpu);
  // A second session reuses the model's graph with its own buffers.
  for (int session = 0; session < 2; ++session) {
    kiln_session *sc = nullptr, *sg = nullptr;
    ASSERT_EQ(kiln_session_create(cpu, 0, &sc, &e), KILN_OK) << e;
    ASSERT_EQ(kiln_session_create(gpu, 0, &sg, &e), KILN_OK) << e;
    ASSERT_EQ(kiln_eval(sc, kPrompt, 5 + session, 1, &e), KILN_OK) << e;
    ASSERT_EQ(kiln_eval(sg, kPrompt, 5 + session, 1, &e), KILN_OK) << e;
    for (int step = 0; step < 5; ++step) {
      int32_t rc = 0, rg = 0;
      const float *lc = kiln_logits(sc, &rc), *lg = kiln_logits(sg, &rg);
      ASSERT_EQ(rc, rg);
      int32_t argmax = 0;
      for (int32_t v = 0; v < nVocab; ++v) {
        ASSERT_EQ(lc[v], lg[v]) << "session " << session << " step " << step;
        if (lg[v] > lg[argmax])
          argmax = v;
      }
      EXPECT_NE(argmax, 0) << "the kernel saw a stale position";
      ASSERT_EQ(kiln_eval(sc, &argmax, 1, 1, &e), KILN_OK) << e;
      ASSERT_EQ(kiln_eval(sg, &argmax, 1, 1, &e), KILN_OK) << e;
    }
    kiln_session_free(sc);
    kiln_session_free(sg);
  }
  kiln_model_free(gpu);
  // Without graphs the same decode step is refused.
  ::setenv("KILN_CUDA_GRAPHS", "0", 1);
  ASSERT_EQ(kiln_model_load(cudaPath.c_str(), 1, &gpu, &e), KILN_OK) << e;
  kiln_session *s = nullptr;
  ASSERT_EQ(kiln_session_create(gpu, 0, &s, &e), KILN_OK) << e;
  ASSERT_EQ(kiln_eval(s, kPrompt, 3, 1, &e), KILN_OK) << e;
  ASSERT_EQ(kiln_eval(s, kPrompt + 3, 1, 1, &e), KILN_ERROR);
  EXPECT_STREQ(e, "cannot launch kernel 'fake_next_token' (grid 1x1x1, block "
                  "1x1x1, 0 bytes of shared memory): CUDA_ERROR_INVALID_VALUE "
                  "(fake driver error)");
  kiln_session_free(s);
  kiln_model_free(gpu);
  kiln_model_free(cpu);
  ::unlink(cpuPath.c_str());
}

TEST_F(CudaTest, NoDriverNoDeviceNoImage) {
  ::setenv("KILN_LIBCUDA", "/nonexistent/libcuda.so.1", 1);
  std::string err = loadError(cudaPath);
  EXPECT_EQ(err.find(cudaPath + ": cannot run on cuda:0 (the artifact targets "
                                "cuda only): the NVIDIA driver (libcuda.so.1) "
                                "is not installed ("),
            0u)
      << err;
  EXPECT_EQ(err.find('\n'), std::string::npos);

  ::setenv("KILN_LIBCUDA", KILN_FAKE_LIBCUDA_PATH, 1);
  ::setenv("KILN_FAKE_CUDA_MODE", "no-device", 1);
  EXPECT_EQ(loadError(cudaPath, "cuda"),
            cudaPath + ": cannot run on cuda: no CUDA device: the NVIDIA "
                       "driver finds none");
  ::unsetenv("KILN_FAKE_CUDA_MODE");
  EXPECT_EQ(loadError(cudaPath, "cuda:2"),
            cudaPath + ": cannot run on cuda:2: CUDA device 2 does not exist: "
                       "the driver finds 1 device (cuda:0)");
  ::setenv("KILN_FAKE_CUDA_CC", "75", 1);
  EXPECT_EQ(loadError(cudaPath, "cuda"),
            cudaPath + ": cannot run on cuda: no GPU image for cuda:0 (Fake "
                       "GPU, sm_75): the artifact has cubin sm_90a, ptx "
                       "sm_80");
}

TEST_F(CudaTest, ImageChoice) {
  // sm_86 cannot run the sm_90a cubin: the driver compiles the sm_80 PTX.
  ::setenv("KILN_FAKE_CUDA_CC", "86", 1);
  kiln_model *m = nullptr;
  const char *e = nullptr;
  ASSERT_EQ(kiln_model_load(cudaPath.c_str(), 1, &m, &e), KILN_OK) << e;
  EXPECT_STREQ(kiln_model_device(m), "cuda:0 (Fake GPU, sm_86, ptx sm_80)");
  kiln_model_free(m);
}

TEST_F(CudaTest, PtxErrors) {
  ::setenv("KILN_FAKE_CUDA_CC", "86", 1);
  ::setenv("KILN_FAKE_CUDA_MODE", "old-driver", 1);
  EXPECT_EQ(loadError(cudaPath, "cuda"),
            cudaPath + ": cannot run on cuda: PTX section 'ptx.sm_80' is PTX "
                       "ISA 9.0, newer than the NVIDIA driver (CUDA 12.4) "
                       "compiles: update the driver or compile the artifact "
                       "for an older CUDA");
  ::unsetenv("KILN_FAKE_CUDA_MODE");
  std::string bad = writeFakeArtifact("badptx", true, "",
                                      ".version 8.0\n.target sm_80\nbad-ptx\n");
  EXPECT_EQ(loadError(bad, "cuda"),
            bad + ": cannot run on cuda: cannot compile PTX section "
                  "'ptx.sm_80' (sm_80) for sm_86: CUDA_ERROR_INVALID_PTX (a "
                  "PTX JIT compilation failed): ptxas application ptx input, "
                  "line 3; error   : syntax error; ptxas fatal   : Ptx "
                  "assembly aborted");
  ::unlink(bad.c_str());
}

TEST_F(CudaTest, MissingKernel) {
  std::string manifest = replaced(
      readFile(std::string(KILN_RUNTIME_TEST_INPUTS) +
               "/fake-cuda-manifest.json"),
      "\"fake_next_token\"", "\"fake_next_token\", \"fake_attention\"");
  std::string path = writeFakeArtifact("nokernel", true, manifest);
  EXPECT_EQ(loadError(path, "cuda"),
            path + ": cannot run on cuda: GPU image 'cubin.sm_90a' has no "
                   "kernel 'fake_attention' (CUDA_ERROR_NOT_FOUND (fake "
                   "driver error))");
  ::unlink(path.c_str());
}

TEST_F(CudaTest, OutOfDeviceMemory) {
  ::setenv("KILN_FAKE_CUDA_FREE", "1", 1);
  EXPECT_EQ(loadError(cudaPath),
            cudaPath + ": out of device memory: the weights section needs 2 "
                       "bytes and 1 bytes are free of 1 on cuda:0");
  // The KV cache (256 bytes) is the first session allocation.
  ::setenv("KILN_FAKE_CUDA_FREE", "100", 1);
  EXPECT_EQ(loadError(cudaPath),
            "out of device memory: the KV cache needs 256 bytes and 98 bytes "
            "are free of 100 on cuda:0");
}

TEST_F(CudaTest, RefusedLaunchFailsOneStep) {
  kiln_model *m = nullptr;
  kiln_session *s = nullptr;
  const char *e = nullptr;
  ASSERT_EQ(kiln_model_load(cudaPath.c_str(), 1, &m, &e), KILN_OK) << e;
  ASSERT_EQ(kiln_session_create(m, 0, &s, &e), KILN_OK) << e;
  ASSERT_EQ(kiln_eval(s, kPrompt, 3, 1, &e), KILN_OK) << e;
  ::setenv("KILN_FAKE_CUDA_MODE", "launch-refused", 1);
  ASSERT_EQ(kiln_eval(s, kPrompt + 3, 1, 1, &e), KILN_ERROR);
  EXPECT_STREQ(e, "cannot launch kernel 'fake_next_token' (grid 1x1x1, block "
                  "1x1x1, 0 bytes of shared memory): "
                  "CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES (too many resources "
                  "requested for launch)");
  EXPECT_EQ(kiln_session_n_past(s), 3);
  // Not sticky: the next step runs.
  ::unsetenv("KILN_FAKE_CUDA_MODE");
  ASSERT_EQ(kiln_eval(s, kPrompt + 3, 1, 1, &e), KILN_OK) << e;
  EXPECT_EQ(kiln_session_n_past(s), 4);
  kiln_session_free(s);
  kiln_model_free(m);
}

TEST_F(CudaTest, FaultMakesTheModelUnusable) {
  kiln_model *m = nullptr;
  kiln_session *s = nullptr;
  const char *e = nullptr;
  ASSERT_EQ(kiln_model_load(cudaPath.c_str(), 1, &m, &e), KILN_OK) << e;
  ASSERT_EQ(kiln_session_create(m, 0, &s, &e), KILN_OK) << e;
  ::setenv("KILN_FAKE_CUDA_MODE", "fault", 1);
  ASSERT_EQ(kiln_eval(s, kPrompt, 3, 1, &e), KILN_ERROR);
  EXPECT_STREQ(e, "the CUDA step failed on the device: "
                  "CUDA_ERROR_ILLEGAL_ADDRESS (an illegal memory access was "
                  "encountered); the CUDA context is now unusable: load the "
                  "model again (set KILN_CUDA_SYNC_LAUNCHES=1 to find the "
                  "kernel)");
  ::unsetenv("KILN_FAKE_CUDA_MODE");
  ASSERT_EQ(kiln_eval(s, kPrompt, 3, 1, &e), KILN_ERROR);
  EXPECT_STREQ(e, "the CUDA device is unusable after an earlier error "
                  "(CUDA_ERROR_ILLEGAL_ADDRESS (an illegal memory access was "
                  "encountered)): load the model again");
  kiln_session_reset(s);
  kiln_session *s2 = nullptr;
  EXPECT_EQ(kiln_session_create(m, 0, &s2, &e), KILN_ERROR);
  kiln_session_free(s);
  kiln_model_free(m);
  // Releasing the primary context resets it, as the real driver does.
  EXPECT_EQ(loadError(cudaPath), "");
}
