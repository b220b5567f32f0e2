/* The fast CPU backend's thread pool (kernels/cpu_pool.h). One job at a time: the caller that
 * holds `busy` publishes the job under `lock`, wakes the workers, claims tasks from the atomic
 * counter like them, then waits until every worker has left the job. A caller that finds the
 * pool busy (another model's forward on another thread) runs its tasks itself. */
#define _GNU_SOURCE /* sysconf(_SC_NPROCESSORS_ONLN) */
#include "cpu_pool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

enum { MAX_THREADS = 64 };

static struct {
    pthread_once_t once;
    int threads;             /* the caller's included */
    pthread_mutex_t busy;    /* held by the caller of the running job */
    pthread_mutex_t lock;    /* guards everything below */
    pthread_cond_t wake, done;
    uint64_t generation;     /* one per job */
    int working;             /* workers still inside the current job */
    ember_pool_fn fn;
    void *ctx;
    int64_t n_tasks;
    atomic_llong next;       /* next unclaimed task of the current job */
} pool = {.once = PTHREAD_ONCE_INIT,
          .busy = PTHREAD_MUTEX_INITIALIZER,
          .lock = PTHREAD_MUTEX_INITIALIZER,
          .wake = PTHREAD_COND_INITIALIZER,
          .done = PTHREAD_COND_INITIALIZER};

static void run_tasks(ember_pool_fn fn, void *ctx, int64_t n, int worker) {
    for (int64_t t; (t = atomic_fetch_add(&pool.next, 1)) < n;) fn(ctx, t, worker);
}

static void *worker_main(void *arg) {
    const int worker = (int)(intptr_t)arg;
    uint64_t seen = 0;
    pthread_mutex_lock(&pool.lock);
    for (;;) {
        while (pool.generation == seen) pthread_cond_wait(&pool.wake, &pool.lock);
        seen = pool.generation;
        ember_pool_fn fn = pool.fn;
        void *ctx = pool.ctx;
        const int64_t n = pool.n_tasks;
        pthread_mutex_unlock(&pool.lock);
        run_tasks(fn, ctx, n, worker);
        pthread_mutex_lock(&pool.lock);
        if (--pool.working == 0) pthread_cond_signal(&pool.done);
    }
    return NULL;
}

static void pool_start(void) {
    int n = 0;
    const char *env = getenv("OMP_NUM_THREADS");
    if (env) n = atoi(env); /* "4" or "4,2": the first level */
    if (n <= 0) n = (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1) n = 1;
    if (n > MAX_THREADS) n = MAX_THREADS;
    pool.threads = 1;
    pthread_attr_t attr;
    if (pthread_attr_init(&attr) != 0) return;
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    for (int w = 1; w < n; w++) {
        pthread_t t;
        if (pthread_create(&t, &attr, worker_main, (void *)(intptr_t)w) != 0) break;
        pool.threads++; /* a thread that cannot be started only makes the pool smaller */
    }
    pthread_attr_destroy(&attr);
}

int ember_pool_threads(void) {
    pthread_once(&pool.once, pool_start);
    return pool.threads;
}

void ember_pool_run(int64_t n_tasks, ember_pool_fn fn, void *ctx, int serial) {
    if (n_tasks <= 0) return;
    if (serial || n_tasks == 1 || ember_pool_threads() == 1 ||
        pthread_mutex_trylock(&pool.busy) != 0) {
        for (int64_t t = 0; t < n_tasks; t++) fn(ctx, t, 0);
        return;
    }
    pthread_mutex_lock(&pool.lock);
    pool.fn = fn;
    pool.ctx = ctx;
    pool.n_tasks = n_tasks;
    atomic_store(&pool.next, 0);
    pool.working = pool.threads - 1;
    pool.generation++;
    pthread_cond_broadcast(&pool.wake);
    pthread_mutex_unlock(&pool.lock);
    run_tasks(fn, ctx, n_tasks, 0);
    pthread_mutex_lock(&pool.lock);
    while (pool.working > 0) pthread_cond_wait(&pool.done, &pool.lock);
    pthread_mutex_unlock(&pool.lock);
    pthread_mutex_unlock(&pool.busy);
}
