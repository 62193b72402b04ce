//===- ArtifactWriter.h - build and write a .kiln artifact ------*- C++ -*-===//
//
// The compiler adds sections (manifest, vocab, host code per CPU variant,
// weights) to an ArtifactBuilder and writes it with writeArtifact. Plain C++17
// with no MLIR, so tests and tools can produce artifacts without the compiler.
// Layout: include/kiln/runtime/Artifact.h.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_COMPILER_ARTIFACTWRITER_H
#define KILN_COMPILER_ARTIFACTWRITER_H

#include "kiln/runtime/Artifact.h"

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace kiln {

/// One section to be written: either owned bytes or a view of external memory
/// (e.g. a mapped weights blob) that must outlive writeArtifact.
struct ArtifactSection {
  std::string name;
  uint32_t kind = 0;
  uint64_t alignment = 0;
  std::string owned;
  const void *external = nullptr;
  uint64_t externalSize = 0;
  bool isExternal = false;

  const uint8_t *data() const {
    return isExternal ? static_cast<const uint8_t *>(external)
                      : reinterpret_cast<const uint8_t *>(owned.data());
  }
  uint64_t size() const { return isExternal ? externalSize : owned.size(); }
};

/// Called while writing with (bytes written, total bytes); return false to
/// cancel the write (the target file is then left as it was).
using ArtifactProgressFn = std::function<bool(uint64_t, uint64_t)>;

class ArtifactBuilder {
public:
  /// Adds a section holding `bytes`. An alignment of 0 picks the default for
  /// the kind (4096 for weights, 64 otherwise). Invalid sections (bad name,
  /// duplicate, bad alignment) are reported by writeArtifact.
  void addSection(std::string name, uint32_t kind, std::string bytes,
                  uint64_t alignment = 0);
  /// Adds a section whose bytes stay in caller-owned memory.
  void addSectionRef(std::string name, uint32_t kind, const void *data,
                     uint64_t size, uint64_t alignment = 0);

  /// Features every host-code variant needs (KilnCpuFeature bits).
  void setMinCpuFeatures(uint64_t features) { minCpuFeatures = features; }
  /// Comma-separated GPU architectures ("sm_90"); empty for CPU-only.
  void setGpuArchs(std::string archs) { gpuArchs = std::move(archs); }
  void setProgressCallback(ArtifactProgressFn fn) { progress = std::move(fn); }

  const std::vector<ArtifactSection> &getSections() const { return sections; }
  uint64_t getMinCpuFeatures() const { return minCpuFeatures; }
  const std::string &getGpuArchs() const { return gpuArchs; }
  const ArtifactProgressFn &getProgressCallback() const { return progress; }

private:
  std::vector<ArtifactSection> sections;
  uint64_t minCpuFeatures = 0;
  std::string gpuArchs;
  ArtifactProgressFn progress;
};

/// Lays out and serializes `builder` into one buffer-free stream. Writes
/// atomically: a temporary file in the directory of `path` is written,
/// fsynced and renamed over `path`. On failure returns false with a one-line
/// message in `err`, removes the temporary file and leaves `path` untouched.
bool writeArtifact(const std::string &path, const ArtifactBuilder &builder,
                   std::string &err);

/// The same artifact appended to a copy of the runtime executable at
/// `stubPath` (kiln-exe-stub), with a KilnExecutableTrailer at the end
/// (kiln-compile --emit=exe): written atomically, mode 0755.
bool writeExecutable(const std::string &path, const std::string &stubPath,
                     const ArtifactBuilder &builder, std::string &err);

} // namespace kiln

#endif // KILN_COMPILER_ARTIFACTWRITER_H
