//===- kiln-test-pack.cpp - write a .kiln artifact from files (tests) -----===//
//
// kiln-test-pack -o OUT [--min-features f1,f2] NAME=KIND:FILE...
//   KIND: manifest | vocab | host | weights | ptx | cubin;  FILE
//   "@fake-model" / "@fake-cuda-model" is the fake host-code shared object
//   built from fake-model.c / fake-cuda-model.c.
// Lets lit tests build artifacts with the real writer but no compiler.
//
//===----------------------------------------------------------------------===//

#include "Compiler/ArtifactWriter.h"

#include <cstdio>
#include <fstream>
#include <iterator>
#include <sstream>

static int fail(const std::string &m) {
  std::fprintf(stderr, "kiln-test-pack: error: %s\n", m.c_str());
  return 1;
}

int main(int argc, char **argv) {
  kiln::ArtifactBuilder b;
  std::string out;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "-o" && i + 1 < argc) {
      out = argv[++i];
      continue;
    }
    if (a == "--min-features" && i + 1 < argc) {
      std::string list = argv[++i];
      uint64_t mask = 0;
      std::stringstream ss(list);
      for (std::string f; std::getline(ss, f, ',');)
        mask |= kiln::cpuFeatureFromName(f.c_str());
      b.setMinCpuFeatures(mask);
      continue;
    }
    size_t eq = a.find('='), colon = a.find(':', eq);
    if (eq == std::string::npos || colon == std::string::npos)
      return fail("expected NAME=KIND:FILE, got '" + a + "'");
    std::string name = a.substr(0, eq), kind = a.substr(eq + 1, colon - eq - 1),
                file = a.substr(colon + 1);
    uint32_t k = kind == "manifest"  ? KILN_SECTION_MANIFEST
                 : kind == "vocab"   ? KILN_SECTION_VOCAB
                 : kind == "host"    ? KILN_SECTION_HOST_CODE
                 : kind == "weights" ? KILN_SECTION_WEIGHTS
                 : kind == "ptx"     ? KILN_SECTION_PTX
                 : kind == "cubin"   ? KILN_SECTION_CUBIN
                                     : 0;
    if (!k)
      return fail("unknown section kind '" + kind + "'");
    if (file == "@fake-model")
      file = KILN_FAKE_MODEL_PATH;
    else if (file == "@fake-cuda-model")
      file = KILN_FAKE_CUDA_MODEL_PATH;
    std::ifstream in(file, std::ios::binary);
    if (!in)
      return fail("cannot read '" + file + "'");
    std::string bytes((std::istreambuf_iterator<char>(in)),
                      std::istreambuf_iterator<char>());
    b.addSection(name, k, std::move(bytes));
  }
  if (out.empty())
    return fail("no output file (-o)");
  std::string err;
  if (!kiln::writeArtifact(out, b, err))
    return fail(err);
  return 0;
}
