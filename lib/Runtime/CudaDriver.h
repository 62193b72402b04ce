//===- CudaDriver.h - the CUDA driver API, loaded at run time ---*- C++ -*-===//
//
// The runtime never links libcuda: a machine without the NVIDIA driver must
// still load the library and run CPU artifacts. CudaDriver dlopens
// libcuda.so.1 (or $KILN_LIBCUDA, which tests point at a fake driver) and
// resolves each entry point below by the name cuda.h gives it, so versioned
// functions come out as their _v2 symbols and match cuda.h's prototypes.
// cuda.h is needed at compile time only, for the types.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_CUDADRIVER_H
#define KILN_RUNTIME_CUDADRIVER_H

#include <cuda.h>

#include <memory>
#include <string>

namespace kiln::rt {

// Every driver function the runtime calls. cuda.h #defines the versioned ones
// (cuMemAlloc -> cuMemAlloc_v2), so the member and symbol names follow it.
#define KILN_CUDA_DRIVER_FUNCTIONS(X)                                          \
  X(cuInit)                                                                    \
  X(cuDriverGetVersion)                                                        \
  X(cuGetErrorName)                                                            \
  X(cuGetErrorString)                                                          \
  X(cuDeviceGetCount)                                                          \
  X(cuDeviceGet)                                                               \
  X(cuDeviceGetName)                                                           \
  X(cuDeviceGetAttribute)                                                      \
  X(cuDevicePrimaryCtxRetain)                                                  \
  X(cuDevicePrimaryCtxRelease)                                                 \
  X(cuCtxSetCurrent)                                                           \
  X(cuStreamCreate)                                                            \
  X(cuStreamDestroy)                                                           \
  X(cuStreamSynchronize)                                                       \
  X(cuStreamQuery)                                                             \
  X(cuModuleLoadDataEx)                                                        \
  X(cuModuleUnload)                                                            \
  X(cuModuleGetFunction)                                                       \
  X(cuFuncSetAttribute)                                                        \
  X(cuMemGetInfo)                                                              \
  X(cuMemAlloc)                                                                \
  X(cuMemFree)                                                                 \
  X(cuMemcpyHtoDAsync)                                                         \
  X(cuMemcpyDtoHAsync)                                                         \
  X(cuMemsetD8Async)                                                           \
  X(cuLaunchKernel)                                                            \
  X(cuFuncGetParamInfo)                                                        \
  X(cuGraphCreate)                                                             \
  X(cuGraphAddKernelNode)                                                      \
  X(cuGraphInstantiate)                                                        \
  X(cuGraphExecKernelNodeSetParams)                                            \
  X(cuGraphLaunch)                                                             \
  X(cuGraphExecDestroy)                                                        \
  X(cuGraphDestroy)

class CudaDriver {
public:
  /// Loads the driver library and calls cuInit. nullptr with a one-line
  /// message when the library is missing, lacks a function, or finds no
  /// device.
  static std::unique_ptr<CudaDriver> load(std::string &err);
  ~CudaDriver();
  CudaDriver(const CudaDriver &) = delete;
  CudaDriver &operator=(const CudaDriver &) = delete;

  /// "CUDA_ERROR_OUT_OF_MEMORY (out of memory)".
  std::string describe(CUresult result) const;
  /// The CUDA version the driver supports, as "13.0".
  std::string versionString() const;
  int getVersion() const { return version; }

#define KILN_CUDA_DRIVER_MEMBER(name) decltype(&::name) name = nullptr;
  KILN_CUDA_DRIVER_FUNCTIONS(KILN_CUDA_DRIVER_MEMBER)
#undef KILN_CUDA_DRIVER_MEMBER

private:
  CudaDriver() = default;
  void *library = nullptr;
  int version = 0; // cuDriverGetVersion: 1000 * major + 10 * minor
};

} // namespace kiln::rt

#endif // KILN_RUNTIME_CUDADRIVER_H
