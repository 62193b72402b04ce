//===- HostCode.cpp - load a shared object from memory -------------------===//

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
                                         const std::string &name,
                                         std::string &err) {
  std::string where = "host code '" + name + "'";
  static const uint8_t kElfMagic[4] = {0x7f, 'E', 'L', 'F'};
  if (size < 64 || std::memcmp(data, kElfMagic, 4) != 0) {
    err = where + " is not an ELF shared object";
    return nullptr;
  }
  std::unique_ptr<HostCode> hc(new HostCode());
  hc->fd = createMemoryFile(name);
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
  // glibc finds loaded objects by name: an object an earlier model loaded
  // from this fd number that stayed loaded (linked with -z nodelete) would
  // be handed back instead of this code.
  if (void *stale = ::dlopen(procPath.c_str(), RTLD_NOW | RTLD_NOLOAD)) {
    ::dlclose(stale);
    err = where + ": " + procPath +
          " still names the code of an earlier model, which was linked with "
          "-z nodelete and cannot be unloaded";
    return nullptr;
  }
  // RTLD_LOCAL keeps two models' symbols apart; RTLD_NOW reports unresolved
  // symbols here instead of in the middle of a forward pass.
  hc->handle = ::dlopen(procPath.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!hc->handle) {
    const char *e = ::dlerror();
    err = where + ": dlopen failed: " + (e ? e : "unknown error");
    return nullptr;
  }
  return hc;
}

void *HostCode::lookup(const std::string &symbol) const {
  ::dlerror();
  return ::dlsym(handle, symbol.c_str());
}

HostCode::~HostCode() {
  if (handle)
    ::dlclose(handle);
  if (fd >= 0)
    ::close(fd);
}
