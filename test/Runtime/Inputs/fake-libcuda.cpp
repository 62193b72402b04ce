//===- fake-libcuda.cpp - a stand-in NVIDIA driver for GPU-less tests -----===//
//
// Implements the driver functions lib/Runtime/CudaDriver.h resolves, under
// cuda.h's names, over host memory: a CUdeviceptr is a host pointer, copies
// are memcpy, and the one kernel it knows, fake_next_token, does on the
// "device" what fake-model.c does on the CPU. Point $KILN_LIBCUDA at it.
//
// Images: a "cubin" is the text "FAKECUBIN sm_XY[a]" and a PTX image any
// other text; both list their kernels as ".entry NAME" lines, and PTX names
// its ISA with ".version X.Y". The environment, read at every call, makes it
// fail as real drivers do:
//   KILN_FAKE_CUDA_CC=86         compute capability (default 90)
//   KILN_FAKE_CUDA_FREE=N        device memory in bytes (default 1 GiB)
//   KILN_FAKE_CUDA_MODE=no-device       cuInit finds no device
//                       old-driver      CUDA 12.4: PTX ISA above 8.4 fails
//                       launch-refused  cuLaunchKernel fails (not sticky)
//                       fault           kernels fault: a sticky illegal
//                                       address at the next synchronization
//                       graph-decode    cuLaunchKernel refuses one-token
//                                       steps: decode must run as a graph
//                       stream-hangs    cuStreamQuery never finds the stream
//                                       done (a peer that never joins an
//                                       NCCL exchange)
// Graphs are chains of kernel nodes holding copies of their arguments;
// cuGraphLaunch runs an instantiated copy's nodes in order.
// PTX containing "bad-ptx" fails to compile with a two-line JIT log.
//
//===----------------------------------------------------------------------===//

#include <cuda.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <set>
#include <string>
#include <vector>

#define FAKE_API extern "C" __attribute__((visibility("default")))

namespace {
std::string mode() {
  const char *m = std::getenv("KILN_FAKE_CUDA_MODE");
  return m ? m : "";
}

int computeCapability() {
  const char *cc = std::getenv("KILN_FAKE_CUDA_CC");
  return cc ? std::atoi(cc) : 90;
}

size_t deviceBytes() {
  const char *b = std::getenv("KILN_FAKE_CUDA_FREE");
  return b ? std::strtoull(b, nullptr, 10) : size_t(1) << 30;
}

size_t allocated = 0;
bool faulted = false; // sticky, as after a real illegal address
// Live "device" blocks: releasing the context frees them, as the driver does.
std::set<size_t *> liveBlocks;
bool pendingFault = false;
int contextInt, streamInt;

struct FakeModule {
  std::vector<std::string> kernels;
};
// Loaded modules: releasing the context unloads them, as the driver does.
std::set<FakeModule *> liveModules;

// The kernel: arguments as the fake cuda host code passes them.
void fakeNextToken(void **params) {
  const int32_t *tok = *static_cast<int32_t **>(params[0]);
  int64_t nTokens = *static_cast<int64_t *>(params[1]);
  int64_t position = *static_cast<int64_t *>(params[2]);
  int32_t *kv = *static_cast<int32_t **>(params[3]);
  int64_t kvSlots = *static_cast<int64_t *>(params[4]);
  float *out = *static_cast<float **>(params[5]);
  int64_t rows = *static_cast<int64_t *>(params[6]);
  int64_t vocab = *static_cast<int64_t *>(params[7]);
  const char *w = *static_cast<const char **>(params[8]);
  int64_t weightBytes = *static_cast<int64_t *>(params[9]);
  for (int64_t i = 0; i < nTokens && position + i < kvSlots; ++i)
    kv[position + i] = tok[i] + 1;
  bool ok = nTokens >= 1 && rows >= 1 && rows <= nTokens &&
            position + nTokens <= kvSlots;
  for (int64_t p = 0; ok && p < position + nTokens; ++p)
    ok = kv[p] != 0;
  int64_t step = 0;
  for (int64_t i = 0; i < weightBytes && w[i] >= '0' && w[i] <= '9'; ++i)
    step = step * 10 + (w[i] - '0');
  for (int64_t r = 0; r < rows; ++r) {
    int64_t last = tok[nTokens - rows + r];
    int64_t next = ok ? (last + step) % vocab : 0;
    for (int64_t v = 0; v < vocab; ++v)
      out[r * vocab + v] = v == next ? 10.0f : -10.0f;
  }
}
} // namespace

