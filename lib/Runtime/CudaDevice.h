//===- CudaDevice.h - one GPU running a cuda artifact's kernels -*- C++ -*-===//
//
// CudaDevice owns what a loaded cuda artifact needs on its GPU: the device's
// primary context, one stream (everything of a model is ordered on it, so a
// decode step can be captured in a CUDA graph), the module loaded from
// the image that suits the device, a CUfunction per manifest kernel, and the
// launch callback that generated host code reaches through KilnRtContext.
//
// Decode steps run as one CUDA graph (runGraphStep): launching ~10 small
// kernels per layer one by one left whole-model decode bound by launch
// overhead. The first such step records its launches as a chain of kernel
// nodes; later steps run the step function again only to compare each launch
// with its node, update the nodes whose grid or arguments changed (the
// position, a new session's buffers) and launch the graph. A step that
// launches a different sequence of kernels records the graph anew.
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

#include <functional>
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
  /// Waits for the stream at most `seconds` (NCCL exchanges wait for other
  /// ranks without a deadline of their own). False with `err` after a
  /// timeout, which leaves the device unusable; other errors are left to
  /// finishStep.
  bool waitForStream(double seconds, std::string &err);

  /// Handed to the step function; its `launch` launches on this device.
  KilnRtContext *getContext() { return &launchContext.rt; }
  /// The stream every launch and copy of the model is ordered on.
  CUstream getStream() const { return stream; }
  /// Gives the step function `communicate` (a distributed model's GPU
  /// ranks). The exchanges go straight onto the stream, so decode steps stop
  /// running as graphs, which would reorder them after the recorded kernels.
  void attachCommunicator(decltype(KilnRtContext::communicate) communicate,
                          void *communicator);

  /// False under $KILN_CUDA_GRAPHS=0 or $KILN_CUDA_SYNC_LAUNCHES=1.
  bool graphsEnabled() const { return useGraphs; }
  /// Runs `step` (which calls the step function once) as the device's CUDA
  /// graph, recording or updating it as the header says; where the driver
  /// refuses the graph, launches the step kernel by kernel. Errors are the
  /// launches' (launchesSucceeded, finishStep).
  void runGraphStep(const std::function<void()> &step);

private:
  CudaDevice() = default;
  bool loadImage(const Artifact &artifact, std::string &err);
  bool check(CUresult result, const std::string &what, std::string &err);
  bool usable(std::string &err);
  void release(DeviceBuffer &buffer);
  static int32_t launch(KilnRtContext *rt, int32_t kernel,
                        const uint32_t grid[3], const uint32_t block[3],
                        uint32_t sharedBytes, void **params);
  /// The byte sizes of kernel `kernel`'s parameters (cuFuncGetParamInfo).
  const std::vector<size_t> &paramSizes(int32_t kernel);
  void dropGraph();
  friend class DeviceBuffer;

  /// What launch() does with a launch: run it, add it to the graph being
  /// recorded, or check it against the recorded node it should match.
  enum class LaunchMode { Direct, Record, Replay };
  /// One kernel node of the graph and the launch it was last set to.
  struct GraphNode {
    CUgraphNode node;
    int32_t kernel;
    uint32_t grid[3], block[3], sharedBytes;
    std::vector<char> args; // the parameter values, concatenated
  };

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
  bool useGraphs = true;
  std::vector<std::vector<size_t>> paramSizeCache; // per kernel, once known
  LaunchMode mode = LaunchMode::Direct;
  CUgraph graph = nullptr;
  CUgraphExec graphExec = nullptr;
  std::vector<GraphNode> graphNodes;
  size_t replayed = 0;      // launches of this replay so far
  bool graphStale = false;  // the launches do not fit the graph
  std::string description;
  std::string launchError; // first failed launch of the current step
  std::string brokenBy;    // the error that made the context unusable
};

} // namespace kiln::rt

#endif // KILN_RUNTIME_CUDADEVICE_H
