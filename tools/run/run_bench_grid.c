/*
 * run_bench_grid.c — rsr-run --bench in llama-bench's manner: `--bench -p 512 -n 128 -r 5`
 * measures a prefill of 512 tokens (pp512) and a decode of 128 from an empty context (tg128),
 * each -r times; lists (-p 128,512 -n 0,64) give one test per length (0: none), -pg 512,128 a
 * prompt of 512 then 128 decoded as one test (pp512+tg128: its tokens over its time), -t 1,2
 * every test at each thread count (the model opened again for each), and --parallel 1,4,16 every
 * test with that many sequences stepped together through one batch ("tg64 (4 seqs)": their
 * tokens together per second; no roofline, since they share the weights' bytes), and -d 0,2048
 * every test after that many tokens of context, evaluated untimed (llama-bench's depth). Every round runs every test
 * once, alternating, and the table gives each test's mean ± standard deviation of
 * tok/s; -o md (default), csv, json or svg (a chart, run_plot.c; --plot FILE.svg writes it beside
 * the table). Prompts are synthetic token ids, decode goes through the
 * certified greedy head (what a user gets), and a decode test's column "roofline" is its share of
 * the rate that the streaming read bandwidth measured in the same round allows ("in cache" where
 * it beats that rate and the model fits the largest cache, ">100% (bandwidth measured low?)" where
 * it does not; empty or null for a prompt test). run_bench.c keeps
 * the detailed report of every head (--bench without a -p list).
 */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bandwidth.h"
#include "rsr-run.h"

bool bench_is_list(const char *s) {
    if (!s || !*s) return false;
    for (; *s; s++)
        if (!(*s >= '0' && *s <= '9') && *s != ',') return false;
    return true;
}

typedef struct grid_test {
    char name[48];
    int32_t prompt, decode; /* one of them, or both (-pg) */
    int32_t threads, seqs;  /* seqs: sequences stepped together (--parallel), their tok/s summed */
    int32_t depth;          /* -d: tokens of context evaluated (untimed) before the test */
    double *runs;           /* tok/s per round */
    double *roof;           /* decode: share of the round's bandwidth limit */
} grid_test;

/* "512,128" → tests named prefix<N> for each N > 0 */
static int add_tests(grid_test *t, int n, int cap, const char *list, const char *flag, bool decode) {
    for (const char *p = list; *p;) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 0 || v > (1 << 24) || (*end && *end != ','))
            die("%s: '%s' is not a list of token counts such as 128,512", flag, list);
        if (v > 0) {
            if (n == cap) die("%s: at most %d lengths", flag, cap / 2);
            t[n] = (grid_test){.prompt = decode ? 0 : (int32_t)v, .decode = decode ? (int32_t)v : 0};
            snprintf(t[n].name, sizeof t[n].name, "%s%ld", decode ? "tg" : "pp", v);
            n++;
        }
        p = *end ? end + 1 : end;
    }
    return n;
}

/* -pg P,G: one test of both */
static int add_pg(grid_test *t, int n, int cap, const char *pg) {
    long p, g;
    char tail;
    if (sscanf(pg, "%ld,%ld%c", &p, &g, &tail) != 2 || p < 1 || g < 1 || p > (1 << 24) || g > (1 << 24))
        die("-pg: '%s' is not PROMPT,GENERATED such as 512,128", pg);
    if (n == cap) die("-pg: too many tests");
    t[n] = (grid_test){.prompt = (int32_t)p, .decode = (int32_t)g};
    snprintf(t[n].name, sizeof t[n].name, "pp%ld+tg%ld", p, g);
    return n + 1;
}

/* What a round runs its tests on: a session, and for --parallel N a batch of N more. */
typedef struct runner {
    rsr_session *s;
    rsr_batch *b;
    rsr_session **ss;
    rsr_seq *q;
    int32_t *cur, *next, n;
} runner;

/* A test of t->seqs sequences stepped together (rsr_batch_eval), each the same synthetic prompt
 * and greedy decode: their tokens together per second. */
