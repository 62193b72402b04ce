//===- Communicator.cpp - the MPI C API, loaded at run time ---------------===//

#include "Runtime/Communicator.h"

#include "Runtime/ThreadPool.h"

#include <chrono>
#include <climits>
#include <cstdlib>
#include <dlfcn.h>
#include <type_traits>

using namespace kiln::rt;

namespace {
// OpenMPI's ABI (mpi.h of Open MPI 4): every handle is a pointer to one of
// its objects, the predefined ones exported as ompi_mpi_* symbols.
using Handle = void *;
constexpr int kSuccess = 0;          // MPI_SUCCESS
constexpr int kThreadFunneled = 1;   // MPI_THREAD_FUNNELED
constexpr int kMaxErrorString = 256; // MPI_MAX_ERROR_STRING
} // namespace

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
  int (*Allreduce)(const void *, void *, int, Handle, Handle, Handle);
  int (*Send)(const void *, int, Handle, int, int, Handle);
  int (*Recv)(void *, int, Handle, int, int, Handle, void *);
  int (*Barrier)(Handle);
  int (*Error_string)(int, char *, int *);
  Handle commWorld, floatType, sumOp;

  std::string describe(int code) const {
    char text[kMaxErrorString];
    int length = 0;
    if (Error_string(code, text, &length) != kSuccess)
      return "MPI error " + std::to_string(code);
    return std::string(text, length);
  }
};

std::unique_ptr<Communicator> Communicator::open(int groupSize, int groups,
                                                 std::string &err) {
  const char *override = std::getenv("KILN_MPI_LIBRARY");
  const char *path = override && *override ? override : "libmpi.so.40";
  auto mpi = std::make_unique<MPI>();
  // RTLD_GLOBAL: OpenMPI's own plugins resolve libmpi's symbols.
  mpi->library = ::dlopen(path, RTLD_NOW | RTLD_GLOBAL);
  if (!mpi->library) {
    const char *why = ::dlerror();
    err = std::string("MPI is not installed: cannot load ") + path + " (" +
          (why ? why : "dlopen failed") +
          "); distributed runs need OpenMPI (apt install openmpi-bin)";
    return nullptr;
  }
  bool missing = false;
  std::string missingName;
  auto resolve = [&](auto &slot, const char *name) {
    slot = reinterpret_cast<std::remove_reference_t<decltype(slot)>>(
        ::dlsym(mpi->library, name));
    if (!slot && !missing) {
      missing = true;
      missingName = name;
    }
  };
  resolve(mpi->Initialized, "MPI_Initialized");
  resolve(mpi->Init_thread, "MPI_Init_thread");
  resolve(mpi->Finalize, "MPI_Finalize");
  resolve(mpi->Comm_rank, "MPI_Comm_rank");
  resolve(mpi->Comm_size, "MPI_Comm_size");
  resolve(mpi->Comm_split, "MPI_Comm_split");
  resolve(mpi->Comm_free, "MPI_Comm_free");
  resolve(mpi->Allreduce, "MPI_Allreduce");
  resolve(mpi->Send, "MPI_Send");
  resolve(mpi->Recv, "MPI_Recv");
  resolve(mpi->Barrier, "MPI_Barrier");
  resolve(mpi->Error_string, "MPI_Error_string");
  resolve(mpi->commWorld, "ompi_mpi_comm_world");
  resolve(mpi->floatType, "ompi_mpi_float");
  resolve(mpi->sumOp, "ompi_mpi_op_sum");
  if (missing) {
    err = std::string(path) + " has no " + missingName +
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
  if (groupSize < 1 || groups < 1 ||
      int64_t(groupSize) * groups != c->worldSize) {
    err = "the MPI world has " + std::to_string(c->worldSize) +
          " ranks but the run needs " + std::to_string(groups) + " x " +
          std::to_string(groupSize) + " = " +
          std::to_string(int64_t(groupSize) * groups) +
          " (mpirun -np must be dp * tp * pp)";
    return nullptr;
  }
  c->groupSize = groupSize;
  if (int rc = m.Comm_split(m.commWorld, c->worldRank / groupSize,
                            c->worldRank % groupSize, &c->groupComm);
      rc != kSuccess) {
    err = "MPI_Comm_split failed: " + m.describe(rc);
    return nullptr;
  }
  m.Comm_rank(c->groupComm, &c->rank);
  return c;
}

Communicator::~Communicator() {
  if (!mpi)
    return;
  if (groupComm)
    mpi->Comm_free(&groupComm);
  mpi->Finalize();
  // The library stays loaded: OpenMPI keeps threads and exit handlers.
}

void Communicator::exchange(KilnCommOp op, int peer, const float *in,
                            float *out, int64_t count) {
  using Clock = std::chrono::steady_clock;
  auto start = Clock::now();
  int rc = kSuccess;
  if (count < 0 || count > INT_MAX) {
    if (error.empty())
      error = "cannot exchange " + std::to_string(count) +
              " values in one MPI call";
    return;
  }
  if (op != KILN_COMM_ALL_REDUCE_SUM && (peer < 0 || peer >= groupSize)) {
    if (error.empty())
      error = "the step names rank " + std::to_string(peer) +
              " of a group of " + std::to_string(groupSize);
    return;
  }
  switch (op) {
  case KILN_COMM_ALL_REDUCE_SUM:
    rc = mpi->Allreduce(in, out, int(count), mpi->floatType, mpi->sumOp,
                        groupComm);
    break;
  case KILN_COMM_SEND:
    rc = mpi->Send(in, int(count), mpi->floatType, peer, 0, groupComm);
    break;
  case KILN_COMM_RECV:
    rc = mpi->Recv(out, int(count), mpi->floatType, peer, 0, groupComm,
                   /*MPI_STATUS_IGNORE=*/nullptr);
    break;
  default:
    if (error.empty())
      error = "unknown communication op " + std::to_string(int(op));
    return;
  }
  if (rc != kSuccess && error.empty())
    error = "MPI call with rank " + std::to_string(peer) +
            " failed: " + mpi->describe(rc);
  seconds += std::chrono::duration<double>(Clock::now() - start).count();
  ++calls;
}

bool Communicator::takeError(std::string &err) {
  if (error.empty())
    return false;
  err = std::move(error);
  error.clear();
  return true;
}

void Communicator::barrierAll() { mpi->Barrier(mpi->commWorld); }

void kiln::rt::communicateOnPool(KilnRtContext *rt, int32_t op, int32_t peer,
                                 const float *in, float *out, int64_t count,
                                 int32_t tid) {
  if (tid == 0)
    static_cast<Communicator *>(rt->communicator)
        ->exchange(KilnCommOp(op), peer, in, out, count);
  // Every thread continues once the data is in place.
  static_cast<ThreadPool *>(rt->pool)->barrier();
}
