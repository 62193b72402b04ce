//===- SystemLibrary.h - a system library loaded at run time ----*- C++ -*-===//
//
// The runtime links none of the libraries that GPU or distributed runs need
// (libcuda, libmpi, libnccl): a machine without them still runs CPU
// artifacts. Each is dlopen()ed when first needed, from the path an
// environment variable names (tests point it at a fake) or else its usual
// soname, and its entry points are resolved by name.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_SYSTEMLIBRARY_H
#define KILN_RUNTIME_SYSTEMLIBRARY_H

#include <cstdlib>
#include <dlfcn.h>
#include <string>
#include <type_traits>

namespace kiln::rt {

struct SystemLibrary {
  void *handle = nullptr;
  /// What was loaded, or tried.
  std::string path;
  /// dlerror()'s text when open() failed.
  std::string whyNot;
  /// The first entry point resolve() did not find ("" when all were).
  std::string firstMissing;

  /// dlopen()s $`envVar`, or `soname` when it is unset or empty.
  bool open(const char *envVar, const char *soname, int flags) {
    const char *override = std::getenv(envVar);
    path = override && *override ? override : soname;
    handle = ::dlopen(path.c_str(), flags);
    if (!handle) {
      const char *why = ::dlerror();
      whyNot = why ? why : "dlopen failed";
    }
    return handle != nullptr;
  }

  /// Points `slot` at the symbol `name` (null if the library lacks it).
  template <typename Pointer> void resolve(Pointer &slot, const char *name) {
    slot = reinterpret_cast<std::remove_reference_t<Pointer>>(
        ::dlsym(handle, name));
    if (!slot && firstMissing.empty())
      firstMissing = name;
  }
};

} // namespace kiln::rt

#endif // KILN_RUNTIME_SYSTEMLIBRARY_H
