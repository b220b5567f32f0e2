/* The fast CPU backend's threads (kernels/cpu_pool.c): a process-wide pool whose idle threads
 * sleep on a condition variable. OpenMP's idle threads spin for milliseconds after every
 * parallel region, and OpenBLAS's pthreads run the GEMMs in between on the same cores: on the
 * 2-core development machine `ember embed` of 200 sentences took 2.5 s of CPU with OpenMP
 * threads for attention and the elementwise ops, 0.7 s with none (measured; loaded machine).
 * The pool's threads only run when there is work. */
#ifndef EMBER_CPU_POOL_H
#define EMBER_CPU_POOL_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Threads of the pool, the caller's included: OMP_NUM_THREADS when set to a positive number
 * (the variable OpenBLAS also reads when OPENBLAS_NUM_THREADS is unset), else the online CPUs.
 * Fixed at the first call; at most 64. */
int ember_pool_threads(void);

/* Run fn(ctx, task, worker) for task = 0 .. n_tasks-1 on the pool's threads, the caller's
 * included, and return when every task is done. worker (0 .. ember_pool_threads()-1) says
 * whose scratch a task may use; which worker runs a task, and in which order, is not fixed,
 * so a task's result must depend on the task alone. When the pool is already running another
 * caller's tasks, or serial is true, every task runs on the calling thread as worker 0. */
typedef void (*ember_pool_fn)(void *ctx, int64_t task, int worker);
void ember_pool_run(int64_t n_tasks, ember_pool_fn fn, void *ctx, int serial);

#ifdef __cplusplus
}
#endif

#endif
