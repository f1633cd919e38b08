#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>
#include "team.h"

#if defined(__linux__)
#include <linux/futex.h>
#include <sys/syscall.h>
#endif

/* How a run is handed out: `state` holds the run's number in its high 32 bits and the next
   unclaimed task in its low 32 bits. A worker claims a task with a compare-and-swap that
   also checks the run number, so a worker that wakes late for a finished run can never
   claim a task of the next one under the old number; the run's fn, ctx and tasks are
   written before its number is published and stay fixed until every task of it is done.
   A new run first closes `state` (its own number, no task claimable) and only then writes
   `tasks`: a worker that read the finished run's state and then the new, larger task count
   would otherwise claim a task that does not exist with a compare-and-swap that still
   matches the old state, run some task of the new run twice and count it done. */
enum { MAX_WORKERS = 15 };
static const uint64_t CLOSED = 0xFFFFFFFFu; /* a task index no run reaches (tasks < 2^32) */

static struct {
    pthread_once_t once;
    int workers;
    atomic_flag busy;
    _Atomic uint32_t run;        /* futex word: the number of the latest run */
    _Atomic uint64_t state;      /* run << 32 | next task */
    _Atomic size_t done;         /* tasks of the current run finished */
    _Atomic int sleepers;
    kv_team_fn fn;
    void *ctx;
    _Atomic size_t tasks;
} team = {.once = PTHREAD_ONCE_INIT, .busy = ATOMIC_FLAG_INIT};

/* Spinning budget after a run: first plain pauses, then sched_yield (so another runnable
   thread on this core, e.g. a BLAS worker, is not held off), then sleep. */
static const uint64_t SPIN_NS = 20000, YIELD_NS = 300000;

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static void futex_wait(_Atomic uint32_t *word, uint32_t expected) {
#if defined(__linux__)
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT_PRIVATE, expected, NULL, NULL, 0);
#else
    (void)word; (void)expected;
    sched_yield();
#endif
}

static void futex_wake_all(_Atomic uint32_t *word) {
#if defined(__linux__)
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE_PRIVATE, INT32_MAX, NULL, NULL, 0);
#else
    (void)word;
#endif
}

/* Claims and runs tasks of run `run` until none is left or a newer run began. */
static void work(uint32_t run) {
    uint64_t s = atomic_load_explicit(&team.state, memory_order_acquire);
    for (;;) {
        if ((uint32_t)(s >> 32) != run || (s & 0xFFFFFFFFu) >= atomic_load_explicit(&team.tasks, memory_order_acquire)) return;
        if (!atomic_compare_exchange_weak_explicit(&team.state, &s, s + 1, memory_order_acq_rel,
                                                   memory_order_acquire))
            continue;
        team.fn(team.ctx, (size_t)(s & 0xFFFFFFFFu));
        atomic_fetch_add_explicit(&team.done, 1, memory_order_release);
        s = atomic_load_explicit(&team.state, memory_order_acquire);
    }
}

static void *worker_main(void *arg) {
    (void)arg;
    uint32_t seen = atomic_load_explicit(&team.run, memory_order_acquire);
    for (;;) {
        uint32_t run = atomic_load_explicit(&team.run, memory_order_acquire);
        if (run == seen) {
            const uint64_t start = now_ns();
            unsigned spins = 0;
            while ((run = atomic_load_explicit(&team.run, memory_order_acquire)) == seen) {
                if (++spins % 64) { cpu_relax(); continue; }
                const uint64_t waited = now_ns() - start;
                if (waited < SPIN_NS) continue;
                if (waited < YIELD_NS) { sched_yield(); continue; }
                atomic_fetch_add_explicit(&team.sleepers, 1, memory_order_seq_cst);
                futex_wait(&team.run, seen);
                atomic_fetch_sub_explicit(&team.sleepers, 1, memory_order_seq_cst);
                break;
            }
            if (run == seen) continue;
        }
        seen = run;
        work(run);
    }
    return NULL;
}

static void start_workers(void) {
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    int n = cpus > 1 ? (int)(cpus - 1) : 0;
    if (n > MAX_WORKERS) n = MAX_WORKERS;
    int started = 0;
    for (int i = 0; i < n; i++) {
        pthread_t t;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        pthread_attr_setstacksize(&attr, 1 << 20);
        if (pthread_create(&t, &attr, worker_main, NULL) == 0) started++;
        pthread_attr_destroy(&attr);
    }
    team.workers = started;
}

int kv_team_workers(void) {
    pthread_once(&team.once, start_workers);
    return team.workers;
}

int kv_team_run(kv_team_fn fn, void *ctx, size_t tasks) {
    if (tasks == 0) return 0;
    if (tasks >= CLOSED) return -1;
    pthread_once(&team.once, start_workers);
    if (atomic_flag_test_and_set_explicit(&team.busy, memory_order_acquire)) return -1;
    if (tasks == 1 || team.workers == 0) {
        for (size_t i = 0; i < tasks; i++) fn(ctx, i);
        atomic_flag_clear_explicit(&team.busy, memory_order_release);
        return 0;
    }
    const uint32_t run = atomic_load_explicit(&team.run, memory_order_relaxed) + 1;
    atomic_store_explicit(&team.state, (uint64_t)run << 32 | CLOSED, memory_order_relaxed);
    team.fn = fn;
    team.ctx = ctx;
    atomic_store_explicit(&team.tasks, tasks, memory_order_release);
    atomic_store_explicit(&team.done, 0, memory_order_relaxed);
    atomic_store_explicit(&team.state, (uint64_t)run << 32, memory_order_release);
    atomic_store_explicit(&team.run, run, memory_order_seq_cst);
    if (atomic_load_explicit(&team.sleepers, memory_order_seq_cst) > 0) futex_wake_all(&team.run);
    work(run);
    unsigned spins = 0;
    while (atomic_load_explicit(&team.done, memory_order_acquire) < tasks) {
        /* a worker holds the last tasks: spin, and yield now and then in case it was preempted */
        if (++spins % 256) cpu_relax(); else sched_yield();
    }
    atomic_flag_clear_explicit(&team.busy, memory_order_release);
    return 0;
}
