//===- Artifact.cpp - map and verify a .kiln artifact ---------------------===//
//
// Nothing read from the file is used before it is checked: sizes are compared
// with the file size from fstat before any page is touched (so a truncated
// file is an error, not SIGBUS), and all offset arithmetic is overflow-checked.
//
//===----------------------------------------------------------------------===//

#include "Runtime/ArtifactLoader.h"

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstring>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

using namespace kiln::rt;

static std::string hex(uint64_t v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "0x%016" PRIx64, v);
  return buf;
}

/// Where the artifact lies in a file of `fileSize` bytes: an executable from
/// kiln-compile --emit=exe (ELF magic) holds it where its trailer says; any
/// other file is the artifact itself.
static bool locateArtifact(int fd, uint64_t fileSize, uint64_t &offset,
                           uint64_t &size, std::string &err) {
  offset = 0;
  size = fileSize;
  static const char kElfMagic[4] = {0x7f, 'E', 'L', 'F'};
  char magic[4];
  if (fileSize < sizeof(KilnArtifactHeader) ||
      ::pread(fd, magic, sizeof(magic), 0) != ssize_t(sizeof(magic)) ||
      std::memcmp(magic, kElfMagic, sizeof(magic)) != 0)
    return true;
  KilnExecutableTrailer trailer;
  uint64_t end = fileSize - sizeof(trailer);
  if (::pread(fd, &trailer, sizeof(trailer), off_t(end)) !=
          ssize_t(sizeof(trailer)) ||
      std::memcmp(trailer.magic, KILN_EXECUTABLE_MAGIC, 8) != 0) {
    err = "an executable with no compiled model at its end (truncated, or "
          "not made by kiln-compile --emit=exe)";
    return false;
  }
  if (trailer.artifactOffset % KILN_EXECUTABLE_ARTIFACT_ALIGNMENT ||
      trailer.artifactOffset > end ||
      trailer.artifactSize != end - trailer.artifactOffset) {
    err = "the executable's trailer at offset " + std::to_string(end) +
          " places the model at [" + std::to_string(trailer.artifactOffset) +
          ", +" + std::to_string(trailer.artifactSize) +
          "), which does not end at the trailer on a " +
          std::to_string(KILN_EXECUTABLE_ARTIFACT_ALIGNMENT) +
          "-byte boundary (truncated or corrupt)";
    return false;
  }
  offset = trailer.artifactOffset;
  size = trailer.artifactSize;
  return true;
}

std::unique_ptr<Artifact> Artifact::open(const std::string &path,
                                         std::string &err) {
  std::unique_ptr<Artifact> a(new Artifact());
  a->path = path;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    err = path + ": cannot open: " + std::strerror(errno);
    return nullptr;
  }
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    err = path + ": not a regular file";
    ::close(fd);
    return nullptr;
  }
  uint64_t offset = 0, size = 0;
  std::string why;
  if (!locateArtifact(fd, uint64_t(st.st_size), offset, size, why)) {
    err = path + ": " + why;
    ::close(fd);
    return nullptr;
  }
  if (size < sizeof(KilnArtifactHeader)) {
    err = path + ": file is " + std::to_string(size) +
          " bytes, shorter than the " +
          std::to_string(sizeof(KilnArtifactHeader)) +
          "-byte header (truncated or not a .kiln artifact)";
    ::close(fd);
    return nullptr;
  }
  void *m = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, off_t(offset));
  int mapErrno = errno;
  ::close(fd);
  if (m == MAP_FAILED) {
    err = path + ": cannot map: " + std::strerror(mapErrno);
    return nullptr;
  }
  a->mapping = m;
  a->mappingSize = size;
  if (!a->verify(why)) {
    err = path + ": " + why;
    return nullptr;
  }
  return a;
}

Artifact::~Artifact() {
  if (mapping)
    ::munmap(mapping, mappingSize);
}

const SectionView *Artifact::find(std::string_view name) const {
  for (const SectionView &s : sections)
    if (s.name == name)
      return &s;
  return nullptr;
}

static bool isPowerOfTwo(uint64_t v) { return v && !(v & (v - 1)); }

