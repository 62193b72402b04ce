//===- Communicator.cpp - the MPI C API, loaded at run time ---------------===//

#include "Runtime/Communicator.h"
#include "Runtime/SystemLibrary.h"

#include "Runtime/ThreadPool.h"

#include <chrono>
#include <climits>
#include <cmath>
#include <cstdlib>
#include <thread>
#include <type_traits>

using namespace kiln::rt;

namespace {
// OpenMPI's ABI (mpi.h of Open MPI 4): every handle is a pointer to one of
// its objects, the predefined ones exported as ompi_mpi_* symbols.
using Handle = void *;
constexpr int kSuccess = 0;          // MPI_SUCCESS
constexpr int kThreadFunneled = 1;   // MPI_THREAD_FUNNELED
constexpr int kMaxErrorString = 256; // MPI_MAX_ERROR_STRING
// How long one exchange may wait for the other ranks unless
// KILN_COLLECTIVE_TIMEOUT says otherwise: far above a step of a model that
// fits on CPU ranks, far below forever.
constexpr double kDefaultTimeoutSeconds = 300;
} // namespace

std::string kiln::rt::describeExchange(KilnCommOp op, int peer,
                                       int64_t count) {
  std::string values = " of " + std::to_string(count) + " values";
  switch (op) {
  case KILN_COMM_ALL_REDUCE_SUM:
    return "all-reduce" + values;
  case KILN_COMM_SEND:
    return "send" + values + " to rank " + std::to_string(peer);
  case KILN_COMM_RECV:
    return "recv" + values + " from rank " + std::to_string(peer);
  }
  return "exchange" + values;
}

bool kiln::rt::checkExchange(KilnCommOp op, int peer, int64_t count,
                             int groupSize, std::string &err) {
  if (op != KILN_COMM_ALL_REDUCE_SUM && op != KILN_COMM_SEND &&
      op != KILN_COMM_RECV)
    err = "unknown communication op " + std::to_string(int(op));
  else if (count < 0)
    err = "cannot exchange " + std::to_string(count) + " values";
  else if (op != KILN_COMM_ALL_REDUCE_SUM && (peer < 0 || peer >= groupSize))
    err = "the step names rank " + std::to_string(peer) + " of a group of " +
          std::to_string(groupSize);
  else
    return true;
  return false;
}

/// The MPI functions and predefined handles Kiln uses.
struct Communicator::MPI {
  void *library = nullptr;
  int (*Initialized)(int *);
  int (*Init_thread)(int *, char ***, int, int *);
  int (*Finalize)();
  int (*Comm_rank)(Handle, int *);
  int (*Comm_size)(Handle, int *);
  int (*Comm_split)(Handle, int, int, Handle *);
  int (*Comm_free)(Handle *);
  // Nonblocking calls polled against a deadline: MPI itself never times out.
  int (*Iallreduce)(const void *, void *, int, Handle, Handle, Handle,
                    Handle *);
  int (*Isend)(const void *, int, Handle, int, int, Handle, Handle *);
  int (*Irecv)(void *, int, Handle, int, int, Handle, Handle *);
  int (*Ibcast)(void *, int, Handle, int, Handle, Handle *);
  int (*Test)(Handle *, int *, void *);
  int (*Abort)(Handle, int);
  int (*Error_string)(int, char *, int *);
  Handle commWorld, floatType, byteType, sumOp;

  std::string describe(int code) const {
    char text[kMaxErrorString];
    int length = 0;
    if (Error_string(code, text, &length) != kSuccess)
      return "MPI error " + std::to_string(code);
    return std::string(text, length);
  }
};

