/*
 * link.c — the generated C, the constant data blob and the runtime library become one shared
 * object. The blob enters through the assembler's .incbin, so gigabytes of constants never pass
 * through the C compiler; for a shared object only its first bytes do, and splice.c copies the
 * rest into the linked file (the assembler and the linker would each hold all of it in memory).
 * The output is written under a temporary name and renamed at the end.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>

#include "rsr_elf.h"
#include "rsrc.h"
#include "rsrc_config.h"

void write_blob_asm(const char *asm_path, const char *blob_path, uint64_t head, bool digest_note) {
    FILE *f = fopen(asm_path, "w");
    if (!f) rsrc_fatal("%s: cannot create: %s", asm_path, strerror(errno));
    if (strchr(blob_path, '"') || strchr(blob_path, '\\')) rsrc_fatal("%s: unsupported character in path", blob_path);
    char range[48] = ""; /* the first head bytes only (splice.c adds the rest) */
    if (head) snprintf(range, sizeof range, ", 0, %llu", (unsigned long long)head);
    fprintf(f,
            "    .section .lrodata.rsr_blob,\"a\",@progbits\n" /* placed after .bss: code stays near */
            "    .balign 64\n"
            "    .globl rsr_blob\n"
            "    .hidden rsr_blob\n"
            "    .type rsr_blob, @object\n"
            "rsr_blob:\n"
            "    .incbin \"%s\"%s\n"
            "    .size rsr_blob, . - rsr_blob\n"
            "    .section .note.GNU-stack,\"\",@progbits\n",
            blob_path, range);
    if (digest_note) /* rsr_elf.h's layout: namesz, descsz, type, the name padded to 8, the desc zero until stamped */
        fprintf(f,
                "    .section " RSR_DIGEST_SECTION ",\"a\",@note\n"
                "    .balign 4\n"
                "    .long %zu, 16, %u\n"
                "    .asciz \"" RSR_DIGEST_NOTE_NAME "\"\n"
                "    .balign 4\n"
                "    .quad 0, 0\n",
                sizeof RSR_DIGEST_NOTE_NAME, RSR_DIGEST_NOTE_TYPE);
    if (fclose(f) != 0) rsrc_fatal("%s: write failed: %s", asm_path, strerror(errno));
}

