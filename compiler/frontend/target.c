/*
 * target.c — a target is data: a YAML spec in specs/ (or any file), or `host`, detected from
 * this machine's CPU features. Everything the code generators may specialise on comes from
 * here; nothing else in the compiler asks which machine it is compiling for.
 *
 *   --target NAME         specs/NAME.yaml (the specs directory: RSRC_SPECS_DIR)
 *   --target FILE.yaml    a spec file anywhere
 *   --target host|native  this machine
 *   --cpu=NAME --features=+a,-b   override the spec's cpu and features
 *
 * A malformed spec is reported as FILE:LINE:COLUMN: message (libyaml's marks, 1-based).
 */
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "print/printer.h"
#include "rsrc.h"
#include "rsrc_config.h"

static const char *specs_dir(void) { return resource_path(RES_SPECS); }

#define SPEC_ERROR(path, node, ...) spec_error(path, (node)->start_mark, __VA_ARGS__)
static noreturn void spec_error(const char *path, yaml_mark_t mark, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static noreturn void spec_error(const char *path, yaml_mark_t mark, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    rsrc_fatal("%s:%zu:%zu: %s", path, mark.line + 1, mark.column + 1, msg);
}

static const char *scalar(const char *path, yaml_node_t *n, const char *field) {
    if (n->type != YAML_SCALAR_NODE) SPEC_ERROR(path, n, "'%s' must be a single value", field);
    return (const char *)n->data.scalar.value;
}

static int64_t integer(const char *path, yaml_node_t *n, const char *field, int64_t lo, int64_t hi) {
    const char *s = scalar(path, n, field);
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || end == s || v < lo || v > hi)
        SPEC_ERROR(path, n, "'%s' must be an integer in [%lld, %lld], not '%s'", field, (long long)lo, (long long)hi,
                   s);
    return v;
}

/* Sizes: 64, 32KiB, 1MiB, 2GiB (also KB/MB/GB as powers of two — caches are). */
static uint64_t size_value(const char *path, yaml_node_t *n, const char *field) {
    const char *s = scalar(path, n, field);
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s) SPEC_ERROR(path, n, "'%s' must be a size such as 64KiB, not '%s'", field, s);
    static const struct {
        const char *suffix;
        unsigned shift;
    } units[] = {
        {"", 0},     {"B", 0},   {"KiB", 10}, {"KB", 10},  {"K", 10},
        {"MiB", 20}, {"MB", 20}, {"M", 20},   {"GiB", 30}, {"GB", 30},
    };
    for (size_t i = 0; i < sizeof units / sizeof *units; i++)
        if (strcmp(end, units[i].suffix) == 0) return (uint64_t)v << units[i].shift;
    SPEC_ERROR(path, n, "'%s': unknown size unit '%s' (B, KiB, MiB, GiB)", field, end);
}

/* Bandwidths: 3.35TB/s, 936GB/s; returned in bytes per ns (GB/s). */
static double bandwidth_value(const char *path, yaml_node_t *n, const char *field) {
    const char *s = scalar(path, n, field);
    char *end;
    double v = strtod(s, &end);
    if (end == s || !(v > 0)) SPEC_ERROR(path, n, "'%s' must be a bandwidth such as 3.35TB/s, not '%s'", field, s);
    if (!strcmp(end, "TB/s")) return v * 1e3;
    if (!strcmp(end, "GB/s")) return v;
    SPEC_ERROR(path, n, "'%s': unknown unit '%s' (GB/s, TB/s)", field, end);
}

/* A CUDA spec must say which GPU (arch: sm_NN) and how it is fed (sms, mem_bandwidth): the
 * cost model and both PTX routes depend on them. A CPU spec must not carry them. */
