/*
 * main.c — the rsrc command line and the pipeline, readable in one function: compile().
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rsrc.h"
#include "rsrc_config.h"

enum emit_kind { EMIT_SO, EMIT_C, EMIT_LLVM, EMIT_ASM, EMIT_OBJ, EMIT_HEADER, EMIT_CUDA, EMIT_PTX, NUM_EMIT };
static const char *const emit_names[NUM_EMIT] = {"so", "c", "llvm", "asm", "obj", "header", "cuda", "ptx"};
#define EMIT_IS_LLVM(e) ((e) == EMIT_LLVM || (e) == EMIT_ASM) /* the kernels alone, through LLVM */

typedef struct options {
    const char *input, *output, *target, *cpu, *features, *backend;
    const char *name;           /* --name: prefix of the entry points; NULL: the default model */
    char *flags;                /* the options that shape the code, for the manifest */
    enum emit_kind emit;
    int rsr_k;                  /* 0: chosen per matrix by the cost model */
    enum strategy strategy;
    uint64_t max_memory;        /* 0: no cap */
    bool greedy_head;           /* an int8 copy of the LM head for certified greedy decoding */
    bool prefill_lanes;         /* batched i2 kernels as RSR with tokens in lanes (--prefill=rsr) */
    bool explain, stats, print_model, print_plan, print_target, verify;
    bool tune;                  /* measure the candidates here (tune.c) */
    const char *tune_cache;     /* NULL: the default cache file */
    enum progress_mode progress;
} options;

static void usage(FILE *out) {
    fputs("usage: rsrc MODEL [options]\n"
          "\n"
          "Compiles a ternary (1.58-bit) or binary language model into code specialised to each of its\n"
          "weight matrices (Redundant Segment Reduction), linked with the rsrc runtime into one artifact.\n"
          "\n"
          "MODEL is a .safetensors file, a model.safetensors.index.json shard index, or a directory\n"
          "holding either; config.json must sit next to the weights.\n"
          "\n"
          "options:\n"
          "  -o, --output FILE     where to write the result (default: model.so, or model.c with --emit=c)\n"
          "  --target NAME|FILE    host (the default: this machine's CPU and features, also spelled native), a\n"
          "                        spec in specs/ (generic: portable C that runs on any x86-64; avx2, avx512, ...)\n"
          "                        or a .yaml file; a CUDA spec (sm_80, sm_86, sm_89, sm_90, ...) adds GPU code:\n"
          "                        avx512,sm_90. The artifact refuses to load on a CPU without the target's features\n"
          "  --cpu=NAME            override the target's CPU (-march for the C backend)\n"
          "  --features=+a,-b      enable or disable target features\n"
          "  --emit=KIND           so: a loadable model (default); obj: the same as one relocatable object to link\n"
          "                        into an application; header: NAME.h, the model's sizes as macros and its entry\n"
          "                        points; c: the generated C (kernels and descriptor); llvm, asm: the kernels as\n"
          "                        optimised LLVM IR or assembly; cuda, ptx: the GPU module as CUDA C or PTX\n"
          "                        (CUDA targets)\n"
          "  --name=NAME           entry points NAME_model_open and NAME_artifact, so that several models link into\n"
          "                        one program (default: the model rsr_model_open opens)\n"
          "  --backend=c|llvm|nvrtc  who prints the kernels (default: the target's; llvm for the x86 specs,\n"
          "                        nvrtc for CUDA; llvm for a CUDA target: LLVM NVPTX)\n"
          "  --rsr-k=N             rows per RSR block for every matrix (1-8; default: per-matrix cost model)\n"
          "  --strategy=NAME       auto (default: the cost model picks per matrix), rsr-unrolled (the RSR index\n"
          "                        as instructions), rsr-loop (index as constant data), i2 (packed 2-bit codes,\n"
          "                        int8 dot products: VNNI, maddubs or scalar as the target allows) or lut (1.67-bit\n"
          "                        triplet codes, sums looked up in tables of x: vpermt2b + vpdpbusd with AVX-512\n"
          "                        VBMI and VNNI, else scalar C)\n"
          "  --prefill=i2|rsr      the batched (prompt) kernels of i2 matrices: tiles of tokens over the 2-bit codes\n"
          "                        (default), or RSR with 32 tokens in vector lanes (an index of 4 bits per weight)\n"
          "  --tune                measure each matrix's candidate strategies on this machine (decode and prefill,\n"
          "                        single thread) and keep the fastest; the target must run here (host, or a spec\n"
          "                        whose features this CPU has). Results are cached: a second compile measures nothing\n"
          "  --tune-cache=FILE     the cache --tune reads and writes (default: $XDG_CACHE_HOME/rsrc/tune.txt,\n"
          "                        else ~/.cache/rsrc/tune.txt)\n"
          "  --no-greedy-head      leave out the int8 copy of the LM head that certified greedy decoding reads\n"
          "                        (half the bytes of a bf16 head per token; the artifact grows by vocab x hidden)\n"
          "  --explain             per matrix: the strategy chosen, predicted times of the candidates, why; with\n"
          "                        --tune also each candidate's measured times (measured now, or cached)\n"
          "  --stats               per-matrix figures: k, segments, index bytes, bits per weight, strategy\n"
          "  --print=WHAT          print a stage to stdout: target, model, plan (comma-separated)\n"
          "  --verify              check every plan against the naive product before emitting it\n"
          "  --max-memory=SIZE     refuse a compile that needs more memory (512M, 4G; 0: no cap; or RSRC_MAX_MEMORY)\n"
          "  -v, --verbose         say what happens and where the time went (twice: also the commands run)\n"
          "  --progress            report progress even when stderr is not a terminal (one line per layer)\n"
          "  --list-targets        list the targets and exit\n"
          "  --version, -h/--help\n"
          "\n"
          "environment: RSRC_CC (C compiler, default: the one rsrc was built with), RSRC_OBJCOPY (--emit=obj),\n"
          "  RSRC_SPECS_DIR, RSRC_RUNTIME_LIB, RSRC_RUNTIME_INCLUDE, RSRC_NVRTC (the NVRTC library for CUDA targets)\n",
          out);
}

