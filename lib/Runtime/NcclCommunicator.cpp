//===- NcclCommunicator.cpp - NCCL, loaded at run time --------------------===//

#include "Runtime/NcclCommunicator.h"
#include "Runtime/SystemLibrary.h"

#include "Runtime/Communicator.h"

#include <climits>
#include <cstdlib>
#include <type_traits>

using namespace kiln::rt;

namespace {
// NCCL's ABI (nccl.h of NCCL 2): a communicator is a pointer, a unique id
// 128 bytes, results and types small enums. Declared here so the runtime
// builds without NCCL's headers (which pull in the CUDA runtime's).
using Comm = void *;
using Result = int;
constexpr Result kSuccess = 0; // ncclSuccess
constexpr int kFloat32 = 7;    // ncclFloat32
constexpr int kSum = 0;        // ncclSum
struct UniqueId {
  char internal[128]; // NCCL_UNIQUE_ID_BYTES
};
} // namespace

/// The NCCL functions Kiln uses.
struct NcclCommunicator::NCCL {
  void *library = nullptr;
  Result (*GetVersion)(int *);
  Result (*GetUniqueId)(UniqueId *);
  Result (*CommInitRank)(Comm *, int, UniqueId, int);
  Result (*CommDestroy)(Comm);
  Result (*CommAbort)(Comm);
  Result (*AllReduce)(const void *, void *, size_t, int, int, Comm, void *);
  Result (*Send)(const void *, size_t, int, int, Comm, void *);
  Result (*Recv)(void *, size_t, int, int, Comm, void *);
  const char *(*GetErrorString)(Result);

  std::string describe(Result r) const {
    const char *text = GetErrorString(r);
    return text ? text : "NCCL error " + std::to_string(r);
  }
};

std::unique_ptr<NcclCommunicator>
NcclCommunicator::open(Communicator *mpi, int tp, void *stream,
                       std::string &err) {
  SystemLibrary lib;
  auto nccl = std::make_unique<NCCL>();
  if (!lib.open("KILN_NCCL_LIBRARY", "libnccl.so.2", RTLD_NOW | RTLD_LOCAL)) {
    err = "NCCL is not installed: cannot load " + lib.path + " (" +
          lib.whyNot + "); GPU ranks need NCCL 2.18 or newer (libnccl2)";
    return nullptr;
  }
  nccl->library = lib.handle;
  lib.resolve(nccl->GetVersion, "ncclGetVersion");
  lib.resolve(nccl->GetUniqueId, "ncclGetUniqueId");
  lib.resolve(nccl->CommInitRank, "ncclCommInitRank");
  lib.resolve(nccl->CommDestroy, "ncclCommDestroy");
  lib.resolve(nccl->CommAbort, "ncclCommAbort");
  lib.resolve(nccl->AllReduce, "ncclAllReduce");
  lib.resolve(nccl->Send, "ncclSend");
  lib.resolve(nccl->Recv, "ncclRecv");
  lib.resolve(nccl->GetErrorString, "ncclGetErrorString");
  if (!lib.firstMissing.empty()) {
    err = lib.path + " has no " + lib.firstMissing +
          ": it is not NCCL 2.18 or newer";
    return nullptr;
  }
  int code = 0;
  if (Result r = nccl->GetVersion(&code); r != kSuccess) {
    err = "ncclGetVersion failed: " + nccl->describe(r);
    return nullptr;
  }
  // Since 2.9 the code is major * 10000 + minor * 100 + patch.
  std::string version = std::to_string(code / 10000) + "." +
                        std::to_string(code / 100 % 100) + "." +
                        std::to_string(code % 100);
  if (code < kMinimumVersion) {
    err = lib.path + " is NCCL " +
          (code < 10000 ? "older than 2.9" : version) +
          ", too old: GPU ranks need NCCL 2.18 or newer";
    return nullptr;
  }

  std::unique_ptr<NcclCommunicator> c(new NcclCommunicator());
  c->nccl = std::move(nccl);
  c->version = version;
  c->stream = stream;
  if (mpi)
    c->timeoutSeconds = mpi->getTimeoutSeconds();
  NCCL &n = *c->nccl;
  int rank = mpi ? mpi->getRank() : 0;
  int groupSize = mpi ? mpi->getGroupSize() : 1;
  c->rank = rank;
  c->groupSize = groupSize;
  // One id per communicator, made by its first rank and broadcast over MPI
  // (under the collective deadline: a missing rank fails here, not in
  // ncclCommInitRank, which would wait forever).
  auto create = [&](Comm &comm, int size, int index, bool withinStage) {
    UniqueId id{};
    if (index == 0) {
      if (Result r = n.GetUniqueId(&id); r != kSuccess) {
        err = "ncclGetUniqueId failed: " + n.describe(r);
        return false;
      }
    }
    if (size > 1 &&
        !mpi->broadcast(&id, int(sizeof id), withinStage, err))
      return false;
    if (Result r = n.CommInitRank(&comm, size, id, index); r != kSuccess) {
      err = "ncclCommInitRank (rank " + std::to_string(index) + " of " +
            std::to_string(size) + ") failed: " + n.describe(r);
      return false;
    }
    return true;
  };
  if (!create(c->groupComm, groupSize, rank, /*withinStage=*/false) ||
      !create(c->stageComm, tp, rank % tp, /*withinStage=*/true))
    return nullptr;
  return c;
}

NcclCommunicator::~NcclCommunicator() {
  if (!nccl)
    return;
  if (stageComm)
    nccl->CommDestroy(stageComm);
  if (groupComm)
    nccl->CommDestroy(groupComm);
  // The library stays loaded: NCCL keeps proxy threads until exit.
}

void NcclCommunicator::abort() {
  if (stageComm)
    nccl->CommAbort(stageComm);
  if (groupComm)
    nccl->CommAbort(groupComm);
  stageComm = groupComm = nullptr;
}

void NcclCommunicator::exchange(KilnCommOp op, int peer, const void *in,
                                void *out, int64_t count) {
  // After a failure the step's result is lost: enqueue nothing more.
  if (!error.empty())
    return;
  if (!groupComm) {
    error = "the NCCL communicators were aborted after a timeout: load the "
            "model again";
    return;
  }
  if (!checkExchange(op, peer, count, groupSize, error))
    return;
  Result r = kSuccess;
  switch (op) {
  case KILN_COMM_ALL_REDUCE_SUM:
    r = nccl->AllReduce(in, out, size_t(count), kFloat32, kSum, stageComm,
                        stream);
    break;
  case KILN_COMM_SEND:
    r = nccl->Send(in, size_t(count), kFloat32, peer, groupComm, stream);
    break;
  case KILN_COMM_RECV:
    r = nccl->Recv(out, size_t(count), kFloat32, peer, groupComm, stream);
    break;
  }
  if (r != kSuccess)
    error = describeExchange(op, peer, count) + " (GPU rank " +
            std::to_string(rank) + ") failed: " + nccl->describe(r);
}

bool NcclCommunicator::takeError(std::string &err) {
  if (error.empty())
    return false;
  err = std::move(error);
  error.clear();
  return true;
}

void NcclCommunicator::communicate(KilnRtContext *rt, int32_t op,
                                   int32_t peer, const float *in, float *out,
                                   int64_t count, int32_t) {
  static_cast<NcclCommunicator *>(rt->communicator)
      ->exchange(KilnCommOp(op), peer, in, out, count);
}