/* The backend words of the printer table, "c, llvm or nvrtc". */
static const char *backend_words(void) {
    static char words[128];
    const char *seen[16];
    int n = 0;
    for (const kernel_printer *const *p = kernel_printers; *p && n < 16; p++) {
        bool dup = false;
        for (int i = 0; i < n; i++) dup |= !strcmp(seen[i], (*p)->backend);
        if (!dup) seen[n++] = (*p)->backend;
    }
    words[0] = 0;
    for (int i = 0; i < n; i++)
        snprintf(words + strlen(words), sizeof words - strlen(words), "%s%s", i ? (i == n - 1 ? " or " : ", ") : "",
                 seen[i]);
    return words;
}

/* backend: the spec's backend word (at node), or NULL: the printer of that word for t's kind
 * (printer.h's table), else the kind's default. */
static void check_cuda_spec(const char *path, yaml_node_t *root, rsrc_target *t, const char *backend,
                            yaml_node_t *node) {
    t->backend = printer_for(t->kind, backend);
    if (backend && !printer_backend(t->kind, backend))
        SPEC_ERROR(path, node, "backend '%s' is for %s specs, not %s ones", backend,
                   t->kind == TK_CUDA ? "CPU" : "CUDA (kind: cuda)", t->kind == TK_CUDA ? "CUDA" : "CPU");
    if (t->kind != TK_CUDA) {
        if (t->arch || t->ptx_isa || t->sms || t->mem_bandwidth)
            SPEC_ERROR(path, root, "'arch', 'ptx_isa', 'sms' and 'mem_bandwidth' belong to CUDA specs (kind: cuda)");
        return;
    }
    char *end = NULL;
    long sm = t->arch && !strncmp(t->arch, "sm_", 3) ? strtol(t->arch + 3, &end, 10) : 0;
    if (!end || *end || sm < 50 || sm > 999)
        SPEC_ERROR(path, root, "a CUDA spec needs 'arch: sm_NN' (a compute capability such as sm_90), not '%s'",
                   t->arch ? t->arch : "(none)");
    if (sm < 61) SPEC_ERROR(path, root, "arch %s has no dp4a instruction (sm_61 or newer)", t->arch);
    t->sm = (int)sm;
    if (!t->sms || !t->mem_bandwidth)
        SPEC_ERROR(path, root, "a CUDA spec needs 'sms' and 'mem_bandwidth' (the cost model uses them)");
}

static void add_feature(rsrc_target *t, const char *f) {
    bool on = *f != '-';
    if (*f == '+' || *f == '-') f++;
    for (int i = 0; i < t->nfeatures; i++)
        if (strcmp(t->features[i], f) == 0) {
            if (!on) {
                free(t->features[i]);
                t->features[i] = t->features[--t->nfeatures];
                t->disabled = xrealloc(t->disabled, sizeof *t->disabled * (size_t)(t->ndisabled + 1));
                t->disabled[t->ndisabled++] = xstrdup(f);
            }
            return;
        }
    if (!on) {
        t->disabled = xrealloc(t->disabled, sizeof *t->disabled * (size_t)(t->ndisabled + 1));
        t->disabled[t->ndisabled++] = xstrdup(f);
        return;
    }
    t->features = xrealloc(t->features, sizeof *t->features * (size_t)(t->nfeatures + 1));
    t->features[t->nfeatures++] = xstrdup(f);
}

static void parse_cache(const char *path, yaml_document_t *doc, yaml_node_t *n, rsrc_target *t) {
    if (n->type != YAML_MAPPING_NODE) SPEC_ERROR(path, n, "'cache' must be a mapping such as {l1d: 32KiB, l2: 1MiB}");
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(doc, p->key), *v = yaml_document_get_node(doc, p->value);
        const char *key = scalar(path, k, "cache");
        if (!strcmp(key, "l1d"))
            t->l1d = size_value(path, v, "cache.l1d");
        else if (!strcmp(key, "l2"))
            t->l2 = size_value(path, v, "cache.l2");
        else if (!strcmp(key, "l3"))
            t->l3 = size_value(path, v, "cache.l3");
        else if (!strcmp(key, "line"))
            t->line = size_value(path, v, "cache.line");
        else
            SPEC_ERROR(path, k, "unknown field 'cache.%s' (l1d, l2, l3, line)", key);
    }
}

