//===- CudaDevice.cpp - one GPU running a cuda artifact's kernels ---------===//

#include "Runtime/CudaDevice.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>

using namespace kiln::rt;

DeviceBuffer::~DeviceBuffer() {
  if (owner)
    owner->release(*this);
}

void CudaDevice::release(DeviceBuffer &buffer) {
  // After a sticky error the driver refuses every call; the memory goes away
  // with the context.
  if (buffer.ptr && brokenBy.empty()) {
    driver->cuCtxSetCurrent(context);
    driver->cuMemFree(buffer.ptr);
  }
  buffer.ptr = 0;
  buffer.owner = nullptr;
}

static std::string archName(int major, int minor) {
  return "sm_" + std::to_string(major) + std::to_string(minor);
}

static const char *formatName(const CudaImage &image) {
  return image.format == CudaImage::PTX ? "ptx" : "cubin";
}

/// The image that runs best on a device of compute capability major.minor,
/// or -1. A cubin runs on its own major version from its minor up ('a'
/// cubins only on exactly their chip) and beats PTX, which the driver must
/// compile; PTX runs on its architecture and every later one ('a' PTX only
/// on its chip, 'f' only in its major version), and newer PTX can use more
/// of the chip.
static int chooseImage(const std::vector<CudaImage> &images, int major,
                       int minor) {
  int best = -1, bestScore = -1;
  for (size_t i = 0; i < images.size(); ++i) {
    const CudaImage &im = images[i];
    bool exact = im.major == major && im.minor == minor;
    bool sameMajor = im.major == major && im.minor <= minor;
    bool older = im.major * 10 + im.minor <= major * 10 + minor;
    int score = -1;
    if (im.format == CudaImage::Cubin) {
      if (im.suffix == 'a' ? exact : sameMajor)
        score = 10000 + (im.suffix == 'a' ? 1000 : 0) + im.minor;
    } else if (im.suffix == 'a'   ? exact
               : im.suffix == 'f' ? sameMajor
                                  : older) {
      score = im.major * 10 + im.minor;
    }
    if (score > bestScore)
      best = int(i), bestScore = score;
  }
  return best;
}

/// The ".version X.Y" of PTX text, or "unknown".
static std::string ptxVersion(const std::string &ptx) {
  size_t at = ptx.find(".version");
  if (at == std::string::npos)
    return "unknown";
  at += 8;
  while (at < ptx.size() && (ptx[at] == ' ' || ptx[at] == '\t'))
    ++at;
  size_t end = ptx.find_first_not_of("0123456789.", at);
  std::string v = ptx.substr(at, end == std::string::npos ? end : end - at);
  return v.empty() ? "unknown" : v;
}

/// The JIT log on one line.
static std::string oneLine(const char *log) {
  std::string s;
  for (const char *p = log; *p; ++p) {
    if (*p == '\n') {
      if (p[1])
        s += "; ";
    } else {
      s += *p;
    }
  }
  return s;
}

bool CudaDevice::check(CUresult result, const std::string &what,
                       std::string &err) {
  if (result == CUDA_SUCCESS)
    return true;
  err = what + ": " + driver->describe(result);
  return false;
}

