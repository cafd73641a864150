/*
 * threads.c — how many threads a step runs with: all of the model's (num_threads), or, when the
 * caller left the count to the runtime, the count that decodes fastest on the cores actually free.
 *
 * On an idle machine every core speeds a decode step. On a busy desktop one core may be taken by
 * another program: then the step's threads meet at every parallel region's barrier, one of them
 * waits for a core, and the team decodes at half the speed of one thread (measured: 2 threads on
 * 2 cores with one busy, 58 tok/s against 137 for one thread). A passive wait policy or shorter
 * spins do not help enough (passive: 106 tok/s busy, 88 idle against 199). So the count is
 * measured instead: single-token steps (decode) are timed; now and then, and at once when the
 * steps slow down by 40%, three steps run with one thread more or fewer, and the count whose
 * median step was faster by 5% is kept. Trials come every 128 steps (48 while the count is
 * reduced, to notice the cores coming back), twice as far apart after every second trial in a row
 * that changed nothing (up to 16 times): a few tenths of a percent of the steps.
 *
 * On a machine with more runnable threads than cores (16 busy loops on 2), one step of a larger
 * team can take as long as the scheduler keeps one of its threads waiting: hundreds of ordinary
 * steps. So a trial ends at its first step that is twice as slow as the kept count's, and each
 * such end doubles the period (up to 256 times); a trial of more threads is not started while
 * /proc/stat's runnable threads, ours aside, leave fewer cores free than it would use; and the
 * count starts at the cores free when the model opens, not at all of them. (/proc/stat counts the
 * whole machine: in a container on a busy host the count stays low; a num_threads given fixes it.)
 *
 * Only a default open adapts: a num_threads the caller gave, OMP_NUM_THREADS, or RSR_THREADS_ADAPT=0
 * keep the count fixed. Parallel regions read the count with rt_team; results do not depend on
 * it (every kernel's sums are exact or ordered within a row).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

enum { TRIAL = 3, PERIOD = 128, PERIOD_REDUCED = 48, WARMUP = 3 };

struct rt_adapt {
    pthread_mutex_t mu;
    int32_t max, cur, trial; /* trial: the count on trial, 0: none */
    int32_t steps;           /* steps at cur since the last trial */
    double recent[TRIAL], tried[TRIAL];
    int32_t n_recent, n_tried, next_recent;
    double settled; /* the median step when cur was last chosen; 0: not yet */
    int32_t dir;    /* the next trial's direction: -1 or +1 */
    int32_t failed; /* trials in a row that kept cur: every two double the period (up to 256 times) */
};

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double median3(const double *v) {
    double a = v[0], b = v[1], c = v[2];
    if (a > b) {
        double t = a;
        a = b, b = t;
    }
    return c < a ? a : c > b ? b : c;
}

/* The threads in a runnable state now, machine-wide (/proc/stat's procs_running, or the file
 * RSR_THREADS_STAT names: the tests' fixed loads), or -1. */
static int32_t runnable_threads(void) {
    const char *path = getenv("RSR_THREADS_STAT");
    FILE *f = fopen(path && *path ? path : "/proc/stat", "r");
    char line[256];
    int32_t n = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "procs_running %d", &n) == 1) break;
    if (f) fclose(f);
    return n;
}

/* The cores the others leave free now: max less the threads runnable beside this one (the least of
 * three looks 1 ms apart, as procs_running counts a moment), at least 1. */
static int32_t free_cores(int32_t max) {
    int32_t least = -1;
    for (int k = 0; k < 3; k++) {
        if (k) nanosleep(&(struct timespec){0, 1000000}, NULL);
        int32_t r = runnable_threads();
        if (r >= 0 && (least < 0 || r < least)) least = r;
    }
    if (least < 1) return max; /* unknown: every core */
    int32_t left = max - (least - 1);
    return left < 1 ? 1 : left > max ? max : left;
}

void rt_adapt_init(rsr_model *m, bool fixed) {
    m->team = m->num_threads;
    const char *env = getenv("RSR_THREADS_ADAPT");
    if (fixed || m->num_threads < 2 || (env && !strcmp(env, "0"))) return;
    rt_adapt *ad = calloc(1, sizeof *ad);
    if (!ad) return; /* the count stays fixed */
    pthread_mutex_init(&ad->mu, NULL);
    ad->max = ad->cur = m->num_threads, ad->dir = -1;
    /* Start at the cores free now: on a machine with more runnable threads than cores, a step of a
     * team larger than that waits at each barrier for a descheduled thread (16 busy loops on 2
     * cores: 0.25x of one thread's speed over a short generation, the first steps and trials
     * included). Trials add threads as cores come free. */
    const int32_t start = free_cores(ad->max);
    if (start < ad->cur) ad->cur = m->team = start, ad->dir = +1;
    if (getenv("RSR_THREADS_TRACE"))
        fprintf(stderr, "threads: starting at %d of %d (the cores free now)\n", ad->cur, ad->max);
    m->adapt = ad;
}