static void parse_list(const char *path, yaml_document_t *doc, yaml_node_t *n, const char *field, rsrc_target *t,
                       bool features) {
    if (n->type != YAML_SEQUENCE_NODE) SPEC_ERROR(path, n, "'%s' must be a list such as [a, b]", field);
    for (yaml_node_item_t *i = n->data.sequence.items.start; i < n->data.sequence.items.top; i++) {
        yaml_node_t *item = yaml_document_get_node(doc, *i);
        const char *s = scalar(path, item, field);
        if (features)
            add_feature(t, s);
        else {
            if (strcmp(s, "rsr") && strcmp(s, "lut") && strcmp(s, "i2"))
                SPEC_ERROR(path, item, "unknown strategy '%s' (rsr, lut, i2)", s);
            t->strategies = xrealloc(t->strategies, sizeof *t->strategies * (size_t)(t->nstrategies + 1));
            t->strategies[t->nstrategies++] = xstrdup(s);
        }
    }
}

/* What parse_spec holds while it may fail (released by rsrc_fatal() through the cleanup stack). */
typedef struct spec_parse {
    FILE *f;
    yaml_parser_t parser;
    yaml_document_t doc;
    bool have_doc;
    rsrc_target *t;
} spec_parse;

static void release_spec_parse(void *arg) {
    spec_parse *sp = arg;
    if (sp->have_doc) yaml_document_delete(&sp->doc);
    yaml_parser_delete(&sp->parser);
    if (sp->f) fclose(sp->f);
    target_free(sp->t);
}

