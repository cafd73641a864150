/*
 * progress.c — what a long compile shows while it runs, and where its time went.
 *
 * On a terminal one status line is redrawn in place (layer, elapsed, ETA, the matrix at hand);
 * forced on elsewhere (--progress) it prints one line per finished layer instead, which reads
 * well in a build log. The per-matrix work (load, analyse, emit) costs about the same per layer,
 * so the rate so far predicts its rest; the stages after it (LLVM, the C compiler, the link)
 * report nothing while they run, so their time is predicted from the amount of code they get
 * (progress_expect_after) and added to the ETA from the start. While such a stage runs, a thread
 * redraws the line every quarter second so that its clock moves. Stage timings are summed as the
 * pipeline goes and printed by -v.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "rsrc.h"

static const char *const stage_names[NUM_STAGES] = {"load", "analyse", "tune", "emit", "LLVM optimise+codegen", "link"};
static double stage_seconds[NUM_STAGES];
static enum stage current_stage = STAGE_LOAD;
static double stage_since = -1;

static bool stage_held;

void stage_hold(bool on) { stage_held = on; }

void stage_enter(enum stage s) {
    if (stage_held) return;
    double now = rsrc_now();
    if (stage_since >= 0) stage_seconds[current_stage] += now - stage_since;
    current_stage = s, stage_since = now;
}

void stage_report(double total) {
    stage_enter(current_stage);
    if (rsrc_verbosity < 1) return;
    char line[512];
    int n = snprintf(line, sizeof line, "time:");
    for (int s = 0; s < NUM_STAGES; s++)
        if (s != STAGE_TUNE || stage_seconds[s] > 0)
            n += snprintf(line + n, sizeof line - (size_t)n, " %s %.2f s,", stage_names[s], stage_seconds[s]);
    snprintf(line + n, sizeof line - (size_t)n, " total %.2f s", total);
    rsrc_note(1, "%s", line);
}

static struct {
    enum progress_mode mode;
    bool shown; /* a status line is on the terminal */
    int layers, last_layer;
    uint64_t total_work;
    double start, last_draw;
    double work_start; /* when the per-matrix work began: its rate predicts its rest */
    double after_s;    /* the predicted time of the stages after the per-matrix work */
    char *stage;       /* the stage running now (after the per-matrix work), or NULL */
    double stage_left; /* its predicted seconds left when it began, and the later ones' */
    double stage_start;
    pthread_t ticker;
    bool ticking;
} P;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static void progress_clear(void);

static void stop_ticker(void);

/* The compile's clock starts here; until progress_begin a phase line may say what runs. */
void progress_open(enum progress_mode mode) {
    diag_before_message(progress_clear); /* a message first erases the status line */
    P.mode = mode;
    P.start = P.last_draw = rsrc_now();
}

void progress_begin(enum progress_mode mode, int layers, uint64_t total_work) {
    if (P.start == 0) progress_open(mode);
    stop_ticker(); /* a phase line before the matrices is over */
    pthread_mutex_lock(&lock);
    free(P.stage);
    P.stage = NULL;
    pthread_mutex_unlock(&lock);
    P.mode = mode;
    P.layers = layers;
    P.total_work = total_work ? total_work : 1;
    P.last_layer = 0;
    P.work_start = rsrc_now();
    P.last_draw = 0; /* the first layer's line replaces the phase's at once */
}

void progress_expect_after(double seconds) { P.after_s = seconds > 0 ? seconds : 0; }

