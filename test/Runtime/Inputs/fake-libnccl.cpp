//===- fake-libnccl.cpp - a stand-in NCCL for GPU-less tests --------------===//
//
// Implements the NCCL functions lib/Runtime/NcclCommunicator.cpp resolves,
// over host memory (the fake libcuda's device pointers are host pointers),
// and prints each call on stderr so tests check what the runtime asked for.
// It does not talk to other processes: an all-reduce copies this rank's
// input (the sum over a world of one), a recv fills its buffer with 1000 +
// the peer's rank. Point $KILN_NCCL_LIBRARY at it. The environment:
//   KILN_FAKE_NCCL_VERSION=N       ncclGetVersion's code (default 22809)
//   KILN_FAKE_NCCL_FAIL=all-reduce ncclAllReduce fails (ncclInternalError)
//
//===----------------------------------------------------------------------===//

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <unistd.h>

#define FAKE_API extern "C" __attribute__((visibility("default")))

namespace {
constexpr int kSuccess = 0, kInternalError = 3, kInvalidArgument = 4;
constexpr int kFloat32 = 7, kSum = 0;
struct UniqueId {
  char internal[128];
};
struct Comm {
  int size, rank;
  std::string id;
};
bool failing(const char *what) {
  const char *fail = std::getenv("KILN_FAKE_NCCL_FAIL");
  return fail && std::strcmp(fail, what) == 0;
}
} // namespace

FAKE_API int ncclGetVersion(int *version) {
  const char *v = std::getenv("KILN_FAKE_NCCL_VERSION");
  *version = v ? std::atoi(v) : 22809;
  return kSuccess;
}

FAKE_API const char *ncclGetErrorString(int result) {
  switch (result) {
  case kInternalError:
    return "internal error - please report this issue to the NCCL developers";
  case kInvalidArgument:
    return "invalid argument (run with NCCL_DEBUG=WARN for details)";
  }
  return "unknown result code";
}

// Unique per process, so a test sees whether the ranks shared one.
FAKE_API int ncclGetUniqueId(UniqueId *id) {
  std::memset(id, 0, sizeof *id);
  std::snprintf(id->internal, sizeof id->internal, "fake-id-%d", int(getpid()));
  return kSuccess;
}

FAKE_API int ncclCommInitRank(Comm **comm, int size, UniqueId id, int rank) {
  if (size < 1 || rank < 0 || rank >= size)
    return kInvalidArgument;
  id.internal[sizeof id.internal - 1] = 0;
  *comm = new Comm{size, rank, id.internal};
  std::fprintf(stderr, "fake nccl: init rank %d of %d, id %s\n", rank, size,
               id.internal);
  return kSuccess;
}

FAKE_API int ncclCommDestroy(Comm *comm) {
  std::fprintf(stderr, "fake nccl: destroy rank %d of %d\n", comm->rank,
               comm->size);
  delete comm;
  return kSuccess;
}

FAKE_API int ncclCommAbort(Comm *comm) {
  std::fprintf(stderr, "fake nccl: abort rank %d of %d\n", comm->rank,
               comm->size);
  delete comm;
  return kSuccess;
}

FAKE_API int ncclAllReduce(const void *in, void *out, size_t count,
                           int type, int op, Comm *comm, void *stream) {
  std::fprintf(stderr,
               "fake nccl: all-reduce %zu values, %s %s, rank %d of %d, "
               "%s stream\n",
               count, type == kFloat32 ? "float32" : "other type",
               op == kSum ? "sum" : "other op", comm->rank, comm->size,
               stream ? "a" : "the null");
  if (failing("all-reduce"))
    return kInternalError;
  std::memmove(out, in, count * sizeof(float));
  return kSuccess;
}

FAKE_API int ncclSend(const void *, size_t count, int type, int peer,
                      Comm *comm, void *) {
  std::fprintf(stderr, "fake nccl: send %zu values, %s, rank %d to %d\n",
               count, type == kFloat32 ? "float32" : "other type", comm->rank,
               peer);
  return kSuccess;
}

FAKE_API int ncclRecv(void *out, size_t count, int type, int peer,
                      Comm *comm, void *) {
  std::fprintf(stderr, "fake nccl: recv %zu values, %s, rank %d from %d\n",
               count, type == kFloat32 ? "float32" : "other type", comm->rank,
               peer);
  for (size_t i = 0; i < count; ++i)
    static_cast<float *>(out)[i] = 1000.0f + peer;
  return kSuccess;
}