std::unique_ptr<CudaDevice> CudaDevice::open(const Artifact &artifact,
                                             int ordinal, std::string &err) {
  std::unique_ptr<CudaDevice> d(new CudaDevice());
  d->driver = CudaDriver::load(err);
  if (!d->driver)
    return nullptr;
  CudaDriver &cu = *d->driver;
  int count = 0;
  if (!d->check(cu.cuDeviceGetCount(&count), "cuDeviceGetCount", err))
    return nullptr;
  if (count == 0) {
    err = "no CUDA device: the NVIDIA driver finds none";
    return nullptr;
  }
  if (ordinal < 0 || ordinal >= count) {
    err = "CUDA device " + std::to_string(ordinal) +
          " does not exist: the driver finds " + std::to_string(count) +
          (count == 1
               ? " device (cuda:0)"
               : " devices (cuda:0 to cuda:" + std::to_string(count - 1) + ")");
    return nullptr;
  }
  d->ordinal = ordinal;
  std::string where = "cuda:" + std::to_string(ordinal);
  char name[256] = {};
  int major = 0, minor = 0;
  if (!d->check(cu.cuDeviceGet(&d->device, ordinal), where + ": cuDeviceGet",
                err) ||
      !d->check(cu.cuDeviceGetName(name, sizeof(name) - 1, d->device),
                where + ": cuDeviceGetName", err) ||
      !d->check(
          cu.cuDeviceGetAttribute(
              &major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, d->device),
          where + ": cuDeviceGetAttribute", err) ||
      !d->check(
          cu.cuDeviceGetAttribute(
              &minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, d->device),
          where + ": cuDeviceGetAttribute", err))
    return nullptr;
  if (!d->check(cu.cuDevicePrimaryCtxRetain(&d->context, d->device),
                where + ": cuDevicePrimaryCtxRetain", err))
    return nullptr;
  if (!d->check(cu.cuCtxSetCurrent(d->context), where + ": cuCtxSetCurrent",
                err) ||
      !d->check(cu.cuStreamCreate(&d->stream, CU_STREAM_NON_BLOCKING),
                where + ": cuStreamCreate", err))
    return nullptr;

  const Manifest &man = artifact.getManifest();
  int chosen = chooseImage(man.cuda.images, major, minor);
  std::string arch = archName(major, minor);
  if (chosen < 0) {
    std::string have;
    for (const CudaImage &im : man.cuda.images)
      have += std::string(have.empty() ? "" : ", ") + formatName(im) + " " +
              im.arch;
    err = "no GPU image for " + where + " (" + name + ", " + arch +
          "): the artifact has " + have;
    return nullptr;
  }
  const CudaImage &image = man.cuda.images[chosen];
  d->description = where + " (" + name + ", " + arch + ", " +
                   formatName(image) + " " + image.arch + ")";
  d->kernelNames = man.cuda.kernels;
  const SectionView *section = artifact.find(image.section);
  if (image.format == CudaImage::PTX) {
    // The driver wants NUL-terminated PTX text; the section need not be.
    std::string ptx(section->text());
    char log[4096] = {};
    CUjit_option options[] = {CU_JIT_ERROR_LOG_BUFFER,
                              CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES};
    void *values[] = {log, reinterpret_cast<void *>(uintptr_t(sizeof(log)))};
    CUresult r =
        cu.cuModuleLoadDataEx(&d->module, ptx.c_str(), 2, options, values);
    if (r == CUDA_ERROR_UNSUPPORTED_PTX_VERSION) {
      err = "PTX section '" + image.section + "' is PTX ISA " +
            ptxVersion(ptx) + ", newer than the NVIDIA driver (CUDA " +
            cu.versionString() +
            ") compiles: update the driver or compile the artifact for an "
            "older CUDA";
      return nullptr;
    }
    if (r != CUDA_SUCCESS) {
      err = "cannot compile PTX section '" + image.section + "' (" +
            image.arch + ") for " + arch + ": " + cu.describe(r) +
            (log[0] ? ": " + oneLine(log) : std::string());
      return nullptr;
    }
  } else {
    if (!d->check(cu.cuModuleLoadDataEx(&d->module, section->data, 0, nullptr,
                                        nullptr),
                  "cannot load cubin section '" + image.section + "' (" +
                      image.arch + ") on " + arch,
                  err))
      return nullptr;
  }
  for (const std::string &kernel : d->kernelNames) {
    CUfunction f = nullptr;
    CUresult r = cu.cuModuleGetFunction(&f, d->module, kernel.c_str());
    if (r != CUDA_SUCCESS) {
      err = "GPU image '" + image.section + "' has no kernel '" + kernel +
            "' (" + cu.describe(r) + ")";
      return nullptr;
    }
    d->functions.push_back(f);
  }
  d->sharedLimit.assign(d->functions.size(), 48 * 1024);
  const char *sync = std::getenv("KILN_CUDA_SYNC_LAUNCHES");
  d->syncEachLaunch = sync && std::strcmp(sync, "1") == 0;
  const char *graphs = std::getenv("KILN_CUDA_GRAPHS");
  d->useGraphs =
      !d->syncEachLaunch && !(graphs && std::strcmp(graphs, "0") == 0);
  d->paramSizeCache.resize(d->functions.size());
  d->launchContext.rt.launch = &CudaDevice::launch;
  d->launchContext.device = d.get();
  return d;
}