static double run_batched(runner *r, const grid_test *t, const int32_t *ids) {
    const int32_t n = t->seqs;
    for (int32_t j = 0; j < n; j++) {
        check(api.session_reset(r->ss[j]), r->ss[j]);
        r->q[j] = (rsr_seq){
            .session = r->ss[j], .tokens = ids, .n = t->depth, .output = RSR_OUTPUT_GREEDY, .token = &r->next[j]};
    }
    if (t->depth && api.batch_eval(r->b, r->q, n) != RSR_OK) die("--parallel %d: %s", n, api.batch_errmsg(r->b));
    for (int32_t j = 0; j < n; j++) r->q[j].tokens = ids + t->depth, r->q[j].n = t->prompt ? t->prompt : 1;
    double t0 = now();
    if (api.batch_eval(r->b, r->q, n) != RSR_OK) die("--parallel %d: %s", n, api.batch_errmsg(r->b));
    if (!t->decode) return (double)n * t->prompt / (now() - t0);
    if (!t->prompt) t0 = now(); /* a decode alone: its first token untimed */
    for (int32_t i = 0; i < t->decode; i++) {
        for (int32_t j = 0; j < n; j++) r->cur[j] = r->next[j], r->q[j].tokens = &r->cur[j], r->q[j].n = 1;
        if (api.batch_eval(r->b, r->q, n) != RSR_OK) die("--parallel %d: %s", n, api.batch_errmsg(r->b));
    }
    return (double)n * (t->prompt + t->decode) / (now() - t0);
}

/* One run of a test: tok/s. A decode alone starts from one (untimed) token; -pg's is timed with
 * its prompt, as llama-bench times it. */
static double run_test(runner *r, const grid_test *t, const int32_t *ids) {
    if (t->seqs > 1) return run_batched(r, t, ids);
    rsr_session *s = r->s;
    check(api.session_reset(s), s);
    int32_t next;
    if (t->depth) check(api.session_eval_greedy(s, ids, t->depth, &next), s);
    ids += t->depth;
    double t0 = now();
    if (t->prompt) check(api.session_eval_greedy(s, ids, t->prompt, &next), s);
    if (!t->decode) return t->prompt / (now() - t0);
    if (!t->prompt) {
        check(api.session_eval_greedy(s, ids, 1, &next), s);
        t0 = now();
    }
    for (int32_t i = 0; i < t->decode; i++) check(api.session_eval_greedy(s, &next, 1, &next), s);
    return (t->prompt + t->decode) / (now() - t0);
}

static void mean_sd(const double *v, int n, double *mean, double *sd) {
    double s = 0, q = 0;
    for (int i = 0; i < n; i++) s += v[i];
    *mean = s / n;
    for (int i = 0; i < n; i++) q += (v[i] - *mean) * (v[i] - *mean);
    *sd = n > 1 ? sqrt(q / (n - 1)) : 0;
}

/* The tests as a chart (run_plot.c) on f. */
static void plot(FILE *f, const grid_test *t, int n, int rounds, const rsr_model_info *info, const run_options *o) {
    plot_bar *bars = calloc((size_t)n, sizeof *bars);
    if (!bars) die("out of memory");
    for (int i = 0; i < n; i++) {
        bars[i] = (plot_bar){t[i].name, t[i].prompt, t[i].decode, t[i].threads, t[i].seqs, 0, 0};
        mean_sd(t[i].runs, rounds, &bars[i].mean, &bars[i].sd);
    }
    bench_svg(f, bars, n, o->model_path, info->target, rounds);
    free(bars);
}

/* --plot FILE: the chart written beside FILE and renamed over it once whole. */
static void write_plot(const char *path, const grid_test *t, int n, int rounds, const rsr_model_info *info,
                       const run_options *o) {
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp)
        die("--plot %s: the path is too long", path);
    FILE *f = fopen(tmp, "w");
    if (!f) die("--plot %s: cannot write %s: %s", path, tmp, strerror(errno));
    plot(f, t, n, rounds, info, o);
    if (fclose(f) != 0 || rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        die("--plot %s: %s", path, strerror(e));
    }
    fprintf(stderr, "rsr-run: the chart is in %s\n", path);
}

