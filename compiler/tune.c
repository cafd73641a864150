/*
 * tune.c — --tune: each matrix's strategy chosen by measuring the candidates on this machine.
 *
 * For a matrix the planner's candidates are: rsr-loop at the cost model's k and its neighbours
 * (k-1, k+1), rsr-unrolled at the same k where the code fits the target's icache budget, and i2;
 * the spec's `strategies`, --strategy and --rsr-k narrow the set. They are lowered and printed
 * by the normal pipeline (kernel.c, the target's printer, link.c) into one temporary shared
 * object, loaded with dlopen, checked bit for bit against the naive product on random int8
 * inputs, and timed on this thread in two regimes:
 *   decode   one call (one token), median of repeated warm calls;
 *   prefill  RSR_BATCH_MAX tokens through the batched kernel where the strategy has one, else
 *            the one-token kernel called once per token; reported per token.
 * The strategy of least decode time wins (the runtime has one kernel per matrix, and decode is
 * where a model spends its time); the prefill winner is reported beside it. i2 is measured twice,
 * its batched kernel as the tiles ("i2") and as RSR with tokens in lanes ("i2+lanes", the same
 * decode kernel): where i2 wins, the faster of the two prefill forms is kept, the lanes from the
 * step size at which a pass of lanes costs what the tiles cost for that many tokens.
 *
 * Matrices are measured by class: shape, binary or ternary, share of zero weights (5% steps)
 * and the cost model's k. The kernels' speed depends on these and not on which weights sit where
 * (i2 reads every weight the same way; RSR's work follows the pattern statistics, which the zero
 * share and k summarise), so one representative per class is measured — four matrices for the
 * 210 of BitNet 2B-4T — and the other matrices of the class take its winner.
 *
 * Results go to a cache file (plain text, one line per class), keyed by the compiler and its
 * kernel ABI, this machine's CPU, the target (name, CPU, ISA, backend, features), the class and
 * the candidate space. A second compile reads them and measures nothing. Each line ends with a
 * checksum of itself: a damaged line is reported (file:line) and ignored, never trusted. The file
 * is rewritten whole under a temporary name and renamed into place.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "kernel_set.h"
#include "print/printer.h"
#include "rsrc.h"
#include "rsrc_config.h"

static double tune_lanes_gain(const tune_class *tc);

#define TUNE_FORMAT 3 /* bump when the measurement or the cache line changes meaning (3: AVX2's tiles of pair sums) */
#define TUNE_MAX_CANDIDATES 8
#define TUNE_TOKENS RSR_BATCH_MAX
#define TUNE_MIN_REP_S 1e-3 /* a timed repetition lasts at least this long (calls are repeated) */
#define TUNE_REPS 5         /* timed repetitions per candidate and regime: the median is kept */

typedef struct tune_candidate {
    enum strategy strategy;
    int k;             /* RSR block rows; 0 for i2 */
    bool lanes;        /* i2: the batched kernel as RSR lanes */
    double decode_ns;  /* one call */
    double prefill_ns; /* per token of a TUNE_TOKENS step */
} tune_candidate;

struct tune_class {
    char *key;
    char *label; /* "2560x2560 ternary zeros~40% k4" */
    int n;
    tune_candidate c[TUNE_MAX_CANDIDATES];
    int decode_best, prefill_best;
    bool measured; /* in this run (false: read from the cache) */
    char *origin;  /* measured: the matrix measured; cached: FILE:LINE */
    char *line;    /* the cache line as read, written back unchanged */
};

struct tune_state {
    const rsrc_target *t;
    compile_options opts;          /* the candidates are compiled as the model is (--prefill, -O) */
    const kernel_printer *printer; /* the CPU kernels' (main.c's), and so the candidates' */
    const char *workdir;
    enum strategy forced;
    int forced_k;
    char *cache_path; /* NULL: no cache */
    char *target_key;
    tune_class **classes;
    int nclasses, measured, cached, serial;
    double seconds;
};

/* ---- the target may be tuned only where its code runs ---- */

void tune_check_target(const rsrc_target *t, const char *name) {
    if (t->gpu)
        rsrc_fatal("--tune measures CPU kernels on this machine; '%s' has a CUDA part (%s), which it cannot measure",
                   name, t->gpu->name);
    struct utsname u;
    if (t->triple && uname(&u) == 0 && strncmp(t->triple, u.machine, strlen(u.machine)) != 0)
        rsrc_fatal(
            "--tune: target '%s' (%s) is for %s, and this machine is %s: --tune measures the kernels here, so it needs "
            "a target this machine can run (host, or a spec whose features its CPU has)",
            t->name, t->path, t->triple, u.machine);
    char *lacks = target_host_lacks(t);
    if (lacks)
        rsrc_fatal(
            "--tune: target '%s' (%s) needs CPU features this machine lacks: %s; --tune measures the kernels here, "
            "so it "
            "needs a target this machine can run (host, or a spec whose features its CPU has)",
            t->name, t->path, lacks);
}

/* ---- names: "i2", "i2+lanes", "rsr-loop/k4" ---- */