#define FAKE_STICKY                                                            \
  if (faulted)                                                                 \
  return CUDA_ERROR_ILLEGAL_ADDRESS

FAKE_API CUresult cuInit(unsigned int) {
  return mode() == "no-device" ? CUDA_ERROR_NO_DEVICE : CUDA_SUCCESS;
}

FAKE_API CUresult cuDriverGetVersion(int *version) {
  *version = mode() == "old-driver" ? 12040 : 13000;
  return CUDA_SUCCESS;
}

FAKE_API CUresult cuGetErrorName(CUresult r, const char **name) {
  switch (r) {
#define FAKE_NAME(code)                                                        \
  case code:                                                                   \
    *name = #code;                                                             \
    return CUDA_SUCCESS;
    FAKE_NAME(CUDA_SUCCESS)
    FAKE_NAME(CUDA_ERROR_INVALID_VALUE)
    FAKE_NAME(CUDA_ERROR_OUT_OF_MEMORY)
    FAKE_NAME(CUDA_ERROR_NO_DEVICE)
    FAKE_NAME(CUDA_ERROR_INVALID_PTX)
    FAKE_NAME(CUDA_ERROR_UNSUPPORTED_PTX_VERSION)
    FAKE_NAME(CUDA_ERROR_NO_BINARY_FOR_GPU)
    FAKE_NAME(CUDA_ERROR_NOT_FOUND)
    FAKE_NAME(CUDA_ERROR_ILLEGAL_ADDRESS)
    FAKE_NAME(CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES)
#undef FAKE_NAME
  default:
    *name = nullptr;
    return CUDA_ERROR_INVALID_VALUE;
  }
}

FAKE_API CUresult cuGetErrorString(CUresult r, const char **text) {
  switch (r) {
  case CUDA_ERROR_OUT_OF_MEMORY:
    *text = "out of memory";
    return CUDA_SUCCESS;
  case CUDA_ERROR_ILLEGAL_ADDRESS:
    *text = "an illegal memory access was encountered";
    return CUDA_SUCCESS;
  case CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES:
    *text = "too many resources requested for launch";
    return CUDA_SUCCESS;
  case CUDA_ERROR_INVALID_PTX:
    *text = "a PTX JIT compilation failed";
    return CUDA_SUCCESS;
  default:
    *text = "fake driver error";
    return CUDA_SUCCESS;
  }
}

FAKE_API CUresult cuDeviceGetCount(int *count) {
  *count = 1;
  return CUDA_SUCCESS;
}

FAKE_API CUresult cuDeviceGet(CUdevice *device, int ordinal) {
  if (ordinal != 0)
    return CUDA_ERROR_INVALID_DEVICE;
  *device = 0;
  return CUDA_SUCCESS;
}

FAKE_API CUresult cuDeviceGetName(char *name, int len, CUdevice) {
  std::strncpy(name, "Fake GPU", size_t(len));
  return CUDA_SUCCESS;
}

FAKE_API CUresult cuDeviceGetAttribute(int *value, CUdevice_attribute attr,
                                       CUdevice) {
  if (attr == CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)
    *value = computeCapability() / 10;
  else if (attr == CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR)
    *value = computeCapability() % 10;
  else
    return CUDA_ERROR_INVALID_VALUE;
  return CUDA_SUCCESS;
}