CudaDevice::~CudaDevice() {
  if (!driver)
    return;
  if (context && brokenBy.empty()) {
    driver->cuCtxSetCurrent(context);
    if (stream)
      driver->cuStreamSynchronize(stream);
    dropGraph();
    if (module)
      driver->cuModuleUnload(module);
    if (stream)
      driver->cuStreamDestroy(stream);
  }
  if (context)
    driver->cuDevicePrimaryCtxRelease(device);
}

void CudaDevice::attachCommunicator(
    decltype(KilnRtContext::communicate) communicate, void *communicator) {
  launchContext.rt.communicate = communicate;
  launchContext.rt.communicator = communicator;
  useGraphs = false;
}

bool CudaDevice::usable(std::string &err) {
  if (!brokenBy.empty()) {
    err = "the CUDA device is unusable after an earlier error (" + brokenBy +
          "): load the model again";
    return false;
  }
  return check(driver->cuCtxSetCurrent(context), "cuCtxSetCurrent", err);
}

bool CudaDevice::allocate(uint64_t size, const char *what, DeviceBuffer &out,
                          std::string &err) {
  if (!usable(err))
    return false;
  if (out.owner)
    release(out);
  uint64_t want = size ? size : 1;
  CUdeviceptr p = 0;
  CUresult r = driver->cuMemAlloc(&p, want);
  if (r == CUDA_ERROR_OUT_OF_MEMORY) {
    size_t freeBytes = 0, totalBytes = 0;
    std::string free =
        driver->cuMemGetInfo(&freeBytes, &totalBytes) == CUDA_SUCCESS
            ? std::to_string(freeBytes) + " bytes are free of " +
                  std::to_string(totalBytes)
            : "the free memory is unknown";
    err = std::string("out of device memory: the ") + what + " needs " +
          std::to_string(want) + " bytes and " + free +
          " on cuda:" + std::to_string(ordinal);
    return false;
  }
  if (!check(r,
             std::string("cannot allocate the ") + what + " (" +
                 std::to_string(want) + " bytes) on the device",
             err))
    return false;
  out.owner = this;
  out.ptr = p;
  out.bytes = size;
  return zero(out, err);
}

bool CudaDevice::upload(const DeviceBuffer &dst, const void *src, uint64_t size,
                        std::string &err) {
  return usable(err) &&
         check(driver->cuMemcpyHtoDAsync(dst.ptr, src, size, stream),
               "cuMemcpyHtoDAsync", err);
}

bool CudaDevice::download(void *dst, const DeviceBuffer &src, uint64_t size,
                          std::string &err) {
  return usable(err) &&
         check(driver->cuMemcpyDtoHAsync(dst, src.ptr, size, stream),
               "cuMemcpyDtoHAsync", err);
}

bool CudaDevice::zero(const DeviceBuffer &buffer, std::string &err) {
  return usable(err) &&
         check(driver->cuMemsetD8Async(buffer.ptr, 0,
                                       buffer.bytes ? buffer.bytes : 1, stream),
               "cuMemsetD8Async", err);
}

bool CudaDevice::beginStep(std::string &err) {
  launchError.clear();
  return usable(err);
}

bool CudaDevice::launchesSucceeded(std::string &err) {
  if (launchError.empty())
    return true;
  err = launchError;
  return false;
}

