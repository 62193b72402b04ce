//===- ArtifactLoader.h - map and verify a .kiln artifact -------*- C++ -*-===//
//
// Artifact::open maps the file read-only and verifies all of it (header,
// section table, every checksum, the manifest and the sections it names)
// before returning, so later code may trust every offset and size. File
// layout: include/kiln/runtime/Artifact.h.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_ARTIFACTLOADER_H
#define KILN_RUNTIME_ARTIFACTLOADER_H

#include "Runtime/Manifest.h"
#include "kiln/runtime/Artifact.h"

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace kiln::rt {

struct SectionView {
  std::string name;
  uint32_t kind = 0;
  uint64_t offset = 0;
  uint64_t size = 0;
  const uint8_t *data = nullptr; // inside the mapping

  std::string_view text() const {
    return {reinterpret_cast<const char *>(data), size_t(size)};
  }
};

class Artifact {
public:
  /// Maps and verifies `path`; nullptr with a one-line message on failure.
  static std::unique_ptr<Artifact> open(const std::string &path,
                                        std::string &err);
  ~Artifact();
  Artifact(const Artifact &) = delete;
  Artifact &operator=(const Artifact &) = delete;

  const std::string &getPath() const { return path; }
  const KilnArtifactHeader &getHeader() const { return header; }
  const std::vector<SectionView> &getSections() const { return sections; }
  const Manifest &getManifest() const { return manifest; }
  /// The section called `name`, or nullptr.
  const SectionView *find(std::string_view name) const;

private:
  Artifact() = default;
  bool verify(std::string &err);

  std::string path;
  void *mapping = nullptr;
  size_t mappingSize = 0;
  KilnArtifactHeader header{};
  std::vector<SectionView> sections;
  Manifest manifest;
};

} // namespace kiln::rt

#endif // KILN_RUNTIME_ARTIFACTLOADER_H