static void candidate_name(const tune_candidate *c, char *buf, size_t n) {
    if (!strategy_is_rsr(c->strategy))
        snprintf(buf, n, "%s%s", strategy_names[c->strategy], c->lanes ? "+lanes" : "");
    else
        snprintf(buf, n, "%s/k%d", strategy_names[c->strategy], c->k);
}

static bool parse_candidate_name(const char *s, size_t len, tune_candidate *c) {
    char buf[48];
    if (len == 0 || len >= sizeof buf) return false;
    memcpy(buf, s, len);
    buf[len] = 0;
    char *slash = strchr(buf, '/'), *plus = strstr(buf, "+lanes");
    int k = 0;
    if (plus && plus[6]) return false;
    if (plus) *plus = 0;
    if (slash) {
        char *end;
        *slash = 0;
        if (slash[1] != 'k') return false;
        long v = strtol(slash + 2, &end, 10);
        if (*end || end == slash + 2 || v < 1 || v > RSR_MAX_K) return false;
        k = (int)v;
    }
    int s_ = strategy_parse(buf);
    if (s_ <= STRAT_AUTO || strategy_is_rsr((enum strategy)s_) != !!slash || (plus && s_ != STRAT_I2)) return false;
    *c = (tune_candidate){.strategy = (enum strategy)s_, .k = k, .lanes = plus != NULL};
    return true;
}

static uint32_t fnv1a(const char *s, size_t n) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h;
}

/* ---- the cache file ----
 * KEY => decode=NAME prefill=NAME NAME=DECODE_NS/PREFILL_NS ... crc=XXXXXXXX
 * (times in ns, single thread; prefill per token), '#' starts a comment line. */

static char *format_line(const tune_class *tc) {
    char buf[2048];
    char dn[32], pn[32];
    candidate_name(&tc->c[tc->decode_best], dn, sizeof dn);
    candidate_name(&tc->c[tc->prefill_best], pn, sizeof pn);
    int n = snprintf(buf, sizeof buf, "%s => decode=%s prefill=%s", tc->key, dn, pn);
    for (int i = 0; i < tc->n && n < (int)sizeof buf; i++) {
        char cn[32];
        candidate_name(&tc->c[i], cn, sizeof cn);
        n += snprintf(buf + n, sizeof buf - (size_t)n, " %s=%.0f/%.0f", cn, tc->c[i].decode_ns, tc->c[i].prefill_ns);
    }
    if (n >= (int)sizeof buf - 16) rsrc_fatal("internal error: tune cache line too long for %s", tc->label);
    snprintf(buf + n, sizeof buf - (size_t)n, " crc=%08x", fnv1a(buf, (size_t)n));
    return xstrdup(buf);
}

static int find_candidate(const tune_class *tc, const tune_candidate *c) {
    for (int i = 0; i < tc->n; i++)
        if (tc->c[i].strategy == c->strategy && tc->c[i].k == c->k && tc->c[i].lanes == c->lanes) return i;
    return -1;
}

/* Parses one line; on failure says why in *why and returns NULL. */
static tune_class *parse_line(const char *line, const char **why) {
    const char *crc = NULL;
    for (const char *p = line; (p = strstr(p, " crc=")); p++) crc = p;
    if (!crc) return *why = "no checksum (truncated?)", NULL;
    char *end;
    unsigned long want = strtoul(crc + 5, &end, 16);
    if (end != crc + 13 || *end) return *why = "malformed checksum (truncated?)", NULL;
    if (fnv1a(line, (size_t)(crc - line)) != (uint32_t)want)
        return *why = "checksum mismatch (the line was altered)", NULL;
    const char *arrow = strstr(line, " => ");
    if (!arrow || arrow > crc) return *why = "no ' => ' between key and results", NULL;
    tune_class *tc = xcalloc(1, sizeof *tc);
    tc->key = xasprintf("%.*s", (int)(arrow - line), line);
    tc->decode_best = tc->prefill_best = -1;
    tune_candidate dw = {0}, pw = {0};
    bool have_d = false, have_p = false;
    const char *p = arrow + 4;
    *why = NULL;
    while (p < crc && !*why) {
        const char *sp = memchr(p, ' ', (size_t)(crc - p));
        size_t n = sp ? (size_t)(sp - p) : (size_t)(crc - p);
        const char *eq = memchr(p, '=', n);
        if (!eq)
            *why = "a field without '='";
        else if ((size_t)(eq - p) == 6 && !strncmp(p, "decode", 6)) {
            if (!parse_candidate_name(eq + 1, n - 7, &dw)) *why = "unknown decode winner";
            have_d = true;
        } else if ((size_t)(eq - p) == 7 && !strncmp(p, "prefill", 7)) {
            if (!parse_candidate_name(eq + 1, n - 8, &pw)) *why = "unknown prefill winner";
            have_p = true;
        } else {
            tune_candidate c;
            char *e1, *e2;
            if (!parse_candidate_name(p, (size_t)(eq - p), &c))
                *why = "unknown candidate";
            else if (tc->n == TUNE_MAX_CANDIDATES)
                *why = "too many candidates";
            else {
                c.decode_ns = strtod(eq + 1, &e1);
                c.prefill_ns = *e1 == '/' ? strtod(e1 + 1, &e2) : (e2 = e1, -1);
                if (e1 == eq + 1 || *e1 != '/' || e2 != p + n || !(c.decode_ns > 0) || !(c.prefill_ns > 0) ||
                    !isfinite(c.decode_ns) || !isfinite(c.prefill_ns))
                    *why = "a time that is not a positive number";
                else if (find_candidate(tc, &c) >= 0)
                    *why = "a candidate listed twice";
                else
                    tc->c[tc->n++] = c;
            }
        }
        p += n + 1;
    }
    if (!*why && (!have_d || !have_p)) *why = "no decode or prefill winner";
    if (!*why && ((tc->decode_best = find_candidate(tc, &dw)) < 0 || (tc->prefill_best = find_candidate(tc, &pw)) < 0))
        *why = "a winner that is not among the candidates";
    if (!*why) {
        for (int i = 0; i < tc->n; i++) {
            if (tc->c[i].decode_ns < tc->c[tc->decode_best].decode_ns) *why = "the decode winner is not the fastest";
            if (tc->c[i].prefill_ns < tc->c[tc->prefill_best].prefill_ns)
                *why = "the prefill winner is not the fastest";
        }
    }
    if (*why) {
        free(tc->key);
        free(tc);
        return NULL;
    }
    tc->line = xstrdup(line);
    return tc;
}