/* The largest CPU cache's bytes (sysfs; 0 when it does not say). */
static double largest_cache(void) {
    double most = 0;
    for (int i = 0; i < 8; i++) {
        char path[96], text[32];
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/size", i);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        if (fgets(text, sizeof text, f)) {
            char unit = 0;
            double v = 0;
            if (sscanf(text, "%lf%c", &v, &unit) >= 1)
                v *= unit == 'K' ? 1024.0 : unit == 'M' ? 1048576.0 : unit == 'G' ? 1073741824.0 : 1.0;
            most = v > most ? v : most;
        }
        fclose(f);
    }
    return most;
}

/* A decode faster than the streaming read allows: the model is read from the caches when it fits
 * in them; when it does not, the bandwidth was measured low (another load, a throttled round). */
static const char *beyond_roofline(double bytes_per_token) {
    double cache = largest_cache();
    return cache > 0 && bytes_per_token > cache ? ">100% (bandwidth measured low?)" : "in cache";
}

static void print_table(const grid_test *t, int n, int rounds, const rsr_model_info *info, const run_options *o,
                        double mib, double bytes_per_token) {
    const char *fmt = o->bench_format ? o->bench_format : o->json ? "json" : "md";
    if (!strcmp(fmt, "svg")) {
        plot(stdout, t, n, rounds, info, o);
        return;
    }
    if (!strcmp(fmt, "md"))
        printf("| model | size | target | threads | test | t/s | roofline |\n|---|---:|---|---:|---:|---:|---:|\n");
    else if (!strcmp(fmt, "csv"))
        printf("model,size_mib,target,threads,test,tok_s_mean,tok_s_sd,rounds,roofline\n");
    else
        printf("[\n");
    for (int i = 0; i < n; i++) {
        double m, sd, roof = 0, unused;
        mean_sd(t[i].runs, rounds, &m, &sd);
        if (t[i].decode) mean_sd(t[i].roof, rounds, &roof, &unused);
        if (!strcmp(fmt, "md")) {
            printf("| %s | %.1f MiB | %s | %d | %s | %.2f ± %.2f | ", o->model_path, mib, info->target, t[i].threads,
                   t[i].name, m, sd);
            if (t[i].decode && !t[i].prompt && roof > 1) /* faster than memory streams: read from cache */
                printf("%s |\n", beyond_roofline(bytes_per_token));
            else if (t[i].decode && !t[i].prompt && roof > 0)
                printf("%.0f%% |\n", 100 * roof);
            else
                printf(" |\n");
        } else if (!strcmp(fmt, "csv")) {
            printf("%s,%.2f,%s,%d,%s,%.4f,%.4f,%d,", o->model_path, mib, info->target, t[i].threads, t[i].name, m, sd,
                   rounds);
            if (roof > 0) printf("%.4f", roof); /* a prompt test has none: the field is empty */
            printf("\n");
        } else {
            printf("  {\"model\": \"%s\", \"size_mib\": %.2f, \"target\": \"%s\", \"threads\": %d, \"test\": \"%s\", "
                   "\"n_prompt\": %d, \"n_gen\": %d, \"n_seqs\": %d, \"tok_s_mean\": %.4f, \"tok_s_sd\": %.4f, "
                   "\"rounds\": %d, \"runs\": [",
                   o->model_path, mib, info->target, t[i].threads, t[i].name, t[i].prompt, t[i].decode, t[i].seqs, m,
                   sd, rounds);
            for (int r = 0; r < rounds; r++) printf("%s%.4f", r ? ", " : "", t[i].runs[r]);
            if (roof > 0)
                printf("], \"roofline\": %.4f}%s\n", roof, i + 1 < n ? "," : "");
            else /* a prompt test has none */
                printf("], \"roofline\": null}%s\n", i + 1 < n ? "," : "");
        }
    }
    if (strcmp(fmt, "md") && strcmp(fmt, "csv")) printf("]\n");
}