void rt_adapt_free(rsr_model *m) {
    if (!m->adapt) return;
    pthread_mutex_destroy(&m->adapt->mu);
    free(m->adapt), m->adapt = NULL;
}

double rt_adapt_begin(const rsr_model *m, int32_t n) { return m->adapt && n == 1 ? now() : 0; }

/* A trial of one thread more or fewer than cur (in dir first), or none at the ends. More threads
 * only when the cores they need are free: the others' runnable threads (our team's aside) and the
 * team's new size fit the cores (max is the cores this process may use). */
static int32_t candidate(const rt_adapt *ad) {
    int32_t c = ad->cur + ad->dir;
    if (c < 1 || c > ad->max) c = ad->cur - ad->dir;
    if (c < 1 || c > ad->max || c == ad->cur) return 0;
    if (c > ad->cur) {
        int32_t running = runnable_threads(), others = running - ad->cur;
        if (running >= 0 && others > 0 && others + c > ad->max) return 0;
    }
    return c;
}

void rt_adapt_end(rsr_model *m, double t0) {
    rt_adapt *ad = m->adapt;
    if (!ad || t0 <= 0) return;
    double d = now() - t0;
    pthread_mutex_lock(&ad->mu);
    if (ad->trial && d > 2 * median3(ad->recent)) { /* a descheduled thread: end the trial at once */
        if (getenv("RSR_THREADS_TRACE"))
            fprintf(stderr, "threads: %d at %.3f ms, twice %d's %.3f ms: trial ended\n", ad->trial, d * 1e3, ad->cur,
                    median3(ad->recent) * 1e3);
        ad->dir = -ad->dir;
        if (ad->failed < 16) ad->failed += 2; /* the period doubles */
        ad->trial = 0, ad->steps = 0;
        __atomic_store_n(&m->team, ad->cur, __ATOMIC_RELAXED);
    } else if (ad->trial) {
        ad->tried[ad->n_tried++] = d;
        if (ad->n_tried == TRIAL) {
            double tried = median3(ad->tried), kept = median3(ad->recent);
            if (getenv("RSR_THREADS_TRACE"))
                fprintf(stderr, "threads: %d at %.3f ms against %d at %.3f ms\n", ad->trial, tried * 1e3, ad->cur,
                        kept * 1e3);
            if (tried < 0.95 * kept) {
                ad->cur = ad->trial, ad->settled = tried, ad->failed = 0;
                memcpy(ad->recent, ad->tried, sizeof ad->recent);
            } else {
                ad->settled = kept;
                ad->dir = -ad->dir; /* the other way next time */
                if (ad->failed < 16) ad->failed++;
            }
            ad->trial = 0, ad->steps = 0;
            __atomic_store_n(&m->team, ad->cur, __ATOMIC_RELAXED);
        }
    } else {
        ad->recent[ad->next_recent] = d, ad->next_recent = (ad->next_recent + 1) % TRIAL;
        if (ad->n_recent < TRIAL) ad->n_recent++;
        ad->steps++;
        const bool full = ad->n_recent == TRIAL;
        const double med = full ? median3(ad->recent) : 0;
        const bool slower = full && ad->settled > 0 && med > 1.4 * ad->settled;
        const int32_t period =
            ad->settled == 0 ? WARMUP : (ad->cur < ad->max ? PERIOD_REDUCED : PERIOD) << (ad->failed / 2);
        if (full && (ad->steps >= period || slower)) {
            if (slower) ad->dir = -1, ad->failed = 0; /* steps slowed down: fewer threads first */
            int32_t c = candidate(ad);
            if (c) {
                ad->trial = c, ad->n_tried = 0;
                __atomic_store_n(&m->team, c, __ATOMIC_RELAXED);
            } else {
                ad->steps = 0, ad->settled = med;
                if (ad->failed < 16 && ad->cur < ad->max) ad->failed++; /* no room to try more: look later */
            }
        }
    }
    pthread_mutex_unlock(&ad->mu);
}

int32_t rt_team_of(const rsr_model *m) {
    int32_t t = __atomic_load_n(&m->team, __ATOMIC_RELAXED);
    return t > 0 ? t : 1;
}