bool Artifact::verify(std::string &err) {
  const uint8_t *base = static_cast<const uint8_t *>(mapping);
  const uint64_t fileSize = mappingSize;
  std::memcpy(&header, base, sizeof(header));

  if (std::memcmp(header.magic, KILN_ARTIFACT_MAGIC, 8) != 0) {
    err = "bad magic at offset 0 (not a .kiln artifact)";
    return false;
  }
  if (header.formatVersion != KILN_ARTIFACT_FORMAT_VERSION) {
    err = "unsupported format version " + std::to_string(header.formatVersion) +
          " at offset 8 (this runtime "
          "reads version " +
          std::to_string(KILN_ARTIFACT_FORMAT_VERSION) + ")";
    return false;
  }
  if (header.headerSize != sizeof(KilnArtifactHeader)) {
    err = "header size " + std::to_string(header.headerSize) +
          " at offset 12, expected " +
          std::to_string(sizeof(KilnArtifactHeader));
    return false;
  }
  uint64_t headerSum = kiln::artifactHeaderChecksum(header);
  if (headerSum != header.headerChecksum) {
    err = "header checksum mismatch at offset 120 (stored " +
          hex(header.headerChecksum) + ", computed " + hex(headerSum) +
          "): the header is corrupt";
    return false;
  }
  if (header.fileSize != fileSize) {
    err = "file is " + std::to_string(fileSize) +
          " bytes but its header says " + std::to_string(header.fileSize) +
          (fileSize < header.fileSize ? " (truncated)" : " (trailing bytes)");
    return false;
  }
  if (header.flags != 0) {
    err = "unknown header flags " + hex(header.flags) + " at offset 16";
    return false;
  }
  if (header.gpuArchs[KILN_ARTIFACT_GPU_ARCHS_SIZE - 1] != '\0') {
    err = "GPU architecture list at offset 64 is not NUL-terminated";
    return false;
  }
  if (header.sectionCount > KILN_ARTIFACT_MAX_SECTIONS) {
    err = "section count " + std::to_string(header.sectionCount) +
          " at offset 24 exceeds the limit of " +
          std::to_string(KILN_ARTIFACT_MAX_SECTIONS);
    return false;
  }
  if (header.sectionEntrySize != sizeof(KilnSectionEntry)) {
    err = "section entry size " + std::to_string(header.sectionEntrySize) +
          " at offset 28, expected " + std::to_string(sizeof(KilnSectionEntry));
    return false;
  }
  // Count and entry size are bounded above, so this product cannot overflow.
  uint64_t tableSize = uint64_t(header.sectionCount) * sizeof(KilnSectionEntry);
  uint64_t tableOff = header.sectionTableOffset;
  if (tableOff % 8 || tableOff < sizeof(KilnArtifactHeader) ||
      tableOff > fileSize || tableSize > fileSize - tableOff) {
    err = "section table at offset " + std::to_string(tableOff) + " (" +
          std::to_string(tableSize) + " bytes) is not inside the " +
          std::to_string(fileSize) + "-byte file";
    return false;
  }
  uint64_t tableSum = kiln::XXH64::hash(base + tableOff, tableSize);
  if (tableSum != header.sectionTableChecksum) {
    err = "section table checksum mismatch at offset " +
          std::to_string(tableOff) + " (stored " +
          hex(header.sectionTableChecksum) + ", computed " + hex(tableSum) +
          ")";
    return false;
  }

  std::vector<KilnSectionEntry> entries(header.sectionCount);
  if (tableSize)
    std::memcpy(entries.data(), base + tableOff, tableSize);
  for (uint32_t i = 0; i < header.sectionCount; ++i) {
    const KilnSectionEntry &e = entries[i];
    uint64_t entryOff = tableOff + uint64_t(i) * sizeof(KilnSectionEntry);
    std::string where = "section " + std::to_string(i) + " (entry at offset " +
                        std::to_string(entryOff) + ")";
    const char *nameEnd = static_cast<const char *>(
        std::memchr(e.name, '\0', KILN_ARTIFACT_SECTION_NAME_SIZE));
    if (!nameEnd || nameEnd == e.name) {
      err = where + ": name is empty or not NUL-terminated";
      return false;
    }
    SectionView s;
    s.name.assign(e.name, nameEnd);
    where = "section '" + s.name + "' (entry at offset " +
            std::to_string(entryOff) + ")";
    if (find(s.name)) {
      err = where + ": duplicate section name";
      return false;
    }
    if (!kiln::sectionKindName(e.kind)) {
      err = where + ": unknown kind " + std::to_string(e.kind);
      return false;
    }
    if (e.flags || e.reserved) {
      err = where + ": reserved fields are not zero";
      return false;
    }
    if (!isPowerOfTwo(e.alignment) ||
        e.alignment > KILN_ARTIFACT_MAX_ALIGNMENT) {
      err = where + ": alignment " + std::to_string(e.alignment) +
            " is not a power of two up to " +
            std::to_string(KILN_ARTIFACT_MAX_ALIGNMENT);
      return false;
    }
    if (e.offset % e.alignment) {
      err = where + ": offset " + std::to_string(e.offset) +
            " is not a multiple of its alignment " +
            std::to_string(e.alignment);
      return false;
    }
    if (e.offset > fileSize || e.size > fileSize - e.offset) {
      err = where + ": bytes [" + std::to_string(e.offset) + ", +" +
            std::to_string(e.size) + ") are outside the " +
            std::to_string(fileSize) + "-byte file";
      return false;
    }
    if (e.size && e.offset < tableOff + tableSize) {
      err = where + ": offset " + std::to_string(e.offset) +
            " overlaps the header or section table";
      return false;
    }
    s.kind = e.kind;
    s.offset = e.offset;
    s.size = e.size;
    s.data = base + e.offset;
    sections.push_back(std::move(s));
  }

  // Overlap: sort the non-empty sections by offset and compare neighbours.
  std::vector<const SectionView *> byOffset;
  for (const SectionView &s : sections)
    if (s.size)
      byOffset.push_back(&s);
  std::sort(byOffset.begin(), byOffset.end(),
            [](auto *a, auto *b) { return a->offset < b->offset; });
  for (size_t i = 1; i < byOffset.size(); ++i) {
    const SectionView *prev = byOffset[i - 1], *cur = byOffset[i];
    if (cur->offset < prev->offset + prev->size) {
      err = "section '" + cur->name + "' at offset " +
            std::to_string(cur->offset) + " overlaps section '" + prev->name +
            "' [" + std::to_string(prev->offset) + ", " +
            std::to_string(prev->offset + prev->size) + ")";
      return false;
    }
  }

  for (size_t i = 0; i < sections.size(); ++i) {
    const SectionView &s = sections[i];
    uint64_t sum = kiln::XXH64::hash(s.data, s.size);
    if (sum != entries[i].checksum) {
      err = "section '" + s.name + "' at offset " + std::to_string(s.offset) +
            " (" + std::to_string(s.size) +
            " bytes): checksum mismatch "
            "(stored " +
            hex(entries[i].checksum) + ", computed " + hex(sum) +
            "): the file is corrupt";
      return false;
    }
  }

  const SectionView *manifestSection = nullptr;
  for (const SectionView &s : sections) {
    if (s.kind != KILN_SECTION_MANIFEST)
      continue;
    if (manifestSection) {
      err = "more than one manifest section ('" + manifestSection->name +
            "' and '" + s.name + "')";
      return false;
    }
    manifestSection = &s;
  }
  if (!manifestSection) {
    err = "no manifest section";
    return false;
  }
  if (!parseManifest(manifestSection->text(), manifest, err))
    return false;

  auto expect = [&](const std::string &name, uint32_t kind, const char *key) {
    const SectionView *s = find(name);
    if (!s) {
      err = std::string("manifest: '") + key + "' names section '" + name +
            "', which the artifact does not have";
      return false;
    }
    if (s->kind != kind) {
      err = std::string("manifest: '") + key + "' names section '" + name +
            "' of kind " + kiln::sectionKindName(s->kind) + ", expected " +
            kiln::sectionKindName(kind);
      return false;
    }
    return true;
  };
  for (size_t i = 0; i < manifest.host.size(); ++i)
    if (!expect(manifest.host[i].section, KILN_SECTION_HOST_CODE,
                ("host[" + std::to_string(i) + "].section").c_str()))
      return false;
  for (size_t i = 0; i < manifest.cuda.images.size(); ++i) {
    const CudaImage &image = manifest.cuda.images[i];
    if (!expect(image.section,
                image.format == CudaImage::PTX ? KILN_SECTION_PTX
                                               : KILN_SECTION_CUBIN,
                ("cuda.images[" + std::to_string(i) + "].section").c_str()))
      return false;
  }
  return expect(manifest.weightsSection, KILN_SECTION_WEIGHTS,
                "weights.section") &&
         expect(manifest.tokenizerSection, KILN_SECTION_VOCAB,
                "tokenizer.section");
}
