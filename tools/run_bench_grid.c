/*
 * run_bench_grid.c — rsr-run --bench in llama-bench's manner: `--bench -p 512 -n 128 -r 5`
 * measures a prefill of 512 tokens (pp512) and a decode of 128 from an empty context (tg128),
 * each -r times; lists (-p 128,512 -n 0,64) give one test per length (0: none). Every round runs
 * every test once, alternating, and the table gives each test's mean ± standard deviation of
 * tok/s; -o md (default), csv or json. Prompts are synthetic token ids, decode goes through the
 * certified greedy head (what a user gets), and a decode test's column "roofline" is its share of
 * the rate that the streaming read bandwidth measured in the same round allows. run_bench.c keeps
 * the detailed report of every head (--bench without a -p list).
 */
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
    char name[24];
    int32_t prompt, decode; /* one of them */
    double *runs;           /* tok/s per round */
    double *roof;           /* decode: share of the round's bandwidth limit */
} grid_test;

/* "512,128" → tests named prefix<N> for each N > 0 */
static int add_tests(grid_test *t, int n, int cap, const char *list, const char *flag, bool decode, int rounds) {
    for (const char *p = list; *p;) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 0 || v > (1 << 24) || (*end && *end != ','))
            die("%s: '%s' is not a list of token counts such as 128,512", flag, list);
        if (v > 0) {
            if (n == cap) die("%s: at most %d lengths", flag, cap / 2);
            t[n] = (grid_test){.prompt = decode ? 0 : (int32_t)v, .decode = decode ? (int32_t)v : 0};
            snprintf(t[n].name, sizeof t[n].name, "%s%ld", decode ? "tg" : "pp", v);
            t[n].runs = calloc((size_t)rounds, sizeof(double)), t[n].roof = calloc((size_t)rounds, sizeof(double));
            if (!t[n].runs || !t[n].roof) die("out of memory");
            n++;
        }
        p = *end ? end + 1 : end;
    }
    return n;
}

/* One run of a test: tok/s. A decode starts from one (untimed) token. */
static double run_test(rsr_session *s, const grid_test *t, const int32_t *ids) {
    check(api.session_reset(s), s);
    int32_t next;
    double t0 = now();
    if (t->prompt) {
        check(api.session_eval_greedy(s, ids, t->prompt, &next), s);
        return t->prompt / (now() - t0);
    }
    check(api.session_eval_greedy(s, ids, 1, &next), s);
    t0 = now();
    for (int32_t i = 0; i < t->decode; i++) check(api.session_eval_greedy(s, &next, 1, &next), s);
    return t->decode / (now() - t0);
}

static void mean_sd(const double *v, int n, double *mean, double *sd) {
    double s = 0, q = 0;
    for (int i = 0; i < n; i++) s += v[i];
    *mean = s / n;
    for (int i = 0; i < n; i++) q += (v[i] - *mean) * (v[i] - *mean);
    *sd = n > 1 ? sqrt(q / (n - 1)) : 0;
}

static void print_table(const grid_test *t, int n, int rounds, const rsr_model_info *info, const run_options *o,
                        double mib) {
    const char *fmt = o->bench_format ? o->bench_format : o->json ? "json" : "md";
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
            printf("| %s | %.1f MiB | %s | %d | %s | %.2f ± %.2f | ", o->model_path, mib, info->target,
                   info->num_threads, t[i].name, m, sd);
            if (t[i].decode && roof > 0)
                printf("%.0f%% |\n", 100 * roof);
            else
                printf(" |\n");
        } else if (!strcmp(fmt, "csv")) {
            printf("%s,%.2f,%s,%d,%s,%.4f,%.4f,%d,%.4f\n", o->model_path, mib, info->target, info->num_threads,
                   t[i].name, m, sd, rounds, roof);
        } else {
            printf("  {\"model\": \"%s\", \"size_mib\": %.2f, \"target\": \"%s\", \"threads\": %d, \"test\": \"%s\", "
                   "\"n_prompt\": %d, \"n_gen\": %d, \"tok_s_mean\": %.4f, \"tok_s_sd\": %.4f, \"rounds\": %d, "
                   "\"runs\": [",
                   o->model_path, mib, info->target, info->num_threads, t[i].name, t[i].prompt, t[i].decode, m, sd,
                   rounds);
            for (int r = 0; r < rounds; r++) printf("%s%.4f", r ? ", " : "", t[i].runs[r]);
            printf("], \"roofline\": %.4f}%s\n", roof, i + 1 < n ? "," : "");
        }
    }
    if (strcmp(fmt, "md") && strcmp(fmt, "csv")) printf("]\n");
}

void run_bench_grid(rsr_model *m, const rsr_model_info *info, const run_options *o, const char *p_list,
                    const char *n_list) {
    const int rounds = o->repeat > 0 ? o->repeat : 5, cap = 32;
    grid_test t[32];
    int n = add_tests(t, 0, cap, p_list, "-p", false, rounds);
    n = add_tests(t, n, cap, n_list ? n_list : "128", "-n", true, rounds);
    if (!n) die("--bench: -p and -n name no test (every length is 0)");
    rsr_session_params sp = o->session;
    rsr_session *s;
    if (api.session_create(m, &sp, &s) != RSR_OK) die("%s", api.model_errmsg(m));
    int32_t limit = o->ctx ? o->ctx : info->max_positions, most = 1;
    for (int i = 0; i < n; i++) {
        int32_t need = t[i].prompt ? t[i].prompt : t[i].decode + 1;
        if (need > limit) die("--bench: %s needs %d positions, the context has %d (--ctx)", t[i].name, need, limit);
        most = need > most ? need : most;
    }
    int32_t *ids = malloc(sizeof *ids * (size_t)most);
    if (!ids) die("out of memory");
    for (int32_t i = 0; i < most; i++) ids[i] = (int32_t)((i * 2654435761u) % (uint32_t)info->vocab_size);
    const double bytes = exact_bytes_per_token(m, info);
    const bool on_gpu = !strncmp(info->device, "gpu", 3);
    run_test(s, &t[0], ids); /* warm-up */
    for (int r = 0; r < rounds; r++) {
        bench_progress("round %d of %d: streaming read bandwidth", r + 1, rounds);
        double limit_tok_s = on_gpu ? 0 : read_bandwidth(info->num_threads) * 1e9 / bytes;
        for (int i = 0; i < n; i++) {
            bench_progress("round %d of %d: %s", r + 1, rounds, t[i].name);
            t[i].runs[r] = run_test(s, &t[i], ids);
            t[i].roof[r] = limit_tok_s > 0 ? t[i].runs[r] / limit_tok_s : 0;
        }
    }
    bench_progress(NULL);
    struct stat st;
    print_table(t, n, rounds, info, o, stat(o->model_path, &st) == 0 ? (double)st.st_size / (1 << 20) : 0);
    for (int i = 0; i < n; i++) free(t[i].runs), free(t[i].roof);
    free(ids);
    api.session_free(s);
}