bool CudaDevice::finishStep(std::string &err) {
  if (!brokenBy.empty() && !launchError.empty()) {
    err = launchError;
    return false;
  }
  if (!usable(err))
    return false;
  CUresult r = driver->cuStreamSynchronize(stream);
  if (r != CUDA_SUCCESS) {
    brokenBy = driver->describe(r);
    err = "the CUDA step failed on the device: " + brokenBy +
          "; the CUDA context is now unusable: load the model again (set "
          "KILN_CUDA_SYNC_LAUNCHES=1 to find the kernel)";
    return false;
  }
  return launchesSucceeded(err);
}

bool CudaDevice::waitForStream(double seconds, std::string &err) {
  using Clock = std::chrono::steady_clock;
  if (!usable(err))
    return false;
  auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                     std::chrono::duration<double>(seconds));
  while (driver->cuStreamQuery(stream) == CUDA_ERROR_NOT_READY) {
    if (Clock::now() > deadline) {
      char limit[32];
      std::snprintf(limit, sizeof limit, "%g", seconds);
      brokenBy = std::string("the step's exchanges with other GPU ranks did "
                             "not finish within ") +
                 limit + " s";
      err = brokenBy +
            ": another rank died or hangs (KILN_COLLECTIVE_TIMEOUT)";
      return false;
    }
    std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
  return true;
}

int32_t CudaDevice::launch(KilnRtContext *rt, int32_t kernel,
                           const uint32_t grid[3], const uint32_t block[3],
                           uint32_t sharedBytes, void **params) {
  CudaDevice &d = *reinterpret_cast<LaunchContext *>(rt)->device;
  // After a failure the step's result is lost anyway: launch nothing more.
  if (!d.launchError.empty() || !d.brokenBy.empty())
    return CUDA_ERROR_LAUNCH_FAILED;
  if (kernel < 0 || size_t(kernel) >= d.functions.size()) {
    d.launchError = "the step function launched kernel " +
                    std::to_string(kernel) + ", but the manifest lists " +
                    std::to_string(d.functions.size()) + " kernels";
    return CUDA_ERROR_INVALID_VALUE;
  }
  const std::string &name = d.kernelNames[kernel];
  auto shape = [](const uint32_t v[3]) {
    return std::to_string(v[0]) + "x" + std::to_string(v[1]) + "x" +
           std::to_string(v[2]);
  };
  auto fail = [&](CUresult r, const char *what) {
    d.launchError = std::string(what) + " kernel '" + name + "' (grid " +
                    shape(grid) + ", block " + shape(block) + ", " +
                    std::to_string(sharedBytes) +
                    " bytes of shared memory): " + d.driver->describe(r);
    return int32_t(r);
  };
  CUfunction f = d.functions[kernel];
  // More than 48 KiB of dynamic shared memory needs the kernel's opt-in.
  if (sharedBytes > d.sharedLimit[kernel]) {
    if (CUresult r = d.driver->cuFuncSetAttribute(
            f, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
            int(sharedBytes)))
      return fail(r, "cannot give");
    d.sharedLimit[kernel] = sharedBytes;
  }
  if (d.mode != LaunchMode::Direct) {
    // Graph nodes keep copies of the parameter values, compared by bytes.
    std::vector<char> args;
    const std::vector<size_t> &sizes = d.paramSizes(kernel);
    for (size_t i = 0; i < sizes.size(); ++i) {
      const char *p = static_cast<const char *>(params[i]);
      args.insert(args.end(), p, p + sizes[i]);
    }
    CUDA_KERNEL_NODE_PARAMS node{};
    node.func = f;
    node.gridDimX = grid[0], node.gridDimY = grid[1], node.gridDimZ = grid[2];
    node.blockDimX = block[0], node.blockDimY = block[1],
    node.blockDimZ = block[2];
    node.sharedMemBytes = sharedBytes;
    node.kernelParams = params;
    if (d.mode == LaunchMode::Record) {
      GraphNode g{nullptr, kernel, {grid[0], grid[1], grid[2]},
                  {block[0], block[1], block[2]}, sharedBytes, std::move(args)};
      CUgraphNode *after = d.graphNodes.empty() ? nullptr
                                                : &d.graphNodes.back().node;
      // A node the driver refuses: runGraphStep launches the step directly.
      if (d.graphStale || d.driver->cuGraphAddKernelNode(
                              &g.node, d.graph, after, after ? 1 : 0, &node)) {
        d.graphStale = true;
        return CUDA_SUCCESS;
      }
      d.graphNodes.push_back(std::move(g));
      return CUDA_SUCCESS;
    }
    // Replay: once the sequence differs (or the driver refuses an update),
    // runGraphStep records the graph again.
    if (d.graphStale || d.replayed >= d.graphNodes.size() ||
        d.graphNodes[d.replayed].kernel != kernel ||
        !std::equal(block, block + 3, d.graphNodes[d.replayed].block) ||
        d.graphNodes[d.replayed].sharedBytes != sharedBytes) {
      d.graphStale = true;
      return CUDA_SUCCESS;
    }
    GraphNode &g = d.graphNodes[d.replayed++];
    if (!std::equal(grid, grid + 3, g.grid) || args != g.args) {
      if (d.driver->cuGraphExecKernelNodeSetParams(d.graphExec, g.node,
                                                   &node)) {
        d.graphStale = true;
        return CUDA_SUCCESS;
      }
      std::copy(grid, grid + 3, g.grid);
      g.args = std::move(args);
    }
    return CUDA_SUCCESS;
  }
  if (CUresult r = d.driver->cuLaunchKernel(
          f, grid[0], grid[1], grid[2], block[0], block[1], block[2],
          sharedBytes, d.stream, params, nullptr))
    return fail(r, "cannot launch");
  if (d.syncEachLaunch) {
    if (CUresult r = d.driver->cuStreamSynchronize(d.stream)) {
      d.brokenBy = "kernel '" + name + "': " + d.driver->describe(r);
      fail(r, "failed in");
      d.launchError += "; the CUDA context is now unusable: load the model "
                       "again";
      return int32_t(r);
    }
  }
  return CUDA_SUCCESS;
}

