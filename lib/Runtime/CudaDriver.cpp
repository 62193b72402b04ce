//===- CudaDriver.cpp - the CUDA driver API, loaded at run time -----------===//

#include "Runtime/CudaDriver.h"

#include <cstdlib>
#include <dlfcn.h>

using namespace kiln::rt;

#define KILN_CUDA_STRINGIFY_EXPANDED(name) #name
#define KILN_CUDA_SYMBOL(name) KILN_CUDA_STRINGIFY_EXPANDED(name)

std::unique_ptr<CudaDriver> CudaDriver::load(std::string &err) {
  const char *override = std::getenv("KILN_LIBCUDA");
  const char *path = override && *override ? override : "libcuda.so.1";
  std::unique_ptr<CudaDriver> d(new CudaDriver());
  d->library = ::dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!d->library) {
    const char *why = ::dlerror();
    err = std::string("the NVIDIA driver (libcuda.so.1) is not installed (") +
          (why ? why : path) + ")";
    return nullptr;
  }
#define KILN_CUDA_RESOLVE(name)                                                \
  d->name = reinterpret_cast<decltype(d->name)>(                               \
      ::dlsym(d->library, KILN_CUDA_SYMBOL(name)));                            \
  if (!d->name) {                                                              \
    err = std::string("the NVIDIA driver ") + path + " has no " +              \
          KILN_CUDA_SYMBOL(name) + ": it is older than CUDA 12.4";             \
    return nullptr;                                                            \
  }
  KILN_CUDA_DRIVER_FUNCTIONS(KILN_CUDA_RESOLVE)
#undef KILN_CUDA_RESOLVE

  if (CUresult r = d->cuInit(0)) {
    err = r == CUDA_ERROR_NO_DEVICE
              ? "no CUDA device: the NVIDIA driver finds none"
              : "the NVIDIA driver failed to start: cuInit: " + d->describe(r);
    return nullptr;
  }
  if (CUresult r = d->cuDriverGetVersion(&d->version)) {
    err = "cuDriverGetVersion: " + d->describe(r);
    return nullptr;
  }
  return d;
}

// The library stays loaded: libcuda registers exit handlers and keeps
// threads, so unloading it while the process runs is not safe.
CudaDriver::~CudaDriver() = default;

std::string CudaDriver::describe(CUresult result) const {
  const char *name = nullptr, *text = nullptr;
  if (cuGetErrorName(result, &name) != CUDA_SUCCESS || !name)
    return "CUresult " + std::to_string(int(result));
  if (cuGetErrorString(result, &text) != CUDA_SUCCESS || !text)
    return name;
  return std::string(name) + " (" + text + ")";
}

std::string CudaDriver::versionString() const {
  return std::to_string(version / 1000) + "." +
         std::to_string(version % 1000 / 10);
}
