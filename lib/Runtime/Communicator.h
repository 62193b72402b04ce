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
// that dies, makes mpirun end every rank with its message instead of
// letting the others wait forever.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_COMMUNICATOR_H
#define KILN_RUNTIME_COMMUNICATOR_H

#include "kiln/runtime/HostABI.h"

#include <cstdint>
#include <memory>
#include <string>

namespace kiln::rt {

class Communicator {
public:
  /// Starts MPI (KILN_MPI_LIBRARY, else OpenMPI's libmpi.so.40) and splits
  /// its world into `groups` groups of `groupSize` ranks; fails when the
  /// world has another size.
  static std::unique_ptr<Communicator> open(int groupSize, int groups,
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

  /// One KilnCommOp of `count` floats with rank `peer` of the group (the
  /// whole group for an all-reduce). A failure is kept for takeError.
  void exchange(KilnCommOp op, int peer, const float *in, float *out,
                int64_t count);
  /// The first failed exchange since the last call: true and its message.
  bool takeError(std::string &err);
  /// Wall-clock seconds spent in exchange, and its calls, since open.
  double getSeconds() const { return seconds; }
  int64_t getCalls() const { return calls; }

  /// Waits for every rank of the world (outside a step).
  void barrierAll();

private:
  Communicator() = default;
  struct MPI;
  std::unique_ptr<MPI> mpi;
  void *groupComm = nullptr; // MPI_Comm of this rank's group
  int worldRank = 0, worldSize = 1, rank = 0, groupSize = 1;
  std::string error;
  double seconds = 0;
  int64_t calls = 0;
};

/// KilnRtContext::communicate for a thread pool whose context's
/// `communicator` is a Communicator.
void communicateOnPool(KilnRtContext *rt, int32_t op, int32_t peer,
                       const float *in, float *out, int64_t count,
                       int32_t tid);

} // namespace kiln::rt

#endif // KILN_RUNTIME_COMMUNICATOR_H
