#ifndef KVSTASH_TEAM_H
#define KVSTASH_TEAM_H
#include <stddef.h>

/* A persistent team of worker threads for the many short parallel loops of a decode step
   (about 150 per token: every weight product, attention, the output head). Handing a loop
   to a thread pool that sleeps between loops costs a wake-up per loop; these workers spin
   for a short while after each loop (yielding the core to any other runnable thread), so
   the next loop starts on them within a microsecond, then sleep on a futex.

   kv_team_run(fn, ctx, tasks) calls fn(ctx, i) once for every i < tasks, spread over the
   calling thread and the workers, and returns when all have returned. The team has one
   worker fewer than the CPUs online (at most 15), started on first use. One run at a time:
   a caller that finds the team busy (another thread is inside kv_team_run) gets -1 and
   nothing ran, so it must run the loop another way; otherwise 0. fn must not call
   kv_team_run. */
typedef void (*kv_team_fn)(void *ctx, size_t task);
int kv_team_run(kv_team_fn fn, void *ctx, size_t tasks);

/* Workers in the team (0 when the machine has one CPU). */
int kv_team_workers(void);

#endif
