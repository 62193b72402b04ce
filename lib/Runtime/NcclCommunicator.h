//===- NcclCommunicator.h - GPU ranks of a distributed model ----*- C++ -*-===//
//
// The communicator of GPU ranks: KilnRtContext::communicate of a cuda
// session (kiln/runtime/HostABI.h) with device addresses, enqueued on the
// session's stream through NCCL. NCCL is loaded at run time with dlopen
// (libnccl.so.2, or $KILN_NCCL_LIBRARY, which tests point at a fake), like
// libcuda and libmpi, so Kiln builds and runs without it and a missing or
// too old library is a one-line error.
//
// The ranks are launched by mpirun: the MPI communicator (Communicator.h)
// carries each NCCL communicator's unique id from its first rank to the
// others, under KILN_COLLECTIVE_TIMEOUT, so a rank that never arrives fails
// the others with a message instead of a hang. Like the MPI communicator it
// keeps two NCCL communicators: the replica's group (send/recv between
// pipeline stages) and this rank's stage (the tensor-parallel all-reduces).
// A world of one rank needs no MPI: its ids stay local.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_NCCLCOMMUNICATOR_H
#define KILN_RUNTIME_NCCLCOMMUNICATOR_H

#include "kiln/runtime/HostABI.h"

#include <cstdint>
#include <memory>
#include <string>

namespace kiln::rt {

class Communicator;

class NcclCommunicator {
public:
  /// The oldest NCCL accepted, as ncclGetVersion reports it (2.18.0: every
  /// function below with its current prototype).
  static constexpr int kMinimumVersion = 21800;

  /// Loads NCCL and creates this rank's communicators for a group of
  /// tp * pp ranks laid out as `mpi` lays them out (rank = stage * tp + t),
  /// or of one rank when `mpi` is null. Exchanges run on `stream` (a
  /// CUstream of the current CUDA context).
  static std::unique_ptr<NcclCommunicator>
  open(Communicator *mpi, int tp, void *stream, std::string &err);
  ~NcclCommunicator();
  NcclCommunicator(const NcclCommunicator &) = delete;
  NcclCommunicator &operator=(const NcclCommunicator &) = delete;

  /// "2.28.9".
  const std::string &getVersion() const { return version; }
  /// How long a step's exchanges may wait for the other ranks (the MPI
  /// communicator's KILN_COLLECTIVE_TIMEOUT).
  double getTimeoutSeconds() const { return timeoutSeconds; }
  /// After a timeout: ends the communicators (ncclCommAbort), so that NCCL
  /// kernels waiting for a dead rank return; later exchanges fail.
  void abort();

  /// Enqueues one KilnCommOp of `count` floats at device addresses on the
  /// stream; a failure is kept for takeError.
  void exchange(KilnCommOp op, int peer, const void *in, void *out,
                int64_t count);
  /// The first failed exchange since the last call: true and its message.
  bool takeError(std::string &err);

  /// KilnRtContext::communicate for a context whose `communicator` is a
  /// NcclCommunicator (called once per step, tid 0).
  static void communicate(KilnRtContext *rt, int32_t op, int32_t peer,
                          const float *in, float *out, int64_t count,
                          int32_t tid);

private:
  NcclCommunicator() = default;
  struct NCCL;
  std::unique_ptr<NCCL> nccl;
  void *groupComm = nullptr; // ncclComm_t of the replica
  void *stageComm = nullptr; // ncclComm_t of this rank's pipeline stage
  void *stream = nullptr;
  int rank = 0, groupSize = 1;
  double timeoutSeconds = 300;
  std::string version;
  std::string error;
};

} // namespace kiln::rt

#endif // KILN_RUNTIME_NCCLCOMMUNICATOR_H