static rsrc_target *parse_spec(const char *path) {
    spec_parse sp = {0};
    sp.f = fopen(path, "rb");
    if (!sp.f) rsrc_fatal("%s: cannot open target spec: %s", path, strerror(errno));
    yaml_parser_initialize(&sp.parser);
    rsrc_arena *ar = rsrc_arena_open();
    rsrc_arena_own(ar, release_spec_parse, &sp);
    yaml_parser_set_input_file(&sp.parser, sp.f);
    if (!yaml_parser_load(&sp.parser, &sp.doc))
        rsrc_fatal("%s:%zu:%zu: %s", path, sp.parser.problem_mark.line + 1, sp.parser.problem_mark.column + 1,
                   sp.parser.problem ? sp.parser.problem : "malformed YAML");
    sp.have_doc = true;
    fclose(sp.f);
    sp.f = NULL;
    yaml_document_t *doc = &sp.doc;
    yaml_node_t *root = yaml_document_get_root_node(doc);
    if (!root) rsrc_fatal("%s: empty target spec", path);
    if (root->type != YAML_MAPPING_NODE) SPEC_ERROR(path, root, "a target spec is a mapping of fields");
    rsrc_target *t = sp.t = xcalloc(1, sizeof *t);
    t->path = xstrdup(path);
    t->vector_bits = 128;
    t->unroll_budget = 64 << 10;
    t->line = 64;
    const char *backend = NULL; /* the backend word, in the document */
    yaml_node_t *backend_node = root;
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(doc, p->key), *v = yaml_document_get_node(doc, p->value);
        const char *key = scalar(path, k, "field name");
        for (yaml_node_pair_t *q = root->data.mapping.pairs.start; q < p; q++) {
            yaml_node_t *earlier = yaml_document_get_node(doc, q->key);
            if (earlier->type == YAML_SCALAR_NODE && !strcmp((const char *)earlier->data.scalar.value, key))
                SPEC_ERROR(path, k, "field '%s' appears twice", key);
        }
        if (!strcmp(key, "name"))
            t->name = xstrdup(scalar(path, v, key));
        else if (!strcmp(key, "description"))
            t->description = xstrdup(scalar(path, v, key));
        else if (!strcmp(key, "kind")) {
            const char *s = scalar(path, v, key);
            if (!strcmp(s, "cpu"))
                t->kind = TK_CPU;
            else if (!strcmp(s, "cuda"))
                t->kind = TK_CUDA;
            else
                SPEC_ERROR(path, v, "unknown kind '%s' (cpu, cuda)", s);
        } else if (!strcmp(key, "triple"))
            t->triple = xstrdup(scalar(path, v, key));
        else if (!strcmp(key, "cpu"))
            t->cpu = xstrdup(scalar(path, v, key));
        else if (!strcmp(key, "features"))
            parse_list(path, doc, v, key, t, true);
        else if (!strcmp(key, "strategies"))
            parse_list(path, doc, v, key, t, false);
        else if (!strcmp(key, "vector_bits"))
            t->vector_bits = (int)integer(path, v, key, 32, 4096);
        else if (!strcmp(key, "cache"))
            parse_cache(path, doc, v, t);
        else if (!strcmp(key, "icache_budget"))
            t->unroll_budget = (uint32_t)size_value(path, v, key);
        else if (!strcmp(key, "cflags"))
            t->cflags = xstrdup(scalar(path, v, key));
        else if (!strcmp(key, "backend")) { /* its kind's printer once the kind is known */
            backend = scalar(path, v, key), backend_node = v;
            if (!printer_backend(TK_CPU, backend) && !printer_backend(TK_CUDA, backend))
                SPEC_ERROR(path, v, "'backend' must be one of %s, not '%s'", backend_words(), backend);
        } else if (!strcmp(key, "threads")) {
            const char *s = scalar(path, v, key);
            t->threads = strcmp(s, "auto") == 0 ? 0 : (int)integer(path, v, key, 1, 4096);
        } else if (!strcmp(key, "arch"))
            t->arch = xstrdup(scalar(path, v, key));
        else if (!strcmp(key, "ptx_isa"))
            t->ptx_isa = xstrdup(scalar(path, v, key));
        else if (!strcmp(key, "smem_per_block"))
            t->smem_per_block = size_value(path, v, key);
        else if (!strcmp(key, "sms"))
            t->sms = (int)integer(path, v, key, 1, 100000);
        else if (!strcmp(key, "mem_bandwidth")) {
            t->mem_bandwidth = xstrdup(scalar(path, v, key));
            t->bytes_per_ns = bandwidth_value(path, v, key);
        } else
            SPEC_ERROR(path, k, "unknown field '%s'", key);
    }
    if (!t->name) rsrc_fatal("%s: the spec has no 'name'", path);
    check_cuda_spec(path, root, t, backend, backend_node);
    if (!strcmp(target_arch(t), "unknown"))
        SPEC_ERROR(path, root, "triple '%s': rsrc compiles for x86_64-* and aarch64-* CPUs", t->triple);
    sp.t = NULL; /* the result: the close releases the parser and the document only */
    rsrc_arena_close(ar);
    return t;
}

static char *cpuinfo_field(const char *key);

/* The CPU flags of /proc/cpuinfo that name features the code generators use, and their names in
 * the specs: x86 "flags" (the specs drop the '_'), AArch64 "Features". */
#if defined(__aarch64__)
static const char host_flags_key[] = "Features";
static const char *const host_flags[][2] = {{"asimd", "neon"}, {"asimddp", "dotprod"}, {"i8mm", "i8mm"}};
#else
static const char host_flags_key[] = "flags";
static const char *const host_flags[][2] = {{"avx2", "avx2"},
                                            {"fma", "fma"},
                                            {"bmi2", "bmi2"},
                                            {"avx512f", "avx512f"},
                                            {"avx512bw", "avx512bw"},
                                            {"avx512vl", "avx512vl"},
                                            {"avx512dq", "avx512dq"},
                                            {"avx512cd", "avx512cd"},
                                            {"avx512_vnni", "avx512vnni"},
                                            {"avx512vbmi", "avx512vbmi"},
                                            {"avx512_bf16", "avx512bf16"}};
#endif