const std::vector<size_t> &CudaDevice::paramSizes(int32_t kernel) {
  std::vector<size_t> &sizes = paramSizeCache[kernel];
  if (sizes.empty()) {
    size_t offset = 0, size = 0;
    // The driver answers CUDA_ERROR_INVALID_VALUE past the last parameter.
    while (driver->cuFuncGetParamInfo(functions[kernel], sizes.size(), &offset,
                                      &size) == CUDA_SUCCESS)
      sizes.push_back(size);
  }
  return sizes;
}

void CudaDevice::dropGraph() {
  if (graphExec)
    driver->cuGraphExecDestroy(graphExec);
  if (graph)
    driver->cuGraphDestroy(graph);
  graphExec = nullptr;
  graph = nullptr;
  graphNodes.clear();
}

void CudaDevice::runGraphStep(const std::function<void()> &step) {
  if (graphExec) {
    mode = LaunchMode::Replay;
    replayed = 0;
    graphStale = false;
    step();
    mode = LaunchMode::Direct;
    if (!launchError.empty())
      return;
    if (!graphStale && replayed == graphNodes.size() &&
        driver->cuGraphLaunch(graphExec, stream) == CUDA_SUCCESS)
      return;
  }
  dropGraph();
  graphStale = false;
  if (driver->cuGraphCreate(&graph, 0) == CUDA_SUCCESS) {
    mode = LaunchMode::Record;
    step();
    mode = LaunchMode::Direct;
    if (!launchError.empty()) {
      dropGraph();
      return;
    }
    CUgraphExec exec = nullptr;
    if (!graphStale &&
        driver->cuGraphInstantiate(&exec, graph, 0) == CUDA_SUCCESS) {
      graphExec = exec;
      if (driver->cuGraphLaunch(graphExec, stream) == CUDA_SUCCESS)
        return;
    }
  }
  // The driver refused the graph: launch kernel by kernel, so that a failure
  // names its kernel.
  dropGraph();
  step();
}
