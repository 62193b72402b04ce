//===- ThreadPool.cpp - persistent SPMD threads and their barrier ---------===//

#include "Runtime/ThreadPool.h"

#include <climits>
#include <cstdlib>
#include <cstring>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

using namespace kiln::rt;

static void futexWait(std::atomic<uint32_t> *addr, uint32_t expected) {
  static_assert(sizeof(std::atomic<uint32_t>) == sizeof(uint32_t));
  ::syscall(SYS_futex, reinterpret_cast<uint32_t *>(addr), FUTEX_WAIT_PRIVATE,
            expected, nullptr, nullptr, 0);
}

static void futexWakeAll(std::atomic<uint32_t> *addr) {
  ::syscall(SYS_futex, reinterpret_cast<uint32_t *>(addr), FUTEX_WAKE_PRIVATE,
            INT_MAX, nullptr, nullptr, 0);
}

static inline void cpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __asm__ volatile("pause" ::: "memory");
#elif defined(__aarch64__)
  __asm__ volatile("yield" ::: "memory");
#endif
}

/// Spins until `*word != seen` for a while, then sleeps on the futex.
/// `sleepers` lets the waker skip the syscall when nobody sleeps; the seq_cst
/// increment-then-recheck here and store-then-load in the waker guarantee one
/// of the two sides sees the other (no lost wake-up).
static void waitForChange(std::atomic<uint32_t> &word, uint32_t seen,
                          std::atomic<int> &sleepers, int spins) {
  for (int i = 0; i < spins; ++i) {
    if (word.load(std::memory_order_acquire) != seen)
      return;
    cpuRelax();
  }
  for (int i = 0; i < 16; ++i) {
    if (word.load(std::memory_order_acquire) != seen)
      return;
    sched_yield();
  }
  sleepers.fetch_add(1, std::memory_order_seq_cst);
  while (word.load(std::memory_order_seq_cst) == seen)
    futexWait(&word, seen);
  sleepers.fetch_sub(1, std::memory_order_relaxed);
}

static void publishChange(std::atomic<uint32_t> &word, uint32_t next,
                          std::atomic<int> &sleepers) {
  word.store(next, std::memory_order_seq_cst);
  if (sleepers.load(std::memory_order_seq_cst) > 0)
    futexWakeAll(&word);
}

void Barrier::wait() {
  if (n == 1)
    return;
  uint32_t gen = generation.load(std::memory_order_acquire);
  if (count.fetch_add(1, std::memory_order_acq_rel) + 1 == n) {
    // Reset before publishing: a thread leaving this barrier may arrive at
    // the next one only after it sees the new generation.
    count.store(0, std::memory_order_relaxed);
    publishChange(generation, gen + 1, sleepers);
    return;
  }
  waitForChange(generation, gen, sleepers, spins);
}

static void rtBarrier(KilnRtContext *rt) {
  static_cast<ThreadPool *>(rt->pool)->barrier();
}

std::unique_ptr<ThreadPool> ThreadPool::create(int n, std::string &err) {
  if (n < 1 || n > kMaxThreads) {
    err = "thread count must be 1 to " + std::to_string(kMaxThreads) +
          ", got " + std::to_string(n);
    return nullptr;
  }
  std::unique_ptr<ThreadPool> pool(new ThreadPool(n));
  // Spinning only pays when every thread has a core of its own; with more
  // threads than cores a spinner steals the time of the thread it waits for.
  cpu_set_t allowed;
  if (sched_getaffinity(0, sizeof(allowed), &allowed) == 0 &&
      CPU_COUNT(&allowed) < n)
    pool->bar.setSpins(0);
  pool->context.barrier = rtBarrier;
  pool->context.pool = pool.get();
  pool->workerHandles.reserve(n - 1);
  for (int tid = 1; tid < n; ++tid) {
    // std::thread reports failure to start with an exception, which this
    // library does not use; pthread_create's error code is checked instead.
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_t handle;
    struct Start {
      ThreadPool *pool;
      int tid;
    };
    auto *start = new Start{pool.get(), tid};
    int rc = pthread_create(
        &handle, &attr,
        [](void *p) -> void * {
          Start s = *static_cast<Start *>(p);
          delete static_cast<Start *>(p);
          s.pool->workerLoop(s.tid);
          return nullptr;
        },
        start);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
      delete start;
      err = "cannot start thread " + std::to_string(tid) + " of " +
            std::to_string(n) + ": " + std::strerror(rc);
      // The pool destructor stops the threads started so far.
      return nullptr;
    }
    pool->workerHandles.push_back(handle);
    pool->pinWorker(tid);
  }
  return pool;
}

/// Pins worker `tid` to the tid-th CPU the process may run on, when there
/// are at least as many such CPUs as threads (else pinning would stack
/// threads). The caller's thread is left alone: it belongs to the embedder.
/// KILN_PIN_THREADS=0 turns pinning off.
void ThreadPool::pinWorker(int tid) {
  if (const char *e = std::getenv("KILN_PIN_THREADS");
      e && !std::strcmp(e, "0"))
    return;
  cpu_set_t allowed;
  if (sched_getaffinity(0, sizeof(allowed), &allowed) != 0 ||
      CPU_COUNT(&allowed) < n)
    return;
  int seen = 0;
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (!CPU_ISSET(cpu, &allowed) || seen++ != tid)
      continue;
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    pthread_setaffinity_np(workerHandles.back(), sizeof(one), &one);
    return;
  }
}

ThreadPool::~ThreadPool() {
  stopping.store(true, std::memory_order_seq_cst);
  publishChange(jobGeneration, jobGeneration.load() + 1, idleSleepers);
  for (pthread_t h : workerHandles)
    pthread_join(h, nullptr);
}

void ThreadPool::run(TaskFn fn, void *ctx) {
  task = fn;
  taskCtx = ctx;
  if (n > 1)
    publishChange(jobGeneration, jobGeneration.load() + 1, idleSleepers);
  fn(ctx, 0, n);
  // The closing barrier tells the caller every worker is done with `ctx`.
  bar.wait();
}

void ThreadPool::workerLoop(int tid) {
  uint32_t seen = 0;
  for (;;) {
    waitForChange(jobGeneration, seen, idleSleepers, bar.getSpins());
    seen = jobGeneration.load(std::memory_order_acquire);
    if (stopping.load(std::memory_order_acquire))
      return;
    task(taskCtx, tid, n);
    bar.wait();
  }
}