FAKE_API CUresult cuDevicePrimaryCtxRetain(CUcontext *ctx, CUdevice) {
  *ctx = reinterpret_cast<CUcontext>(&contextInt);
  return CUDA_SUCCESS;
}

FAKE_API CUresult cuDevicePrimaryCtxRelease(CUdevice) {
  // The real driver resets a primary context when its last user releases
  // it, which clears a sticky error.
  faulted = pendingFault = false;
  // Its memory goes with it (a runtime cannot free it after a sticky error).
  for (size_t *block : liveBlocks)
    std::free(block);
  liveBlocks.clear();
  allocated = 0;
  for (FakeModule *m : liveModules)
    delete m;
  liveModules.clear();
  return CUDA_SUCCESS;
}

FAKE_API CUresult cuCtxSetCurrent(CUcontext) {
  FAKE_STICKY;
  return CUDA_SUCCESS;
}

FAKE_API CUresult cuStreamCreate(CUstream *stream, unsigned int) {
  *stream = reinterpret_cast<CUstream>(&streamInt);
  return CUDA_SUCCESS;
}

FAKE_API CUresult cuStreamDestroy(CUstream) { return CUDA_SUCCESS; }

FAKE_API CUresult cuStreamSynchronize(CUstream) {
  if (pendingFault)
    faulted = true;
  FAKE_STICKY;
  return CUDA_SUCCESS;
}

FAKE_API CUresult cuStreamQuery(CUstream) {
  FAKE_STICKY;
  return mode() == "stream-hangs" ? CUDA_ERROR_NOT_READY : CUDA_SUCCESS;
}

FAKE_API CUresult cuModuleLoadDataEx(CUmodule *module, const void *image,
                                     unsigned int numOptions,
                                     CUjit_option *options, void **values) {
  FAKE_STICKY;
  std::string text(static_cast<const char *>(image));
  auto fail = [&](CUresult r, const char *log) {
    for (unsigned i = 0; i < numOptions; ++i)
      if (options[i] == CU_JIT_ERROR_LOG_BUFFER)
        std::strcpy(static_cast<char *>(values[i]), log);
    return r;
  };
  if (text.compare(0, 9, "FAKECUBIN") == 0) {
    std::string arch = text.substr(10, text.find('\n') - 10);
    if (arch.compare(0, 5, "sm_" + std::to_string(computeCapability())) != 0)
      return CUDA_ERROR_NO_BINARY_FOR_GPU;
  } else {
    size_t at = text.find(".version ");
    double version = at == std::string::npos
                         ? 0
                         : std::strtod(text.c_str() + at + 9, nullptr);
    if (mode() == "old-driver" && version > 8.4)
      return fail(CUDA_ERROR_UNSUPPORTED_PTX_VERSION,
                  "ptxas application ptx input, line 1; fatal   : "
                  "Unsupported .version; current version is '8.4'\n");
    if (text.find("bad-ptx") != std::string::npos)
      return fail(CUDA_ERROR_INVALID_PTX,
                  "ptxas application ptx input, line 3; error   : syntax "
                  "error\nptxas fatal   : Ptx assembly aborted\n");
  }
  auto *m = new FakeModule();
  liveModules.insert(m);
  for (size_t at = text.find(".entry "); at != std::string::npos;
       at = text.find(".entry ", at + 1)) {
    size_t begin = at + 7, end = text.find_first_of(" \n", begin);
    m->kernels.push_back(text.substr(begin, end - begin));
  }
  *module = reinterpret_cast<CUmodule>(m);
  return CUDA_SUCCESS;
}

FAKE_API CUresult cuModuleUnload(CUmodule module) {
  liveModules.erase(reinterpret_cast<FakeModule *>(module));
  delete reinterpret_cast<FakeModule *>(module);
  return CUDA_SUCCESS;
}

FAKE_API CUresult cuModuleGetFunction(CUfunction *f, CUmodule module,
                                      const char *name) {
  FAKE_STICKY;
  for (const std::string &k : reinterpret_cast<FakeModule *>(module)->kernels)
    if (k == name && k == "fake_next_token") {
      *f = reinterpret_cast<CUfunction>(&fakeNextToken);
      return CUDA_SUCCESS;
    }
  return CUDA_ERROR_NOT_FOUND;
}

