//===- kiln-test-nccl.cpp - the NCCL communicator on device buffers -------===//
//
// usage: kiln-test-nccl TP PP COUNT
// Opens the runtime's communicators as a distributed cuda session would
// (MPI for a world of TP * PP ranks, or none when TP is 0: one rank), cuda:0
// with a stream, and NCCL on it; then, through KilnRtContext::communicate as
// generated host code calls it, all-reduces COUNT floats x[i] = i + 1 and,
// with PP = 2, sends them from each stage-0 rank to its stage-1 peer. Prints
// what came back. Runs on a GPU, or on the fake libcuda and libnccl of
// test/Runtime/Inputs. $KILN_TEST_NCCL_STALL_RANK=r: rank r sleeps 30 s
// before opening NCCL (the others must time out, not hang).
//
//===----------------------------------------------------------------------===//

#include "Runtime/Communicator.h"
#include "Runtime/CudaDriver.h"
#include "Runtime/NcclCommunicator.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <unistd.h>
#include <vector>

using namespace kiln::rt;

static int fail(int rank, const std::string &message) {
  std::fprintf(stderr, "rank %d: error: %s\n", rank, message.c_str());
  return 1;
}

int main(int argc, char **argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: kiln-test-nccl TP PP COUNT\n");
    return 2;
  }
  // Lines in call order with the fake NCCL's stderr.
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  int tp = std::atoi(argv[1]), pp = std::atoi(argv[2]);
  size_t count = size_t(std::atol(argv[3]));
  std::string err;
  std::unique_ptr<Communicator> mpi;
  if (tp > 0) {
    mpi = Communicator::open(tp, pp, 1, err);
    if (!mpi)
      return fail(0, err);
  }
  int rank = mpi ? mpi->getRank() : 0;
  std::unique_ptr<CudaDriver> cu = CudaDriver::load(err);
  if (!cu)
    return fail(rank, err);
  CUdevice device;
  CUcontext context;
  CUstream stream;
  CUdeviceptr in, out;
  size_t bytes = count * sizeof(float);
  if (cu->cuDeviceGet(&device, 0) || cu->cuDevicePrimaryCtxRetain(&context, device) ||
      cu->cuCtxSetCurrent(context) ||
      cu->cuStreamCreate(&stream, CU_STREAM_NON_BLOCKING) ||
      cu->cuMemAlloc(&in, bytes) || cu->cuMemAlloc(&out, bytes))
    return fail(rank, "cannot set up cuda:0");
  std::vector<float> host(count);
  for (size_t i = 0; i < count; ++i)
    host[i] = float(i + 1);
  cu->cuMemcpyHtoDAsync(in, host.data(), bytes, stream);

  if (const char *stall = std::getenv("KILN_TEST_NCCL_STALL_RANK");
      stall && std::atoi(stall) == rank)
    sleep(30);
  std::unique_ptr<NcclCommunicator> nccl =
      NcclCommunicator::open(mpi.get(), tp > 0 ? tp : 1, stream, err);
  if (!nccl)
    return fail(rank, err);
  std::printf("rank %d: NCCL %s\n", rank, nccl->getVersion().c_str());

  KilnRtContext rt{};
  rt.communicate = &NcclCommunicator::communicate;
  rt.communicator = nccl.get();
  auto *inPtr = reinterpret_cast<const float *>(in);
  auto *outPtr = reinterpret_cast<float *>(out);
  // The exchange's error, else the output buffer once the stream is done.
  auto download = [&](std::vector<float> &got, const char *what) {
    got.resize(count);
    if (nccl->takeError(err))
      return false;
    CUresult r = cu->cuMemcpyDtoHAsync(got.data(), out, bytes, stream);
    if (r == CUDA_SUCCESS)
      r = cu->cuStreamSynchronize(stream);
    if (r != CUDA_SUCCESS)
      err = std::string(what) + ": " + cu->describe(r);
    return r == CUDA_SUCCESS;
  };

  rt.communicate(&rt, KILN_COMM_ALL_REDUCE_SUM, 0, inPtr, outPtr,
                 int64_t(count), 0);
  std::vector<float> sum;
  if (!download(sum, "all-reduce"))
    return fail(rank, err);
  // Equal inputs on every rank: the sum is a multiple of x.
  float times = sum[0] / host[0];
  bool multiple = true;
  for (size_t i = 0; i < count; ++i)
    multiple = multiple && std::fabs(sum[i] - times * host[i]) <= 0;
  if (multiple)
    std::printf("rank %d: all-reduce of %zu values: %g x the input\n", rank,
                count, times);
  else
    std::printf("rank %d: all-reduce of %zu values: not a multiple of the "
                "input\n",
                rank, count);

  if (pp == 2) {
    int stage = rank / tp, peer = stage == 0 ? rank + tp : rank - tp;
    rt.communicate(&rt, stage == 0 ? KILN_COMM_SEND : KILN_COMM_RECV, peer,
                   inPtr, outPtr, int64_t(count), 0);
    std::vector<float> got;
    if (!download(got, stage == 0 ? "send" : "recv"))
      return fail(rank, err);
    if (stage == 1)
      std::printf("rank %d: received %g first\n", rank, got[0]);
  }
  nccl.reset();
  cu->cuStreamSynchronize(stream);
  return 0;
}
