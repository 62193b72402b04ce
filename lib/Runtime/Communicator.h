//===- Communicator.h - ranks of a distributed model over MPI ---*- C++ -*-===//
//
// The runtime's communicator interface for a model split by kiln-shard:
// generated code reaches it through KilnRtContext::communicate
// (kiln/runtime/HostABI.h). Implemented over the MPI C API of OpenMPI,
// loaded at run time with dlopen like libcuda, so Kiln builds and runs
// without MPI and a missing library is a one-line error. The handles are
// OpenMPI's (pointers to its predefined objects); MPICH's integer handles
// are a different ABI and are refused by name.
//
// The MPI world is split into groups of consecutive ranks, one model replica
// each (data parallelism across groups, tensor / pipeline parallelism
// inside one). Errors follow MPI's default handler: a failed call, or a rank
// that dies, makes mpirun end every rank with its message. A rank that hangs
// is caught by our own deadline: every exchange is a nonblocking call polled
// for at most KILN_COLLECTIVE_TIMEOUT seconds (default 300), then fails the
// step with a one-line error naming the operation and the rank.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_COMMUNICATOR_H
#define KILN_RUNTIME_COMMUNICATOR_H

#include "kiln/runtime/HostABI.h"

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

namespace kiln::rt {

class Communicator {
public:
  /// Starts MPI (KILN_MPI_LIBRARY, else OpenMPI's libmpi.so.40) and splits
  /// its world into `groups` groups of tp * pp ranks, and each group into
  /// its pp stages of tp ranks (the all-reduces' ranks); fails when the
  /// world has another size.
  static std::unique_ptr<Communicator> open(int tp, int pp, int groups,
                                            std::string &err);
  ~Communicator();
  Communicator(const Communicator &) = delete;
  Communicator &operator=(const Communicator &) = delete;

  int getWorldRank() const { return worldRank; }
  int getWorldSize() const { return worldSize; }
  /// This process's rank in its group, and the group's size and index.
  int getRank() const { return rank; }
  int getGroupSize() const { return groupSize; }
  int getGroup() const { return worldRank / groupSize; }
  /// KILN_COLLECTIVE_TIMEOUT (or its default), in seconds.
  double getTimeoutSeconds() const { return timeoutSeconds; }

  /// One KilnCommOp of `count` floats with rank `peer` of the group (the
  /// ranks of this rank's pipeline stage for an all-reduce). A failure is
  /// kept for takeError.
  void exchange(KilnCommOp op, int peer, const float *in, float *out,
                int64_t count);
  /// Copies `size` bytes from the first rank of this rank's group (or of
  /// its pipeline stage) to the others and returns once all of them have
  /// them, under the same deadline; false and a one-line message on failure.
  bool broadcast(void *bytes, int size, bool withinStage, std::string &err);
  /// The first failed exchange since the last call: true and its message.
  bool takeError(std::string &err);
  /// Wall-clock seconds spent in exchange, and its calls, since open.
  double getSeconds() const { return seconds; }
  int64_t getCalls() const { return calls; }

private:
  Communicator() = default;
  /// Polls `request` until it completes (MPI's code) or the deadline after
  /// `start` passes (kSuccess with the timeout in `error`).
  int wait(void *&request, const std::string &what,
           std::chrono::steady_clock::time_point start);
  struct MPI;
  std::unique_ptr<MPI> mpi;
  void *groupComm = nullptr; // MPI_Comm of this rank's group
  void *stageComm = nullptr; // MPI_Comm of its pipeline stage's TP ranks
  int worldRank = 0, worldSize = 1, rank = 0, groupSize = 1;
  std::string error;
  double timeoutSeconds = 0;
  bool broken = false; // an exchange timed out and is still pending
  double seconds = 0;
  int64_t calls = 0;
};

/// "all-reduce of 64 values", "send of 64 values to rank 1": an exchange in
/// error messages.
std::string describeExchange(KilnCommOp op, int peer, int64_t count);

/// Whether a step's exchange is one the communicators can run: a known op,
/// a count >= 0, a peer in the group; else false with a one-line `err`.
bool checkExchange(KilnCommOp op, int peer, int64_t count, int groupSize,
                   std::string &err);

/// KilnRtContext::communicate for a thread pool whose context's
/// `communicator` is a Communicator.
void communicateOnPool(KilnRtContext *rt, int32_t op, int32_t peer,
                       const float *in, float *out, int64_t count,
                       int32_t tid);

} // namespace kiln::rt

#endif // KILN_RUNTIME_COMMUNICATOR_H
