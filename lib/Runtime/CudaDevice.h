//===- CudaDevice.h - one GPU running a cuda artifact's kernels -*- C++ -*-===//
//
// CudaDevice owns what a loaded cuda artifact needs on its GPU: the device's
// primary context, one stream (everything of a model is ordered on it, so a
// decode step can later be captured in a CUDA graph), the module loaded from
// the image that suits the device, a CUfunction per manifest kernel, and the
// launch callback that generated host code reaches through KilnRtContext.
//
// Errors: a failed launch is recorded and returned to generated code, which
// ignores it; the step then fails with the first one. An error the driver
// reports when the stream is synchronized leaves the context unusable (an
// illegal address or a trap in a kernel is sticky in CUDA), so every later
// call fails with a message saying so instead of touching the device again.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_CUDADEVICE_H
#define KILN_RUNTIME_CUDADEVICE_H

#include "Runtime/ArtifactLoader.h"
#include "Runtime/CudaDriver.h"
#include "kiln/runtime/HostABI.h"

#include <memory>
#include <string>
#include <vector>

namespace kiln::rt {

class CudaDevice;

/// Device memory, freed on destruction.
class DeviceBuffer {
public:
  DeviceBuffer() = default;
  ~DeviceBuffer();
  DeviceBuffer(const DeviceBuffer &) = delete;
  DeviceBuffer &operator=(const DeviceBuffer &) = delete;
  CUdeviceptr get() const { return ptr; }
  void *address() const { return reinterpret_cast<void *>(ptr); }
  uint64_t size() const { return bytes; }

private:
  friend class CudaDevice;
  CudaDevice *owner = nullptr;
  CUdeviceptr ptr = 0;
  uint64_t bytes = 0;
};

class CudaDevice {
public:
  /// Opens device `ordinal` and loads the artifact's GPU image for it
  /// (manifest cuda.images: a cubin for the device's architecture, else PTX
  /// the driver compiles) with every kernel of cuda.kernels.
  static std::unique_ptr<CudaDevice> open(const Artifact &artifact, int ordinal,
                                          std::string &err);
  ~CudaDevice();
  CudaDevice(const CudaDevice &) = delete;
  CudaDevice &operator=(const CudaDevice &) = delete;

  /// "cuda:0 (NVIDIA H200, sm_90, cubin sm_90a)".
  const std::string &getDescription() const { return description; }

  /// Zeroed device memory of `size` bytes (at least one byte, so generated
  /// code never sees null); `what` names it in the out-of-memory message.
  bool allocate(uint64_t size, const char *what, DeviceBuffer &out,
                std::string &err);
  /// Stream-ordered copies and fill; errors surface at the next finishStep.
  bool upload(const DeviceBuffer &dst, const void *src, uint64_t size,
              std::string &err);
  bool download(void *dst, const DeviceBuffer &src, uint64_t size,
                std::string &err);
  bool zero(const DeviceBuffer &buffer, std::string &err);

  /// Before calling a step function: makes the context current and forgets
  /// the previous step's launch error. Fails when the device is unusable.
  bool beginStep(std::string &err);
  /// The first launch error of this step, if any (no synchronization).
  bool launchesSucceeded(std::string &err);
  /// Waits for the stream; any error there makes the device unusable.
  bool finishStep(std::string &err);

  /// Handed to the step function; its `launch` launches on this device.
  KilnRtContext *getContext() { return &launchContext.rt; }

private:
  CudaDevice() = default;
  bool loadImage(const Artifact &artifact, std::string &err);
  bool check(CUresult result, const std::string &what, std::string &err);
  bool usable(std::string &err);
  void release(DeviceBuffer &buffer);
  static int32_t launch(KilnRtContext *rt, int32_t kernel,
                        const uint32_t grid[3], const uint32_t block[3],
                        uint32_t sharedBytes, void **params);
  friend class DeviceBuffer;

  // KilnRtContext first, so launch() finds the device from the pointer that
  // generated code hands back.
  struct LaunchContext {
    KilnRtContext rt;
    CudaDevice *device;
  } launchContext{};

  std::unique_ptr<CudaDriver> driver;
  int ordinal = 0;
  CUdevice device = 0;
  CUcontext context = nullptr;
  CUstream stream = nullptr;
  CUmodule module = nullptr;
  std::vector<std::string> kernelNames;
  std::vector<CUfunction> functions;
  std::vector<uint32_t> sharedLimit; // dynamic shared memory allowed so far
  bool syncEachLaunch = false;       // $KILN_CUDA_SYNC_LAUNCHES=1: debugging
  std::string description;
  std::string launchError; // first failed launch of the current step
  std::string brokenBy;    // the error that made the context unusable
};

} // namespace kiln::rt

#endif // KILN_RUNTIME_CUDADEVICE_H
