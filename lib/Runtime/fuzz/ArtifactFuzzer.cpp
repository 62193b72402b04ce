//===- ArtifactFuzzer.cpp - libFuzzer entry for the .kiln loader ----------===//
//
// Artifact::open maps a file, so each input is written to a memfd and opened
// through /proc/self/fd: the mmap and fstat paths run as they do for a real
// artifact. Input layout: one control byte, then the file. When bit 0 of the
// control byte is set the harness first rewrites the header, section table
// and section checksums (and the header's file size) to match the bytes, so
// that mutations reach the checks behind the checksums instead of stopping at
// the first mismatch; clear, the bytes are loaded exactly as given.
//
// Any input must either load or return an error; a crash, sanitizer report
// or leak is a bug. On success every section's bytes and the manifest's
// fields are read so that ASan checks the validated ranges.
//
//===----------------------------------------------------------------------===//

#include "Runtime/ArtifactLoader.h"

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <sys/mman.h>
#include <unistd.h>
#include <vector>

namespace {

/// Makes every checksum in `file` (and header.fileSize) agree with its bytes,
/// as far as the header and table describe ranges inside the file.
void fixChecksums(std::vector<uint8_t> &file) {
  if (file.size() < sizeof(KilnArtifactHeader))
    return;
  KilnArtifactHeader header;
  std::memcpy(&header, file.data(), sizeof(header));
  header.fileSize = file.size();
  uint64_t count = header.sectionCount;
  uint64_t tableOff = header.sectionTableOffset;
  if (count <= KILN_ARTIFACT_MAX_SECTIONS && tableOff <= file.size() &&
      count * sizeof(KilnSectionEntry) <= file.size() - tableOff) {
    for (uint64_t i = 0; i < count; ++i) {
      KilnSectionEntry e;
      uint8_t *at = file.data() + tableOff + i * sizeof(KilnSectionEntry);
      std::memcpy(&e, at, sizeof(e));
      if (e.offset <= file.size() && e.size <= file.size() - e.offset)
        e.checksum = kiln::XXH64::hash(file.data() + e.offset, e.size);
      std::memcpy(at, &e, sizeof(e));
    }
    header.sectionTableChecksum = kiln::XXH64::hash(
        file.data() + tableOff, count * sizeof(KilnSectionEntry));
  }
  header.headerChecksum = kiln::artifactHeaderChecksum(header);
  std::memcpy(file.data(), &header, sizeof(header));
}

int openMemfd() {
  int fd = memfd_create("kiln-artifact-fuzz", MFD_CLOEXEC);
  if (fd < 0) {
    std::perror("memfd_create");
    std::abort();
  }
  return fd;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0)
    return 0;
  std::vector<uint8_t> file(data + 1, data + size);
  if (data[0] & 1)
    fixChecksums(file);

  // One memfd for the whole run, truncated and rewritten per input.
  static int fd = openMemfd();
  static const std::string path = "/proc/self/fd/" + std::to_string(fd);
  if (ftruncate(fd, 0) != 0 ||
      (!file.empty() && pwrite(fd, file.data(), file.size(), 0) !=
                            static_cast<ssize_t>(file.size()))) {
    std::perror("memfd write");
    std::abort();
  }

  std::string err;
  std::unique_ptr<kiln::rt::Artifact> artifact =
      kiln::rt::Artifact::open(path, err);
  if (!artifact) {
    if (err.empty())
      std::abort(); // every failure must say why
    return 0;
  }
  volatile uint8_t sink = 0;
  for (const kiln::rt::SectionView &s : artifact->getSections()) {
    if (s.size)
      sink = sink ^ s.data[0] ^ s.data[s.size - 1];
    if (artifact->find(s.name) != &s)
      std::abort(); // names are unique
  }
  const kiln::rt::Manifest &m = artifact->getManifest();
  for (const kiln::rt::HostVariant &h : m.host)
    if (!artifact->find(h.section))
      std::abort(); // the loader checked that every named section exists
  if (!artifact->find(m.weightsSection) || !artifact->find(m.tokenizerSection))
    std::abort();
  (void)sink;
  return 0;
}
