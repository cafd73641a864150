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

#include "near_path.h"
#include "parse_num.h"
#include "kernel_set.h"
#include "print/printer.h"
#include "rsr_gpu_accepts.h"
#include "rsrc.h"
#include "rsrc_config.h"
#include "rsr_numerics.h"

enum emit_kind { EMIT_SO, EMIT_C, EMIT_LLVM, EMIT_ASM, EMIT_OBJ, EMIT_HEADER, EMIT_CUDA, EMIT_PTX, NUM_EMIT };
/* What each --emit writes: its word, its default file, the printer whose output it is (NULL: the
 * target's, or --backend's), whether it is text (-o - takes it) and whether it holds GPU code. */
static const struct emit_info {
    const char *name, *default_out, *printer;
    bool text, gpu;
} emits[NUM_EMIT] = {
    [EMIT_SO] = {"so", "model.so", NULL, false, true},       [EMIT_C] = {"c", "model.c", "c", true, false},
    [EMIT_LLVM] = {"llvm", "model.ll", "llvm", true, false}, [EMIT_ASM] = {"asm", "model.s", "llvm", true, false},
    [EMIT_OBJ] = {"obj", "model.o", NULL, false, false},     [EMIT_HEADER] = {"header", "model.h", NULL, true, false},
    [EMIT_CUDA] = {"cuda", "model.cu", "cuda", true, true},  [EMIT_PTX] = {"ptx", "model.ptx", NULL, true, true},
};

/* The printer whose output an --emit is, or NULL. */
static const kernel_printer *emit_printer(const struct emit_info *e) {
    return e->printer ? printer_named(e->printer) : NULL;
}

/* A --backend word that selects a GPU printer only (nvrtc). */
static bool backend_gpu_only(const char *backend) { return !printer_backend(TK_CPU, backend); }

/* --ptq1-codes (docs/qwen35.md, "PTQ1_0's codes"): auto keeps base-3 codes for as few of a PTQ1_0
 * file's matrices as hold their codes and scales within PTQ1_BUDGET times the file's bytes for them
 * (a base-3 matrix's prefill costs about a third more; its decode about the same) */
enum ptq1_codes { PTQ1_AUTO, PTQ1_BASE3, PTQ1_2BIT };
#define PTQ1_BUDGET 1.15

typedef struct options {
    const char *input, *output, *target, *cpu, *features, *backend;
    const char *name; /* --name: prefix of the entry points; NULL: the default model */
    char *flags;      /* the options that shape the code, for the manifest */
    enum emit_kind emit;
    int rsr_k; /* 0: chosen per matrix by the cost model */
    enum strategy strategy;
    uint64_t max_memory;       /* 0: no cap */
    bool greedy_head;          /* an int8 copy of the LM head for certified greedy decoding */
    enum ptq1_codes ptq1;      /* --ptq1-codes: a PTQ1_0 file's matrices as base-3 or 2-bit codes */
    enum prefill_form prefill; /* --prefill: auto (the cost model's per matrix), i2 (tiles), rsr (lanes) */
    int opt_level;             /* -O0..-O3; -1: the defaults */
    bool explain, stats, print_model, print_plan, print_kernel, print_target, print_gguf, verify;
    bool inspect;           /* --print without -o or --emit: print the stages and write nothing */
    bool tune;              /* measure the candidates here (tune.c) */
    bool calibrate;         /* --target host: the RSR lanes kept only where measured to earn their bytes */
    const char *tune_cache; /* NULL: the default cache file */
    const char *hf_file;    /* --hf-file: the GGUF of an hf: repository */
    enum progress_mode progress;
} options;

/* ORG/NAME that is no path here: what a user of llama.cpp's -hf types */
static bool looks_like_repo(const char *s) {
    const char *slash = strchr(s, '/');
    struct stat st;
    return slash && slash != s && *s != '.' && slash[1] && !strchr(slash + 1, '/') && stat(s, &st) != 0;
}

static void check_input(const options *o) {
    bool hub = !strncmp(o->input, "hf:", 3);
    if (o->hf_file && !hub) rsrc_fatal("--hf-file=%s needs a model on the Hub (hf:ORG/NAME)", o->hf_file);
    struct stat st;
    char near[4096];
    if (hub || stat(o->input, &st) == 0) return;
    bool repo = looks_like_repo(o->input);
    if (near_path(o->input, near, sizeof near)) /* a typo first: that is what it usually is */
        rsrc_fatal("%s: no such file or directory; did you mean %s?%s%s%s", o->input, near,
                   repo ? " (a model on the Hugging Face Hub is named hf:" : "", repo ? o->input : "", repo ? ")" : "");
    if (repo)
        rsrc_fatal("%s: no such file or directory; a model on the Hugging Face Hub is named hf:%s", o->input, o->input);
}

static void usage(FILE *out) {
    fputs(
        "usage: rsrc MODEL [options]\n"
        "\n"
        "Compiles a ternary (1.58-bit) or binary language model into code specialised to each of its\n"
        "weight matrices (Redundant Segment Reduction), linked with the rsrc runtime into one artifact.\n"
        "\n"
        "MODEL is a .safetensors file, a model.safetensors.index.json shard index, or a directory\n"
        "holding either, with config.json next to the weights; or a GGUF file (bitnet.cpp's I2_S,\n"
        "llama.cpp's TQ1_0, TQ2_0 and the group-scaled Q1_0 and Q2_0), which holds its configuration\n"
        "itself; or hf:ORG/NAME[@REVISION], a repository on the Hugging Face Hub, downloaded into its\n"
        "cache ($HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub; $HF_TOKEN for gated\n"
        "models; HF_HUB_OFFLINE=1: the cached copy only).\n"
        "\n"
        "options:\n"
        "  -o, --output FILE     where to write the result (default: model.so, or model.c with --emit=c; -: stdout,\n"
        "                        for the text emits)\n"
        "  --target NAME|FILE    host (the default: this machine's CPU and features, also spelled native), a\n"
        "                        spec in specs/ (generic: portable C that runs on any x86-64; avx2, avx512, ...)\n"
        "                        or a .yaml file; a CUDA spec (sm_80, sm_86, sm_89, sm_90, ...) adds GPU code:\n"
        "                        avx512,sm_90. The artifact refuses to load on a CPU without the target's features\n"
        "  --cpu=NAME            override the target's CPU (-march for the C backend; -march=NAME and -mcpu=NAME\n"
        "                        are taken too, -march=native meaning --target host)\n"
        "  --features=+a,-b      enable or disable target features\n"
        "  -O0, -O1, -O2, -O3    how hard LLVM (and the C compiler) optimise the kernels: -O0 compiles fastest\n"
        "                        (default: LLVM O3 with aggressive code generation, the C compiler's -O2)\n"
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
        "  --prefill=auto|i2|rsr the batched (prompt) kernels of i2 matrices: tiles of tokens over the 2-bit codes\n"
        "                        (i2), or RSR with 64 tokens in vector lanes for full steps (rsr: an index of 4 bits\n"
        "                        per weight); auto (default): the cost model's choice per matrix, --explain says it\n"
        "  --ptq1-codes=auto|base3|2bit  a PTQ1_0 file's matrices: base3 keeps its 1.6 bits a weight where the\n"
        "                        target's runtime kernels read them (AVX-512 VNNI, AVX2; decode about as fast,\n"
        "                        prefill about 0.7x), 2bit widens them to 2-bit codes (1.25x the bytes); auto\n"
        "                        (default): base-3 for as few as keep them within 1.15x the file (docs/qwen35.md)\n"
        "  --tune                measure each matrix's candidate strategies on this machine (decode and prefill,\n"
        "                        single thread) and keep the fastest; the target must run here (host, or a spec\n"
        "                        whose features this CPU has). Results are cached: a second compile measures nothing\n"
        "  --tune-cache=FILE     the cache --tune reads and writes (default: $XDG_CACHE_HOME/rsrc/tune.txt,\n"
        "                        else ~/.cache/rsrc/tune.txt)\n"
        "  --no-calibrate        --target host without --tune: take the cost model's prefill form as it is. By\n"
        "                        default, where it predicts that RSR lanes pay for their 0.5 extra bytes a weight,\n"
        "                        they are timed against the tiles on this CPU (about a second per matrix shape,\n"
        "                        cached with --tune's) and kept only if measured 1.15x as fast\n"
        "  --no-greedy-head      no int8 copy of the LM head for certified greedy decoding (the runtime\n"
        "                        makes it at open: vocab x hidden bytes of memory, half the bytes a bf16 head\n"
        "                        reads per token); every token then reads the whole head\n"
        "  --explain             per matrix: the strategy chosen, predicted times of the candidates, why; with\n"
        "                        --tune also each candidate's measured times (measured now, or cached)\n"
        "  --stats               per-matrix figures: k, segments, index bytes, bits per weight, strategy\n"
        "  --print=WHAT          print stages to stdout, comma-separated: target, model, plan, kernel (the\n"
        "                        kernel IR of each matrix); without -o or --emit rsrc stops there and writes\n"
        "                        nothing; gguf: a GGUF file's metadata and tensor table, and nothing else\n"
        "  --verify              check every plan against the naive product before emitting it\n"
        "  --max-memory=SIZE     refuse a compile that needs more memory (512M, 4G; 0: no cap; or RSRC_MAX_MEMORY)\n"
        "  -v, --verbose         say what happens and where the time went (twice: also the commands run)\n"
        "  --progress            report progress even when stderr is not a terminal (one line per layer)\n"
        "  --runtime=FILE        the runtime archive (librsr_runtime.a) to link; for another architecture's\n"
        "                        target (aarch64 on x86) the one built for it (default: scripts/cross.sh's\n"
        "                        build-aarch64/, or PREFIX/lib/rsrc/aarch64/ beside an installed rsrc)\n"
        "  --hf-file=FILE        with hf:ORG/NAME, the GGUF file of a repository that holds several\n"
        "  --list-targets        list the targets and exit\n"
        "  --version, -h/--help\n"
        "\n"
        "environment: RSRC_CC (C compiler, default: the one rsrc was built with), RSRC_OBJCOPY (--emit=obj),\n"
        "  RSRC_SPECS_DIR, RSRC_RUNTIME_LIB, RSRC_RUNTIME_INCLUDE, RSRC_NVRTC (the NVRTC library for CUDA targets),\n"
        "  RSRC_CROSS_CC and RSRC_RUNTIME_LIB_AARCH64 (another architecture's C compiler and runtime)\n"
        "\n"
        "files: the target specs, the runtime archive and its headers, beside an installed rsrc\n"
        "  (PREFIX/share/rsrc/specs, PREFIX/lib/rsrc/librsr_runtime.a, PREFIX/include/rsr), else in the\n"
        "  build tree; -v names those in use. ~/.cache/rsrc/tune.txt: the --tune cache.\n"
        "\n"
        "exit status: 0 when the output is written; 1 on any error (then nothing is left behind).\n",
        out);
}