static pid_t start_command(char **argv) {
    if (rsrc_verbosity >= 2) {
        fputs("rsrc: running:", stderr);
        for (char **a = argv; *a; a++) fprintf(stderr, " %s", *a);
        fputc('\n', stderr);
    }
    pid_t pid = fork();
    if (pid < 0) rsrc_fatal("cannot start %s: %s", argv[0], strerror(errno));
    if (pid == 0) {
        unlimit_memory();
        execvp(argv[0], argv);
        fprintf(stderr, "rsrc: error: cannot run '%s': %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    return pid;
}

/* pid: one command's, or -1: any; its exit status (128 + N: killed by signal N), its pid in *who. */
static int wait_command(pid_t pid, pid_t *who) {
    int status;
    pid_t got;
    while ((got = waitpid(pid, &status, 0)) < 0)
        if (errno != EINTR) rsrc_fatal("waitpid: %s", strerror(errno));
    if (who) *who = got;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int run_command(char **argv) { return wait_command(start_command(argv), NULL); }

/* ---- another architecture: its cross compiler and the runtime scripts/cross.sh built ----
 *
 * An artifact for a target of another architecture (aarch64 from an x86 machine) is linked by
 * that architecture's C compiler (RSRC_CROSS_CC, else Debian's ARCH-linux-gnu-gcc) against the
 * runtime built for it: --runtime, else RSRC_RUNTIME_LIB_ARCH, else PREFIX/lib/rsrc/ARCH/ beside an installed
 * rsrc, else build-ARCH/ in the source tree. */

static const char *link_cc(const rsrc_target *t) {
    static char cross[64];
    if (!target_is_foreign(t)) return rsrc_env_or("RSRC_CC", RSRC_DEFAULT_CC);
    snprintf(cross, sizeof cross, "%s-linux-gnu-gcc", target_arch(t));
    return rsrc_env_or("RSRC_CROSS_CC", cross);
}

static char *cross_runtime_env(const rsrc_target *t) {
    char *name = xasprintf("RSRC_RUNTIME_LIB_%s", target_arch(t));
    for (char *c = name; *c; c++)
        if (*c >= 'a' && *c <= 'z') *c = (char)(*c - 'a' + 'A');
    return name;
}

static const char *runtime_given; /* --runtime */
void link_use_runtime(const char *path) { runtime_given = path; }

const char *link_runtime(const rsrc_target *t) {
    if (runtime_given) return runtime_given;
    if (!target_is_foreign(t)) return resource_path(RES_RUNTIME_LIB);
    static char *found;
    free(found);
    char *env = cross_runtime_env(t);
    const char *set = getenv(env);
    free(env);
    if (set && *set) return found = xstrdup(set);
    char *installed = installed_path(xasprintf(RSRC_INSTALL_CROSS_RUNTIME_LIB, target_arch(t)));
    if (installed) return found = installed;
    return found = xasprintf(RSRC_CROSS_RUNTIME_LIB, target_arch(t));
}

static void run_linker(char **argv, const char *out_path) {
    int rc = run_command(argv);
    if (rc == 127) rsrc_fatal("the C compiler '%s' cannot be run: set RSRC_CC to a C compiler", argv[0]);
    if (rc != 0) rsrc_fatal("the C compiler failed (exit %d) building %s", rc, out_path);
}

/* Is prog a file this process can run (a name found on PATH, or a path)? */
static bool runnable(const char *prog) {
    if (strchr(prog, '/')) return access(prog, X_OK) == 0;
    const char *path = getenv("PATH");
    for (const char *p = path ? path : "/usr/bin:/bin"; *p;) {
        size_t n = strcspn(p, ":");
        char *full = xasprintf("%.*s/%s", (int)n, p, prog);
        bool ok = access(full, X_OK) == 0;
        free(full);
        if (ok) return true;
        p += n + (p[n] == ':');
    }
    return false;
}

void link_check(const rsrc_target *t) {
    if (runtime_given && access(runtime_given, R_OK) != 0)
        rsrc_fatal("--runtime=%s: %s (a librsr_runtime.a built for %s)", runtime_given, strerror(errno),
                   target_arch(t));
    if (!target_is_foreign(t)) return;
    const char *arch = target_arch(t), *cc = link_cc(t), *rt = link_runtime(t);
    char *env = cross_runtime_env(t);
    if (!runnable(cc))
        rsrc_fatal("target %s is for %s: its C compiler '%s' is not installed (scripts/cross.sh %s installs it; "
                   "RSRC_CROSS_CC names another)",
                   t->name, arch, cc, arch);
    if (access(rt, R_OK) != 0)
        rsrc_fatal("target %s is for %s: no %s runtime at %s (build it with scripts/cross.sh %s, or set %s to a "
                   "librsr_runtime.a built for %s)",
                   t->name, arch, arch, rt, arch, env, arch);
    free(env);
}

/* The C compiler and the flags every kernel's C is compiled with, the link's and each part's, into
 * argv from 0 (room for 48); returns the count. The strings it made are in *own. */
typedef struct cc_strings {
    char *flags, *sanitize, *inc;
} cc_strings;

static int cc_command(char **argv, const rsrc_target *t, int opt_level, cc_strings *own) {
    int n = 0;
    argv[n++] = (char *)link_cc(t);
    argv[n++] = "-std=c11";
    argv[n++] = "-fPIC";
    argv[n++] = "-ffp-contract=off";
    own->flags = xstrdup(t->cflags);
    for (char *tok = strtok(own->flags, " "); tok && n < 40; tok = strtok(NULL, " ")) argv[n++] = tok;
    static char *const levels[] = {"-O0", "-O1", "-O2", "-O3"};
    if (opt_level >= 0) argv[n++] = levels[opt_level]; /* -O0..-O3 given: the last -O wins */
    /* A sanitized rsrc links a sanitized runtime: the kernels get the same instrumentation. */
    own->sanitize = xstrdup(target_is_foreign(t) ? "" : rsrc_env_or("RSRC_SANITIZE_FLAGS", RSRC_SANITIZE_FLAGS));
    for (char *tok = strtok(own->sanitize, " "); tok && n < 46; tok = strtok(NULL, " ")) argv[n++] = tok;
    /* and, unless -O was given, at -O0: instrumented, the unrolled forms' C took clang minutes at
     * -O2 (a tiny model for the portable target: 19 s against 5), and the sanitizers look for memory
     * errors, which -O0 keeps; the plain build compiles and checks the optimised code */
    if (*own->sanitize && opt_level < 0) argv[n++] = "-O0";
    argv[n++] = own->inc = xasprintf("-I%s", resource_path(RES_RUNTIME_INCLUDE));
    return n;
}

static void cc_strings_free(cc_strings *own) { free(own->flags), free(own->sanitize), free(own->inc); }

/* The processors this process may run on (sched_getaffinity), at least 1. */
static int online_cpus(void) {
    cpu_set_t set;
    int n = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : (int)sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? n : 1;
}

void link_compile_parts(char *const *c_parts, char **objs, int n, const rsrc_target *t, int opt_level) {
    if (n <= 0) return;
    link_check(t);
    int jobs = online_cpus();
    if (jobs > n) jobs = n;
    rsrc_note(1, "compiling %d kernel%s of C in %d job%s", n, n == 1 ? "" : "s", jobs, jobs == 1 ? "" : "s");
    pid_t *running = xcalloc((size_t)jobs, sizeof *running);
    int *which = xcalloc((size_t)jobs, sizeof *which), next = 0, busy = 0, failed = -1, rc = 0;
    double t0 = rsrc_now();
    while (next < n || busy > 0) {
        while (busy < jobs && next < n && failed < 0) { /* a free job takes the next part */
            char *argv[56];
            cc_strings own;
            int k = cc_command(argv, t, opt_level, &own);
            argv[k++] = "-c", argv[k++] = c_parts[next], argv[k++] = "-o", argv[k++] = objs[next], argv[k] = NULL;
            int slot = 0;
            while (running[slot]) slot++;
            running[slot] = start_command(argv), which[slot] = next++, busy++;
            cc_strings_free(&own);
        }
        if (!busy) break;
        pid_t who;
        int status = wait_command(-1, &who);
        for (int s = 0; s < jobs; s++)
            if (running[s] == who) {
                running[s] = 0, busy--;
                if (status != 0 && failed < 0) failed = which[s], rc = status;
            }
    }
    free(running), free(which);
    if (rc == 127) rsrc_fatal("the C compiler '%s' cannot be run: set RSRC_CC to a C compiler", link_cc(t));
    if (failed >= 0) rsrc_fatal("the C compiler failed (exit %d) on %s", rc, c_parts[failed]);
    rsrc_note(1, "compiled %d kernel%s of C in %.2f s", n, n == 1 ? "" : "s", rsrc_now() - t0);
}

/* The blob's bytes linked in place when splicing (splice.c): the rest is copied in after the link. */
enum { SPLICE_HEAD = 64 };

void link_shared_object(const char *c_path, const char *const *objs, const char *blob_path, const rsrc_target *t,
                        int opt_level, const char *out_path, const char *workdir) {
    char *asm_path = xasprintf("%s/blob.S", workdir);
    register_temp(asm_path);
    struct stat bs;
    if (stat(blob_path, &bs) != 0) rsrc_fatal("%s: cannot stat: %s", blob_path, strerror(errno));
    /* x86-64's linker script puts .lrodata after .bss, where splice.c can grow it (aarch64's has a
     * segment after it: linked whole, not linked twice); RSRC_SPLICE_BLOB=0: the whole blob through
     * the assembler and the linker, as before */
    const bool splice = (uint64_t)bs.st_size > SPLICE_HEAD && !strcmp(target_arch(t), "x86_64") &&
                        strcmp(rsrc_env_or("RSRC_SPLICE_BLOB", "1"), "0");
    write_blob_asm(asm_path, blob_path, splice ? SPLICE_HEAD : 0, true);

    char *tmp_out = output_temp(out_path, NULL);
    char *linked = splice ? xasprintf("%s/linked.so", workdir) : tmp_out;
    if (splice) register_temp(linked);

    int nobjs = 0;
    while (objs && objs[nobjs]) nobjs++;
    char **argv = xcalloc((size_t)nobjs + 64, sizeof *argv);
    link_check(t);
    const bool foreign = target_is_foreign(t);
    cc_strings own;
    int n = cc_command(argv, t, opt_level, &own);
    argv[n++] = "-shared";
    argv[n++] = (char *)c_path;
    for (int i = 0; i < nobjs; i++) argv[n++] = (char *)objs[i];
    argv[n++] = asm_path;
    argv[n++] = "-Wl,--whole-archive"; /* the runtime's API must be exported even though nothing calls it */
    argv[n++] = (char *)link_runtime(t);
    argv[n++] = "-Wl,--no-whole-archive";
    /* the cross runtime is built by that architecture's gcc (libgomp), whatever compiler built rsrc */
    argv[n++] = foreign ? "-fopenmp" : RSRC_OPENMP_FLAG;
    char *deps = xstrdup(RSRC_RUNTIME_DEPS);
    for (char *tok = strtok(deps, " "); tok && n < nobjs + 56; tok = strtok(NULL, " ")) argv[n++] = tok;
    argv[n++] = "-lm";
    argv[n++] = "-o";
    argv[n++] = linked;
    argv[n] = NULL;
    double t0 = rsrc_now();
    run_linker(argv, out_path);
    if (splice) {
        const char *why = splice_blob(linked, blob_path, SPLICE_HEAD, tmp_out);
        if (why) { /* laid out otherwise: the whole blob through the linker after all */
            rsrc_note(1, "%s: the constants cannot be added after the link (%s): linking all %.1f MB", out_path, why,
                      (double)bs.st_size / 1e6);
            write_blob_asm(asm_path, blob_path, 0, true);
            argv[n - 1] = tmp_out;
            run_linker(argv, out_path);
        } else {
            rsrc_note(1, "added %.1f MB of constants after the link", (double)(bs.st_size - SPLICE_HEAD) / 1e6);
        }
        unlink(linked);
        release_temp(linked);
        free(linked);
    }
    stamp_digest(tmp_out);
    rsrc_note(1, "compiled and linked in %.2f s", rsrc_now() - t0);
    output_commit(tmp_out, out_path, 0755);
    free(argv);
    free(deps);
    cc_strings_free(&own);
    free(asm_path);
}