/* The rounds of tests t[0..n) on model m (its threads): every round runs each once. */
static void run_rounds(rsr_model *m, const rsr_model_info *info, const run_options *o, grid_test *t, int n,
                       int rounds) {
    rsr_session_params sp = o->session;
    runner r = {0};
    if (api.session_create(m, &sp, &r.s) != RSR_OK) die("%s", api.model_errmsg(m));
    int32_t limit = o->ctx ? o->ctx : info->max_positions, most = 1;
    for (int i = 0; i < n; i++) {
        int32_t need = t[i].depth + t[i].prompt + t[i].decode + !t[i].prompt;
        if (need > limit) die("--bench: %s needs %d positions, the context has %d (--ctx)", t[i].name, need, limit);
        most = need > most ? need : most;
        r.n = t[i].seqs > r.n ? t[i].seqs : r.n;
    }
    if (r.n > 1) { /* the batch and its sessions, for the tests of several sequences */
        r.ss = calloc((size_t)r.n, sizeof *r.ss), r.q = calloc((size_t)r.n, sizeof *r.q);
        r.cur = calloc((size_t)r.n, sizeof *r.cur), r.next = calloc((size_t)r.n, sizeof *r.next);
        if (!r.ss || !r.q || !r.cur || !r.next) die("out of memory");
        if (api.batch_create(m, 0, &r.b) != RSR_OK) die("--parallel: %s", api.batch_errmsg(r.b));
        rsr_session_params bp = o->session;
        bp.max_positions = most, bp.batch = 1; /* the batch holds the step's activations */
        for (int32_t j = 0; j < r.n; j++)
            if (api.session_create(m, &bp, &r.ss[j]) != RSR_OK)
                die("--parallel %d: session %d: %s", r.n, j + 1, api.model_errmsg(m));
    }
    int32_t *ids = malloc(sizeof *ids * (size_t)most);
    if (!ids) die("out of memory");
    for (int32_t i = 0; i < most; i++) ids[i] = (int32_t)((i * 2654435761u) % (uint32_t)info->vocab_size);
    const double bytes = exact_bytes_per_token(m, info);
    const bool on_gpu = !strncmp(info->device, "gpu", 3);
    run_test(&r, &t[0], ids); /* warm-up */
    for (int k = 0; k < rounds; k++) {
        bench_progress("%d threads, round %d of %d: streaming read bandwidth", info->num_threads, k + 1, rounds);
        double limit_tok_s = on_gpu ? 0 : read_bandwidth(info->num_threads) * 1e9 / bytes;
        for (int i = 0; i < n; i++) {
            bench_progress("%d threads, round %d of %d: %s", info->num_threads, k + 1, rounds, t[i].name);
            t[i].threads = info->num_threads;
            t[i].runs[k] = run_test(&r, &t[i], ids);
            /* several sequences share the weights' bytes: no one-sequence roofline for them */
            t[i].roof[k] = limit_tok_s > 0 && t[i].seqs == 1 ? t[i].runs[k] / limit_tok_s : 0;
        }
    }
    free(ids);
    api.session_free(r.s);
    for (int32_t j = 0; j < r.n && r.ss; j++) api.session_free(r.ss[j]);
    if (r.b) api.batch_free(r.b);
    free(r.ss), free(r.q), free(r.cur), free(r.next);
}

/* A flag's list of counts ("1,4,16") in [lo, hi], at most 16, into out; none given: dflt alone. */
static int parse_counts(const char *list, const char *flag, long lo, long hi, long dflt, const char *kind,
                        long out[16]) {
    int k = 0;
    for (const char *p = list; p && *p;) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < lo || v > hi || (*end && *end != ',') || k == 16)
            die("%s: '%s' is not a list of up to 16 %s", flag, list, kind);
        out[k++] = v;
        p = *end ? end + 1 : end;
    }
    if (!k) out[k++] = dflt;
    return k;
}