std::unique_ptr<Communicator> Communicator::open(int tp, int pp, int groups,
                                                 std::string &err) {
  int groupSize = tp * pp;
  double timeout = kDefaultTimeoutSeconds;
  if (const char *text = std::getenv("KILN_COLLECTIVE_TIMEOUT");
      text && *text) {
    char *end = nullptr;
    timeout = std::strtod(text, &end);
    if (*end || !std::isfinite(timeout) || timeout <= 0) {
      err = std::string("KILN_COLLECTIVE_TIMEOUT must be a positive number "
                        "of seconds, got '") +
            text + "'";
      return nullptr;
    }
  }
  SystemLibrary lib;
  auto mpi = std::make_unique<MPI>();
  // RTLD_GLOBAL: OpenMPI's own plugins resolve libmpi's symbols.
  if (!lib.open("KILN_MPI_LIBRARY", "libmpi.so.40", RTLD_NOW | RTLD_GLOBAL)) {
    err = "MPI is not installed: cannot load " + lib.path + " (" + lib.whyNot +
          "); distributed runs need OpenMPI (apt install openmpi-bin)";
    return nullptr;
  }
  mpi->library = lib.handle;
  lib.resolve(mpi->Initialized, "MPI_Initialized");
  lib.resolve(mpi->Init_thread, "MPI_Init_thread");
  lib.resolve(mpi->Finalize, "MPI_Finalize");
  lib.resolve(mpi->Comm_rank, "MPI_Comm_rank");
  lib.resolve(mpi->Comm_size, "MPI_Comm_size");
  lib.resolve(mpi->Comm_split, "MPI_Comm_split");
  lib.resolve(mpi->Comm_free, "MPI_Comm_free");
  lib.resolve(mpi->Iallreduce, "MPI_Iallreduce");
  lib.resolve(mpi->Isend, "MPI_Isend");
  lib.resolve(mpi->Irecv, "MPI_Irecv");
  lib.resolve(mpi->Ibcast, "MPI_Ibcast");
  lib.resolve(mpi->Test, "MPI_Test");
  lib.resolve(mpi->Abort, "MPI_Abort");
  lib.resolve(mpi->Error_string, "MPI_Error_string");
  lib.resolve(mpi->commWorld, "ompi_mpi_comm_world");
  lib.resolve(mpi->floatType, "ompi_mpi_float");
  lib.resolve(mpi->byteType, "ompi_mpi_byte");
  lib.resolve(mpi->sumOp, "ompi_mpi_op_sum");
  if (!lib.firstMissing.empty()) {
    err = lib.path + " has no " + lib.firstMissing +
          ": Kiln needs OpenMPI's MPI library (MPICH has another ABI)";
    return nullptr;
  }

  int started = 0, provided = 0;
  if (int rc = mpi->Initialized(&started); rc != kSuccess) {
    err = "MPI_Initialized failed: " + mpi->describe(rc);
    return nullptr;
  }
  // Only the thread that calls a step (the pool's thread 0) calls MPI.
  if (!started) {
    if (int rc = mpi->Init_thread(nullptr, nullptr, kThreadFunneled,
                                  &provided);
        rc != kSuccess) {
      err = "MPI_Init_thread failed: " + mpi->describe(rc);
      return nullptr;
    }
  }
  std::unique_ptr<Communicator> c(new Communicator());
  c->mpi = std::move(mpi);
  MPI &m = *c->mpi;
  m.Comm_rank(m.commWorld, &c->worldRank);
  m.Comm_size(m.commWorld, &c->worldSize);
  if (tp < 1 || pp < 1 || groups < 1 ||
      int64_t(groupSize) * groups != c->worldSize) {
    err = "the MPI world has " + std::to_string(c->worldSize) +
          " ranks but the run needs " + std::to_string(groups) + " x " +
          std::to_string(groupSize) + " = " +
          std::to_string(int64_t(groupSize) * groups) +
          " (mpirun -np must be dp * tp * pp)";
    return nullptr;
  }
  c->groupSize = groupSize;
  c->timeoutSeconds = timeout;
  if (int rc = m.Comm_split(m.commWorld, c->worldRank / groupSize,
                            c->worldRank % groupSize, &c->groupComm);
      rc != kSuccess) {
    err = "MPI_Comm_split failed: " + m.describe(rc);
    return nullptr;
  }
  m.Comm_rank(c->groupComm, &c->rank);
  // kiln-shard gives group rank stage * tp + t to TP rank t of a stage;
  // that stage's all-reduces sum over its tp ranks only.
  if (int rc = m.Comm_split(c->groupComm, c->rank / tp, c->rank % tp,
                            &c->stageComm);
      rc != kSuccess) {
    err = "MPI_Comm_split failed: " + m.describe(rc);
    return nullptr;
  }
  return c;
}

Communicator::~Communicator() {
  if (!mpi)
    return;
  // A timed-out exchange is still pending on a rank that died or hangs:
  // MPI_Finalize would wait for it forever, MPI_Abort ends every rank.
  if (broken)
    mpi->Abort(mpi->commWorld, 1);
  if (stageComm)
    mpi->Comm_free(&stageComm);
  if (groupComm)
    mpi->Comm_free(&groupComm);
  mpi->Finalize();
  // The library stays loaded: OpenMPI keeps threads and exit handlers.
}