static int parse_int(const char *flag, const char *s, int lo, int hi) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || end == s || v < lo || v > hi) fatal("%s: '%s' is not an integer in [%d, %d]", flag, s, lo, hi);
    return (int)v;
}

/* The options that shape the artifact, as one canonical string for the manifest (not -o, -v or
 * what only prints). */
static char *shaping_flags(const options *o) {
    char *s = xasprintf("--emit=%s --target=%s", emit_names[o->emit], o->target);
    const char *names[] = {"--cpu", "--features", "--backend", "--strategy", "--name"};
    const char *values[] = {o->cpu, o->features, o->backend,
                            o->strategy == STRAT_AUTO ? NULL : strategy_names[o->strategy], o->name};
    for (int i = 0; i < 5; i++) {
        if (!values[i]) continue;
        char *t = xasprintf("%s %s=%s", s, names[i], values[i]);
        free(s);
        s = t;
    }
    char k[24] = "";
    if (o->rsr_k) snprintf(k, sizeof k, " --rsr-k=%d", o->rsr_k);
    char *t = xasprintf("%s%s%s%s%s", s, k, o->tune ? " --tune" : "", o->greedy_head ? "" : " --no-greedy-head",
                        o->prefill_lanes ? " --prefill=rsr" : "");
    free(s);
    return t;
}

/* getopt_long's complaint about arg, in words: which option, and what is wrong with it. */
static noreturn void bad_option(const char *arg, int opt, const struct option *longs) {
    if (strncmp(arg, "--", 2) != 0) {
        if (opt == 'o') fatal("option '-o' needs a value (see --help)");
        if (opt > ' ' && opt < 127) fatal("unknown option '-%c' (see --help)", opt);
        fatal("unknown option '%s' (see --help)", arg);
    }
    const char *name = arg + 2, *eq = strchr(name, '=');
    size_t len = eq ? (size_t)(eq - name) : strlen(name);
    const struct option *hit = NULL;
    int matches = 0;
    for (const struct option *l = longs; l->name; l++) {
        if (strncmp(l->name, name, len) != 0) continue;
        if (strlen(l->name) == len) { /* an exact name wins over prefixes */
            hit = l, matches = 1;
            break;
        }
        hit = l, matches++;
    }
    if (matches == 0) fatal("unknown option '--%.*s' (see --help)", (int)len, name);
    if (matches > 1) fatal("option '--%.*s' is ambiguous: it begins more than one option's name (see --help)", (int)len, name);
    if (hit->has_arg == no_argument && eq) fatal("option '--%s' takes no value", hit->name);
    fatal("option '--%s' needs a value (see --help)", hit->name);
}