FAKE_API CUresult cuFuncSetAttribute(CUfunction, CUfunction_attribute, int) {
  FAKE_STICKY;
  return CUDA_SUCCESS;
}

FAKE_API CUresult cuMemGetInfo(size_t *free, size_t *total) {
  FAKE_STICKY;
  *total = deviceBytes();
  *free = *total - allocated;
  return CUDA_SUCCESS;
}

FAKE_API CUresult cuMemAlloc(CUdeviceptr *p, size_t bytes) {
  FAKE_STICKY;
  if (bytes == 0)
    return CUDA_ERROR_INVALID_VALUE;
  if (bytes > deviceBytes() - allocated)
    return CUDA_ERROR_OUT_OF_MEMORY;
  // A size header in front, so cuMemFree knows what to give back.
  auto *block = static_cast<size_t *>(std::malloc(bytes + 16));
  *block = bytes;
  allocated += bytes;
  liveBlocks.insert(block);
  *p = reinterpret_cast<CUdeviceptr>(block + 2);
  return CUDA_SUCCESS;
}

FAKE_API CUresult cuMemFree(CUdeviceptr p) {
  FAKE_STICKY;
  size_t *block = reinterpret_cast<size_t *>(p) - 2;
  allocated -= *block;
  liveBlocks.erase(block);
  std::free(block);
  return CUDA_SUCCESS;
}

FAKE_API CUresult cuMemcpyHtoDAsync(CUdeviceptr dst, const void *src,
                                    size_t bytes, CUstream) {
  FAKE_STICKY;
  std::memcpy(reinterpret_cast<void *>(dst), src, bytes);
  return CUDA_SUCCESS;
}

FAKE_API CUresult cuMemcpyDtoHAsync(void *dst, CUdeviceptr src, size_t bytes,
                                    CUstream) {
  FAKE_STICKY;
  std::memcpy(dst, reinterpret_cast<const void *>(src), bytes);
  return CUDA_SUCCESS;
}

FAKE_API CUresult cuMemsetD8Async(CUdeviceptr p, unsigned char value,
                                  size_t bytes, CUstream) {
  FAKE_STICKY;
  std::memset(reinterpret_cast<void *>(p), value, bytes);
  return CUDA_SUCCESS;
}

namespace {
constexpr size_t kFakeKernelParams = 10; // fake_next_token's, 8 bytes each

CUresult runKernel(CUfunction f, const unsigned grid[3],
                   const unsigned block[3], void **params) {
  FAKE_STICKY;
  if (mode() == "launch-refused")
    return CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES;
  if (!grid[0] || !grid[1] || !grid[2] || !block[0] || !block[1] ||
      !block[2] || uint64_t(block[0]) * block[1] * block[2] > 1024)
    return CUDA_ERROR_INVALID_VALUE;
  if (mode() == "fault") {
    pendingFault = true;
    return CUDA_SUCCESS;
  }
  reinterpret_cast<void (*)(void **)>(f)(params);
  return CUDA_SUCCESS;
}

struct FakeNode {
  size_t index; // in its graph
  CUfunction func;
  unsigned grid[3], block[3];
  int64_t values[kFakeKernelParams];
  void set(const CUDA_KERNEL_NODE_PARAMS &p) {
    func = p.func;
    grid[0] = p.gridDimX, grid[1] = p.gridDimY, grid[2] = p.gridDimZ;
    block[0] = p.blockDimX, block[1] = p.blockDimY, block[2] = p.blockDimZ;
    for (size_t i = 0; i < kFakeKernelParams; ++i)
      std::memcpy(&values[i], p.kernelParams[i], sizeof(int64_t));
  }
};
struct FakeGraph {
  std::vector<std::unique_ptr<FakeNode>> nodes;
};
struct FakeGraphExec {
  std::vector<FakeNode> nodes;
};
} // namespace