static int parse_int(const char *flag, const char *s, int lo, int hi) {
    long v;
    if (!parse_long_in(s, lo, hi, &v)) rsrc_fatal("%s: '%s' is not an integer in [%d, %d]", flag, s, lo, hi);
    return (int)v;
}

/* The options that shape the artifact, as one canonical string for the manifest (not -o, -v or
 * what only prints). */
static char *shaping_flags(const options *o) {
    char *s = xasprintf("--emit=%s --target=%s", emits[o->emit].name, o->target);
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
    char opt[16] = "";
    if (o->opt_level >= 0) snprintf(opt, sizeof opt, " -O%d", o->opt_level);
    char *t = xasprintf("%s%s%s%s%s%s%s%s", s, k, o->tune ? " --tune" : "", o->calibrate ? "" : " --no-calibrate",
                        o->greedy_head ? "" : " --no-greedy-head",
                        o->ptq1 == PTQ1_2BIT    ? " --ptq1-codes=2bit"
                        : o->ptq1 == PTQ1_BASE3 ? " --ptq1-codes=base3"
                                                : "",
                        o->prefill == PREFILL_LANES   ? " --prefill=rsr"
                        : o->prefill == PREFILL_TILES ? " --prefill=i2"
                                                      : "",
                        opt);
    free(s);
    return t;
}

