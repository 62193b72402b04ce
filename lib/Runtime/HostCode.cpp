//===- HostCode.cpp - load a host-code section as a shared object ---------===//

#include "Runtime/HostCode.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <dlfcn.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

using namespace kiln::rt;

static int createMemoryFile(const std::string &name) {
#ifdef MFD_CLOEXEC
  int fd = ::memfd_create(("kiln-" + name).c_str(), MFD_CLOEXEC);
  if (fd >= 0)
    return fd;
#endif
  // Kernels without memfd: an unlinked temporary file behaves the same.
  const char *dir = std::getenv("TMPDIR");
  std::string tmpl = std::string(dir && *dir ? dir : "/tmp") + "/kiln-XXXXXX";
  int fd2 = ::mkostemp(tmpl.data(), O_CLOEXEC);
  if (fd2 >= 0)
    ::unlink(tmpl.c_str());
  return fd2;
}

std::unique_ptr<HostCode> HostCode::load(const uint8_t *data, uint64_t size,
                                         const std::string &sectionName,
                                         const std::string &symbol,
                                         std::string &err) {
  std::string where = "host code '" + sectionName + "'";
  static const uint8_t kElfMagic[4] = {0x7f, 'E', 'L', 'F'};
  if (size < 64 || std::memcmp(data, kElfMagic, 4) != 0) {
    err = where + " is not an ELF shared object";
    return nullptr;
  }
  std::unique_ptr<HostCode> hc(new HostCode());
  hc->fd = createMemoryFile(sectionName);
  if (hc->fd < 0) {
    err = where + ": cannot create an in-memory file: " + std::strerror(errno);
    return nullptr;
  }
  const uint8_t *p = data;
  uint64_t left = size;
  while (left) {
    ssize_t w = ::write(hc->fd, p, left);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0) {
      err =
          where + ": cannot write the in-memory file: " + std::strerror(errno);
      return nullptr;
    }
    p += w;
    left -= w;
  }
  std::string procPath = "/proc/self/fd/" + std::to_string(hc->fd);
  // RTLD_LOCAL keeps two models' symbols apart; RTLD_NOW reports unresolved
  // symbols here instead of in the middle of a forward pass.
  hc->handle = ::dlopen(procPath.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!hc->handle) {
    const char *e = ::dlerror();
    err = where + ": dlopen failed: " + (e ? e : "unknown error");
    return nullptr;
  }
  ::dlerror();
  void *sym = ::dlsym(hc->handle, symbol.c_str());
  if (!sym) {
    err = where + " has no entry symbol '" + symbol + "'";
    return nullptr;
  }
  hc->forward = reinterpret_cast<KilnForwardFn>(sym);
  return hc;
}

HostCode::~HostCode() {
  if (handle)
    ::dlclose(handle);
  if (fd >= 0)
    ::close(fd);
}