/* This machine, from the CPU flags the kernel reports (LLVM's host CPU name is unreliable here). */
static rsrc_target *detect_host(void) {
    rsrc_target *t = xcalloc(1, sizeof *t);
    t->name = xstrdup("host");
    t->description = xstrdup("this machine (-march=native), features detected from /proc/cpuinfo");
    t->path = xstrdup("detected from /proc/cpuinfo");
    t->kind = TK_CPU;
    t->cpu = xstrdup("native");
    t->cpu_model = host_cpu_model();
    t->backend = printer_backend(TK_CPU, "llvm"); /* LLVM's code for this CPU, tuned to it */
    t->unroll_budget = 64 << 10;
    t->line = 64;
    t->vector_bits = 128;
#if defined(__aarch64__)
    t->triple = xstrdup("aarch64-unknown-linux-gnu");
#endif
    char *flags = cpuinfo_field(host_flags_key), *save = NULL;
    for (char *w = flags ? strtok_r(flags, " ", &save) : NULL; w; w = strtok_r(NULL, " ", &save))
        for (size_t i = 0; i < sizeof host_flags / sizeof *host_flags; i++)
            if (!strcmp(w, host_flags[i][0])) add_feature(t, host_flags[i][1]);
    free(flags);
    for (int i = 0; i < t->nfeatures; i++) {
        if (!strcmp(t->features[i], "avx2") && t->vector_bits < 256) t->vector_bits = 256;
        if (!strcmp(t->features[i], "avx512f")) t->vector_bits = 512;
    }
    return t;
}

/* A feature name as /proc/cpuinfo and the specs both spell it: no '_' or '.', and the kernel's
 * names for the few features it calls otherwise. */
static void feature_key(const char *f, char *out, size_t n) {
    static const char *const alias[][2] = {
        {"sse3", "pni"}, {"lzcnt", "abm"}, {"sahf", "lahfl"}, {"neon", "asimd"}, {"dotprod", "asimddp"}};
    size_t o = 0;
    for (; *f && o + 1 < n; f++)
        if (*f != '_' && *f != '.') out[o++] = *f;
    out[o] = 0;
    for (size_t i = 0; i < sizeof alias / sizeof *alias; i++)
        if (!strcmp(out, alias[i][0])) snprintf(out, n, "%s", alias[i][1]);
}

/* Reads a "key : value" field of /proc/cpuinfo's first processor; NULL when there is none. */
static char *cpuinfo_field(const char *key) {
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return NULL;
    char *line = NULL, *value = NULL;
    size_t cap = 0, klen = strlen(key);
    while (!value && getline(&line, &cap, f) > 0) {
        if (strncmp(line, key, klen) != 0 || (line[klen] != ' ' && line[klen] != '\t' && line[klen] != ':')) continue;
        char *colon = strchr(line, ':');
        if (!colon) continue;
        char *v = colon + 1;
        while (*v == ' ') v++;
        v[strcspn(v, "\n")] = 0;
        value = xstrdup(v);
    }
    free(line);
    fclose(f);
    return value;
}

char *host_cpu_model(void) {
    char *m = cpuinfo_field("model name");
    return m ? m : xstrdup("unknown");
}

/* ---- queries of a loaded target ---- */

bool target_has_feature(const rsrc_target *t, const char *feature) {
    for (int i = 0; i < t->nfeatures; i++)
        if (strcmp(t->features[i], feature) == 0) return true;
    return false;
}

/* The architecture rsrc itself runs on: a spec without a triple (generic, host) is for it. */
static const char *host_arch(void) {
#if defined(__aarch64__)
    return "aarch64";
#else
    return "x86_64";
#endif
}

const char *target_arch(const rsrc_target *t) {
    if (t->kind == TK_CUDA) return "nvptx64";
    if (!t->triple) return host_arch();
    if (!strncmp(t->triple, "aarch64", 7) || !strncmp(t->triple, "arm64", 5)) return "aarch64";
    if (!strncmp(t->triple, "x86_64", 6)) return "x86_64";
    return "unknown";
}

bool target_is_foreign(const rsrc_target *t) { return strcmp(target_arch(t), host_arch()) != 0; }

const char *const dot_isa_names[DOT_ISA_COUNT] = {"scalar", "avx2", "avxvnni", "avx512bw", "avx512vnni",
                                                  "dp4a",   "neon", "sdot",    "i8mm"};