/* t[0..n) at every sequence count and depth: "tg64 @ d2048 (4 seqs)" (a test's own name is at most
 * 21 characters); the count of tests made. */
static int expand_tests(grid_test *t, int n, const long *seqs, int ns, const long *depths, int nd) {
    grid_test one[32];
    memcpy(one, t, sizeof one);
    int made = 0;
    for (int d = 0; d < nd; d++)
        for (int q = 0; q < ns; q++)
            for (int i = 0; i < n; i++) {
                grid_test *g = &t[made++];
                *g = one[i];
                g->seqs = (int32_t)seqs[q], g->depth = (int32_t)depths[d];
                char at[20] = "", many[20] = "";
                if (g->depth) snprintf(at, sizeof at, " @ d%d", (int)(g->depth & 0x1ffffff));
                if (g->seqs > 1) snprintf(many, sizeof many, " (%d seqs)", (int)(g->seqs & 511));
                snprintf(g->name, sizeof g->name, "%.21s%.12s%.12s", one[i].name, at, many);
            }
    return made;
}

void run_bench_grid(rsr_model *m, const rsr_model_info *info, const run_options *o, const rsr_model_params *mp,
                    bench_lists l) {
    const int rounds = o->repeat > 0 ? o->repeat : 5, cap = 32;
    grid_test base[32];
    int n = add_tests(base, 0, cap, l.p, "-p", false);
    n = add_tests(base, n, cap, l.n ? l.n : "128", "-n", true);
    if (l.pg) n = add_pg(base, n, cap, l.pg);
    if (!n) die("--bench: -p and -n name no test (every length is 0)");
    char seq_kind[64];
    snprintf(seq_kind, sizeof seq_kind, "sequence counts from 1 to %d such as 1,4,16", RSR_BATCH_MAX);
    long seqs[16], depths[16], counts[16];
    const int ns = parse_counts(l.parallel, "--parallel", 1, RSR_BATCH_MAX, 1, seq_kind, seqs);
    const int nd = parse_counts(l.depth, "-d", 0, 1 << 24, 0, "context lengths such as 0,2048", depths);
    const int nt = parse_counts(l.t, "-t", 1, 1024, info->num_threads, "thread counts such as 1,2", counts);
    if (n * ns * nd > cap)
        die("--bench: %d tests, %d sequence counts and %d depths make more than %d tests", n, ns, nd, cap);
    n = expand_tests(base, n, seqs, ns, depths, nd);
    grid_test *t = calloc((size_t)(n * nt), sizeof *t);
    if (!t) die("out of memory");
    for (int k = 0; k < nt; k++) {
        rsr_model *mk = m;
        rsr_model_info ik = *info;
        if (counts[k] != info->num_threads) { /* the model again, with these threads */
            rsr_model_params p = *mp;
            p.num_threads = (int32_t)counts[k];
            if (api.model_open(&mk, &p) != RSR_OK) die("%s", api.model_errmsg(mk));
            api.model_get_info(mk, &ik);
        }
        for (int i = 0; i < n; i++) {
            t[k * n + i] = base[i];
            t[k * n + i].runs = calloc((size_t)rounds, sizeof(double));
            t[k * n + i].roof = calloc((size_t)rounds, sizeof(double));
            if (!t[k * n + i].runs || !t[k * n + i].roof) die("out of memory");
        }
        run_rounds(mk, &ik, o, t + k * n, n, rounds);
        if (mk != m) api.model_close(mk);
    }
    bench_progress(NULL);
    struct stat st;
    print_table(t, n * nt, rounds, info, o, stat(o->model_path, &st) == 0 ? (double)st.st_size / (1 << 20) : 0,
                exact_bytes_per_token(m, info));
    if (o->plot_path) write_plot(o->plot_path, t, n * nt, rounds, info, o);
    for (int i = 0; i < n * nt; i++) free(t[i].runs), free(t[i].roof);
    free(t);
}