static options parse_args(int argc, char **argv) {
    options o = {.target = "host", .emit = EMIT_SO, .strategy = STRAT_AUTO, .greedy_head = true};
    bool force_progress = false;
    enum { O_EMIT = 256, O_TARGET, O_CPU, O_FEATURES, O_K, O_STRATEGY, O_STATS, O_PRINT, O_VERIFY, O_LIST, O_VERSION,
           O_EXPLAIN, O_BACKEND, O_NO_GREEDY_HEAD, O_MAXMEM, O_NAME, O_PROGRESS, O_PREFILL, O_TUNE, O_TUNE_CACHE };
    static const struct option longs[] = {
        {"output", required_argument, 0, 'o'},  {"target", required_argument, 0, O_TARGET},
        {"cpu", required_argument, 0, O_CPU},   {"features", required_argument, 0, O_FEATURES},
        {"emit", required_argument, 0, O_EMIT}, {"rsr-k", required_argument, 0, O_K},
        {"strategy", required_argument, 0, O_STRATEGY}, {"stats", no_argument, 0, O_STATS},
        {"print", required_argument, 0, O_PRINT}, {"verify", no_argument, 0, O_VERIFY}, {"explain", no_argument, 0, O_EXPLAIN},
        {"backend", required_argument, 0, O_BACKEND}, {"no-greedy-head", no_argument, 0, O_NO_GREEDY_HEAD},
        {"name", required_argument, 0, O_NAME}, {"progress", no_argument, 0, O_PROGRESS},
        {"verbose", no_argument, 0, 'v'},       {"list-targets", no_argument, 0, O_LIST},
        {"version", no_argument, 0, O_VERSION}, {"help", no_argument, 0, 'h'},
        {"max-memory", required_argument, 0, O_MAXMEM}, {"prefill", required_argument, 0, O_PREFILL},
        {"tune", no_argument, 0, O_TUNE},       {"tune-cache", required_argument, 0, O_TUNE_CACHE},
        {0, 0, 0, 0},
    };
    opterr = 0;
    const char *env_cap = getenv("RSRC_MAX_MEMORY");
    if (env_cap && *env_cap) o.max_memory = parse_size("RSRC_MAX_MEMORY", env_cap);
    int c;
    while ((c = getopt_long(argc, argv, "o:vh", longs, NULL)) != -1) {
        switch (c) {
        case 'o': o.output = optarg; break;
        case 'v': verbosity++; break;
        case 'h': usage(stdout); exit(0);
        case O_TARGET: o.target = optarg; break;
        case O_CPU: o.cpu = optarg; break;
        case O_FEATURES: o.features = optarg; break;
        case O_EMIT: {
            int k = 0;
            while (k < NUM_EMIT && strcmp(optarg, emit_names[k])) k++;
            if (k == NUM_EMIT) fatal("--emit: unknown kind '%s' (so, c, llvm, asm, obj, header, cuda, ptx)", optarg);
            o.emit = (enum emit_kind)k;
            break;
        }
        case O_BACKEND:
            if (strcmp(optarg, "c") && strcmp(optarg, "llvm") && strcmp(optarg, "nvrtc"))
                fatal("--backend: unknown backend '%s' (c, llvm, nvrtc)", optarg);
            o.backend = optarg;
            break;
        case O_K: o.rsr_k = parse_int("--rsr-k", optarg, 1, RSR_MAX_K); break;
        case O_STRATEGY:
            if ((int)(o.strategy = strategy_parse(optarg)) < 0)
                fatal("--strategy: unknown strategy '%s' (auto, rsr-unrolled, rsr-loop, i2, lut)", optarg);
            break;
        case O_EXPLAIN: o.explain = true; break;
        case O_NO_GREEDY_HEAD: o.greedy_head = false; break;
        case O_PREFILL:
            if (strcmp(optarg, "rsr") && strcmp(optarg, "i2")) fatal("--prefill: unknown form '%s' (rsr, i2)", optarg);
            o.prefill_lanes = !strcmp(optarg, "rsr");
            break;
        case O_STATS: o.stats = true; break;
        case O_PRINT: {
            char *list = xstrdup(optarg);
            if (strspn(optarg, ",") == strlen(optarg)) fatal("--print: no stage named (target, model, plan)");
            for (char *w = strtok(list, ","); w; w = strtok(NULL, ",")) {
                if (strcmp(w, "model") == 0) o.print_model = true;
                else if (strcmp(w, "plan") == 0) o.print_plan = true;
                else if (strcmp(w, "target") == 0) o.print_target = true;
                else fatal("--print: unknown stage '%s' (target, model, plan)", w);
            }
            free(list);
            break;
        }
        case O_VERIFY: o.verify = true; break;
        case O_MAXMEM: o.max_memory = parse_size("--max-memory", optarg); break;
        case O_NAME: {
            char why[128];
            if (!valid_model_name(optarg, why, sizeof why)) fatal("--name: '%s' is not a valid name: %s", optarg, why);
            o.name = optarg;
            break;
        }
        case O_PROGRESS: force_progress = true; break;
        case O_TUNE: o.tune = true; break;
        case O_TUNE_CACHE:
            if (!*optarg) fatal("--tune-cache: an empty file name");
            o.tune_cache = optarg;
            break;
        case O_LIST: target_list(stdout); exit(0);
        case O_VERSION: printf("rsrc %s\n", RSRC_VERSION); exit(0);
        case '?':
        default: bad_option(argv[optind - 1], optopt, longs);
        }
    }
    if (optind >= argc) {
        usage(stderr);
        fatal("no MODEL given");
    }
    if (argc - optind > 1) fatal("only one MODEL may be given ('%s' and '%s')", argv[optind], argv[optind + 1]);
    o.input = argv[optind];
    static const char *const default_out[NUM_EMIT] = {"model.so", "model.c",  "model.ll", "model.s",
                                                      "model.o",  "model.h", "model.cu", "model.ptx"};
    if (!o.output) o.output = default_out[o.emit];
    if (o.tune_cache && !o.tune) fatal("--tune-cache=%s needs --tune", o.tune_cache);
    if (o.emit == EMIT_HEADER && (o.tune || o.explain || o.stats || o.verify || o.print_plan))
        fatal("--emit=header reads the configuration only: --%s has nothing to work on there",
              o.tune ? "tune" : o.explain ? "explain" : o.stats ? "stats" : o.verify ? "verify" : "print=plan");
    if (o.emit == EMIT_C && o.backend && !strcmp(o.backend, "llvm")) fatal("--emit=c needs the C backend, not --backend=llvm");
    if (EMIT_IS_LLVM(o.emit) && o.backend && !strcmp(o.backend, "c"))
        fatal("--emit=%s needs the LLVM backend, not --backend=c", emit_names[o.emit]);
    if (o.emit == EMIT_CUDA && o.backend && !strcmp(o.backend, "llvm")) fatal("--emit=cuda needs the NVRTC route, not --backend=llvm");
    if (o.backend && !strcmp(o.backend, "nvrtc") && o.emit != EMIT_SO && o.emit < EMIT_CUDA)
        fatal("--backend=nvrtc is for CUDA targets' --emit=so, cuda or ptx");
    /* A status line only where someone watches it, and not in the way of other output on stderr. */
    if (force_progress) o.progress = isatty(2) ? PROGRESS_TERMINAL : PROGRESS_LINES;
    else if (isatty(2) && !verbosity && !o.stats && !(isatty(1) && (o.explain || o.print_model || o.print_plan)))
        o.progress = PROGRESS_TERMINAL;
    o.flags = shaping_flags(&o);
    return o;
}