enum dot_isa target_isa_of(const rsrc_target *t) {
    if (t->kind == TK_CUDA) return DOT_DP4A; /* every spec is sm_61 or newer (target.c) */
    if (!strcmp(target_arch(t), "aarch64"))
        return !target_has_feature(t, "dotprod") ? DOT_NEON : target_has_feature(t, "i8mm") ? DOT_I8MM : DOT_SDOT;
    bool bw = target_has_feature(t, "avx512f") && target_has_feature(t, "avx512bw");
    if (bw && target_has_feature(t, "avx512vnni")) return DOT_AVX512VNNI;
    if (bw) return DOT_AVX512BW;
    if (target_has_feature(t, "avx2") && target_has_feature(t, "avxvnni")) return DOT_AVXVNNI;
    if (target_has_feature(t, "avx2")) return DOT_AVX2;
    return DOT_SCALAR;
}

/* The lut form's vector kernel needs VBMI's two-table byte permute and VNNI's dot products. */
bool target_lut_vector(const rsrc_target *t) { return t->isa == DOT_AVX512VNNI && target_has_feature(t, "avx512vbmi"); }

char *target_host_lacks(const rsrc_target *t) {
    if (target_is_foreign(t)) return xasprintf("an %s CPU: this one is %s", target_arch(t), host_arch());
    char *flags = cpuinfo_field(host_flags_key);
    if (!flags) return xstrdup("(this machine's CPU features cannot be read from /proc/cpuinfo)");
    char *missing = xstrdup("");
    for (int i = 0; i < t->nfeatures; i++) {
        char want[64], have[64];
        feature_key(t->features[i], want, sizeof want);
        bool found = false;
        char *copy = xstrdup(flags), *save = NULL;
        for (char *w = strtok_r(copy, " ", &save); w && !found; w = strtok_r(NULL, " ", &save)) {
            feature_key(w, have, sizeof have);
            found = !strcmp(want, have);
        }
        free(copy);
        if (found) continue;
        char *m = xasprintf("%s%s%s", missing, *missing ? ", " : "", t->features[i]);
        free(missing);
        missing = m;
    }
    free(flags);
    if (!*missing) {
        free(missing);
        return NULL;
    }
    return missing;
}

/* AArch64 flags for gcc and clang: -mcpu=CPU+feature+nofeature (NEON is "simd" to them); for the
 * generic CPU -march= the architecture that has the features (gcc 12 refuses dotprod below
 * Armv8.2-A), so the C compiler's arm_neon.h offers their intrinsics. */
static void derive_aarch64_cflags(rsrc_target *t) {
    size_t cap = 64 + (t->cpu ? strlen(t->cpu) : 8);
    for (int i = 0; i < t->nfeatures; i++) cap += strlen(t->features[i]) + 2;
    for (int i = 0; i < t->ndisabled; i++) cap += strlen(t->disabled[i]) + 4;
    char *s = xcalloc(cap, 1);
    if (t->cpu && strcmp(t->cpu, "generic") && strcmp(t->cpu, "native"))
        strcat(strcat(s, "-O2 -mcpu="), t->cpu);
    else
        strcat(s, target_has_feature(t, "i8mm")      ? "-O2 -march=armv8.6-a"
                  : target_has_feature(t, "dotprod") ? "-O2 -march=armv8.2-a"
                                                     : "-O2 -march=armv8-a");
    for (int i = 0; i < t->nfeatures; i++)
        strcat(strcat(s, "+"), strcmp(t->features[i], "neon") ? t->features[i] : "simd");
    for (int i = 0; i < t->ndisabled; i++)
        strcat(strcat(s, "+no"), strcmp(t->disabled[i], "neon") ? t->disabled[i] : "simd");
    t->cflags = s;
}

