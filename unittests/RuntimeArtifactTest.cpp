//===- RuntimeArtifactTest.cpp - .kiln writer and verifying loader --------===//

#include "Compiler/ArtifactWriter.h"
#include "Runtime/ArtifactLoader.h"

#include <cstring>
#include <dirent.h>
#include <fstream>
#include <gtest/gtest.h>
#include <iterator>
#include <sys/stat.h>
#include <unistd.h>

using namespace kiln;
using namespace kiln::rt;

namespace {

const char *kManifest = R"({"format":1,
  "model":{"arch":"llama","name":"t","n_layers":1,"n_embd":8,"n_heads":1,
           "n_kv_heads":1,"head_dim":8,"n_vocab":30,"n_ctx":64},
  "entry":{"symbol":"_mlir_ciface_forward","max_tokens":4,
           "scratch_bytes":1024,"kv_cache_bytes":256},
  "host":[{"section":"host.x86-64-v4","cpu_features":["avx512f","avx512bw"]},
          {"section":"host.x86-64-v3","cpu_features":["avx2","fma","f16c"]}],
  "weights":{"section":"weights"},"tokenizer":{"section":"vocab"},
  "sampling":{"temperature":0.8,"top_k":40,"top_p":0.95,"min_p":0.05,
              "repeat_penalty":1.0}})";

class TempDir {
public:
  TempDir() {
    char tmpl[] = "/tmp/kiln-rt-test-XXXXXX";
    path = ::mkdtemp(tmpl);
  }
  ~TempDir() {
    std::string cmd = "rm -rf '" + path + "'";
    (void)!std::system(cmd.c_str());
  }
  std::string file(const std::string &name) const { return path + "/" + name; }
  std::vector<std::string> list() const {
    std::vector<std::string> names;
    if (DIR *d = ::opendir(path.c_str())) {
      while (dirent *e = ::readdir(d))
        if (e->d_name[0] != '.')
          names.push_back(e->d_name);
      ::closedir(d);
    }
    return names;
  }
  std::string path;
};

