//===- ThreadPool.h - persistent SPMD threads and their barrier -*- C++ -*-===//
//
// Generated step functions are SPMD (see kiln/runtime/HostABI.h): every thread
// of the pool runs the same function with its own tid and synchronizes with
// the barrier exposed as KilnRtContext::barrier. Threads persist across calls
// and nothing is allocated per call.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_THREADPOOL_H
#define KILN_RUNTIME_THREADPOOL_H

#include "kiln/runtime/HostABI.h"

#include <atomic>
#include <cstdint>
#include <memory>
#include <pthread.h>
#include <string>
#include <vector>

namespace kiln::rt {

/// A reusable barrier for a fixed number of threads: an arrival counter and
/// a generation number. Waiters spin briefly (a barrier between two kernels
/// of one token is usually microseconds away), then sleep on a futex so an
/// oversubscribed machine still makes progress.
class Barrier {
public:
  explicit Barrier(int n) : n(n) {}
  void wait();
  /// Busy-wait iterations (of a pause instruction, ~10-40 ns each) before a
  /// waiter yields and then sleeps.
  void setSpins(int s) { spins = s; }
  int getSpins() const { return spins; }

private:
  const int n;
  int spins = 4096;
  alignas(64) std::atomic<int> count{0};
  alignas(64) std::atomic<uint32_t> generation{0};
  std::atomic<int> sleepers{0};
};

class ThreadPool {
public:
  static constexpr int kMaxThreads = 1024;

  /// Starts `n - 1` worker threads (the caller is thread 0).
  static std::unique_ptr<ThreadPool> create(int n, std::string &err);
  ~ThreadPool();
  ThreadPool(const ThreadPool &) = delete;
  ThreadPool &operator=(const ThreadPool &) = delete;

  int size() const { return n; }

  using TaskFn = void (*)(void *ctx, int tid, int nth);
  /// Runs fn(ctx, tid, n) on all n threads, the caller as tid 0, and returns
  /// when all have finished. Not reentrant.
  void run(TaskFn fn, void *ctx);

  /// Convenience over run() for a callable taking (tid, nth).
  template <typename F> void run(F &f) {
    run([](void *c, int tid, int nth) { (*static_cast<F *>(c))(tid, nth); },
        &f);
  }

  /// Waits until all n threads of the current run() have arrived.
  void barrier() { bar.wait(); }

  /// The context handed to generated code; its barrier calls barrier().
  KilnRtContext *getContext() { return &context; }

private:
  explicit ThreadPool(int n) : n(n), bar(n) {}
  void workerLoop(int tid);
  void pinWorker(int tid);

  const int n;
  Barrier bar;
  KilnRtContext context{};
  std::vector<pthread_t> workerHandles;
  TaskFn task = nullptr;
  void *taskCtx = nullptr;
  alignas(64) std::atomic<uint32_t> jobGeneration{0};
  std::atomic<int> idleSleepers{0};
  std::atomic<bool> stopping{false};
};

} // namespace kiln::rt

#endif // KILN_RUNTIME_THREADPOOL_H
