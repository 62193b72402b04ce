//===- CudaDriver.cpp - the CUDA driver API, loaded at run time -----------===//

#include "Runtime/CudaDriver.h"

#include "Runtime/SystemLibrary.h"

using namespace kiln::rt;

#define KILN_CUDA_STRINGIFY_EXPANDED(name) #name
#define KILN_CUDA_SYMBOL(name) KILN_CUDA_STRINGIFY_EXPANDED(name)

std::unique_ptr<CudaDriver> CudaDriver::load(std::string &err) {
  SystemLibrary lib;
  std::unique_ptr<CudaDriver> d(new CudaDriver());
  if (!lib.open("KILN_LIBCUDA", "libcuda.so.1", RTLD_NOW | RTLD_LOCAL)) {
    err = "the NVIDIA driver (libcuda.so.1) is not installed (" + lib.whyNot +
          ")";
    return nullptr;
  }
  d->library = lib.handle;
#define KILN_CUDA_RESOLVE(name) lib.resolve(d->name, KILN_CUDA_SYMBOL(name));
  KILN_CUDA_DRIVER_FUNCTIONS(KILN_CUDA_RESOLVE)
#undef KILN_CUDA_RESOLVE
  if (!lib.firstMissing.empty()) {
    err = "the NVIDIA driver " + lib.path + " has no " + lib.firstMissing +
          ": it is older than CUDA 12.4";
    return nullptr;
  }

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