static void free_class(tune_class *tc) {
    free(tc->key), free(tc->label), free(tc->origin), free(tc->line);
    free(tc);
}

static tune_class *find_class(const tune_state *ts, const char *key) {
    for (int i = 0; i < ts->nclasses; i++)
        if (!strcmp(ts->classes[i]->key, key)) return ts->classes[i];
    return NULL;
}

static void add_class(tune_state *ts, tune_class *tc) {
    for (int i = 0; i < ts->nclasses; i++)
        if (!strcmp(ts->classes[i]->key, tc->key)) { /* a later line (or a new measurement) replaces it */
            free_class(ts->classes[i]);
            ts->classes[i] = tc;
            return;
        }
    ts->classes = xrealloc(ts->classes, sizeof *ts->classes * (size_t)(ts->nclasses + 1));
    ts->classes[ts->nclasses++] = tc;
}

/* quiet: read again before writing, its complaints already made at the start */
static void read_cache(tune_state *ts, bool quiet) {
    FILE *f = fopen(ts->cache_path, "r");
    if (!f) {
        if (errno != ENOENT && !quiet)
            rsrc_warn("%s: cannot read the tune cache: %s; measuring every class", ts->cache_path, strerror(errno));
        return;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    for (int lineno = 1; (n = getline(&line, &cap, f)) > 0; lineno++) {
        bool complete = line[n - 1] == '\n';
        if (complete) line[--n] = 0;
        if (n == 0 || line[0] == '#') continue;
        const char *why = NULL;
        tune_class *tc = strlen(line) != (size_t)n ? (why = "a NUL byte in the line", NULL)
                         : !complete               ? (why = "the last line is cut short (no newline)", NULL)
                                                   : parse_line(line, &why);
        if (!tc) {
            if (!quiet) rsrc_warn("%s:%d: corrupted tune cache entry ignored: %s", ts->cache_path, lineno, why);
            continue;
        }
        tc->origin = xasprintf("%s:%d", ts->cache_path, lineno);
        add_class(ts, tc);
    }
    free(line);
    fclose(f);
}

static void mkdir_parents(const char *path) {
    char *dir = xstrdup(path);
    for (char *p = dir + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        mkdir(dir, 0755);
        *p = '/';
    }
    free(dir);
}

/* The classes another compile wrote to the cache since this one read it join this run's: a class
 * measured in this run keeps its measurement, every other takes the file's line. */
static void merge_cache_on_disk(tune_state *ts) {
    tune_state disk = {.cache_path = ts->cache_path};
    read_cache(&disk, true);
    for (int i = 0; i < disk.nclasses; i++) {
        tune_class *dc = disk.classes[i], *mine = find_class(ts, dc->key);
        if (mine && mine->measured)
            free_class(dc);
        else
            add_class(ts, dc);
    }
    free(disk.classes);
}

/* Compiles that share a cache take turns writing it, each merging what the others wrote (two
 * compiles at once had each renamed its own copy into place, the last one's classes only): an
 * exclusive flock on the cache's directory, held from the re-read to the rename. */
static int lock_cache_dir(const char *path) {
    char *dir = xstrdup(path), *slash = strrchr(dir, '/');
    if (slash) *(slash == dir ? slash + 1 : slash) = 0;
    int fd = open(slash ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    free(dir);
    if (fd >= 0 && flock(fd, LOCK_EX) != 0) close(fd), fd = -1;
    return fd;
}

/* The whole file under a temporary name in the same directory, then renamed: a reader sees the
 * old file or the new one. A cache that cannot be written costs the next compile a measurement,
 * not this one its output: it is a warning. */
static void write_cache(tune_state *ts) {
    mkdir_parents(ts->cache_path);
    int lock = lock_cache_dir(ts->cache_path); /* without it (a file system without flock): merged all the same */
    merge_cache_on_disk(ts);
    char *tmp = xasprintf("%s.tmp.XXXXXX", ts->cache_path);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        rsrc_warn("%s: cannot write the tune cache: %s; the measurements are not kept", ts->cache_path,
                  strerror(errno));
        free(tmp);
        if (lock >= 0) close(lock);
        return;
    }
    register_temp(tmp);
    FILE *f = fdopen(fd, "w");
    bool ok = f != NULL;
    if (ok) {
        fputs("# rsrc tune cache: one line per matrix class measured on this machine, written by rsrc --tune.\n"
              "# KEY => decode=WINNER prefill=WINNER CANDIDATE=DECODE_NS/PREFILL_NS_PER_TOKEN ... crc=CHECKSUM\n",
              f);
        for (int i = 0; i < ts->nclasses; i++) {
            tune_class *tc = ts->classes[i];
            if (!tc->line) tc->line = format_line(tc);
            fprintf(f, "%s\n", tc->line);
        }
        ok = !ferror(f) && fflush(f) == 0 && fsync(fd) == 0;
        ok = fclose(f) == 0 && ok;
    } else {
        close(fd);
    }
    if (!ok || rename(tmp, ts->cache_path) != 0) {
        rsrc_warn("%s: cannot write the tune cache: %s; the measurements are not kept", ts->cache_path,
                  strerror(errno));
        unlink(tmp);
    } else {
        rsrc_note(1, "tune: wrote %d class%s to %s", ts->nclasses, ts->nclasses == 1 ? "" : "es", ts->cache_path);
    }
    release_temp(tmp);
    free(tmp);
    if (lock >= 0) close(lock);
}

/* ---- keys ---- */

/* Everything about the machine and the code generator that a measurement depends on. */
static char *make_target_key(const rsrc_target *t, const kernel_printer *pr, int opt_level) {
    const bool use_llvm = pr->pending != NULL; /* objects of its own, not the C compiler's */
    char *machine = host_cpu_model();
    for (char *p = machine; *p; p++)
        if (*p == '=' || *p == '>' || (unsigned char)*p < 32) *p = '-';
    const char **f = xmalloc(sizeof *f * (size_t)(t->nfeatures + 1));
    for (int i = 0; i < t->nfeatures; i++) f[i] = t->features[i];
    qsort(f, (size_t)t->nfeatures, sizeof *f, rsrc_cmp_names);
    char *features = xstrdup("");
    for (int i = 0; i < t->nfeatures; i++) {
        char *s = xasprintf("%s%s+%s", features, i ? "," : "", f[i]);
        free(features);
        features = s;
    }
    for (int i = 0; i < t->ndisabled; i++) {
        char *s = xasprintf("%s%s-%s", features, *features ? "," : "", t->disabled[i]);
        free(features);
        features = s;
    }
    char *cc =
        use_llvm ? xstrdup("") : xasprintf(" cc %s cflags %s", rsrc_env_or("RSRC_CC", RSRC_DEFAULT_CC), t->cflags);
    /* -O0..-O3 change what the candidates' code costs: measurements under one are not another's (the
     * default level adds nothing, so the caches written before this still match it) */
    char *opt = opt_level >= 0 ? xasprintf(" opt -O%d", opt_level) : xstrdup("");
    char *key = xasprintf("rsrc %s abi %u tune %d; machine %s; target %s cpu %s isa %s backend %s features %s%s%s",
                          RSRC_VERSION, RSR_ABI_VERSION, TUNE_FORMAT, machine, t->name, t->cpu ? t->cpu : "-",
                          dot_isa_names[t->isa], pr->backend, *features ? features : "none", cc, opt);
    free(machine), free(f), free(features), free(cc), free(opt);
    return key;
}

/* Strategy s is measured: the spec allows it, and --strategy forced it or it is a candidate here. */
static bool tune_considers(const tune_state *ts, enum strategy s) {
    if (!plan_allowed(ts->t, s)) return false;
    return ts->forced == STRAT_AUTO ? plan_candidate(ts->t, s) : ts->forced == s;
}

/* The candidates of a matrix at the cost model's k0 (without the unroll budget, which needs the
 * real plan: see build_candidates). */
static int candidate_space(const tune_state *ts, const ternary_matrix *tm, int k0, tune_candidate *c, char *desc,
                           size_t n) {
    int nc = 0;
    int klo = ts->forced_k ? k0 : k0 > 1 ? k0 - 1 : 1, khi = ts->forced_k ? k0 : k0 < RSR_MAX_K ? k0 + 1 : RSR_MAX_K;
    bool any_rsr = false;
    for (int s = STRAT_RSR_UNROLLED; s <= STRAT_RSR_LOOP; s++) {
        if (!tune_considers(ts, (enum strategy)s)) continue;
        any_rsr = true;
        for (int k = klo; k <= khi; k++) c[nc++] = (tune_candidate){.strategy = (enum strategy)s, .k = k};
    }
    for (int s = STRAT_I2; s < NUM_STRATEGIES; s++)
        if (tune_considers(ts, (enum strategy)s)) c[nc++] = (tune_candidate){.strategy = (enum strategy)s};
    bool lanes = tune_considers(ts, STRAT_I2) && ts->opts.prefill == PREFILL_AUTO &&
                 plan_may_use_lanes(ts->t, ts->opts.prefill) && kernel_lanes_possible(tm, ts->t);
    if (lanes) c[nc++] = (tune_candidate){.strategy = STRAT_I2, .lanes = true};
    int used = snprintf(desc, n, "space");
    for (int s = STRAT_RSR_UNROLLED; s < NUM_STRATEGIES; s++)
        if (tune_considers(ts, (enum strategy)s))
            used += snprintf(desc + used, n - (size_t)used, " %s", strategy_names[s]);
    if (lanes) used += snprintf(desc + used, n - (size_t)used, " i2+lanes");
    if (any_rsr) snprintf(desc + used, n - (size_t)used, " k%d-%d budget %u", klo, khi, ts->t->unroll_budget);
    return nc;
}

/* ---- measuring ---- */

typedef struct tune_kernels {
    kernel_set set;
    const rsr_artifact_matrix *m; /* one per candidate: kernel, batched kernel, data offset */
    const uint8_t *blob;
} tune_kernels;

/* The candidates through the normal pipeline (lower → print → link) into one shared object
 * (kernel_set), with a table of their entry points. Unrolled candidates over the icache budget
 * are dropped. */
static void build_candidates(tune_state *ts, const ternary_matrix *tm, tune_class *tc, tune_kernels *out) {
    const rsrc_target *t = ts->t;
    char name[32];
    snprintf(name, sizeof name, "tune%d", ts->serial++);
    kernel_set_open(&out->set, t, ts->printer, ts->workdir, name, ts->opts.opt_level);
    compiled_matrix cm[TUNE_MAX_CANDIDATES];
    int n = 0;
    for (int i = 0; i < tc->n; i++) {
        tune_candidate *cd = &tc->c[i];
        const matrix_request rq = {.strategy = cd->strategy,
                                   .k = cd->k,
                                   .user_strategy = ts->forced,
                                   .index = n,
                                   .prefill = ts->opts.prefill,
                                   .lanes_min = cd->lanes ? RSR_LANES_EVERY_STEP : -1};
        matrix_decide(tm, t, &rq, &cm[n]);
        if (cm[n].mp.strategy != cd->strategy) { /* unrolled over the icache budget: not a candidate */
            compiled_matrix_free(&cm[n]);
            continue;
        }
        tc->c[n] = *cd;
        kernel_set_emit(&out->set, tm, &cm[n]);
        n++;
    }
    tc->n = n;
    double t0 = rsrc_now();
    kernel_set_load(&out->set, &out->m, &out->blob);
    rsrc_note(2, "tune: %d candidate kernels of %s linked and loaded in %.2f s", n, tm->name, rsrc_now() - t0);
    for (int i = 0; i < n; i++) compiled_matrix_free(&cm[i]);
}

typedef enum { RUN_DECODE, RUN_BATCH, RUN_PER_TOKEN } run_mode;
typedef struct tune_run {
    run_mode mode;
    const rsr_artifact_matrix *m;
    const uint8_t *data;
    const int8_t *x;
    int32_t xs, *y;
} tune_run;

static void run_once(const tune_run *r) {
    const rsr_artifact_matrix *m = r->m;
    if (r->mode == RUN_DECODE)
        m->kernel(r->data, r->x, r->y, 0, m->num_blocks);
    else if (r->mode == RUN_BATCH)
        m->kernel_batch(r->data, r->x, r->xs, r->y, m->rows, TUNE_TOKENS, 0, m->num_blocks);
    else
        for (int t = 0; t < TUNE_TOKENS; t++)
            m->kernel(r->data, r->x + (size_t)t * (size_t)r->xs, r->y + (size_t)t * (size_t)m->rows, 0, m->num_blocks);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* This thread's CPU time: the time the kernel ran, whatever else the machine's cores were doing
 * (a build beside the compile would otherwise deschedule a run and double its wall time). */
static double cpu_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* How many back-to-back runs make one timed repetition of at least TUNE_MIN_REP_S. */
static int calibrate(const tune_run *r, double *one) {
    double t0 = cpu_seconds();
    run_once(r);
    *one = cpu_seconds() - t0;
    return *one >= TUNE_MIN_REP_S ? 1 : (int)fmin(10000, ceil(TUNE_MIN_REP_S / fmax(*one, 1e-8)));
}

static double time_rep(const tune_run *r, int inner) {
    double t0 = cpu_seconds();
    for (int i = 0; i < inner; i++) run_once(r);
    return (cpu_seconds() - t0) / inner;
}
static void check_output(const ternary_matrix *tm, const rsr_artifact_matrix *m, const int32_t *got,
                         const int32_t *want, int ntok, const char *how) {
    for (int t = 0; t < ntok; t++)
        for (int32_t r = 0; r < tm->rows; r++) {
            int32_t g = got[(size_t)t * (size_t)tm->rows + (size_t)r],
                    w = want[(size_t)t * (size_t)tm->rows + (size_t)r];
            if (g != w)
                rsrc_fatal(
                    "internal error: --tune: the %s kernel (%s, k=%d) of '%s' gives %d at row %d of input %d, the "
                    "naive "
                    "product %d: a compiler bug, the kernel is not used",
                    m->strategy, how, m->rsr_k, tm->name, g, r, t, w);
        }
}

/* Measures the candidates of tc on tm (their outputs checked first) and picks the winners. */
static void measure_class(tune_state *ts, const ternary_matrix *tm, tune_class *tc) {
    double t0 = rsrc_now();
    tune_kernels tk;
    build_candidates(ts, tm, tc, &tk);
    int32_t rows = tm->rows, cols = tm->cols, xs = rsr_x_row(cols, tm->unit_cols);
    size_t xbytes = (size_t)TUNE_TOKENS * (size_t)xs, ysize = sizeof(int32_t) * (size_t)TUNE_TOKENS * (size_t)rows;
    int8_t *x = aligned_alloc(64, (xbytes + 63) / 64 * 64);
    int32_t *want = xmalloc(ysize), *got = aligned_alloc(64, (ysize + 63) / 64 * 64);
    if (!x || !got) rsrc_fatal("out of memory");
    memset(x, 0, xbytes);
    /* Random int8 inputs, and the extremes: every x = 127, every x = -128. */
    uint64_t s = 0x2545f4914f6cdd1du;
    for (int t = 0; t < TUNE_TOKENS; t++)
        for (int32_t c = 0; c < cols; c++) {
            s = s * 6364136223846793005u + 1442695040888963407u;
            x[(size_t)t * (size_t)xs + (size_t)c] = t == 0 ? 127 : t == 1 ? -128 : (int8_t)(s >> 56);
        }
    for (int t = 0; t < TUNE_TOKENS; t++) rsr_x_put_sums(x + (size_t)t * (size_t)xs, cols, tm->unit_cols);
    for (int32_t r = 0; r < rows; r++) {
        const int8_t *w = tm->w + (size_t)r * (size_t)cols;
        for (int t = 0; t < TUNE_TOKENS; t++) {
            const int8_t *xt = x + (size_t)t * (size_t)xs;
            int32_t acc = 0;
            for (int32_t c = 0; c < cols; c++) acc += w[c] * xt[c];
            want[(size_t)t * (size_t)rows + (size_t)r] = acc;
        }
    }
    /* Every candidate checked first (which also warms it), in both regimes. */
    tune_run runs[TUNE_MAX_CANDIDATES][2];
    int inner[TUNE_MAX_CANDIDATES][2], reps[TUNE_MAX_CANDIDATES][2];
    for (int i = 0; i < tc->n; i++) {
        const rsr_artifact_matrix *m = &tk.m[i];
        const uint8_t *data = tk.blob + m->data;
        tune_run dec = {RUN_DECODE, m, data, x, xs, got};
        for (int t = 0; t < 3; t++) { /* the decode kernel on three inputs, the extremes first */
            dec.x = x + (size_t)t * (size_t)xs;
            memset(got, 0x55, sizeof *got * (size_t)rows);
            run_once(&dec);
            check_output(tm, m, got, want + (size_t)t * (size_t)rows, 1, "one token");
        }
        dec.x = x + 2 * (size_t)xs;
        tune_run pre = {m->kernel_batch ? RUN_BATCH : RUN_PER_TOKEN, m, data, x, xs, got};
        memset(got, 0x55, ysize);
        double one[2];
        inner[i][1] = calibrate(&pre, &one[1]);
        check_output(tm, m, got, want, TUNE_TOKENS, m->kernel_batch ? "batched" : "one token per call");
        runs[i][0] = dec, runs[i][1] = pre;
        inner[i][0] = calibrate(&dec, &one[0]);
        for (int g = 0; g < 2; g++) reps[i][g] = one[g] > 0.05 ? 3 : TUNE_REPS; /* long runs vary little */
    }
    /* The repetitions go round the candidates, so that a burst of other work on the machine
     * falls on all of them alike rather than on one; each regime's figure is the median. */
    double v[TUNE_MAX_CANDIDATES][2][TUNE_REPS];
    for (int rep = 0; rep < TUNE_REPS; rep++)
        for (int i = 0; i < tc->n; i++)
            for (int g = 0; g < 2; g++)
                if (rep < reps[i][g]) v[i][g][rep] = time_rep(&runs[i][g], inner[i][g]);
    for (int i = 0; i < tc->n; i++) {
        for (int g = 0; g < 2; g++) qsort(v[i][g], (size_t)reps[i][g], sizeof(double), cmp_double);
        tc->c[i].decode_ns = 1e9 * v[i][0][reps[i][0] / 2];
        tc->c[i].prefill_ns = 1e9 * v[i][1][reps[i][1] / 2] / TUNE_TOKENS;
    }
    tc->decode_best = tc->prefill_best = 0;
    for (int i = 1; i < tc->n; i++) {
        if (tc->c[i].decode_ns < tc->c[tc->decode_best].decode_ns) tc->decode_best = i;
        if (tc->c[i].prefill_ns < tc->c[tc->prefill_best].prefill_ns) tc->prefill_best = i;
    }
    kernel_set_close(&tk.set);
    free(x), free(want), free(got);
    tc->measured = true;
    tc->origin = xstrdup(tm->name);
    ts->measured++;
    double dt = rsrc_now() - t0;
    ts->seconds += dt;
    char dn[32], pn[32];
    candidate_name(&tc->c[tc->decode_best], dn, sizeof dn);
    candidate_name(&tc->c[tc->prefill_best], pn, sizeof pn);
    rsrc_note(1, "tune: %s: measured %d candidates on %s in %.2f s: decode %s (%.1f us), prefill %s (%.1f us/token)",
              tc->label, tc->n, tm->name, dt, dn, tc->c[tc->decode_best].decode_ns / 1e3, pn,
              tc->c[tc->prefill_best].prefill_ns / 1e3);
}

/* ---- the interface ---- */

static char *tune_default_cache(void) {
    const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    if (xdg && *xdg == '/') return xasprintf("%s/rsrc/tune.txt", xdg);
    if (home && *home) return xasprintf("%s/.cache/rsrc/tune.txt", home);
    return NULL;
}

static tune_state *begin(const rsrc_target *t, compile_options opts, const char *cache_path, const kernel_printer *pr,
                         const char *workdir, enum strategy forced, int forced_k, bool say_no_cache) {
    tune_state *ts = xcalloc(1, sizeof *ts);
    ts->t = t;
    ts->opts = opts;
    ts->printer = pr;
    ts->workdir = workdir;
    ts->forced = forced;
    ts->forced_k = forced_k;
    ts->cache_path = cache_path ? xstrdup(cache_path) : tune_default_cache();
    if (!ts->cache_path && say_no_cache)
        rsrc_warn(
            "--tune: neither XDG_CACHE_HOME nor HOME is set and no --tune-cache was given: the measurements are not "
            "kept");
    ts->target_key = make_target_key(t, pr, opts.opt_level);
    if (ts->cache_path) read_cache(ts, false);
    return ts;
}

tune_state *tune_begin(const rsrc_target *t, compile_options opts, const char *cache_path, const kernel_printer *pr,
                       const char *workdir, enum strategy forced, int forced_k) {
    return begin(t, opts, cache_path, pr, workdir, forced, forced_k, true);
}

tune_state *tune_begin_check(const rsrc_target *t, compile_options opts, const kernel_printer *pr,
                             const char *workdir) {
    return begin(t, opts, NULL, pr, workdir, STRAT_I2, 0, false); /* the candidates: i2's tiles and lanes */
}

/* tm's class (from the cache, or measured now), or NULL when there is nothing to measure. */
static tune_class *class_of(tune_state *ts, const ternary_matrix *tm, int k0) {
    uint64_t zeros = 0, n = (uint64_t)tm->rows * (uint64_t)tm->cols;
    for (uint64_t i = 0; i < n; i++) zeros += tm->w[i] == 0;
    int zero_pct = (int)lround(100.0 * (double)zeros / (double)n / 5) * 5;
    tune_candidate cand[TUNE_MAX_CANDIDATES];
    char space[160];
    int nc = candidate_space(ts, tm, k0, cand, space, sizeof space);
    if (nc == 0) return NULL; /* nothing to measure: the planner's choice stands */
    char *label = tm->binary ? xasprintf("%dx%d binary k%d", tm->rows, tm->cols, k0)
                             : xasprintf("%dx%d ternary zeros~%d%% k%d", tm->rows, tm->cols, zero_pct, k0);
    char *key = xasprintf("%s; class %s; %s", ts->target_key, label, space);
    tune_class *tc = find_class(ts, key);
    if (tc) {
        free(key);
        if (!tc->label) {
            tc->label = label;
            ts->cached++;
            rsrc_note(1, "tune: %s: cached (%s)", label, tc->origin);
        } else {
            free(label);
        }
    } else {
        tc = xcalloc(1, sizeof *tc);
        tc->key = key;
        tc->label = label;
        tc->n = nc;
        memcpy(tc->c, cand, sizeof *cand * (size_t)nc);
        measure_class(ts, tm, tc);
        add_class(ts, tc);
    }
    return tc;
}

static const tune_class *tune_matrix(tune_state *ts, const ternary_matrix *tm, matrix_plan *mp) {
    tune_class *tc = class_of(ts, tm, mp->k);
    if (!tc) return NULL;
    const tune_candidate *w = &tc->c[tc->decode_best];
    mp->strategy = w->strategy;
    if (w->k) mp->k = w->k;
    char dn[32], pn[32];
    candidate_name(w, dn, sizeof dn);
    candidate_name(&tc->c[tc->prefill_best], pn, sizeof pn);
    const char *src = !tc->measured ? "cached" : !strcmp(tc->origin, tm->name) ? "measured" : "measured on its class";
    int used = snprintf(mp->why, sizeof mp->why, "%s (least measured decode time, %s); ", dn, src);
    if (tc->prefill_best != tc->decode_best && (size_t)used < sizeof mp->why)
        used += snprintf(mp->why + used, sizeof mp->why - (size_t)used, "prefill prefers %s; ", pn);
    if ((size_t)used < sizeof mp->why) {
        snprintf(mp->why + used, sizeof mp->why - (size_t)used, "predicted ns:");
        for (int s = 1; s < NUM_STRATEGIES; s++) {
            used = (int)strlen(mp->why);
            if ((size_t)used + 1 >= sizeof mp->why) break;
            if (mp->cost[s] > 0)
                snprintf(mp->why + used, sizeof mp->why - (size_t)used, " %s=%.0f", strategy_names[s], mp->cost[s]);
            else
                snprintf(mp->why + used, sizeof mp->why - (size_t)used, " %s=n/a", strategy_names[s]);
        }
    }
    return tc;
}

void tune_decide(tune_state *ts, const ternary_matrix *tm, const rsrc_target *t, matrix_request *rq, matrix_plan *mp) {
    plan_matrix(tm, t, rq->strategy, rq->k, mp);
    if (tm->unit_cols) { /* the RSR forms of a group-scaled matrix: the cost model's k (not measured yet) */
        rq->decided = mp;
        return;
    }
    stage_enter(STAGE_TUNE);
    stage_hold(true); /* the candidates' own compiles count as tuning */
    rq->measured = tune_matrix(ts, tm, mp);
    stage_hold(false);
    rq->decided = mp;
    rq->measured_lanes_gain = rq->measured ? tune_lanes_gain(rq->measured) : 0;
}

void tune_check_lanes(tune_state *ts, const ternary_matrix *tm, const rsrc_target *t, matrix_request *rq,
                      matrix_plan *mp) {
    plan_matrix(tm, t, rq->strategy, rq->k, mp);
    rq->decided = mp;
    if (mp->strategy != STRAT_I2 || tm->unit_cols || !kernel_lanes_possible(tm, t) ||
        plan_lanes_gain(tm, t) < PLAN_LANES_GAIN)
        return; /* the cost model keeps the tiles: nothing extra to earn */
    stage_enter(STAGE_TUNE);
    stage_hold(true);
    const tune_class *tc = class_of(ts, tm, mp->k);
    stage_hold(false);
    rq->measured = tc;
    rq->measured_lanes_gain = tc ? tune_lanes_gain(tc) : 0;
}

static double tune_lanes_gain(const tune_class *tc) {
    if (tc->c[tc->decode_best].strategy != STRAT_I2) return 0;
    int tiles = -1, lanes = -1;
    for (int i = 0; i < tc->n; i++)
        if (tc->c[i].strategy == STRAT_I2) *(tc->c[i].lanes ? &lanes : &tiles) = i;
    if (tiles < 0 || lanes < 0 || !(tc->c[lanes].prefill_ns > 0)) return 0;
    return tc->c[tiles].prefill_ns / tc->c[lanes].prefill_ns; /* per token of a full step */
}

void tune_explain(FILE *out, const tune_class *tc, const ternary_matrix *tm, const rsrc_target *t) {
    fprintf(out, "    tune %s: %s", tc->label, tc->measured ? "measured" : "cached");
    if (!tc->measured)
        fprintf(out, " (%s)", tc->origin);
    else if (strcmp(tc->origin, tm->name))
        fprintf(out, " on %s", tc->origin);
    fprintf(out, "\n      %-18s %12s %12s %16s %12s\n", "candidate", "decode ns", "predicted", "prefill ns/tok",
            "predicted");
    for (int i = 0; i < tc->n; i++) {
        const tune_candidate *c = &tc->c[i];
        char cn[32];
        candidate_name(c, cn, sizeof cn);
        int k = c->k ? c->k : 1;
        fprintf(out, "      %-18s %12.0f %12.0f %16.0f %12.0f%s%s\n", cn, c->decode_ns,
                plan_predict(tm, t, c->strategy, k, false), c->prefill_ns, plan_predict(tm, t, c->strategy, k, true),
                i == tc->decode_best ? "  <- decode" : "", i == tc->prefill_best ? "  <- prefill" : "");
    }
}

void tune_end(tune_state *ts) {
    if (ts->measured && ts->cache_path) write_cache(ts);
    if (!ts->measured && !ts->cached) {
        /* nothing asked for a measurement (the default compile's check, where no lanes were predicted) */
    } else if (!ts->measured)
        rsrc_note(1, "tune: measured nothing: %d class%s found in %s", ts->cached, ts->cached == 1 ? "" : "es",
                  ts->cache_path ? ts->cache_path : "(no cache)");
    else
        rsrc_note(1, "tune: measured %d class%s in %.2f s, %d cached", ts->measured, ts->measured == 1 ? "" : "es",
                  ts->seconds, ts->cached);
    for (int i = 0; i < ts->nclasses; i++) free_class(ts->classes[i]);
    free(ts->classes), free(ts->cache_path), free(ts->target_key);
    free(ts);
}
