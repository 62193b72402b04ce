//===- HostCode.h - load a host-code section as a shared object -*- C++ -*-===//

#ifndef KILN_RUNTIME_HOSTCODE_H
#define KILN_RUNTIME_HOSTCODE_H

#include "kiln/runtime/HostABI.h"

#include <cstdint>
#include <memory>
#include <string>

namespace kiln::rt {

/// A host-code ELF shared object loaded from memory. The artifact's bytes are
/// copied into an anonymous memfd and dlopen'ed through /proc/self/fd/N, so
/// nothing is written to disk. The fd stays open while the object is loaded:
/// glibc recognises an already-loaded object by its path, and a reused fd
/// number must not alias an earlier model.
class HostCode {
public:
  static std::unique_ptr<HostCode> load(const uint8_t *data, uint64_t size,
                                        const std::string &sectionName,
                                        const std::string &symbol,
                                        std::string &err);
  ~HostCode();
  HostCode(const HostCode &) = delete;
  HostCode &operator=(const HostCode &) = delete;

  KilnForwardFn getForward() const { return forward; }

private:
  HostCode() = default;
  void *handle = nullptr;
  int fd = -1;
  KilnForwardFn forward = nullptr;
};

} // namespace kiln::rt

#endif // KILN_RUNTIME_HOSTCODE_H