std::string readFile(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void writeFile(const std::string &path, const std::string &bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

std::string weightsBytes() {
  std::string w(10000, '\0');
  for (size_t i = 0; i < w.size(); ++i)
    w[i] = char(i * 7);
  return w;
}

ArtifactBuilder validBuilder(const std::string &manifest = kManifest) {
  ArtifactBuilder b;
  b.addSection("manifest", KILN_SECTION_MANIFEST, manifest);
  b.addSection("vocab", KILN_SECTION_VOCAB, R"({"model":"llama"})");
  b.addSection("host.x86-64-v4", KILN_SECTION_HOST_CODE,
               std::string("\x7f"
                           "ELF",
                           4) +
                   std::string(100, 'v'));
  b.addSection("host.x86-64-v3", KILN_SECTION_HOST_CODE,
               std::string("\x7f"
                           "ELF",
                           4) +
                   std::string(90, 'w'));
  b.addSection("weights", KILN_SECTION_WEIGHTS, weightsBytes());
  return b;
}

KilnArtifactHeader &headerOf(std::string &bytes) {
  return *reinterpret_cast<KilnArtifactHeader *>(bytes.data());
}

KilnSectionEntry &entryOf(std::string &bytes, size_t i) {
  return reinterpret_cast<KilnSectionEntry *>(
      bytes.data() + headerOf(bytes).sectionTableOffset)[i];
}

/// Recomputes the table and header checksums after an edit, so the test
/// reaches the check it is aimed at.
void reseal(std::string &bytes) {
  KilnArtifactHeader &h = headerOf(bytes);
  uint64_t tableSize = uint64_t(h.sectionCount) * sizeof(KilnSectionEntry);
  // Forged tables may point outside the buffer; leave their checksum alone.
  if (h.sectionTableOffset <= bytes.size() &&
      tableSize <= bytes.size() - h.sectionTableOffset)
    h.sectionTableChecksum =
        XXH64::hash(bytes.data() + h.sectionTableOffset, tableSize);
  h.headerChecksum = artifactHeaderChecksum(h);
}

class ArtifactTest : public ::testing::Test {
protected:
  void SetUp() override {
    path = dir.file("model.kiln");
    std::string err;
    ArtifactBuilder b = validBuilder();
    ASSERT_TRUE(writeArtifact(path, b, err)) << err;
    good = readFile(path);
  }

  /// Writes `bytes`, opens it and returns the error ("" if it loaded).
  std::string openBytes(const std::string &bytes) {
    std::string p = dir.file("bad.kiln");
    writeFile(p, bytes);
    std::string err;
    auto a = Artifact::open(p, err);
    if (a)
      return "";
    EXPECT_EQ(err.find('\n'), std::string::npos) << "multi-line: " << err;
    EXPECT_EQ(err.rfind(p, 0), 0u) << "error does not name the file: " << err;
    return err;
  }

  TempDir dir;
  std::string path;
  std::string good;
};

} // namespace

TEST(XXH64, KnownVectors) {
  // Reference values from the xxHash test suite (seed 0).
  EXPECT_EQ(XXH64::hash("", 0), 0xEF46DB3751D8E999ULL);
  EXPECT_EQ(XXH64::hash("a", 1), 0xD24EC4F1A98C6E5BULL);
  EXPECT_EQ(XXH64::hash("abc", 3), 0x44BC2CF5AD770999ULL);
  std::string s = "Nobody inspects the spammish repetition";
  EXPECT_EQ(XXH64::hash(s.data(), s.size()), 0xFBCEA83C8A378BF1ULL);
  // Streaming in odd pieces gives the same digest as one call.
  std::string big = weightsBytes();
  XXH64 h;
  for (size_t i = 0; i < big.size(); i += 37)
    h.update(big.data() + i, std::min<size_t>(37, big.size() - i));
  EXPECT_EQ(h.digest(), XXH64::hash(big.data(), big.size()));
}

TEST_F(ArtifactTest, RoundTrip) {
  std::string err;
  auto a = Artifact::open(path, err);
  ASSERT_TRUE(a) << err;
  EXPECT_EQ(a->getSections().size(), 5u);
  const SectionView *w = a->find("weights");
  ASSERT_TRUE(w);
  EXPECT_EQ(w->kind, uint32_t(KILN_SECTION_WEIGHTS));
  EXPECT_EQ(w->offset % 4096, 0u);
  EXPECT_EQ(std::string(w->text()), weightsBytes());
  for (const SectionView &s : a->getSections())
    EXPECT_EQ(s.offset % 64, 0u) << s.name;
  const Manifest &m = a->getManifest();
  EXPECT_EQ(m.model.nVocab, 30);
  EXPECT_EQ(m.entry.maxTokens, 4);
  EXPECT_EQ(m.host.size(), 2u);
  EXPECT_EQ(m.host[1].cpuFeatures,
            uint64_t(KILN_CPU_AVX2 | KILN_CPU_FMA | KILN_CPU_F16C));
  EXPECT_FLOAT_EQ(m.sampling.topP, 0.95f);
  EXPECT_EQ(a->getHeader().fileSize, good.size());
}

TEST_F(ArtifactTest, ExecutableHoldsTheArtifactUnchanged) {
  // A stand-in for kiln-exe-stub: the writer only needs an ELF file.
  std::string stubPath = dir.file("stub");
  writeFile(stubPath, std::string("\x7f" "ELF", 4) + std::string(70000, 's'));
  std::string exe = dir.file("model-exe"), err;
  ASSERT_TRUE(writeExecutable(exe, stubPath, validBuilder(), err)) << err;
  std::string bytes = readFile(exe);
  struct stat st;
  ASSERT_EQ(::stat(exe.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0755u);

  KilnExecutableTrailer t;
  ASSERT_GT(bytes.size(), sizeof(t));
  std::memcpy(&t, bytes.data() + bytes.size() - sizeof(t), sizeof(t));
  EXPECT_EQ(t.artifactOffset, 131072u); // the 70004-byte stub, rounded up
  EXPECT_EQ(bytes.compare(0, 70004, readFile(stubPath)), 0);
  EXPECT_EQ(bytes.substr(t.artifactOffset, t.artifactSize), good);

  auto a = Artifact::open(exe, err);
  ASSERT_TRUE(a) << err;
  const SectionView *w = a->find("weights");
  ASSERT_TRUE(w);
  EXPECT_EQ(std::string(w->text()), weightsBytes());
  EXPECT_EQ(reinterpret_cast<uintptr_t>(w->data) % 4096, 0u);

  // A trailer that does not place the artifact right before itself, on a
  // 64 KiB boundary, and an ELF file with no trailer are one-line errors.
  auto withTrailer = [&](uint64_t offset, uint64_t size) {
    std::string forged = bytes;
    KilnExecutableTrailer f = t;
    f.artifactOffset = offset;
    f.artifactSize = size;
    std::memcpy(forged.data() + forged.size() - sizeof(f), &f, sizeof(f));
    return openBytes(forged);
  };
  for (auto [offset, size] :
       {std::pair<uint64_t, uint64_t>{t.artifactOffset + 64, t.artifactSize - 64},
        {t.artifactOffset, t.artifactSize - 1},
        {t.artifactOffset, t.artifactSize + 1},
        {~uint64_t(0) << 16, t.artifactSize}})
    EXPECT_NE(withTrailer(offset, size).find("trailer"), std::string::npos)
        << offset << " +" << size;
  for (size_t cut : {size_t(1), sizeof(t), bytes.size() - t.artifactOffset})
    EXPECT_NE(openBytes(bytes.substr(0, bytes.size() - cut))
                  .find("no compiled model at its end"),
              std::string::npos)
        << "cut " << cut;
  // Inside, the artifact is checked as a .kiln file is.
  std::string flipped = bytes;
  flipped[t.artifactOffset + entryOf(good, 4).offset] ^= 1;
  EXPECT_NE(openBytes(flipped).find("section 'weights'"), std::string::npos);

  // A stub that is missing or no ELF file writes nothing.
  EXPECT_FALSE(writeExecutable(dir.file("none"), dir.file("missing"),
                               validBuilder(), err));
  EXPECT_NE(err.find("runtime stub"), std::string::npos) << err;
  EXPECT_FALSE(writeExecutable(dir.file("none"), path, validBuilder(), err));
  EXPECT_NE(err.find("not an ELF executable"), std::string::npos) << err;
  EXPECT_EQ(readFile(dir.file("none")), "");
}

TEST_F(ArtifactTest, ExternalMemoryAndProgress) {
  std::string w = weightsBytes();
  ArtifactBuilder b;
  b.addSection("manifest", KILN_SECTION_MANIFEST, kManifest);
  b.addSection("vocab", KILN_SECTION_VOCAB, "{}");
  b.addSection("host.x86-64-v4", KILN_SECTION_HOST_CODE,
               "\x7f"
               "ELF");
  b.addSection("host.x86-64-v3", KILN_SECTION_HOST_CODE,
               "\x7f"
               "ELF");
  b.addSectionRef("weights", KILN_SECTION_WEIGHTS, w.data(), w.size());
  uint64_t last = 0, total = 0;
  b.setProgressCallback([&](uint64_t done, uint64_t all) {
    EXPECT_GE(done, last);
    last = done;
    total = all;
    return true;
  });
  std::string err, p = dir.file("ext.kiln");
  ASSERT_TRUE(writeArtifact(p, b, err)) << err;
  EXPECT_EQ(last, total);
  EXPECT_EQ(total, readFile(p).size());
  auto a = Artifact::open(p, err);
  ASSERT_TRUE(a) << err;
  EXPECT_EQ(std::string(a->find("weights")->text()), w);
}

TEST_F(ArtifactTest, AtomicWriteKeepsExistingFileOnFailure) {
  ArtifactBuilder b = validBuilder();
  // A simulated failure halfway through: the callback cancels the write.
  b.setProgressCallback(
      [](uint64_t done, uint64_t total) { return done < total / 2; });
  std::string err;
  EXPECT_FALSE(writeArtifact(path, b, err));
  EXPECT_NE(err.find("cancelled"), std::string::npos) << err;
  EXPECT_EQ(readFile(path), good);
  EXPECT_EQ(dir.list(), std::vector<std::string>{"model.kiln"})
      << "temporary file left behind";

  // An invalid builder fails before touching anything.
  ArtifactBuilder dup = validBuilder();
  dup.addSection("weights", KILN_SECTION_WEIGHTS, "x");
  EXPECT_FALSE(writeArtifact(path, dup, err));
  EXPECT_NE(err.find("duplicate section name 'weights'"), std::string::npos);
  EXPECT_EQ(readFile(path), good);

  // A directory that does not exist.
  EXPECT_FALSE(
      writeArtifact(dir.file("no/such/dir/x.kiln"), validBuilder(), err));
  EXPECT_NE(err.find("cannot create a temporary file"), std::string::npos);

  // A directory that cannot be written (skipped as root, who may write it).
  if (::geteuid() != 0) {
    std::string ro = dir.file("ro");
    ::mkdir(ro.c_str(), 0755);
    writeFile(ro + "/m.kiln", good);
    ::chmod(ro.c_str(), 0555);
    EXPECT_FALSE(writeArtifact(ro + "/m.kiln", validBuilder(), err));
    EXPECT_EQ(readFile(ro + "/m.kiln"), good);
    ::chmod(ro.c_str(), 0755);
  }
  EXPECT_EQ(readFile(path), good);
}

TEST_F(ArtifactTest, WriterRejectsBadSections) {
  std::string err;
  ArtifactBuilder longName;
  longName.addSection(std::string(40, 'n'), KILN_SECTION_VOCAB, "x");
  EXPECT_FALSE(writeArtifact(dir.file("a.kiln"), longName, err));
  EXPECT_NE(err.find("must have 1 to 31 bytes"), std::string::npos) << err;
  ArtifactBuilder badAlign;
  badAlign.addSection("v", KILN_SECTION_VOCAB, "x", 48);
  EXPECT_FALSE(writeArtifact(dir.file("a.kiln"), badAlign, err));
  EXPECT_NE(err.find("not a power of two"), std::string::npos) << err;
  ArtifactBuilder badKind;
  badKind.addSection("v", 99, "x");
  EXPECT_FALSE(writeArtifact(dir.file("a.kiln"), badKind, err));
  EXPECT_NE(err.find("unknown kind 99"), std::string::npos) << err;
  EXPECT_TRUE(dir.list().size() == 1) << "files left behind";
}

TEST_F(ArtifactTest, BadMagicVersionAndHeader) {
  std::string b = good;
  b[0] = 'X';
  EXPECT_NE(openBytes(b).find("bad magic at offset 0"), std::string::npos);

  b = good;
  headerOf(b).formatVersion = 2;
  reseal(b);
  EXPECT_NE(openBytes(b).find("unsupported format version 2 at offset 8"),
            std::string::npos);

  b = good;
  headerOf(b).formatVersion = 2; // not resealed: the header checksum catches it
  EXPECT_NE(openBytes(b).find("unsupported format version"), std::string::npos);

  b = good;
  b[70] ^= 1; // inside gpuArchs, only the checksum covers it
  EXPECT_NE(openBytes(b).find("header checksum mismatch"), std::string::npos);

  b = good;
  headerOf(b).flags = 1;
  reseal(b);
  EXPECT_NE(openBytes(b).find("unknown header flags"), std::string::npos);

  b = good;
  headerOf(b).sectionCount = 100000;
  reseal(b);
  EXPECT_NE(openBytes(b).find("exceeds the limit"), std::string::npos);

  b = good;
  headerOf(b).sectionTableOffset = b.size() - 8;
  reseal(b);
  EXPECT_NE(openBytes(b).find("is not inside the"), std::string::npos);

  b = good;
  b += "trailing";
  EXPECT_NE(openBytes(b).find("(trailing bytes)"), std::string::npos);

  EXPECT_NE(openBytes("").find("shorter than the 128-byte header"),
            std::string::npos);
}

TEST_F(ArtifactTest, TruncatedAnywhere) {
  std::vector<size_t> cuts = {0, 1, 8, 64, 127, 128, 129, 200};
  for (size_t i = 0; i < 5; ++i) {
    KilnSectionEntry e = entryOf(good, i);
    cuts.push_back(e.offset);
    cuts.push_back(e.offset + 1);
    cuts.push_back(e.offset + e.size / 2);
    cuts.push_back(e.offset + e.size - 1);
  }
  cuts.push_back(good.size() - 1);
  for (size_t cut : cuts) {
    ASSERT_LT(cut, good.size());
    std::string err = openBytes(good.substr(0, cut));
    EXPECT_FALSE(err.empty()) << "cut at " << cut;
    if (cut >= sizeof(KilnArtifactHeader))
      EXPECT_NE(err.find("(truncated)"), std::string::npos) << err;

    // Even with the header's size forged to match, the section bounds fail.
    if (cut >= sizeof(KilnArtifactHeader)) {
      std::string forged = good.substr(0, cut);
      headerOf(forged).fileSize = cut;
      headerOf(forged).headerChecksum =
          artifactHeaderChecksum(headerOf(forged));
      EXPECT_FALSE(openBytes(forged).empty()) << "forged cut at " << cut;
    }
  }
}

TEST_F(ArtifactTest, ChecksumMismatchInEverySection) {
  for (size_t i = 0; i < 5; ++i) {
    std::string b = good;
    KilnSectionEntry e = entryOf(b, i);
    b[e.offset + e.size / 2] ^= 0x40;
    std::string err = openBytes(b);
    EXPECT_NE(err.find("checksum mismatch"), std::string::npos) << err;
    EXPECT_NE(err.find(std::string("'") + e.name + "'"), std::string::npos)
        << err;
  }
  std::string b = good;
  entryOf(b, 2).size -= 1; // table edited without resealing
  EXPECT_NE(openBytes(b).find("section table checksum mismatch"),
            std::string::npos);
}

TEST_F(ArtifactTest, SectionTableRangesAndOverlap) {
  std::string b = good;
  entryOf(b, 4).size = b.size(); // weights past the end
  reseal(b);
  EXPECT_NE(openBytes(b).find("are outside the"), std::string::npos);

  b = good;
  entryOf(b, 4).offset = UINT64_MAX - 4095; // offset + size overflows
  reseal(b);
  EXPECT_NE(openBytes(b).find("are outside the"), std::string::npos);

  b = good;
  entryOf(b, 1).offset = entryOf(b, 0).offset; // vocab over the manifest
  reseal(b);
  EXPECT_NE(openBytes(b).find("overlaps section"), std::string::npos);

  b = good;
  entryOf(b, 0).offset = 64; // over the header
  reseal(b);
  EXPECT_NE(openBytes(b).find("overlaps the header or section table"),
            std::string::npos);

  b = good;
  entryOf(b, 1).offset += 1; // misaligned
  reseal(b);
  EXPECT_NE(openBytes(b).find("is not a multiple of its alignment"),
            std::string::npos);

  b = good;
  entryOf(b, 1).alignment = 3;
  reseal(b);
  EXPECT_NE(openBytes(b).find("is not a power of two"), std::string::npos);

  b = good;
  std::memset(entryOf(b, 1).name, 'x', KILN_ARTIFACT_SECTION_NAME_SIZE);
  reseal(b);
  EXPECT_NE(openBytes(b).find("not NUL-terminated"), std::string::npos);

  b = good;
  std::strcpy(entryOf(b, 1).name, "manifest");
  reseal(b);
  EXPECT_NE(openBytes(b).find("duplicate section name"), std::string::npos);

  b = good;
  entryOf(b, 1).kind = 77;
  reseal(b);
  EXPECT_NE(openBytes(b).find("unknown kind 77"), std::string::npos);
}

namespace {
/// Writes an artifact whose manifest is `manifest` and returns the error.
std::string manifestError(TempDir &dir, const std::string &manifest) {
  std::string p = dir.file("m.kiln"), err;
  ArtifactBuilder b = validBuilder(manifest);
  EXPECT_TRUE(writeArtifact(p, b, err)) << err;
  auto a = Artifact::open(p, err);
  return a ? "" : err;
}

std::string replaced(std::string s, const std::string &from,
                     const std::string &to) {
  size_t at = s.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  return s.replace(at, from.size(), to);
}
} // namespace

TEST_F(ArtifactTest, BadManifest) {
  struct Case {
    std::string from, to, expected;
  } cases[] = {
      {"{\"format\":1,", "{\"format\":1,,", "manifest: invalid JSON"},
      {"\"format\":1", "\"format\":2", "'format' is 2, expected 1 to 1"},
      {"\"format\":1,", "", "'format' is missing"},
      {"\"n_vocab\":30,", "", "'model.n_vocab' is missing"},
      {"\"n_vocab\":30", "\"n_vocab\":\"30\"",
       "'model.n_vocab' must be an integer"},
      {"\"n_ctx\":64", "\"n_ctx\":-1", "'model.n_ctx' is -1"},
      {"\"max_tokens\":4", "\"max_tokens\":0", "'entry.max_tokens' is 0"},
      {"\"kv_cache_bytes\":256", "\"kv_cache_bytes\":2.5",
       "'entry.kv_cache_bytes' must be an integer"},
      {"\"symbol\":\"_mlir_ciface_forward\"", "\"symbol\":\"\"",
       "'entry.symbol' must be a non-empty string"},
      {"\"avx512bw\"", "\"avx1024\"", "unknown CPU feature 'avx1024'"},
      {"\"host\":[", "\"hostx\":[", "'host' is missing"},
      {"\"weights\":{\"section\":\"weights\"}", "\"weights\":[]",
       "'weights' must be an object"},
      {"\"tokenizer\":{\"section\":\"vocab\"}",
       "\"tokenizer\":{\"section\":\"nope\"}",
       "'tokenizer.section' names section 'nope', which the artifact does "
       "not have"},
      {"\"weights\":{\"section\":\"weights\"}",
       "\"weights\":{\"section\":\"vocab\"}",
       "names section 'vocab' of kind vocab, expected weights"},
      {"\"top_p\":0.95", "\"top_p\":0", "'sampling' is invalid: top-p"},
  };
  for (const Case &c : cases) {
    std::string err = manifestError(dir, replaced(kManifest, c.from, c.to));
    EXPECT_NE(err.find(c.expected), std::string::npos)
        << "expected '" << c.expected << "', got '" << err << "'";
    EXPECT_EQ(err.find('\n'), std::string::npos) << err;
  }
  EXPECT_NE(manifestError(dir, "[1,2]").find("'(root)' must be an object"),
            std::string::npos);
  // nlohmann::json parses and destroys without recursion, so a million
  // levels of nesting are an error here, not a stack overflow (llvm::json
  // needs a depth limit: see SafetensorsTest).
  std::string deep = std::string(1000000, '[') + std::string(1000000, ']');
  EXPECT_NE(manifestError(dir, replaced(kManifest,
                                        "\"weights\":{\"section\":\"weights\"}",
                                        "\"weights\":" + deep))
                .find("'weights' must be an object"),
            std::string::npos);
}

TEST_F(ArtifactTest, BadCudaManifest) {
  const std::string weights = "\"weights\":{\"section\":\"weights\"}";
  const std::string cuda =
      R"("targets":["cuda"],"cuda":{"kernels":["k0","k1"],"images":[)"
      R"({"format":"cubin","arch":"sm_90a","section":"cubin.sm_90a"},)"
      R"({"format":"ptx","arch":"sm_80","section":"ptx.sm_80"}]},)";
  const std::string good = replaced(kManifest, weights, cuda + weights);
  auto error = [&](const std::string &manifest) {
    std::string p = dir.file("cuda.kiln"), err;
    ArtifactBuilder b = validBuilder(manifest);
    b.addSection("cubin.sm_90a", KILN_SECTION_CUBIN, "cubin bytes");
    b.addSection("ptx.sm_80", KILN_SECTION_PTX, ".version 8.0");
    EXPECT_TRUE(writeArtifact(p, b, err)) << err;
    auto a = Artifact::open(p, err);
    return a ? "" : err;
  };
  ASSERT_EQ(error(good), "");

  struct Case {
    std::string from, to, expected;
  } cases[] = {
      {"[\"cuda\"]", "[]",
       "'targets' must be a non-empty array of \"cpu\" and \"cuda\""},
      {"[\"cuda\"]", "[\"cpu\",\"gpu\"]",
       "'targets' must be a non-empty array of \"cpu\" and \"cuda\""},
      {"[\"cuda\"]", "[\"cuda\",\"cuda\"]", "'targets' names 'cuda' twice"},
      {"[\"cuda\"]", "[\"cpu\"]",
       "'cuda' is given but 'targets' does not name cuda"},
      {"\"cuda\":{", "\"cudax\":{", "'cuda' is missing"},
      {"[\"k0\",\"k1\"]", "[]",
       "'cuda.kernels' must be a non-empty array of kernel names"},
      {"[\"k0\",\"k1\"]", "[\"k0\",\"\"]",
       "'cuda.kernels[1]' must be a non-empty string"},
      {"\"images\"", "\"imagez\"", "'cuda.images' is missing"},
      {"\"format\":\"cubin\"", "\"format\":\"sass\"",
       "'cuda.images[0].format' is 'sass', expected \"cubin\" or \"ptx\""},
      {"\"arch\":\"sm_80\"", "\"arch\":\"sm80\"",
       "'cuda.images[1].arch' is 'sm80', expected sm_<major><minor>"},
      {"\"arch\":\"sm_80\"", "\"arch\":\"sm_8\"",
       "'cuda.images[1].arch' is 'sm_8', expected"},
      {"\"section\":\"ptx.sm_80\"", "\"section\":\"vocab\"",
       "'cuda.images[1].section' names section 'vocab' of kind vocab, "
       "expected ptx"},
      {"\"section\":\"cubin.sm_90a\"", "\"section\":\"ptx.sm_80\"",
       "'cuda.images[0].section' names section 'ptx.sm_80' of kind ptx, "
       "expected cubin"},
      {"\"section\":\"cubin.sm_90a\"", "\"section\":\"cubin.sm_100\"",
       "names section 'cubin.sm_100', which the artifact does not have"},
      {"[\"cuda\"]", "[\"cpu\",\"cuda\"]",
       "'cuda.symbol' must name a step function other than entry.symbol when "
       "targets has cpu and cuda"},
  };
  for (const Case &c : cases) {
    std::string err = error(replaced(good, c.from, c.to));
    EXPECT_NE(err.find(c.expected), std::string::npos)
        << "expected '" << c.expected << "', got '" << err << "'";
    EXPECT_EQ(err.find('\n'), std::string::npos) << err;
  }
  // Both targets with their own step functions, and sm_100a parses.
  EXPECT_EQ(
      error(replaced(replaced(good, "[\"cuda\"]", "[\"cpu\",\"cuda\"]"),
                     "\"images\"", "\"symbol\":\"cuda_step\",\"images\"")),
      "");
  EXPECT_EQ(error(replaced(good, "\"arch\":\"sm_80\"", "\"arch\":\"sm_100a\"")),
            "");
}

TEST_F(ArtifactTest, BatchEntryManifest) {
  const std::string weights = "\"weights\":{\"section\":\"weights\"}";
  const std::string batch =
      R"("batch_entry":{"symbol":"_mlir_ciface_forward_batch","scratch_bytes":96},)";
  const std::string good = replaced(kManifest, weights, batch + weights);
  std::string p = dir.file("batch.kiln"), err;
  ArtifactBuilder b = validBuilder(good);
  ASSERT_TRUE(writeArtifact(p, b, err)) << err;
  auto artifact = Artifact::open(p, err);
  ASSERT_TRUE(artifact) << err;
  EXPECT_EQ(artifact->getManifest().batchEntry.symbol,
            "_mlir_ciface_forward_batch");
  EXPECT_EQ(artifact->getManifest().batchEntry.scratchBytes, 96);

  struct Case {
    std::string from, to, expected;
  } cases[] = {
      {"\"scratch_bytes\":96", "\"scratch_bytes\":-1",
       "'batch_entry.scratch_bytes' is -1"},
      {"\"symbol\":\"_mlir_ciface_forward_batch\"", "\"symbol\":\"\"",
       "'batch_entry.symbol' must be a non-empty string"},
  };
  for (const Case &c : cases) {
    std::string e = manifestError(dir, replaced(good, c.from, c.to));
    EXPECT_NE(e.find(c.expected), std::string::npos)
        << "expected '" << c.expected << "', got '" << e << "'";
  }
  // An encoder computes embeddings: a batched decode step makes no sense.
  std::string encoder = manifestError(
      dir, replaced(good, "\"n_ctx\":", "\"kind\":\"encoder\",\"n_ctx\":"));
  EXPECT_NE(encoder.find("'batch_entry' is for CPU decoders of one rank only"),
            std::string::npos)
      << encoder;
}

TEST_F(ArtifactTest, DistributionManifest) {
  const std::string weights = "\"weights\":{\"section\":\"weights\"}";
  const std::string dist =
      R"("distribution":{"tp":1,"pp":2,"ranks":[)"
      R"({"symbol":"_mlir_ciface_forward_rank0","scratch_bytes":64},)"
      R"({"symbol":"_mlir_ciface_forward_rank1","scratch_bytes":128}]},)";
  const std::string good = replaced(kManifest, weights, dist + weights);
  std::string p = dir.file("pp2.kiln"), err;
  ArtifactBuilder b = validBuilder(good);
  ASSERT_TRUE(writeArtifact(p, b, err)) << err;
  auto artifact = Artifact::open(p, err);
  ASSERT_TRUE(artifact) << err;
  const auto &d = artifact->getManifest().distribution;
  EXPECT_EQ(d.tp, 1);
  EXPECT_EQ(d.pp, 2);
  ASSERT_EQ(d.ranks.size(), 2u);
  EXPECT_EQ(d.ranks[1].symbol, "_mlir_ciface_forward_rank1");
  EXPECT_EQ(d.ranks[1].scratchBytes, 128);

  struct Case {
    std::string from, to, expected;
  } cases[] = {
      {"\"pp\":2", "\"pp\":0",
       "'distribution.pp' is 0, expected 1 to 4096"},
      {"\"pp\":2", "\"pp\":3",
       "'distribution.ranks' must be an array of tp * pp = 3 objects"},
      {"\"scratch_bytes\":128", "\"scratch_bytes\":-1",
       "'distribution.ranks[1].scratch_bytes' is -1"},
      {"\"symbol\":\"_mlir_ciface_forward_rank0\"", "\"symbol\":\"\"",
       "'distribution.ranks[0].symbol' must be a non-empty string"},
      {"\"ranks\"", "\"rank\"", "'distribution.ranks' is missing"},
  };
  for (const Case &c : cases) {
    std::string e = manifestError(dir, replaced(good, c.from, c.to));
    EXPECT_NE(e.find(c.expected), std::string::npos)
        << "expected '" << c.expected << "', got '" << e << "'";
  }
}