/* Checks a plan against the naive product on a few deterministic vectors. */
static void verify_plan(const ternary_matrix *t, const rsr_plan *p) {
    int8_t *x = xmalloc((size_t)t->cols);
    int32_t *y = xmalloc(sizeof *y * (size_t)t->rows);
    uint64_t s = 0x9e3779b97f4a7c15u;
    for (int trial = 0; trial < 3; trial++) {
        for (int32_t c = 0; c < t->cols; c++) {
            s = s * 6364136223846793005u + 1442695040888963407u;
            x[c] = trial == 0 ? 127 : trial == 1 ? -128 : (int8_t)(s >> 56);
        }
        rsr_reference_matvec(p, x, y);
        for (int32_t r = 0; r < t->rows; r++) {
            int32_t want = 0;
            for (int32_t c = 0; c < t->cols; c++) want += t->w[(size_t)r * (size_t)t->cols + (size_t)c] * x[c];
            if (want != y[r]) fatal("internal error: RSR plan of '%s' gives %d at row %d, expected %d", t->name, y[r],
                                    r, want);
        }
    }
    free(x);
    free(y);
}

static char *make_workdir(void) {
    const char *tmp = getenv("TMPDIR");
    char *dir = xasprintf("%s/rsrc.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) fatal("cannot create a temporary directory in %s: %s", tmp ? tmp : "/tmp", strerror(errno));
    register_temp(dir);
    return dir;
}

static uint64_t blob_copy_tensor(blob_writer *b, const st_tensor *t, int32_t *dtype) {
    switch (t->dtype) {
    case ST_F32: *dtype = RSR_DTYPE_F32; break;
    case ST_F16: *dtype = RSR_DTYPE_F16; break;
    case ST_BF16: *dtype = RSR_DTYPE_BF16; break;
    default: fatal("%s: tensor '%s': dtype %s cannot be an embedding", t->file, t->name, st_dtype_name(t->dtype));
    }
    blob_check_finite(t);
    uint64_t at = blob_align(b, 64);
    blob_write_tensor(b, t);
    return at;
}

static uint64_t blob_norm(blob_writer *b, const model *m, int layer, const char *what, int64_t size) {
    char *name = layer < 0 ? xasprintf("%s", what) : xasprintf("model.layers.%d.%s.weight", layer, what);
    uint64_t at = blob_write_f32_of(b, model_require(m, name, 1, size, 0));
    free(name);
    return at;
}

static void print_stats_header(void) {
    fprintf(stderr, "%-48s %11s %2s %8s %9s %10s %6s %s\n", "matrix", "shape", "k", "segments", "kept", "index",
            "bits/w", "strategy");
}

static void print_stats_row(const matrix_record *r, const rsr_plan *p) {
    char shape[32];
    snprintf(shape, sizeof shape, "%dx%d", r->rows, r->cols);
    double bits = 8.0 * (double)r->index_bytes / ((double)r->rows * (double)r->cols);
    fprintf(stderr, "%-48s %11s %2d %8llu %9llu %10llu %6.2f %s\n", r->name, shape, r->block_rows,
            (unsigned long long)(p ? p->num_segments : 0), (unsigned long long)(p ? p->num_cols_kept : 0),
            (unsigned long long)r->index_bytes, bits, r->strategy);
}

/* Copies a finished temporary file to the output: written under a temporary name, renamed at the end. */
static void copy_to_output(const char *from, const char *to) {
    int fd;
    char *tmp_out = output_temp(to, &fd);
    FILE *in = fopen(from, "rb"), *out = fdopen(fd, "wb");
    if (!out) fatal("%s: cannot write the output: %s", to, strerror(errno));
    char buf[1 << 16];
    size_t n;
    while (in && (n = fread(buf, 1, sizeof buf, in)) > 0)
        if (fwrite(buf, 1, n, out) != n) fatal("%s: write failed: %s", to, strerror(errno));
    if (!in || fclose(out) != 0) fatal("%s: write failed: %s", to, strerror(errno));
    fclose(in);
    output_commit(tmp_out, to, 0644);
}

/* The header needs the model's configuration only: no matrix is read. */
static void write_header(const options *o, const model *m, const target *t) {
    int fd;
    char *tmp = output_temp(o->output, &fd);
    FILE *f = fdopen(fd, "w");
    if (!f) fatal("%s: cannot write the output: %s", o->output, strerror(errno));
    emit_header(f, m, t, o->name, o->input);
    if (fclose(f) != 0) fatal("%s: write failed: %s", o->output, strerror(errno));
    output_commit(tmp, o->output, 0644);
}

static bool same_file(const char *path, const struct stat *b) {
    struct stat a;
    return stat(path, &a) == 0 && a.st_dev == b->st_dev && a.st_ino == b->st_ino;
}

/* 1 when out is the same file as one the model is read from: the input, or a checkpoint,
 * configuration or tokenizer file next to it. */
static bool is_model_file(const char *input, const struct stat *out) {
    if (same_file(input, out)) return true;
    struct stat st;
    char *copy = xstrdup(input);
    const char *dir = stat(input, &st) == 0 && S_ISDIR(st.st_mode) ? input : dirname(copy);
    DIR *d = opendir(dir);
    bool same = false;
    for (struct dirent *e; d && !same && (e = readdir(d));) {
        const char *dot = strrchr(e->d_name, '.');
        if (!dot || (strcmp(dot, ".safetensors") && strcmp(dot, ".json") && strcmp(dot, ".model"))) continue;
        char *path = xasprintf("%s/%s", dir, e->d_name);
        same = same_file(path, out);
        free(path);
    }
    if (d) closedir(d);
    free(copy);
    return same;
}

/* Before any work: the output can be written where it is asked for, and is not a model file. */
static void check_output(const options *o) {
    struct stat st;
    if (stat(o->output, &st) == 0) {
        if (S_ISDIR(st.st_mode)) fatal("%s: is a directory; name the file to write (-o %s/model.so, for example)", o->output, o->output);
        if (is_model_file(o->input, &st))
            fatal("%s: is one of the files the model is read from; choose another output name", o->output);
    }
    char *copy = xstrdup(o->output);
    const char *dir = dirname(copy);
    if (access(dir, W_OK | X_OK) != 0) fatal("%s: cannot write there: %s: %s", o->output, dir, strerror(errno));
    free(copy);
}

/* --cpu and --features become the C compiler's -march=CPU and -mFEATURE (it builds the code
 * around the kernels with them, LLVM backend or not): names it does not know are refused now,
 * before any work, not by the link at the end (LLVM itself only warns and ignores them). */
static void check_cpu_features(const options *o, const target *t) {
    if (!o->cpu && !o->features) return;
    char *flags = xstrdup(t->cflags), *argv[64];
    int n = 0;
    argv[n++] = (char *)env_or("RSRC_CC", RSRC_DEFAULT_CC);
    for (char *tok = strtok(flags, " "); tok && n < 58; tok = strtok(NULL, " ")) argv[n++] = tok;
    argv[n++] = "-x", argv[n++] = "c", argv[n++] = "-fsyntax-only", argv[n++] = "/dev/null", argv[n] = NULL;
    int rc = run_command(argv); /* 127: no C compiler; the link says so */
    if (rc != 0 && rc != 127)
        fatal("--cpu/--features: the C compiler refuses '%s' (its message above): name a CPU and features it knows",
              t->cflags);
    free(flags);
}

/* The pipeline: load → (per matrix: analyse → lower → emit) → link. */
static void compile(const options *o) {
    double t_start = now_seconds(), t_stage = t_start;
    check_output(o);
    target *t = target_load(o->target, o->cpu, o->features);
    check_cpu_features(o, t);
    if (o->backend && !strcmp(o->backend, "nvrtc") && !t->gpu)
        fatal("--backend=nvrtc needs a CUDA target (--target sm_90, ...); %s is a CPU target", o->target);
    t->prefill_lanes = o->prefill_lanes; /* opt-in: slower than the tiles end to end so far (docs/performance.md) */
    if (o->print_target) target_print(t, stdout);
    if (verbosity >= 1) {
        fprintf(stderr, "rsrc: target %s%s%s%s, cpu %s, features", t->name, t->cpu_model ? " (" : "",
                t->cpu_model ? t->cpu_model : "", t->cpu_model ? ")" : "", t->cpu ? t->cpu : "-");
        for (int i = 0; i < t->nfeatures; i++) fprintf(stderr, "%s+%s", i ? "," : " ", t->features[i]);
        fprintf(stderr, "%s\n", t->nfeatures ? "" : " (none)");
    }
    if (o->tune) tune_check_target(t, o->target);

    model *m = model_load(o->input);
    if (o->max_memory) {
        model_check_memory(m, o->rsr_k, o->max_memory);
        limit_memory(o->max_memory);
    }
    if (o->print_model) model_print(m, stdout);
    note(1, "%s: %s (%s), %d layers, hidden %d", o->input, m->architecture, m->format_name, m->num_layers, m->hidden);
    if (o->emit == EMIT_HEADER) {
        write_header(o, m, t);
        note(1, "wrote %s", o->output);
        model_free(m);
        target_free(t);
        return;
    }

    char *workdir = make_workdir();
    char *c_path = xasprintf("%s/model.c", workdir), *blob_path = xasprintf("%s/blob.bin", workdir);
    register_temp(c_path);
    register_temp(blob_path);
    FILE *c = fopen(c_path, "w");
    if (!c) fatal("%s: cannot create: %s", c_path, strerror(errno));
    blob_writer blob;
    blob_open(&blob, blob_path);
    emit_c_prologue(c, o->input, t);
    bool linked = o->emit == EMIT_SO || o->emit == EMIT_OBJ;
    bool use_llvm = EMIT_IS_LLVM(o->emit) || (linked && (o->backend ? !strcmp(o->backend, "llvm")
                                                                     : t->backend == BACKEND_LLVM));
    /* The module is named for the model, not for the path it came from: the name lands in the
     * object (STT_FILE), and the artifact must not depend on where the checkpoint lies. */
    llvm_emitter *llvm = use_llvm ? emit_llvm_begin(t, o->name ? o->name : "model") : NULL;
    if (o->emit >= EMIT_CUDA && !t->gpu) fatal("--emit=%s needs a CUDA target (--target sm_90, ...)", emit_names[o->emit]);
    gpu_build *gpu = t->gpu ? gpu_begin(t->gpu, o->input, workdir, o->backend, o->explain) : NULL;
    const gpu_matrix_options gpu_opts = {o->strategy, o->rsr_k, o->explain, o->print_plan};
    tune_state *tune = o->tune ? tune_begin(t, o->tune_cache, use_llvm, workdir, o->strategy, o->rsr_k) : NULL;

    artifact_desc d = {.m = m, .t = t, .name = o->name, .default_model = o->emit != EMIT_OBJ || !o->name};
    const st_tensor *embed = st_find(m->ar, "model.embed_tokens.weight");
    d.embed = blob_copy_tensor(&blob, embed, &d.embed_dtype);
    if (m->tied) d.lm_head = d.embed, d.lm_head_dtype = d.embed_dtype;
    else d.lm_head = blob_copy_tensor(&blob, st_find(m->ar, "lm_head.weight"), &d.lm_head_dtype);
    d.final_norm = blob_norm(&blob, m, -1, "model.norm.weight", m->hidden);
    d.tokenizer_json = blob_tokenizer(&blob, m, &d.tokenizer_json_size, &d.tokenizer);
    d.head_q8 = d.head_q8_scale = d.head_q8_err = RSR_NO_TENSOR;
    if (o->greedy_head) {
        double t_head = now_seconds();
        blob_write_head_q8(&blob, st_find(m->ar, m->tied ? "model.embed_tokens.weight" : "lm_head.weight"), &d);
        note(1, "int8 greedy head: %d rows in %.2f s", m->vocab, now_seconds() - t_head);
    }

    int32_t total = m->num_layers * NUM_PROJ;
    matrix_record *mats = xcalloc((size_t)total, sizeof *mats);
    rsr_artifact_layer *layers = xcalloc((size_t)m->num_layers, sizeof *layers);
    int32_t out_dim[NUM_PROJ], in_dim[NUM_PROJ];
    for (int pj = 0; pj < NUM_PROJ; pj++) model_matrix_dims(m, pj, &out_dim[pj], &in_dim[pj]);
    uint64_t weights = 0, index_bytes = 0, all_weights = 0;
    for (int pj = 0; pj < NUM_PROJ; pj++) all_weights += (uint64_t)out_dim[pj] * (uint64_t)in_dim[pj];
    all_weights *= (uint64_t)m->num_layers;
    if (o->stats) print_stats_header();
    t_stage = stage_mark(STAGE_LOAD, t_stage);
    progress_begin(o->progress, m->num_layers, all_weights);

    for (int32_t l = 0; l < m->num_layers; l++) {
        rsr_artifact_layer *L = &layers[l];
        L->attn_norm = blob_norm(&blob, m, l, "input_layernorm", m->hidden);
        L->ffn_norm = blob_norm(&blob, m, l, "post_attention_layernorm", m->hidden);
        L->attn_sub_norm = m->sub_norms ? blob_norm(&blob, m, l, m->attn_sub_norm, out_dim[PROJ_Q]) : RSR_NO_TENSOR;
        L->ffn_sub_norm = m->sub_norms ? blob_norm(&blob, m, l, m->ffn_sub_norm, m->intermediate) : RSR_NO_TENSOR;
        int32_t *slot[NUM_PROJ] = {&L->q, &L->k, &L->v, &L->o, &L->gate, &L->up, &L->down};
        for (int pj = 0; pj < NUM_PROJ; pj++) {
            int32_t idx = l * NUM_PROJ + pj;
            char *name = model_tensor_name(m, l, pj);
            progress_update(l, weights, name);

            ternary_matrix tm = {0};
            model_load_matrix(m, name, out_dim[pj], in_dim[pj], &tm);
            t_stage = stage_mark(STAGE_LOAD, t_stage);
            matrix_plan mp;
            plan_matrix(&tm, t, o->strategy, o->rsr_k, &mp);
            const tune_class *measured = NULL;
            if (tune) {
                t_stage = stage_mark(STAGE_ANALYSE, t_stage);
                measured = tune_matrix(tune, &tm, &mp);
                t_stage = stage_mark(STAGE_TUNE, t_stage);
            }
            rsr_plan plan = {0};
            bool rsr = strategy_is_rsr(mp.strategy);
            if (rsr) {
                rsr_analyse(&tm, mp.k, &plan);
                if (o->verify) verify_plan(&tm, &plan);
                if (o->print_plan) rsr_plan_print(&plan, name, stdout);
                if (mp.strategy == STRAT_RSR_UNROLLED && o->strategy == STRAT_AUTO &&
                    kernel_unrolled_code_estimate(&plan) > t->unroll_budget)
                    mp.strategy = STRAT_RSR_LOOP;
            }
            t_stage = stage_mark(STAGE_ANALYSE, t_stage);

            kernel kn;
            kernel_lower(&kn, &tm, rsr ? &plan : NULL, t, mp.strategy, idx);
            kernel_write_data(&kn, &blob);
            if (llvm) {
                emit_llvm_kernel(llvm, &kn);
                emit_c_kernel_decl(c, &kn);
            } else {
                emit_c_kernel(c, &kn);
            }

            matrix_record *r = &mats[idx];
            *r = (matrix_record){name, xstrdup(kn.symbol), kn.batch_symbol ? xstrdup(kn.batch_symbol) : NULL, kn.strategy, tm.rows, tm.cols, kn.block_rows, kn.num_blocks,
                                 tm.beta, kn.data_offset, rsr && kn.form == KF_UNROLLED ? rsr_index_bytes(&plan)
                                                                                        : kernel_data_size(&kn)};
            *slot[pj] = idx;
            note(2, "%s: %s", name, mp.why);
            if (o->explain) printf("%-44s %11s %s\n", name, kn.strategy, mp.why);
            if (o->explain && measured) tune_explain(stdout, measured, &tm, t);
            if (o->stats) print_stats_row(r, rsr ? &plan : NULL);
            weights += (uint64_t)tm.rows * (uint64_t)tm.cols;
            index_bytes += r->index_bytes;
            kernel_free(&kn);
            rsr_plan_free(&plan);
            if (gpu) gpu_matrix(gpu, &tm, idx, &blob, &gpu_opts);
            ternary_matrix_free(&tm);
            t_stage = stage_mark(STAGE_EMIT, t_stage);
        }
    }
    progress_update(m->num_layers, weights, NULL);
    if (tune) tune_end(tune);

    d.num_matrices = total;
    d.mats = mats;
    d.layers = layers;
    if (gpu) {
        gpu_finish(gpu, &blob, o->emit == EMIT_CUDA ? 0 : o->emit == EMIT_PTX ? 1 : 2);
        gpu_emit_descriptor(gpu, c);
        d.gpu = GPU_DESCRIPTOR;
    }
    d.blob_size = blob_align(&blob, 64);
    d.blob_checksum = blob_checksum(&blob);
    char *manifest = manifest_text(&d, o->input, use_llvm ? "llvm" : "c", o->flags);
    d.manifest = manifest;
    emit_c_artifact(c, &d);
    if (fclose(c) != 0) fatal("%s: write failed: %s", c_path, strerror(errno));
    blob_close(&blob);
    note(1, "analysed %d matrices, %.1f M weights, index %.1f MB (%.2f bits/weight), constants %.1f MB in %.2f s",
         total, (double)weights / 1e6, (double)index_bytes / 1e6, 8.0 * (double)index_bytes / (double)weights,
         (double)d.blob_size / 1e6, now_seconds() - t_start);

    t_stage = stage_mark(STAGE_EMIT, t_stage);

    char *obj_path = NULL;
    if (llvm) {
        progress_stage("LLVM: optimising and generating the kernels");
        static const enum llvm_output what[] = {[EMIT_SO] = LLVM_OUT_OBJ, [EMIT_LLVM] = LLVM_OUT_IR,
                                                [EMIT_ASM] = LLVM_OUT_ASM, [EMIT_OBJ] = LLVM_OUT_OBJ};
        obj_path = linked ? xasprintf("%s/kernels.o", workdir) : xasprintf("%s/kernels.out", workdir);
        register_temp(obj_path);
        emit_llvm_finish(llvm, what[o->emit], obj_path);
        emit_llvm_end(llvm);
        note(1, "LLVM: optimised and emitted the kernels in %.2f s", now_seconds() - t_stage);
        t_stage = stage_mark(STAGE_LLVM, t_stage);
    }
    if (linked) progress_stage(o->emit == EMIT_SO ? "linking the shared object" : "linking the object");
    if (o->emit == EMIT_SO) link_shared_object(c_path, obj_path, blob_path, t, o->output, workdir);
    else if (o->emit == EMIT_OBJ) link_relocatable_object(c_path, obj_path, blob_path, t, o->output, workdir);
    else if (o->emit >= EMIT_CUDA) copy_to_output(gpu_output(gpu, o->emit == EMIT_PTX), o->output);
    else copy_to_output(o->emit == EMIT_C ? c_path : obj_path, o->output);
    gpu_end(gpu);
    t_stage = stage_mark(STAGE_LINK, t_stage);
    progress_end();
    note(1, "wrote %s in %.2f s", o->output, now_seconds() - t_start);
    stage_report(now_seconds() - t_start);

    for (int32_t i = 0; i < total; i++) free(mats[i].name), free(mats[i].symbol), free(mats[i].batch_symbol);
    free(mats);
    free(layers);
    free(manifest);
    free(d.tokenizer);
    free(c_path);
    free(obj_path);
    free(blob_path);
    free(workdir);
    model_free(m);
    target_free(t);
}

int main(int argc, char **argv) {
    options o = parse_args(argc, argv);
    compile(&o);
    free(o.flags);
    return 0;
}