/* getopt_long's complaint about arg, in words: which option, and what is wrong with it. */
static noreturn void bad_option(const char *arg, int opt, const struct option *longs) {
    if (strncmp(arg, "--", 2) != 0) {
        if (opt == 'o') rsrc_fatal("option '-o' needs a value (see --help)");
        if (opt > ' ' && opt < 127) rsrc_fatal("unknown option '-%c' (see --help)", opt);
        rsrc_fatal("unknown option '%s' (see --help)", arg);
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
    if (matches == 0) {
        const char *near = NULL;
        int best = 3; /* within two edits */
        for (const struct option *l = longs; l->name; l++) {
            int dist = edit_distance(name, len, l->name);
            if (dist < best && strcmp(l->name, "opt-level-given")) best = dist, near = l->name;
        }
        if (near) rsrc_fatal("unknown option '--%.*s' (did you mean '--%s'?)", (int)len, name, near);
        rsrc_fatal("unknown option '--%.*s' (see --help)", (int)len, name);
    }
    if (matches > 1)
        rsrc_fatal("option '--%.*s' is ambiguous: it begins more than one option's name (see --help)", (int)len, name);
    if (hit->has_arg == no_argument && eq) rsrc_fatal("option '--%s' takes no value", hit->name);
    rsrc_fatal("option '--%s' needs a value (see --help)", hit->name);
}

/* clang's spellings: -march=X and -mcpu=X are --cpu=X (native: the host target); -O0..-O3 the
 * optimisation level (returned; -1: none given), each rewritten in argv for getopt. */
static int clang_spellings(int argc, char **argv) {
    int opt_level = -1;
    for (int i = 1; i < argc && strcmp(argv[i], "--"); i++) {
        if (argv[i][0] == '-' && argv[i][1] == 'O' && argv[i][2] >= '0' && argv[i][2] <= '3' && !argv[i][3]) {
            opt_level = argv[i][2] - '0';
            argv[i] = "--opt-level-given";
            continue;
        }
        if (argv[i][0] == '-' && argv[i][1] == 'O')
            rsrc_fatal("%s: the optimisation levels are -O0, -O1, -O2 and -O3", argv[i]);
        const char *v = !strncmp(argv[i], "-march=", 7)  ? argv[i] + 7
                        : !strncmp(argv[i], "-mcpu=", 6) ? argv[i] + 6
                                                         : NULL;
        if (v) argv[i] = !strcmp(v, "native") ? "--target=host" : xasprintf("--cpu=%s", v);
    }
    return opt_level;
}

static enum prefill_form parse_prefill(const char *v) {
    if (!strcmp(v, "auto")) return PREFILL_AUTO;
    if (!strcmp(v, "i2")) return PREFILL_TILES;
    if (!strcmp(v, "rsr")) return PREFILL_LANES;
    rsrc_fatal("--prefill: unknown form '%s' (auto, i2, rsr)", v);
}

static enum ptq1_codes parse_ptq1_codes(const char *v) {
    if (!strcmp(v, "auto")) return PTQ1_AUTO;
    if (!strcmp(v, "base3")) return PTQ1_BASE3;
    if (!strcmp(v, "2bit")) return PTQ1_2BIT;
    rsrc_fatal("--ptq1-codes: unknown form '%s' (auto, base3, 2bit)", v);
}

/* --print=target,model,plan,kernel or gguf */
static void parse_print(options *o, const char *arg) {
    char *list = xstrdup(arg);
    if (strspn(arg, ",") == strlen(arg)) rsrc_fatal("--print: no stage named (target, model, plan, kernel, gguf)");
    for (char *w = strtok(list, ","); w; w = strtok(NULL, ",")) {
        if (strcmp(w, "model") == 0)
            o->print_model = true;
        else if (strcmp(w, "plan") == 0)
            o->print_plan = true;
        else if (strcmp(w, "kernel") == 0)
            o->print_kernel = true;
        else if (strcmp(w, "target") == 0)
            o->print_target = true;
        else if (strcmp(w, "gguf") == 0)
            o->print_gguf = true;
        else
            rsrc_fatal("--print: unknown stage '%s' (target, model, plan, kernel, gguf)", w);
    }
    free(list);
}

/* The options against each other, the default output, and whether a status line is shown. */
static void check_options(options *o, bool force_progress, bool emit_named) {
    const struct emit_info *e = &emits[o->emit];
    o->inspect = !o->output && !emit_named && (o->print_target || o->print_model || o->print_plan || o->print_kernel);
    if (!o->output) o->output = e->default_out;
    if (!strcmp(o->output, "-") && !e->text)
        rsrc_fatal("-o -: stdout takes the text emits (--emit=c, llvm, asm, header, cuda, ptx), not --emit=%s",
                   e->name);
    if (o->tune_cache && !o->tune) rsrc_fatal("--tune-cache=%s needs --tune", o->tune_cache);
    if (o->emit == EMIT_HEADER && (o->tune || o->explain || o->stats || o->verify || o->print_plan || o->print_kernel))
        rsrc_fatal("--emit=header reads the configuration only: --%s has nothing to work on there",
                   o->tune         ? "tune"
                   : o->explain    ? "explain"
                   : o->stats      ? "stats"
                   : o->verify     ? "verify"
                   : o->print_plan ? "print=plan"
                                   : "print=kernel");
    /* an output of one printer: a --backend that selects another printer of its kind, or (a CPU
     * printer's output) none, contradicts it */
    const kernel_printer *need = emit_printer(e);
    const kernel_printer *sel = need && o->backend ? printer_backend(need->kind, o->backend) : NULL;
    if (need && o->backend && (sel ? sel != need : need->kind == TK_CPU))
        rsrc_fatal("--emit=%s is the %s printer's output, not --backend=%s's", e->name, need->title, o->backend);
    if (o->backend && backend_gpu_only(o->backend) && !e->gpu)
        rsrc_fatal("--backend=%s is for CUDA targets' --emit=so, cuda or ptx", o->backend);
    /* A status line only where someone watches it, and not in the way of other output on stderr. */
    if (force_progress)
        o->progress = isatty(2) ? PROGRESS_TERMINAL : PROGRESS_LINES;
    else if (isatty(2) && !rsrc_verbosity &&
             !(isatty(1) && (o->explain || o->stats || o->print_model || o->print_plan || o->print_kernel)))
        o->progress = PROGRESS_TERMINAL;
}

static options parse_args(int argc, char **argv) {
    options o = {.target = "host", .emit = EMIT_SO, .strategy = STRAT_AUTO, .greedy_head = true, .calibrate = true};
    bool force_progress = false, emit_named = false;
    enum {
        O_EMIT = 256,
        O_TARGET,
        O_CPU,
        O_FEATURES,
        O_K,
        O_STRATEGY,
        O_STATS,
        O_PRINT,
        O_VERIFY,
        O_LIST,
        O_VERSION,
        O_EXPLAIN,
        O_BACKEND,
        O_NO_GREEDY_HEAD,
        O_MAXMEM,
        O_NAME,
        O_PROGRESS,
        O_PREFILL,
        O_TUNE,
        O_NO_CALIBRATE,
        O_TUNE_CACHE,
        O_HF_FILE,
        O_RUNTIME,
        O_OPT_GIVEN,
        O_PTQ1_CODES
    };
    static const struct option longs[] = {
        {"output", required_argument, 0, 'o'},
        {"target", required_argument, 0, O_TARGET},
        {"cpu", required_argument, 0, O_CPU},
        {"features", required_argument, 0, O_FEATURES},
        {"emit", required_argument, 0, O_EMIT},
        {"rsr-k", required_argument, 0, O_K},
        {"strategy", required_argument, 0, O_STRATEGY},
        {"stats", no_argument, 0, O_STATS},
        {"print", required_argument, 0, O_PRINT},
        {"verify", no_argument, 0, O_VERIFY},
        {"explain", no_argument, 0, O_EXPLAIN},
        {"backend", required_argument, 0, O_BACKEND},
        {"no-greedy-head", no_argument, 0, O_NO_GREEDY_HEAD},
        {"name", required_argument, 0, O_NAME},
        {"progress", no_argument, 0, O_PROGRESS},
        {"verbose", no_argument, 0, 'v'},
        {"list-targets", no_argument, 0, O_LIST},
        {"version", no_argument, 0, O_VERSION},
        {"help", no_argument, 0, 'h'},
        {"max-memory", required_argument, 0, O_MAXMEM},
        {"prefill", required_argument, 0, O_PREFILL},
        {"opt-level-given", no_argument, 0, O_OPT_GIVEN}, /* -O0..-O3, read before getopt */
        {"tune", no_argument, 0, O_TUNE},
        {"no-calibrate", no_argument, 0, O_NO_CALIBRATE},
        {"tune-cache", required_argument, 0, O_TUNE_CACHE},
        {"hf-file", required_argument, 0, O_HF_FILE},
        {"runtime", required_argument, 0, O_RUNTIME},
        {"ptq1-codes", required_argument, 0, O_PTQ1_CODES},
        {0, 0, 0, 0},
    };
    opterr = 0;
    o.opt_level = clang_spellings(argc, argv);
    const char *env_cap = getenv("RSRC_MAX_MEMORY");
    if (env_cap && *env_cap) o.max_memory = parse_size("RSRC_MAX_MEMORY", env_cap);
    int c;
    while ((c = getopt_long(argc, argv, "o:vh", longs, NULL)) != -1) {
        switch (c) {
        case 'o': o.output = optarg; break;
        case 'v': rsrc_verbosity++; break;
        case 'h': usage(stdout); exit(0);
        case O_TARGET: o.target = optarg; break;
        case O_CPU: o.cpu = optarg; break;
        case O_FEATURES: o.features = optarg; break;
        case O_EMIT: {
            int k = 0;
            while (k < NUM_EMIT && strcmp(optarg, emits[k].name)) k++;
            if (k == NUM_EMIT)
                rsrc_fatal("--emit: unknown kind '%s' (so, c, llvm, asm, obj, header, cuda, ptx)", optarg);
            o.emit = (enum emit_kind)k;
            emit_named = true;
            break;
        }
        case O_BACKEND:
            if (!printer_backend(TK_CPU, optarg) && !printer_backend(TK_CUDA, optarg))
                rsrc_fatal("--backend: unknown backend '%s' (c, llvm, nvrtc)", optarg);
            o.backend = optarg;
            break;
        case O_K: o.rsr_k = parse_int("--rsr-k", optarg, 1, RSR_MAX_K); break;
        case O_STRATEGY:
            if ((int)(o.strategy = strategy_parse(optarg)) < 0)
                rsrc_fatal("--strategy: unknown strategy '%s' (auto, rsr-unrolled, rsr-loop, i2, lut)", optarg);
            break;
        case O_EXPLAIN: o.explain = true; break;
        case O_NO_GREEDY_HEAD: o.greedy_head = false; break;
        case O_PREFILL: o.prefill = parse_prefill(optarg); break;
        case O_STATS: o.stats = true; break;
        case O_OPT_GIVEN: break;
        case O_PRINT: parse_print(&o, optarg); break;
        case O_VERIFY: o.verify = true; break;
        case O_MAXMEM: o.max_memory = parse_size("--max-memory", optarg); break;
        case O_NAME: {
            char why[128];
            if (!valid_model_name(optarg, why, sizeof why))
                rsrc_fatal("--name: '%s' is not a valid name: %s", optarg, why);
            o.name = optarg;
            break;
        }
        case O_PROGRESS: force_progress = true; break;
        case O_TUNE: o.tune = true; break;
        case O_NO_CALIBRATE: o.calibrate = false; break;
        case O_TUNE_CACHE:
            if (!*optarg) rsrc_fatal("--tune-cache: an empty file name");
            o.tune_cache = optarg;
            break;
        case O_HF_FILE:
            if (!*optarg) rsrc_fatal("--hf-file: an empty file name");
            o.hf_file = optarg;
            break;
        case O_RUNTIME: link_use_runtime(optarg); break;
        case O_PTQ1_CODES: o.ptq1 = parse_ptq1_codes(optarg); break;
        case O_LIST: target_list(stdout); exit(0);
        case O_VERSION: printf("rsrc %s\n", RSRC_VERSION); exit(0);
        case '?':
        default: bad_option(argv[optind - 1], optopt, longs);
        }
    }
    if (optind >= argc) rsrc_fatal("no MODEL given (rsrc MODEL [-o model.so] [options]; --help for the options)");
    if (argc - optind > 1) rsrc_fatal("only one MODEL may be given ('%s' and '%s')", argv[optind], argv[optind + 1]);
    o.input = argv[optind];
    check_input(&o);
    /* a checkpoint's config.json names the checkpoint: its directory (argv is cut there) */
    char *slash = strrchr(argv[optind], '/');
    if (!strcmp(slash ? slash + 1 : o.input, "config.json")) {
        if (slash && slash > argv[optind])
            *slash = 0;
        else
            o.input = slash ? "/" : ".";
    }
    check_options(&o, force_progress, emit_named);
    o.flags = shaping_flags(&o);
    return o;
}

static char *make_workdir(void) {
    const char *tmp = getenv("TMPDIR");
    char *dir = xasprintf("%s/rsrc.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) rsrc_fatal("cannot create a temporary directory in %s: %s", tmp ? tmp : "/tmp", strerror(errno));
    register_temp(dir);
    return dir;
}

/* --stats goes to stdout, as --explain and --print do. A matrix without an RSR index (i2, lut)
 * shows "-" for segments and kept columns: it has none, rather than none kept. */
static void print_stats_header(void) {
    printf("%-48s %11s %2s %8s %9s %10s %6s %s\n", "matrix", "shape", "k", "segments", "kept", "index", "bits/w",
           "strategy");
}

static void print_stats_row(const matrix_record *r, const rsrc_plan *p) {
    char shape[32];
    snprintf(shape, sizeof shape, "%dx%d", r->rows, r->cols);
    double bits = 8.0 * (double)r->index_bytes / ((double)r->rows * (double)r->cols);
    char segments[24] = "-", kept[24] = "-";
    if (p) {
        snprintf(segments, sizeof segments, "%llu", (unsigned long long)p->num_segments);
        snprintf(kept, sizeof kept, "%llu", (unsigned long long)p->num_cols_kept);
    }
    printf("%-48s %11s %2d %8s %9s %10llu %6.2f %s\n", r->name, shape, r->block_rows, segments, kept,
           (unsigned long long)r->index_bytes, bits, r->strategy);
}

/* Copies a finished temporary file to the output: written under a temporary name, renamed at the end. */
static void copy_to_output(const char *from, const char *to) {
    if (!strcmp(to, "-")) { /* -o -: a text emit to stdout */
        FILE *in = fopen(from, "rb");
        char buf[1 << 16];
        size_t n;
        while (in && (n = fread(buf, 1, sizeof buf, in)) > 0)
            if (fwrite(buf, 1, n, stdout) != n) rsrc_fatal("stdout: write failed: %s", strerror(errno));
        if (!in || fflush(stdout) != 0) rsrc_fatal("stdout: write failed: %s", strerror(errno));
        fclose(in);
        return;
    }
    int fd;
    char *tmp_out = output_temp(to, &fd);
    FILE *in = fopen(from, "rb"), *out = fdopen(fd, "wb");
    if (!out) rsrc_fatal("%s: cannot write the output: %s", to, strerror(errno));
    char buf[1 << 16];
    size_t n;
    while (in && (n = fread(buf, 1, sizeof buf, in)) > 0)
        if (fwrite(buf, 1, n, out) != n) rsrc_fatal("%s: write failed: %s", to, strerror(errno));
    if (!in || fclose(out) != 0) rsrc_fatal("%s: write failed: %s", to, strerror(errno));
    fclose(in);
    output_commit(tmp_out, to, 0644);
}

/* The header needs the model's configuration only: no matrix is read. */
static void write_header(const options *o, const rsrc_model *m, const rsrc_target *t) {
    if (!strcmp(o->output, "-")) {
        emit_header(stdout, m, t, o->name, o->input);
        if (fflush(stdout) != 0) rsrc_fatal("stdout: write failed: %s", strerror(errno));
        return;
    }
    int fd;
    char *tmp = output_temp(o->output, &fd);
    FILE *f = fdopen(fd, "w");
    if (!f) rsrc_fatal("%s: cannot write the output: %s", o->output, strerror(errno));
    emit_header(f, m, t, o->name, o->input);
    if (fclose(f) != 0) rsrc_fatal("%s: write failed: %s", o->output, strerror(errno));
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
    if (!strcmp(o->output, "-")) return; /* stdout (text emits only: parse_args) */
    struct stat st;
    if (stat(o->output, &st) == 0 && !S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)) return; /* /dev/null: written into */
    if (stat(o->output, &st) == 0) {
        if (S_ISDIR(st.st_mode))
            rsrc_fatal("%s: is a directory; name the file to write (-o %s/model.so, for example)", o->output,
                       o->output);
        if (is_model_file(o->input, &st))
            rsrc_fatal("%s: is one of the files the model is read from; choose another output name", o->output);
    }
    char *copy = xstrdup(o->output);
    const char *dir = dirname(copy);
    if (access(dir, W_OK | X_OK) != 0) rsrc_fatal("%s: cannot write there: %s: %s", o->output, dir, strerror(errno));
    free(copy);
}

/* --cpu and --features become the C compiler's -march=CPU and -mFEATURE (it builds the code
 * around the kernels with them, LLVM backend or not): names it does not know are refused now,
 * before any work, not by the link at the end (LLVM itself only warns and ignores them). */
static void check_cpu_features(const options *o, const rsrc_target *t) {
    if (!o->cpu && !o->features) return;
    char *flags = xstrdup(t->cflags), *argv[64];
    int n = 0;
    argv[n++] = (char *)rsrc_env_or("RSRC_CC", RSRC_DEFAULT_CC);
    for (char *tok = strtok(flags, " "); tok && n < 58; tok = strtok(NULL, " ")) argv[n++] = tok;
    argv[n++] = "-x", argv[n++] = "c", argv[n++] = "-fsyntax-only", argv[n++] = "/dev/null", argv[n] = NULL;
    int rc = run_command(argv); /* 127: no C compiler; the link says so */
    if (rc != 0 && rc != 127)
        rsrc_fatal(
            "--cpu/--features: the C compiler refuses '%s' (its message above): name a CPU and features it knows",
            t->cflags);
    free(flags);
}

/* ---- the pipeline: compile() is its pass list; a build carries what the passes share ---- */

typedef struct build {
    const options *o;
    double t_start;
    rsrc_target *t;
    rsrc_model *m;
    char *workdir;
    /* the generated C (descriptor, kernels or their declarations), the blob and the CPU kernels'
     * printer: ks.c, ks.blob, ks.sink (kernel_set.h) */
    kernel_set ks;
    uint64_t c_bytes;  /* the C's size, once closed */
    bool linked;       /* --emit=so or obj */
    kernel_sink gpu;   /* a CUDA target's, or printer NULL */
    tune_state *tune;  /* --tune, or NULL */
    tune_state *check; /* the default for --target host: tune_check_lanes, or NULL */
    artifact_desc d;
    matrix_record *mats;
    rsr_artifact_layer *layers;
    uint64_t weights, index_bytes;
    uint64_t segments, kept;    /* --stats' totals over the matrices with an RSR index */
    double ptq1_file, ptq1_art; /* a PTQ1_0 file's matrices so far: their bytes in it, in the artifact */
    char *manifest;
    int32_t nsigns; /* the Hadamard fold's sign vectors written to the blob, one per input width */
    struct {
        int32_t width;
        uint64_t at;
    } signs[16];
} build;

/* The traits of m that rsr_gpu_accepts.h lists (bit t: trait t), as the runtime reads them from
 * the artifact (runtime/src/model.c, check_gpu). */
static unsigned model_traits(const rsrc_model *m) {
    bool deltanet = false, windows = false;
    for (int32_t l = 0; l < m->num_layers; l++)
        deltanet |= model_deltanet(m, l), windows |= m->layer_window && m->layer_window[l];
    const bool has[RSR_TRAITS] = {
        [RSR_TRAIT_FOLD] = m->fold_block != 0,
        [RSR_TRAIT_DELTANET] = deltanet,
        [RSR_TRAIT_EXPERTS] = m->num_experts != 0,
        [RSR_TRAIT_PROJ_NORMS] = m->proj_norms,
        [RSR_TRAIT_QK_NORM] = m->qk_norm,
        [RSR_TRAIT_ACT_BLOCK] = m->act_block != 0 || m->act_quant != RSR_ACT_Q8_0,
        [RSR_TRAIT_POST_NORMS] = m->post_norms,
        [RSR_TRAIT_WINDOWS] = windows,
        [RSR_TRAIT_GELU] = m->activation == RSR_ACT_GELU,
        [RSR_TRAIT_SCALES] = m->embed_scale != 0 || m->attn_scale != 0,
        [RSR_TRAIT_ATTN_GATE] = m->attn_gate,
        [RSR_TRAIT_PARTIAL_ROPE] = m->rope_dims != 0,
        [RSR_TRAIT_BLOCK_TABLES] = false, /* a GPU's artifact holds them widened to f32 (write_constants) */
    };
    unsigned traits = 0;
    for (int i = 0; i < RSR_TRAITS; i++) traits |= (unsigned)has[i] << i;
    return traits;
}

/* Target and model, checked against the options before any work. */
static void load_inputs(build *b) {
    const options *o = b->o;
    check_output(o);
    rsrc_target *t = b->t = target_load(o->target, o->cpu, o->features);
    check_cpu_features(o, t);
    if (o->backend && backend_gpu_only(o->backend) && !t->gpu)
        rsrc_fatal("--backend=%s needs a CUDA target (--target sm_90, ...); %s is a CPU target", o->backend, o->target);
    if (o->backend && t->gpu) t->gpu->backend = printer_for(TK_CUDA, o->backend); /* its kernels' entries */
    if (o->print_target) target_print(t, stdout);
    if (rsrc_verbosity >= 1) {
        fprintf(stderr, "rsrc: target %s%s%s%s, cpu %s, features", t->name, t->cpu_model ? " (" : "",
                t->cpu_model ? t->cpu_model : "", t->cpu_model ? ")" : "", t->cpu ? t->cpu : "-");
        for (int i = 0; i < t->nfeatures; i++) fprintf(stderr, "%s+%s", i ? "," : " ", t->features[i]);
        fprintf(stderr, "%s\n", t->nfeatures ? "" : " (none)");
        fprintf(stderr, "rsrc: specs %s, runtime %s, runtime headers %s\n", resource_path(RES_SPECS), link_runtime(t),
                resource_path(RES_RUNTIME_INCLUDE));
    }
    if (o->tune) tune_check_target(t, o->target);
    if (o->emit == EMIT_SO) link_check(t); /* before the work: another architecture's runtime and compiler */
    rsrc_model *m = b->m = model_load(o->input);
    if (o->max_memory) {
        model_check_memory(m, o->rsr_k, o->max_memory);
        limit_memory(o->max_memory);
    }
    if (o->print_model) model_print(m, stdout);
    const char *lacks = t->gpu ? rsr_gpu_refuses(model_traits(m)) : NULL;
    if (lacks)
        rsrc_fatal("%s: %s has %s; the GPU forward pass has none of these yet: compile for a CPU target", o->input,
                   m->architecture, lacks);
    rsrc_note(1, "%s: %s (%s), %d layers%s, hidden %d", o->input, m->architecture, m->format_name,
              model_layers_proper(m), m->mtp ? " and an MTP layer" : "", m->hidden);
}

/* The work directory, the C file and the blob, and the printers the kernels go to. */
static void open_printers(build *b) {
    const options *o = b->o;
    b->workdir = make_workdir();
    b->linked = o->emit == EMIT_SO || o->emit == EMIT_OBJ;
    /* the CPU kernels' printer: the output's, else the backend's (--backend, or the spec's) */
    const kernel_printer *named = emit_printer(&emits[o->emit]);
    const kernel_printer *cpu = named && named->kind == TK_CPU ? named
                                : !b->linked                   ? printer_for(TK_CPU, NULL)
                                : o->backend                   ? printer_for(TK_CPU, o->backend)
                                                               : b->t->backend;
    /* The module is named for the model, not for the path it came from: the name lands in the
     * object (STT_FILE), and the artifact must not depend on where the checkpoint lies. */
    kernel_set_begin(&b->ks, &(kernel_set_params){.t = b->t,
                                                  .printer = cpu,
                                                  .dir = b->workdir,
                                                  .name = "model",
                                                  .source = o->input,
                                                  .module = o->name ? o->name : "model",
                                                  .opt_level = o->opt_level,
                                                  .text = !b->linked,
                                                  .split_c = o->emit == EMIT_SO,
                                                  .explain = o->explain});
    b->ks.sink.cache = kernel_cache_open();
    if (o->emit >= EMIT_CUDA && !b->t->gpu)
        rsrc_fatal("--emit=%s needs a CUDA target (--target sm_90, ...)", emits[o->emit].name);
    if (b->t->gpu) { /* --backend, or the CUDA spec's */
        const kernel_printer *gp = b->t->gpu->backend;
        const printer_begin gb = {.t = b->t->gpu,
                                  .source = o->input,
                                  .module = "model",
                                  .workdir = b->workdir,
                                  .explain = o->explain,
                                  .opt_level = o->opt_level};
        b->gpu = (kernel_sink){.printer = gp, .state = gp->begin(&gb)};
    }
    if (o->tune)
        b->tune = tune_begin(b->t, (compile_options){o->prefill, o->opt_level}, o->tune_cache, cpu, b->workdir,
                             o->strategy, o->rsr_k);
    else if (o->calibrate && !strcmp(o->target, "host") && !b->t->gpu && o->prefill == PREFILL_AUTO &&
             (o->strategy == STRAT_AUTO || o->strategy == STRAT_I2) && o->emit != EMIT_HEADER &&
             plan_may_use_lanes(b->t, o->prefill))
        b->check = tune_begin_check(b->t, (compile_options){o->prefill, o->opt_level}, cpu, b->workdir);
}

/* The blob offset of the fold's signs for inputs of `width` as f32 (+1 everywhere without explicit
 * signs), written once per width. */
static uint64_t fold_signs(build *b, int32_t width) {
    for (int32_t i = 0; i < b->nsigns; i++)
        if (b->signs[i].width == width) return b->signs[i].at;
    const int8_t *s = model_fold_signs(b->m, width);
    float *f = xmalloc(sizeof *f * (size_t)width);
    for (int32_t i = 0; i < width; i++) f[i] = s ? (float)s[i] : 1.0f;
    blob_align(&b->ks.blob, 64);
    const uint64_t at = blob_write(&b->ks.blob, f, sizeof *f * (size_t)width);
    free(f);
    if (b->nsigns < (int32_t)(sizeof b->signs / sizeof *b->signs))
        b->signs[b->nsigns].width = width, b->signs[b->nsigns++].at = at;
    return at;
}

/* The tensors that are not ternary: embedding, LM head, final norm, tokenizer. */
static void write_constants(build *b) {
    const rsrc_model *m = b->m;
    artifact_desc *d = &b->d;
    *d = (artifact_desc){.m = m, .t = b->t, .name = b->o->name, .default_model = b->o->emit != EMIT_OBJ || !b->o->name};
    const bool gpu = b->gpu.printer != NULL; /* whose kernels read float tables only: group-scaled ones widened */
    d->embed = blob_copy_tensor(&b->ks.blob, st_find(m->ar, "model.embed_tokens.weight"), gpu, &d->embed_dtype);
    if (m->tied)
        d->lm_head = d->embed, d->lm_head_dtype = d->embed_dtype;
    else
        d->lm_head = blob_copy_tensor(&b->ks.blob, st_find(m->ar, "lm_head.weight"), gpu, &d->lm_head_dtype);
    d->final_norm = blob_norm(&b->ks.blob, m, -1, "model.norm.weight", m->hidden);
    d->mtp_enorm = d->mtp_hnorm = d->mtp_head_norm = RSR_NO_TENSOR;
    if (m->mtp) { /* the MTP layer's norms (model_load checked them); its head's: the model's when it has none */
        uint64_t *at[3] = {&d->mtp_enorm, &d->mtp_hnorm, &d->mtp_head_norm};
        static const char *const what[3] = {"enorm", "hnorm", "shared_head_norm"};
        for (int i = 0; i < 3; i++) {
            char *n = model_mtp_name(m, what[i]);
            *at[i] = i < 2 || st_find(m->ar, n) ? blob_norm(&b->ks.blob, m, -1, n, m->hidden) : d->final_norm;
            free(n);
        }
    }
    d->embed_signs = d->lm_head_signs = RSR_NO_TENSOR;
    if (m->fold_embed) d->embed_signs = fold_signs(b, m->hidden);
    if (m->fold_lm_head) d->lm_head_signs = fold_signs(b, m->hidden);
    rsr_tokenizer *tok;
    d->tokenizer_json = blob_tokenizer(&b->ks.blob, m, &d->tokenizer_json_size, &d->tokenizer, &tok);
    d->chat_template = blob_chat_template(&b->ks.blob, m, tok, &d->chat_template_size);
    rsr_tokenizer_free(tok);
    /* the int8 copy of the head is made by the runtime at the first certified token (rsr_artifact.head_q8_stride alone):
     * the artifact holds the head once */
    d->head_q8 = d->head_q8_scale = d->head_q8_err = RSR_NO_TENSOR;
    d->head_q8_stride = b->o->greedy_head ? (m->hidden + RSR_X_PAD - 1) / RSR_X_PAD * RSR_X_PAD : 0;
}

/* The scales of tm by group, then row (rsr_artifact_matrix.group_scale): in f16 where every one
 * is zero or a normal f16 value (the GGUF formats' scales are, but for subnormal ones: half the
 * bytes the runtime reads a token, and the same f32 values once widened), unless the GPU reads
 * them (its kernels take f32); else f32. */
static uint64_t write_group_scales(blob_writer *blob, const ternary_matrix *tm, bool gpu, int32_t *dtype) {
    const size_t R = (size_t)tm->src_rows, S = (size_t)(tm->cols / tm->scale_cols);
    bool f16 = !gpu;
    for (size_t i = 0; f16 && i < R * S; i++)
        f16 = isfinite(tm->scales[i]) && rsr_f16_to_f32(rsr_f32_to_f16(tm->scales[i])) == tm->scales[i] &&
              (tm->scales[i] == 0 || fabsf(tm->scales[i]) >= 0x1p-14f);
    *dtype = f16 ? RSR_DTYPE_F16 : RSR_DTYPE_F32;
    size_t size = f16 ? 2 : 4;
    uint8_t *t = xmalloc(size * R * S);
    for (size_t r = 0; r < R; r++)
        for (size_t g = 0; g < S; g++) {
            float v = tm->scales[r * S + g];
            uint16_t h = f16 ? rsr_f32_to_f16(v) : 0;
            memcpy(t + (g * R + r) * size, f16 ? (const void *)&h : (const void *)&v, size);
        }
    blob_align(blob, 64);
    uint64_t at = blob_write(blob, t, size * R * S);
    free(t);
    return at;
}

/* What the options ask to see of one compiled matrix: --explain, --stats, -vv. */
static void report_matrix(const build *b, const ternary_matrix *tm, const compiled_matrix *cm, const matrix_record *r) {
    rsrc_note(2, "%s: %s", tm->name, cm->mp.why);
    if (b->o->explain) printf("%-44s %11s %s\n", tm->name, cm->kn.strategy, cm->mp.why);
    if (b->o->explain && cm->measured) tune_explain(stdout, cm->measured, tm, b->t);
    if (b->o->stats) print_stats_row(r, strategy_is_rsr(cm->mp.strategy) ? &cm->plan : NULL);
}

/* --stats' last lines: the totals (weights after this build's matrices, index bytes, bits per
 * weight over all of them) and what the columns mean. */
static void print_stats_total(const build *b, int32_t total) {
    char shape[32], segments[24] = "-", kept[24] = "-";
    snprintf(shape, sizeof shape, "%.2fM w", (double)b->weights / 1e6);
    if (b->segments) {
        snprintf(segments, sizeof segments, "%llu", (unsigned long long)b->segments);
        snprintf(kept, sizeof kept, "%llu", (unsigned long long)b->kept);
    }
    char name[48];
    snprintf(name, sizeof name, "total (%d matrices)", total);
    printf("%-48s %11s %2s %8s %9s %10llu %6.2f\n", name, shape, "", segments, kept, (unsigned long long)b->index_bytes,
           b->weights ? 8.0 * (double)b->index_bytes / (double)b->weights : 0.0);
    printf("k: rows a block (RSR) or a unit (i2) takes together; segments, kept: the RSR index's distinct column "
           "patterns and columns kept (-: none, not an RSR strategy); index: the bytes the kernel reads for the "
           "weights; bits/w: those bits per weight\n");
}

/* The predicted seconds of what follows the per-matrix work, from what it will be given: LLVM
 * optimises and generates about 18 000 instructions a second, the C compiler reads about 80 KB
 * of generated C a second, and the link adds the constants at about 200 MB/s (spliced into the
 * linked file: 1.8 GB in 6 s, 5.3 GB in 33 s) (measured on a 2-core x86-64 for i2, lut, rsr-loop
 * and rsr-unrolled kernels, within 2× of each; docs/user-guide.md lists the 2B-4T shape's times). */
static double after_seconds(const build *b, double *llvm_s) {
    double c_bytes = b->ks.c ? (double)ftell(b->ks.c) : (double)b->c_bytes;
    const kernel_printer *cp = b->ks.sink.printer;
    double llvm = cp->pending ? 0.3 + 55e-6 * (double)cp->pending(b->ks.sink.state) : 0;
    if (llvm_s) *llvm_s = llvm;
    return llvm + (b->linked ? 0.2 + 12e-6 * c_bytes + 5e-9 * (double)b->ks.blob.size : 0);
}

/* A qwen35 layer's kind, and a DeltaNet layer's small tensors as f32 (checked by model_load). */
static void deltanet_tensors(build *b, int32_t l, rsr_artifact_layer *L) {
    const rsrc_model *m = b->m;
    L->dn_conv_w = L->dn_alpha = L->dn_beta = L->dn_dt_bias = L->dn_a = L->dn_norm = RSR_NO_TENSOR;
    L->attn_gate = m->attn_gate && !model_deltanet(m, l);
    if (!model_deltanet(m, l)) return;
    L->kind = RSR_LAYER_DELTANET;
    L->dn_k_heads = m->dn_k_heads, L->dn_v_heads = m->dn_v_heads, L->dn_head = m->dn_head, L->dn_conv = m->dn_conv;
    static const char *const names[6] = {"linear_attn.conv1d.weight",
                                         "linear_attn.in_proj_a.weight",
                                         "linear_attn.in_proj_b.weight",
                                         "linear_attn.dt_bias",
                                         "linear_attn.ssm_a",
                                         "linear_attn.norm.weight"};
    uint64_t *at[6] = {&L->dn_conv_w, &L->dn_alpha, &L->dn_beta, &L->dn_dt_bias, &L->dn_a, &L->dn_norm};
    for (int j = 0; j < 6; j++) {
        char *n = xasprintf("model.layers.%d.%s", l, names[j]);
        *at[j] = blob_write_f32_of(&b->ks.blob, st_find(m->ar, n));
        free(n);
    }
}

/* Layer l's norms into the blob and the rest of its descriptor but the matrices: its window and
 * RoPE base. */
static void layer_norms(build *b, int32_t l, rsr_artifact_layer *L, int32_t q_out) {
    const rsrc_model *m = b->m;
    L->attn_norm = blob_norm(&b->ks.blob, m, l, "input_layernorm", m->hidden);
    L->ffn_norm = blob_norm(&b->ks.blob, m, l, "post_attention_layernorm", m->hidden);
    L->attn_sub_norm = m->sub_norms ? blob_norm(&b->ks.blob, m, l, m->attn_sub_norm, q_out) : RSR_NO_TENSOR;
    L->ffn_sub_norm = m->sub_norms ? blob_norm(&b->ks.blob, m, l, m->ffn_sub_norm, m->intermediate) : RSR_NO_TENSOR;
    const bool dn = model_deltanet(m, l);
    L->q_norm = m->qk_norm && !dn ? blob_norm(&b->ks.blob, m, l, "self_attn.q_norm", m->head_dim) : RSR_NO_TENSOR;
    L->k_norm = m->qk_norm && !dn ? blob_norm(&b->ks.blob, m, l, "self_attn.k_norm", m->head_dim) : RSR_NO_TENSOR;
    deltanet_tensors(b, l, L);
    static const int in_proj[RSR_IN_NORMS] = {PROJ_Q, PROJ_K, PROJ_V, PROJ_GATE, PROJ_UP};
    for (int j = 0; j < RSR_IN_NORMS; j++) {
        char *nm = xasprintf("%s.norm", proj_names[in_proj[j]]);
        L->in_norm[j] = m->proj_norms ? blob_norm(&b->ks.blob, m, l, nm, m->hidden) : RSR_NO_TENSOR;
        free(nm);
    }
    L->attn_post_norm = m->post_norms ? blob_norm(&b->ks.blob, m, l, "self_attn.post_norm", m->hidden) : RSR_NO_TENSOR;
    L->ffn_post_norm = m->post_norms ? blob_norm(&b->ks.blob, m, l, "mlp.post_norm", m->hidden) : RSR_NO_TENSOR;
    L->sliding_window = m->layer_window ? m->layer_window[l] : 0;
    L->rope_theta = L->sliding_window ? m->rope_theta_swa : 0; /* 0: the model's */
    L->no_rope = m->nope_global && !L->sliding_window;
    L->gate = L->up = L->down = -1, L->router = L->shared_gate = RSR_NO_TENSOR;
    if (!m->num_experts) return;
    char *rn = xasprintf("model.layers.%d.mlp.gate.weight", l);
    L->router = blob_write_f32_of(&b->ks.blob, model_require(m, rn, 2, m->num_experts, m->hidden));
    free(rn);
    L->num_experts = m->num_experts, L->experts_used = m->experts_used, L->expert_ff = m->expert_ff[l];
    L->gating = RSR_GATING_SOFTMAX, L->swiglu_clamp = m->swiglu_clamp[l];
    L->shared_ff = m->shared_ff, L->shared_gate = RSR_NO_TENSOR;
    if (!m->shared_ff) return;
    char *sn = xasprintf("model.layers.%d.mlp.shared_expert_gate.weight", l);
    L->shared_gate = blob_write_f32_of(&b->ks.blob, model_shared_gate(m, sn));
    free(sn);
}

/* The matrices of all layers (model_layer_matrices each). */
static int32_t total_matrices(const rsrc_model *m) { return model_total_matrices(m); }

/* A matrix's part of the Hadamard fold (rsr_artifact_matrix.in_signs, in_perm_*): none unless the
 * model's fold lists it; ssm_out's input in grouped V-head order when the fold says so. */
static void fold_matrix(build *b, int32_t l, int pj, matrix_record *r) {
    const rsrc_model *m = b->m;
    r->in_signs = RSR_NO_TENSOR, r->in_perm_groups = r->in_perm_head = 0;
    if (!m->fold_block || !model_folded(m, r->name)) return;
    r->in_signs = fold_signs(b, r->cols);
    if (m->fold_v_grouped && model_deltanet(m, l) && pj == PROJ_O)
        r->in_perm_groups = m->dn_k_heads, r->in_perm_head = m->dn_head;
}

/* The matrix through compile_matrix again for a CUDA target's spec, into its printer: rq's
 * strategy, k and prints apply. The matrices that read one input (a layer's q,k,v | o | gate,up |
 * down) end a group. */
static void compile_gpu_matrix(build *b, const ternary_matrix *tm, int32_t idx, int pj, const matrix_request *rq) {
    const rsrc_target *g = b->t->gpu;
    compiled_matrix cm;
    compile_matrix(tm, g,
                   &(matrix_request){.strategy = rq->strategy,
                                     .k = rq->k,
                                     .user_strategy = rq->user_strategy,
                                     .index = idx,
                                     .print_plan = rq->print_plan,
                                     .print_kernel = rq->print_kernel},
                   &b->ks.blob, &b->gpu, &cm);
    if (b->o->explain) printf("%-44s %11s %s\n", tm->name, cm.kn.strategy, cm.mp.why);
    rsrc_note(2, "%s on %s: %s", tm->name, g->name, cm.mp.why);
    if (pj == PROJ_V || pj == PROJ_O || pj == PROJ_UP || pj == PROJ_DOWN) b->gpu.printer->group(b->gpu.state);
    compiled_matrix_free(&cm);
}

/* A PTQ1_0 matrix's codes and scales: in the file (28 bytes a block of 128), and in the artifact as
 * 2-bit codes (32 bytes and an f16 scale) or base-3 ones (rsr_artifact.h: runs of five units of 32
 * columns in 32 bytes a row, the units left in 8) */
static double ptq1_file_bytes(const ternary_matrix *t) { return (double)t->src_rows * t->cols / 128 * 28; }
static double ptq1_art_bytes(const ternary_matrix *t, bool base3) {
    const double codes = base3 ? (double)rsr_b3_block_bytes(1, t->cols / 32) : (double)t->cols / 4; /* a row's */
    return (double)t->src_rows * (codes + (double)t->cols / 128 * 2);
}
/* Whether this PTQ1_0 matrix asks for base-3 codes (--ptq1-codes; auto: where its 2-bit codes would
 * take the matrices so far past PTQ1_BUDGET times their bytes in the file) */
static bool ptq1_base3(const build *b, const ternary_matrix *t) {
    if (b->o->ptq1 != PTQ1_AUTO) return b->o->ptq1 == PTQ1_BASE3;
    return b->ptq1_art + ptq1_art_bytes(t, false) > PTQ1_BUDGET * (b->ptq1_file + ptq1_file_bytes(t));
}
static void ptq1_count(build *b, const ternary_matrix *t, bool base3) {
    b->ptq1_file += ptq1_file_bytes(t), b->ptq1_art += ptq1_art_bytes(t, base3);
}

/* Matrix idx, layer l's projection pj (the MTP layer's eh_proj: PROJ_O), through compile_matrix
 * (and again for the GPU), its record in b->mats[idx]; freed as it goes. all_weights: the model's,
 * for the progress. */
static void compile_one(build *b, int32_t l, int pj, char *name, int32_t out_dim, int32_t in_dim, int32_t idx,
                        uint64_t all_weights) {
    const options *o = b->o;
    const rsrc_model *m = b->m;
    progress_update(l, b->weights, name);
    stage_enter(STAGE_LOAD);
    ternary_matrix tm = {0};
    model_load_matrix(m, name, out_dim, in_dim, &tm);
    ternary_matrix_expand(&tm, m->act_block);
    const bool ptq1 = gguf_model_base3(m, name);
    tm.base3 = ptq1 && ptq1_base3(b, &tm); /* base-3 where the file has it */
    matrix_request rq = {.strategy = o->strategy,
                         .k = o->rsr_k,
                         .user_strategy = o->strategy,
                         .index = idx,
                         .prefill = o->prefill,
                         .verify = o->verify,
                         .print_plan = o->print_plan,
                         .print_kernel = o->print_kernel};
    matrix_plan decided;
    if (b->tune)
        tune_decide(b->tune, &tm, b->t, &rq, &decided);
    else if (b->check)
        tune_check_lanes(b->check, &tm, b->t, &rq, &decided);
    compiled_matrix cm;
    compile_matrix(&tm, b->t, &rq, &b->ks.blob, &b->ks.sink, &cm);
    const rsrc_kernel *kn = &cm.kn;
    if (ptq1) ptq1_count(b, &tm, rsr_units_base3(kernel_units_layout(kn)));
    matrix_record *r = &b->mats[idx];
    *r = (matrix_record){name,
                         xstrdup(kn->symbol),
                         kn->batch_symbol ? xstrdup(kn->batch_symbol) : NULL,
                         kn->strategy,
                         tm.src_rows,
                         tm.cols,
                         kn->block_rows,
                         kn->num_blocks,
                         tm.beta,
                         kn->data_offset,
                         cm.index_bytes,
                         tm.unit_cols,
                         tm.unit_cols && kn->form == KF_I2 ? 1 : tm.planes, /* i2 reads a +2 as code 3 */
                         tm.scale_cols,
                         RSR_NO_TENSOR,
                         kn->unit_stride,
                         RSR_DTYPE_F32,
                         RSR_NO_TENSOR,
                         0,
                         0,
                         tm.unit_cols && kn->form == KF_I2 ? kn->unit_stride : 0,
                         kernel_units_layout(kn)};
    if (tm.unit_cols)
        r->group_scale = write_group_scales(&b->ks.blob, &tm, b->gpu.printer != NULL, &r->group_scale_dtype);
    fold_matrix(b, l, pj, r);
    report_matrix(b, &tm, &cm, r);
    b->weights += (uint64_t)tm.src_rows * (uint64_t)tm.cols;
    progress_expect_after(after_seconds(b, NULL) * (double)all_weights / (double)b->weights);
    b->index_bytes += r->index_bytes;
    if (strategy_is_rsr(cm.mp.strategy)) b->segments += cm.plan.num_segments, b->kept += cm.plan.num_cols_kept;
    compiled_matrix_free(&cm);
    if (b->gpu.printer) compile_gpu_matrix(b, &tm, idx, pj, &rq);
    ternary_matrix_free(&tm);
    if (b->ks.sink.printer->part) b->ks.sink.printer->part(b->ks.sink.state);
}

/* Every layer: its norms, then its seven matrices, each through compile_one; then the MTP layer's
 * eh_proj (qwen35), the last matrix. */
static void compile_matrices(build *b) {
    const options *o = b->o;
    const rsrc_model *m = b->m;
    const int per_layer = model_layer_matrices(m);
    int32_t total = total_matrices(m), out_dim, in_dim, q_out = m->num_heads * m->head_dim;
    b->mats = xcalloc((size_t)total, sizeof *b->mats);
    b->layers = xcalloc((size_t)m->num_layers, sizeof *b->layers);
    uint64_t all_weights = m->mtp ? 2 * (uint64_t)m->hidden * (uint64_t)m->hidden : 0;
    int32_t next = 0; /* the next matrix's index */
    for (int32_t l = 0; l < m->num_layers; l++)
        for (int j = 0; j < per_layer; j++) {
            int pj;
            char *name = model_layer_matrix(m, l, j, &out_dim, &in_dim, &pj);
            if (name) all_weights += (uint64_t)out_dim * (uint64_t)in_dim;
            free(name);
        }
    if (o->stats) print_stats_header();
    progress_begin(o->progress, m->num_layers, all_weights);
    for (int32_t l = 0; l < m->num_layers; l++) {
        rsr_artifact_layer *L = &b->layers[l];
        layer_norms(b, l, L, q_out);
        int32_t *slot[NUM_PROJ] = {&L->q, &L->k, &L->v, &L->o, &L->gate, &L->up, &L->down};
        const int shared = m->shared_ff > 0 ? 3 : 0; /* a shared expert's gate, up, down: the FFN's slots */
        L->expert_first = m->num_experts ? next - (model_deltanet(m, l) ? 1 : 0) + PROJ_GATE + shared : -1;
        for (int j = 0; j < per_layer; j++) {
            int pj;
            char *name = model_layer_matrix(m, l, j, &out_dim, &in_dim, &pj);
            if (!name) { /* a DeltaNet layer's empty slot */
                *slot[pj] = -1;
                continue;
            }
            int32_t idx = next++;
            compile_one(b, l, pj, name, out_dim, in_dim, idx, all_weights);
            if (!m->num_experts || j < PROJ_GATE + shared) *slot[pj] = idx;
        }
    }
    if (m->mtp)
        compile_one(b, m->num_layers - 1, PROJ_O, model_mtp_name(m, "eh_proj"), m->hidden, 2 * m->hidden, next++,
                    all_weights);
    progress_update(m->num_layers, b->weights, NULL);
    if (o->stats) print_stats_total(b, next);
    if (b->tune) tune_end(b->tune);
    if (b->check) tune_end(b->check);
    int32_t rsr = 0;
    for (int32_t i = 0; i < total; i++) rsr += strncmp(b->mats[i].strategy, "rsr", 3) == 0;
    if (o->print_plan && !rsr) /* say why --print=plan printed nothing */
        printf("plan: none of the %d matrices has an RSR segment index (the strategy of the first: %s); "
               "--strategy=rsr-loop or rsr-unrolled gives them one\n",
               total, total ? b->mats[0].strategy : "none");
}

/* What a --emit kind asks of a printer's finish. */
static enum printer_output printer_output_of(enum emit_kind e) {
    return e == EMIT_SO || e == EMIT_OBJ    ? PRINT_OBJECT
           : e == EMIT_ASM || e == EMIT_PTX ? PRINT_ASSEMBLY
                                            : PRINT_SOURCE;
}

/* The GPU module and the artifact's descriptor (with its manifest) close the C file and the
 * blob; the CPU printer finishes (LLVM optimises and emits its module). */
static void finish_kernels(build *b) {
    const options *o = b->o;
    artifact_desc *d = &b->d;
    stage_enter(STAGE_EMIT);
    d->num_matrices = total_matrices(b->m);
    d->mats = b->mats;
    d->layers = b->layers;
    if (b->gpu.printer) {
        const kernel_printer *gp = b->gpu.printer;
        gp->finish(b->gpu.state, &b->ks.blob, o->emit == EMIT_CUDA ? PRINT_SOURCE : printer_output_of(o->emit));
        d->gpu = gp->descriptor(b->gpu.state, b->ks.c);
    }
    d->blob_size = blob_align(&b->ks.blob, 64);
    d->blob_checksum = blob_checksum(&b->ks.blob);
    const kernel_printer *cp = b->ks.sink.printer;
    d->manifest = b->manifest = manifest_text(d, o->input, cp->backend, o->flags);
    emit_c_artifact(b->ks.c, d);
    kernel_set_close_files(&b->ks, &b->c_bytes);
    rsrc_note(1, "analysed %d matrices, %.1f M weights, index %.1f MB (%.2f bits/weight), constants %.1f MB in %.2f s",
              d->num_matrices, (double)b->weights / 1e6, (double)b->index_bytes / 1e6,
              8.0 * (double)b->index_bytes / (double)b->weights, (double)d->blob_size / 1e6, rsrc_now() - b->t_start);
    if (!cp->pending) return; /* the C printer's work is the link's (write_output) */
    stage_enter(STAGE_LLVM);
    double llvm_s;
    progress_expect_after(after_seconds(b, &llvm_s));
    progress_stage("LLVM: optimising and generating the kernels", llvm_s);
    rsrc_note(1, "LLVM: optimising %llu instructions of kernels (predicted %.0f s)",
              (unsigned long long)cp->pending(b->ks.sink.state), llvm_s);
    cp->finish(b->ks.sink.state, NULL, printer_output_of(o->emit));
}

/* The output: linked with the runtime, or the stage asked for, under a temporary name renamed
 * at the end. */
static void write_output(build *b) {
    const options *o = b->o;
    const kernel_printer *cp = b->ks.sink.printer;
    stage_enter(STAGE_LINK);
    double llvm_s, all_s = after_seconds(b, &llvm_s);
    progress_expect_after(all_s - llvm_s);
    if (b->linked)
        progress_stage(!cp->pending         ? "the C compiler: compiling the kernels and linking"
                       : o->emit == EMIT_SO ? "linking the shared object"
                                            : "linking the object",
                       0);
    if (!cp->pending) cp->finish(b->ks.sink.state, NULL, printer_output_of(o->emit)); /* C: its parts compiled */
    const char *const *objs = (const char *const *)cp->objects(b->ks.sink.state);
    if (o->emit == EMIT_SO)
        link_shared_object(b->ks.c_path, objs, b->ks.blob_path, b->t, o->opt_level, o->output, b->workdir);
    else if (o->emit == EMIT_OBJ)
        link_relocatable_object(b->ks.c_path, objs, b->ks.blob_path, b->t, o->output, b->workdir);
    else if (o->emit >= EMIT_CUDA)
        copy_to_output(b->gpu.printer->output(b->gpu.state, o->emit == EMIT_PTX), o->output);
    else
        copy_to_output(cp->output(b->ks.sink.state, o->emit == EMIT_ASM), o->output);
    progress_end();
    /* the last word of a compile, where someone watches (or with -v) */
    struct stat st;
    if ((rsrc_verbosity >= 1 || o->progress || isatty(2)) && strcmp(o->output, "-") && stat(o->output, &st) == 0 &&
        S_ISREG(st.st_mode))
        fprintf(stderr, "rsrc: wrote %s (%.1f MB) in %.1f s\n", o->output, (double)st.st_size / 1e6,
                rsrc_now() - b->t_start);
}

static void build_free(build *b) {
    if (b->gpu.printer) b->gpu.printer->end(b->gpu.state);
    kernel_cache_close(b->ks.sink.cache);
    kernel_set_close(&b->ks); /* its printer ended, its files gone (the output is out) */
    for (int32_t i = 0; b->mats && i < total_matrices(b->m); i++)
        free(b->mats[i].name), free(b->mats[i].symbol), free(b->mats[i].batch_symbol);
    free(b->mats);
    free(b->layers);
    free(b->manifest);
    free(b->d.tokenizer);
    free(b->workdir);
    model_free(b->m);
    target_free(b->t);
}

/* The pipeline. --emit=header needs the configuration only. */
static void compile(const options *o) {
    build b = {.o = o, .t_start = rsrc_now()};
    stage_enter(STAGE_LOAD);
    load_inputs(&b);
    if (o->emit == EMIT_HEADER) {
        write_header(o, b.m, b.t);
        rsrc_note(1, "wrote %s", o->output);
    } else if (o->inspect && !o->print_plan && !o->print_kernel && !o->explain && !o->stats && !o->verify && !o->tune) {
        /* --print=target,model and nothing asked of the matrices: printed as they were read */
    } else {
        open_printers(&b);
        progress_open(o->progress);
        progress_phase("the embedding, the LM head, the tokenizer");
        write_constants(&b);
        compile_matrices(&b);
        if (o->inspect) { /* the plans and kernels printed: no code generated, nothing written */
            progress_end();
        } else {
            finish_kernels(&b);
            write_output(&b);
        }
        stage_report(rsrc_now() - b.t_start);
    }
    build_free(&b);
}

int main(int argc, char **argv) {
    options o = parse_args(argc, argv);
    char *downloaded = !strncmp(o.input, "hf:", 3) ? hub_fetch(o.input, o.hf_file) : NULL;
    if (downloaded) o.input = downloaded;
    if (o.print_gguf) { /* a look inside the file, like gguf-dump; nothing is compiled */
        if (!gguf_is(o.input)) rsrc_fatal("--print=gguf: %s is not a GGUF file", o.input);
        gguf_file *g = gguf_open(o.input);
        gguf_print(g, stdout);
        gguf_close(g);
        free(o.flags), free(downloaded);
        return 0;
    }
    compile(&o);
    free(o.flags), free(downloaded);
    return 0;
}
