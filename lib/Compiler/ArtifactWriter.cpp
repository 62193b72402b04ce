//===- ArtifactWriter.cpp - build and write a .kiln artifact --------------===//

#include "Compiler/ArtifactWriter.h"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <iterator>
#include <set>
#include <sys/stat.h>
#include <unistd.h>

using namespace kiln;

void ArtifactBuilder::addSection(std::string name, uint32_t kind,
                                 std::string bytes, uint64_t alignment) {
  ArtifactSection s;
  s.name = std::move(name);
  s.kind = kind;
  s.alignment = alignment;
  s.owned = std::move(bytes);
  sections.push_back(std::move(s));
}

void ArtifactBuilder::addSectionRef(std::string name, uint32_t kind,
                                    const void *data, uint64_t size,
                                    uint64_t alignment) {
  ArtifactSection s;
  s.name = std::move(name);
  s.kind = kind;
  s.alignment = alignment;
  s.external = data;
  s.externalSize = size;
  s.isExternal = true;
  sections.push_back(std::move(s));
}

static uint64_t defaultAlignment(uint32_t kind) {
  return kind == KILN_SECTION_WEIGHTS ? KILN_ARTIFACT_WEIGHTS_ALIGNMENT
                                      : KILN_ARTIFACT_DEFAULT_ALIGNMENT;
}

/// Fills the header and section table; checks what the loader would reject.
static bool layOut(const ArtifactBuilder &b, KilnArtifactHeader &header,
                   std::vector<KilnSectionEntry> &table, std::string &err) {
  const auto &sections = b.getSections();
  if (sections.size() > KILN_ARTIFACT_MAX_SECTIONS) {
    err = "too many sections: " + std::to_string(sections.size()) +
          " (at most " + std::to_string(KILN_ARTIFACT_MAX_SECTIONS) + ")";
    return false;
  }
  if (b.getGpuArchs().size() >= KILN_ARTIFACT_GPU_ARCHS_SIZE) {
    err = "GPU architecture list '" + b.getGpuArchs() + "' is longer than " +
          std::to_string(KILN_ARTIFACT_GPU_ARCHS_SIZE - 1) + " bytes";
    return false;
  }
  std::memset(&header, 0, sizeof(header));
  std::memcpy(header.magic, KILN_ARTIFACT_MAGIC, 8);
  header.formatVersion = KILN_ARTIFACT_FORMAT_VERSION;
  header.headerSize = sizeof(KilnArtifactHeader);
  header.sectionCount = static_cast<uint32_t>(sections.size());
  header.sectionEntrySize = sizeof(KilnSectionEntry);
  header.sectionTableOffset = sizeof(KilnArtifactHeader);
  header.minCpuFeatures = b.getMinCpuFeatures();
  std::memcpy(header.gpuArchs, b.getGpuArchs().data(), b.getGpuArchs().size());

  std::set<std::string> names;
  uint64_t offset = header.sectionTableOffset +
                    uint64_t(sections.size()) * sizeof(KilnSectionEntry);
  table.assign(sections.size(), KilnSectionEntry{});
  for (size_t i = 0; i < sections.size(); ++i) {
    const ArtifactSection &s = sections[i];
    KilnSectionEntry &e = table[i];
    if (s.name.empty() || s.name.size() >= KILN_ARTIFACT_SECTION_NAME_SIZE ||
        s.name.find('\0') != std::string::npos) {
      err = "section name '" + s.name + "' must have 1 to " +
            std::to_string(KILN_ARTIFACT_SECTION_NAME_SIZE - 1) + " bytes";
      return false;
    }
    if (!names.insert(s.name).second) {
      err = "duplicate section name '" + s.name + "'";
      return false;
    }
    if (!sectionKindName(s.kind)) {
      err =
          "section '" + s.name + "' has unknown kind " + std::to_string(s.kind);
      return false;
    }
    if (s.isExternal && !s.external && s.externalSize) {
      err = "section '" + s.name + "' refers to no memory";
      return false;
    }
    uint64_t align = s.alignment ? s.alignment : defaultAlignment(s.kind);
    if ((align & (align - 1)) || align > KILN_ARTIFACT_MAX_ALIGNMENT) {
      err = "section '" + s.name + "' alignment " + std::to_string(align) +
            " is not a power of two up to " +
            std::to_string(KILN_ARTIFACT_MAX_ALIGNMENT);
      return false;
    }
    offset = (offset + align - 1) & ~(align - 1);
    std::memcpy(e.name, s.name.data(), s.name.size());
    e.kind = s.kind;
    e.offset = offset;
    e.size = s.size();
    e.alignment = align;
    e.checksum = XXH64::hash(s.data(), s.size());
    offset += s.size();
  }
  header.fileSize = offset;
  header.sectionTableChecksum =
      XXH64::hash(table.data(), table.size() * sizeof(KilnSectionEntry));
  header.headerChecksum = artifactHeaderChecksum(header);
  return true;
}

namespace {
/// Streams bytes to a file descriptor and reports progress.
class Sink {
public:
  Sink(int fd, uint64_t total, const ArtifactProgressFn &progress)
      : fd(fd), total(total), progress(progress) {}