FAKE_API CUresult cuLaunchKernel(CUfunction f, unsigned gx, unsigned gy,
                                 unsigned gz, unsigned bx, unsigned by,
                                 unsigned bz, unsigned, CUstream, void **params,
                                 void **) {
  FAKE_STICKY;
  if (mode() == "graph-decode" && *static_cast<int64_t *>(params[1]) == 1)
    return CUDA_ERROR_INVALID_VALUE;
  const unsigned grid[3] = {gx, gy, gz}, block[3] = {bx, by, bz};
  return runKernel(f, grid, block, params);
}

FAKE_API CUresult cuFuncGetParamInfo(CUfunction, size_t index, size_t *offset,
                                     size_t *size) {
  if (index >= kFakeKernelParams)
    return CUDA_ERROR_INVALID_VALUE;
  *offset = 8 * index;
  *size = 8;
  return CUDA_SUCCESS;
}

FAKE_API CUresult cuGraphCreate(CUgraph *graph, unsigned int) {
  *graph = reinterpret_cast<CUgraph>(new FakeGraph());
  return CUDA_SUCCESS;
}

FAKE_API CUresult cuGraphAddKernelNode(CUgraphNode *node, CUgraph graph,
                                       const CUgraphNode *dependencies,
                                       size_t numDependencies,
                                       const CUDA_KERNEL_NODE_PARAMS *params) {
  FAKE_STICKY;
  auto *g = reinterpret_cast<FakeGraph *>(graph);
  // Only chains: each node after the one before it.
  if (numDependencies != (g->nodes.empty() ? 0u : 1u) ||
      (numDependencies &&
       dependencies[0] != reinterpret_cast<CUgraphNode>(g->nodes.back().get())))
    return CUDA_ERROR_INVALID_VALUE;
  auto n = std::make_unique<FakeNode>();
  n->index = g->nodes.size();
  n->set(*params);
  *node = reinterpret_cast<CUgraphNode>(n.get());
  g->nodes.push_back(std::move(n));
  return CUDA_SUCCESS;
}

FAKE_API CUresult cuGraphInstantiate(CUgraphExec *exec, CUgraph graph,
                                     unsigned long long) {
  FAKE_STICKY;
  auto *e = new FakeGraphExec();
  for (const auto &n : reinterpret_cast<FakeGraph *>(graph)->nodes)
    e->nodes.push_back(*n);
  *exec = reinterpret_cast<CUgraphExec>(e);
  return CUDA_SUCCESS;
}

FAKE_API CUresult cuGraphExecKernelNodeSetParams(
    CUgraphExec exec, CUgraphNode node, const CUDA_KERNEL_NODE_PARAMS *params) {
  FAKE_STICKY;
  auto *e = reinterpret_cast<FakeGraphExec *>(exec);
  size_t index = reinterpret_cast<FakeNode *>(node)->index;
  if (index >= e->nodes.size())
    return CUDA_ERROR_INVALID_VALUE;
  e->nodes[index].set(*params);
  return CUDA_SUCCESS;
}

FAKE_API CUresult cuGraphLaunch(CUgraphExec exec, CUstream) {
  for (FakeNode &n : reinterpret_cast<FakeGraphExec *>(exec)->nodes) {
    void *params[kFakeKernelParams];
    for (size_t i = 0; i < kFakeKernelParams; ++i)
      params[i] = &n.values[i];
    if (CUresult r = runKernel(n.func, n.grid, n.block, params))
      return r;
  }
  return CUDA_SUCCESS;
}

FAKE_API CUresult cuGraphExecDestroy(CUgraphExec exec) {
  delete reinterpret_cast<FakeGraphExec *>(exec);
  return CUDA_SUCCESS;
}

FAKE_API CUresult cuGraphDestroy(CUgraph graph) {
  delete reinterpret_cast<FakeGraph *>(graph);
  return CUDA_SUCCESS;
}