/* Flags for the C backend: the spec's own, or -march from cpu and -m<feature> for each feature. */
static void derive_cflags(rsrc_target *t) {
    if (t->cflags) return;
    if (!strcmp(target_arch(t), "aarch64")) {
        derive_aarch64_cflags(t);
        return;
    }
    size_t cap = 256;
    for (int i = 0; i < t->nfeatures; i++) cap += strlen(t->features[i]) + 4;
    for (int i = 0; i < t->ndisabled; i++) cap += strlen(t->disabled[i]) + 8;
    if (t->cpu) cap += strlen(t->cpu);
    char *s = xcalloc(cap, 1);
    strcat(s, "-O2");
    if (t->cpu) strcat(strcat(s, " -march="), t->cpu);
    for (int i = 0; i < t->nfeatures; i++) strcat(strcat(s, " -m"), t->features[i]);
    for (int i = 0; i < t->ndisabled; i++) strcat(strcat(s, " -mno-"), t->disabled[i]);
    t->cflags = s;
}

static bool looks_like_path(const char *s) {
    size_t n = strlen(s);
    return strchr(s, '/') || (n > 5 && strcmp(s + n - 5, ".yaml") == 0);
}

/* "unknown target", with the nearest spec name when one is within two edits. */
static noreturn void unknown_target(const char *name) {
    const char *near = NULL;
    int best = 3;
    static const char *const builtin[] = {"host", "native"};
    for (int i = 0; i < 2; i++)
        if (edit_distance(name, strlen(name), builtin[i]) < best)
            best = edit_distance(name, strlen(name), builtin[i]), near = builtin[i];
    char *found = NULL;
    DIR *d = opendir(specs_dir());
    for (struct dirent *e; d && (e = readdir(d));) {
        size_t n = strlen(e->d_name);
        if (n <= 5 || strcmp(e->d_name + n - 5, ".yaml")) continue;
        char *spec = xasprintf("%.*s", (int)(n - 5), e->d_name);
        int dist = edit_distance(name, strlen(name), spec);
        if (dist < best)
            best = dist, free(found), found = spec, near = found;
        else
            free(spec);
    }
    if (d) closedir(d);
    if (near) rsrc_fatal("unknown target '%s' (did you mean '%s'? see --list-targets)", name, near);
    rsrc_fatal("unknown target '%s' (see --list-targets)", name);
}

static rsrc_target *load_one(const char *name) {
    rsrc_target *t;
    if (!strcmp(name, "host") || !strcmp(name, "native"))
        t = detect_host();
    else if (looks_like_path(name))
        t = parse_spec(name);
    else {
        for (const char *c = name; *c; c++)
            if (!(*c == '-' || *c == '_' || (*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'z'))) unknown_target(name);
        char *path = xasprintf("%s/%s.yaml", specs_dir(), name);
        FILE *probe = fopen(path, "r");
        if (!probe) unknown_target(name);
        fclose(probe);
        t = parse_spec(path);
        free(path);
    }
    return t;
}

rsrc_target *target_load(const char *name, const char *cpu, const char *features) {
    const char *comma = strchr(name, ',');
    if (comma && strchr(comma + 1, ',')) rsrc_fatal("--target '%s': at most one CPU and one CUDA target", name);
    char first[4096]; /* on the stack: load_one may rsrc_fatal() (which returns to a fuzzer's harness) */
    size_t first_len = comma ? (size_t)(comma - name) : strlen(name);
    if (first_len >= sizeof first) rsrc_fatal("--target: a name of %zu bytes is too long", first_len);
    memcpy(first, name, first_len);
    first[first_len] = 0;
    rsrc_target *t = load_one(first), *gpu = comma ? load_one(comma + 1) : NULL;
    if (t->kind == TK_CUDA) { /* sm_90 or sm_90,avx512: the CPU part defaults to portable C */
        rsrc_target *cuda = t;
        t = gpu ? gpu : load_one("generic");
        gpu = cuda;
    }
    if (t->kind == TK_CUDA) rsrc_fatal("--target '%s': two CUDA targets; name one CPU and one CUDA target", name);
    if (gpu && gpu->kind != TK_CUDA)
        rsrc_fatal("--target '%s': two CPU targets; name one CPU and one CUDA target", name);
    t->gpu = gpu;
    if (cpu) {
        free(t->cpu);
        t->cpu = xstrdup(cpu);
        free(t->cflags);
        t->cflags = NULL;
    }
    if (features) {
        char *list = xstrdup(features);
        for (char *f = strtok(list, ","); f; f = strtok(NULL, ",")) {
            if (*f != '+' && *f != '-') rsrc_fatal("--features: '%s' must start with + or -", f);
            add_feature(t, f);
        }
        free(list);
        free(t->cflags);
        t->cflags = NULL;
    }
    derive_cflags(t);
    t->isa = target_isa_of(t);
    if (gpu) gpu->isa = target_isa_of(gpu);
    return t;
}