static void clock_text(char *buf, size_t n, double seconds) {
    long s = seconds < 0 ? 0 : (long)(seconds + 0.5);
    if (s >= 3600)
        snprintf(buf, n, "%ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
    else
        snprintf(buf, n, "%ld:%02ld", s / 60, s % 60);
}

static int terminal_columns(void) {
    struct winsize ws;
    if (ioctl(2, TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 40) return ws.ws_col;
    return 80;
}

static void clear_locked(void) {
    if (!P.shown) return;
    fputs("\r\033[K", stderr);
    fflush(stderr);
    P.shown = false;
}

static void progress_clear(void) {
    pthread_mutex_lock(&lock);
    clear_locked();
    pthread_mutex_unlock(&lock);
}

static void draw_locked(const char *text) {
    int cols = terminal_columns() - 1;
    fprintf(stderr, "\r\033[K%.*s", cols, text);
    fflush(stderr);
    P.shown = true;
}

/* layer: the layer being compiled (0-based); done: work finished so far, in total_work's units. */
void progress_update(int layer, uint64_t done, const char *what) {
    if (P.mode == PROGRESS_OFF) return;
    double now = rsrc_now(), elapsed = now - P.start, working = now - P.work_start;
    double frac = (double)done / (double)P.total_work;
    char el[32], eta[32];
    clock_text(el, sizeof el, elapsed);
    /* the rate of a whole layer predicts the rest; the first matrices' alone (one-time costs,
     * a cold cache) once read 56 minutes for a compile of two */
    if (frac > 0.0 && layer >= 1)
        clock_text(eta, sizeof eta, working / frac * (1.0 - frac) + P.after_s);
    else
        snprintf(eta, sizeof eta, "?");
    if (P.mode == PROGRESS_LINES) {
        while (P.last_layer < layer) { /* one line per layer finished */
            P.last_layer++;
            fprintf(stderr, "rsrc: layer %d/%d done, %s elapsed, ETA %s\n", P.last_layer, P.layers, el, eta);
        }
        return;
    }
    if (now - P.last_draw < 0.1 && layer == P.last_layer && P.shown) return;
    P.last_draw = now;
    P.last_layer = layer;
    char bar[21];
    int fill = (int)(frac * 20.0);
    for (int i = 0; i < 20; i++) bar[i] = i < fill ? '=' : ' ';
    bar[20] = 0;
    char *line = xasprintf("rsrc: [%s] layer %d/%d %3.0f%%  %s elapsed, ETA %s  %s", bar,
                           layer < P.layers ? layer + 1 : P.layers, P.layers, 100.0 * frac, el, eta, what ? what : "");
    pthread_mutex_lock(&lock);
    draw_locked(line);
    pthread_mutex_unlock(&lock);
    free(line);
}

/* The line of a running stage: its name, the elapsed time of the whole compile, and what is
 * left by the prediction (never below a second while the stage runs: it is not done yet). */
static void draw_stage_locked(void) {
    double now = rsrc_now();
    char el[32], eta[32];
    clock_text(el, sizeof el, now - P.start);
    double left = P.stage_left - (now - P.stage_start);
    clock_text(eta, sizeof eta, left > 1 ? left : 1);
    char *line = P.stage_left < 0 ? xasprintf("rsrc: %s  %s elapsed", P.stage, el)
                                  : xasprintf("rsrc: %s  %s elapsed, ETA %s", P.stage, el, eta);
    draw_locked(line);
    free(line);
}

static void *tick(void *arg) {
    (void)arg;
    for (;;) {
        nanosleep(&(struct timespec){0, 250000000}, NULL);
        pthread_mutex_lock(&lock);
        bool go = P.ticking;
        if (go && P.stage) draw_stage_locked();
        pthread_mutex_unlock(&lock);
        if (!go) return NULL;
    }
}

static void stop_ticker(void) {
    pthread_mutex_lock(&lock);
    bool was = P.ticking;
    P.ticking = false;
    pthread_mutex_unlock(&lock);
    if (was) pthread_join(P.ticker, NULL);
}

static void show_stage(const char *what, double left, double expect_s);

/* A stage after the per-matrix work (it cannot report its own progress); expect_s: its share of
 * the prediction of the stages after the matrices, which leaves the ETA of the stages after it. */
void progress_stage(const char *what, double expect_s) { show_stage(what, P.after_s, expect_s); }

/* Work before the matrices (the embedding, the LM head, the tokenizer): named, with the clock, and
 * no ETA (nothing predicts it). */
void progress_phase(const char *what) { show_stage(what, -1, 0); }

static void show_stage(const char *what, double left, double expect_s) {
    if (P.mode == PROGRESS_OFF) return;
    char el[32];
    clock_text(el, sizeof el, rsrc_now() - P.start);
    if (P.mode == PROGRESS_LINES) {
        fprintf(stderr, "rsrc: %s (%s elapsed)\n", what, el);
        return;
    }
    pthread_mutex_lock(&lock);
    free(P.stage);
    P.stage = xstrdup(what);
    P.stage_start = rsrc_now();
    P.stage_left = left;
    P.after_s -= expect_s > 0 ? expect_s : 0;
    if (P.after_s < 0) P.after_s = 0;
    draw_stage_locked();
    bool start = !P.ticking;
    P.ticking = true;
    pthread_mutex_unlock(&lock);
    if (start && pthread_create(&P.ticker, NULL, tick, NULL) != 0) P.ticking = false; /* then it does not move */
}

void progress_end(void) {
    stop_ticker();
    if (P.mode == PROGRESS_TERMINAL) progress_clear();
    P.mode = PROGRESS_OFF;
    free(P.stage);
    P.stage = NULL;
}
