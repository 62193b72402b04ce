//===- HostCode.h - load a shared object from memory ------------*- C++ -*-===//

#ifndef KILN_RUNTIME_HOSTCODE_H
#define KILN_RUNTIME_HOSTCODE_H

#include <cstdint>
#include <memory>
#include <string>

namespace kiln::rt {

/// An ELF shared object loaded from memory: the runtime's host-code sections
/// and the C API's compiled modules. The bytes are copied into an anonymous
/// memfd and dlopen'ed through /proc/self/fd/N, so nothing is written to disk.
/// The fd stays open while the object is loaded: glibc recognises an
/// already-loaded object by its path, and a reused fd number must not alias an
/// earlier model.
class HostCode {
public:
  /// Loads the `size` bytes at `data`; `name` names the object in errors
  /// ("host code '<name>'") and names the in-memory file ("kiln-<name>").
  static std::unique_ptr<HostCode> load(const uint8_t *data, uint64_t size,
                                        const std::string &name,
                                        std::string &err);
  ~HostCode();
  HostCode(const HostCode &) = delete;
  HostCode &operator=(const HostCode &) = delete;

  /// The address of `symbol` in the object, or null when it has none.
  void *lookup(const std::string &symbol) const;

private:
  HostCode() = default;
  void *handle = nullptr;
  int fd = -1;
};

} // namespace kiln::rt

#endif // KILN_RUNTIME_HOSTCODE_H