void Communicator::exchange(KilnCommOp op, int peer, const float *in,
                            float *out, int64_t count) {
  using Clock = std::chrono::steady_clock;
  auto start = Clock::now();
  // After a failure the step runs to its end without waiting again: every
  // later exchange of it would time out too.
  if (broken || !error.empty())
    return;
  if (!checkExchange(op, peer, count, groupSize, error))
    return;
  if (count > INT_MAX) {
    error = "cannot exchange " + std::to_string(count) +
            " values in one MPI call";
    return;
  }
  Handle request = nullptr;
  int rc = kSuccess;
  switch (op) {
  case KILN_COMM_ALL_REDUCE_SUM:
    rc = mpi->Iallreduce(in, out, int(count), mpi->floatType, mpi->sumOp,
                         stageComm, &request);
    break;
  case KILN_COMM_SEND:
    rc = mpi->Isend(in, int(count), mpi->floatType, peer, 0, groupComm,
                    &request);
    break;
  case KILN_COMM_RECV:
    rc = mpi->Irecv(out, int(count), mpi->floatType, peer, 0, groupComm,
                    &request);
    break;
  }
  std::string what = describeExchange(op, peer, count) + " (rank " +
                     std::to_string(rank) + " of replica " +
                     std::to_string(getGroup()) + ")";
  if (rc == kSuccess)
    rc = wait(request, what, start);
  if (rc != kSuccess && error.empty())
    error = what + " failed: " + mpi->describe(rc);
  seconds += std::chrono::duration<double>(Clock::now() - start).count();
  ++calls;
}

int Communicator::wait(void *&request, const std::string &what,
                       std::chrono::steady_clock::time_point start) {
  using Clock = std::chrono::steady_clock;
  auto deadline = start + std::chrono::duration_cast<Clock::duration>(
                              std::chrono::duration<double>(timeoutSeconds));
  int done = 0;
  for (;;) {
    if (int rc = mpi->Test(&request, &done, /*MPI_STATUS_IGNORE=*/nullptr);
        rc != kSuccess || done)
      return rc;
    if (Clock::now() > deadline) {
      broken = true;
      char seconds[32];
      std::snprintf(seconds, sizeof seconds, "%g", timeoutSeconds);
      error = what + " timed out after " + seconds +
              " s: another rank died or hangs (KILN_COLLECTIVE_TIMEOUT)";
      return kSuccess;
    }
    // Ranks may outnumber cores: let the one being waited for run.
    std::this_thread::yield();
  }
}

bool Communicator::broadcast(void *bytes, int size, bool withinStage,
                             std::string &err) {
  auto start = std::chrono::steady_clock::now();
  Handle request = nullptr;
  std::string what = "broadcast of " + std::to_string(size) +
                     " bytes (rank " + std::to_string(rank) + " of replica " +
                     std::to_string(getGroup()) + ")";
  Handle comm = withinStage ? stageComm : groupComm;
  int rc = mpi->Ibcast(bytes, size, mpi->byteType, 0, comm, &request);
  if (rc == kSuccess)
    rc = wait(request, what, start);
  // The first rank's broadcast may complete before the others arrive: count
  // them, so every rank leaves having met all the others (what follows, such
  // as ncclCommInitRank, may wait for them without a deadline).
  float one = 1, ranks = 0;
  if (rc == kSuccess && error.empty())
    rc = mpi->Iallreduce(&one, &ranks, 1, mpi->floatType, mpi->sumOp, comm,
                         &request);
  if (rc == kSuccess && error.empty())
    rc = wait(request, what, start);
  if (rc != kSuccess && error.empty())
    error = what + " failed: " + mpi->describe(rc);
  return !takeError(err);
}

bool Communicator::takeError(std::string &err) {
  if (error.empty())
    return false;
  err = std::move(error);
  error.clear();
  return true;
}

void kiln::rt::communicateOnPool(KilnRtContext *rt, int32_t op, int32_t peer,
                                 const float *in, float *out, int64_t count,
                                 int32_t tid) {
  if (tid == 0)
    static_cast<Communicator *>(rt->communicator)
        ->exchange(KilnCommOp(op), peer, in, out, count);
  // Every thread continues once the data is in place.
  static_cast<ThreadPool *>(rt->pool)->barrier();
}