  bool write(const void *data, uint64_t size, std::string &err) {
    const char *p = static_cast<const char *>(data);
    // Chunks keep progress reports frequent on multi-gigabyte weights.
    constexpr uint64_t kChunk = 8u << 20;
    while (size) {
      size_t n = static_cast<size_t>(size < kChunk ? size : kChunk);
      ssize_t w = ::write(fd, p, n);
      if (w < 0) {
        if (errno == EINTR)
          continue;
        err = std::strerror(errno);
        return false;
      }
      p += w;
      size -= w;
      written += w;
      if (progress && !progress(written, total)) {
        err = "cancelled by the progress callback";
        return false;
      }
    }
    return true;
  }

  bool padTo(uint64_t offset, std::string &err) {
    static const char zeros[4096] = {};
    while (written < offset) {
      uint64_t n = offset - written;
      if (!write(zeros, n < sizeof(zeros) ? n : sizeof(zeros), err))
        return false;
    }
    return true;
  }

private:
  int fd;
  uint64_t total;
  const ArtifactProgressFn &progress;
  uint64_t written = 0;
};
} // namespace

/// Writes the artifact of `builder`, after the bytes of a runtime executable
/// when `stub` is given (then the artifact starts at the next
/// KILN_EXECUTABLE_ARTIFACT_ALIGNMENT boundary and the trailer ends the
/// file), atomically.
static bool writeFile(const std::string &path, const std::string *stub,
                      const ArtifactBuilder &builder, std::string &err) {
  std::string what = std::string("cannot write ") +
                     (stub ? "executable" : "artifact") + " '" + path + "': ";
  KilnArtifactHeader header;
  std::vector<KilnSectionEntry> table;
  std::string why;
  if (!layOut(builder, header, table, why)) {
    err = what + why;
    return false;
  }
  constexpr uint64_t kAlign = KILN_EXECUTABLE_ARTIFACT_ALIGNMENT;
  uint64_t base = stub ? (stub->size() + kAlign - 1) / kAlign * kAlign : 0;
  uint64_t total = base + header.fileSize +
                   (stub ? sizeof(KilnExecutableTrailer) : 0);

  // The temporary file lives next to the target so rename() is atomic.
  size_t slash = path.rfind('/');
  std::string dir = slash == std::string::npos ? "." : path.substr(0, slash);
  if (dir.empty())
    dir = "/";
  std::string tmp = path + ".tmp.XXXXXX";
  std::vector<char> tmpName(tmp.begin(), tmp.end());
  tmpName.push_back('\0');
  int fd = ::mkstemp(tmpName.data());
  if (fd < 0) {
    err = what + "cannot create a temporary file in '" + dir +
          "': " + std::strerror(errno);
    return false;
  }
  tmp.assign(tmpName.data());

  auto fail = [&](const std::string &reason) {
    ::close(fd);
    ::unlink(tmp.c_str());
    err = what + reason;
    return false;
  };

  Sink sink(fd, total, builder.getProgressCallback());
  if (stub && (!sink.write(stub->data(), stub->size(), why) ||
               !sink.padTo(base, why)))
    return fail("runtime stub: " + why);
  if (!sink.write(&header, sizeof(header), why) ||
      !sink.write(table.data(), table.size() * sizeof(KilnSectionEntry), why))
    return fail(why);
  const auto &sections = builder.getSections();
  for (size_t i = 0; i < sections.size(); ++i) {
    if (!sink.padTo(base + table[i].offset, why) ||
        !sink.write(sections[i].data(), sections[i].size(), why))
      return fail("section '" + sections[i].name + "': " + why);
  }
  if (stub) {
    KilnExecutableTrailer trailer{};
    trailer.artifactOffset = base;
    trailer.artifactSize = header.fileSize;
    std::memcpy(trailer.magic, KILN_EXECUTABLE_MAGIC, 8);
    if (!sink.padTo(base + header.fileSize, why) ||
        !sink.write(&trailer, sizeof(trailer), why))
      return fail("trailer: " + why);
  }
  // mkstemp creates 0600; an artifact is an ordinary readable file, an
  // executable an ordinary program.
  if (::fchmod(fd, stub ? 0755 : 0644) != 0)
    return fail(std::string("chmod: ") + std::strerror(errno));
  if (::fsync(fd) != 0)
    return fail(std::string("fsync: ") + std::strerror(errno));
  if (::close(fd) != 0) {
    ::unlink(tmp.c_str());
    err = what + "close: " + std::strerror(errno);
    return false;
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int e = errno;
    ::unlink(tmp.c_str());
    err = what + "rename: " + std::strerror(e);
    return false;
  }
  // Make the rename itself durable; failing here loses nothing already
  // visible, so it is not an error.
  int dirFd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dirFd >= 0) {
    ::fsync(dirFd);
    ::close(dirFd);
  }
  return true;
}

bool kiln::writeArtifact(const std::string &path,
                         const ArtifactBuilder &builder, std::string &err) {
  return writeFile(path, /*stub=*/nullptr, builder, err);
}

bool kiln::writeExecutable(const std::string &path,
                           const std::string &stubPath,
                           const ArtifactBuilder &builder, std::string &err) {
  std::ifstream in(stubPath, std::ios::binary);
  std::string stub((std::istreambuf_iterator<char>(in)),
                   std::istreambuf_iterator<char>());
  if (!in.is_open() || in.bad() || stub.compare(0, 4, "\x7f" "ELF") != 0) {
    err = "cannot write executable '" + path + "': the runtime stub '" +
          stubPath + "' cannot be read or is not an ELF executable";
    return false;
  }
  return writeFile(path, &stub, builder, err);
}