/* Spec paths by name, ".yaml" left out: aarch64 before aarch64-dotprod. */
static int by_name(const void *a, const void *b) {
    const char *x = *(char *const *)a, *y = *(char *const *)b;
    size_t nx = strlen(x) - 5, ny = strlen(y) - 5;
    int c = strncmp(x, y, nx < ny ? nx : ny);
    return c ? c : (nx > ny) - (nx < ny);
}

void target_list(FILE *out) {
    fprintf(out, "%-16s %s\n", "host", "this machine (-march=native), features detected from /proc/cpuinfo");
    DIR *d = opendir(specs_dir());
    if (!d) rsrc_fatal("%s: cannot list target specs: %s", specs_dir(), strerror(errno));
    char **names = NULL;
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) {
        size_t len = strlen(e->d_name);
        if (len <= 5 || strcmp(e->d_name + len - 5, ".yaml") != 0) continue;
        names = xrealloc(names, sizeof *names * (size_t)(n + 1));
        names[n++] = xasprintf("%s/%s", specs_dir(), e->d_name);
    }
    closedir(d);
    if (n) qsort(names, (size_t)n, sizeof *names, by_name);
    for (int i = 0; i < n; i++) {
        rsrc_target *t = parse_spec(names[i]);
        fprintf(out, "%-16s %s\n", t->name, t->description ? t->description : "");
        target_free(t);
        free(names[i]);
    }
    free(names);
}

void target_free(rsrc_target *t) {
    if (!t) return;
    for (int i = 0; i < t->nfeatures; i++) free(t->features[i]);
    for (int i = 0; i < t->ndisabled; i++) free(t->disabled[i]);
    for (int i = 0; i < t->nstrategies; i++) free(t->strategies[i]);
    free(t->features), free(t->disabled), free(t->strategies);
    free(t->name), free(t->description), free(t->path), free(t->triple), free(t->cpu), free(t->cpu_model),
        free(t->cflags);
    free(t->arch), free(t->ptx_isa), free(t->mem_bandwidth);
    target_free(t->gpu);
    free(t);
}

void target_print(const rsrc_target *t, FILE *out) {
    fprintf(out, "target %s (%s) kind=%s cpu=%s%s%s%s vector_bits=%d unroll_budget=%u backend=%s\n", t->name, t->path,
            t->kind == TK_CPU ? "cpu" : "cuda", t->cpu ? t->cpu : "-", t->cpu_model ? " (" : "",
            t->cpu_model ? t->cpu_model : "", t->cpu_model ? ")" : "", t->vector_bits, t->unroll_budget,
            t->backend->backend);
    fputs("  features:", out);
    for (int i = 0; i < t->nfeatures; i++) fprintf(out, " +%s", t->features[i]);
    for (int i = 0; i < t->ndisabled; i++) fprintf(out, " -%s", t->disabled[i]);
    fprintf(out, "\n  cflags: %s\n", t->cflags);
    const rsrc_target *g = t->gpu;
    if (g)
        fprintf(out,
                "target %s (%s) kind=cuda arch=%s ptx_isa=%s sms=%d mem_bandwidth=%.0fGB/s smem_per_block=%llu "
                "backend=%s\n",
                g->name, g->path, g->arch, g->ptx_isa ? g->ptx_isa : "-", g->sms, g->bytes_per_ns,
                (unsigned long long)g->smem_per_block, g->backend->backend);
}
