/*
 * run_common.c — what the parts of rsr-run share (rsr-run.h): the loaded API, error exits, and
 * the next-token step every mode uses (exact or int8 logits, greedy or sampled).
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <math.h>
#include <string.h>
#include <time.h>

#include "ngram_draft.h"
#include "rsr-run.h"

rsr_api api;

void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fflush(stdout);
    fputs("rsr-run: error: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

void flush_stdout(void) {
    if (fflush(stdout) != 0 || ferror(stdout)) {
        int e = errno ? errno : EIO;
        clearerr(stdout);
        die("stdout: %s", strerror(e));
    }
}

double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void check(rsr_status st, rsr_session *s) {
    if (st != RSR_OK) die("%s", api.session_errmsg(s));
}

void eval_logits(const run_options *o, rsr_session *s, const int32_t *tokens, int32_t n, float *logits) {
    if (o->head_int8)
        check(api.session_eval_int8(s, tokens, n, logits, NULL), s);
    else
        check(api.session_eval(s, tokens, n, logits), s);
}

/* ---- speculative decoding: n-gram lookup, exact greedy verification ---- */

static void hist_push(spec_state *sp, const int32_t *tokens, int32_t n) {
    if (sp->n_hist + n > sp->cap_hist) {
        int32_t cap = (sp->n_hist + n) * 2;
        if (!(sp->hist = realloc(sp->hist, sizeof *sp->hist * (size_t)cap))) die("out of memory");
        sp->cap_hist = cap;
    }
    memcpy(sp->hist + sp->n_hist, tokens, sizeof *tokens * (size_t)n);
    sp->n_hist += n;
}

/* --spec-type draft: the draft model's greedy continuation of the text (draft_propose), at most max
 * tokens; their number. */
static int32_t model_draft(spec_state *sp, int32_t *draft, int32_t max) {
    spec_draft *d = sp->draft;
    char err[1024];
    const int32_t k = draft_propose(&d->dm, &d->q, sp->hist, sp->n_hist, d->p_min, draft, max, err, sizeof err);
    if (k < 0) die("-md: %s", err);
    return k;
}

/* The draft model of -md opened beside m (its threads), its vocabulary checked against m's (a
 * mismatch is an error that names it). Returns why speculation cannot use it, or NULL. */
static const char *draft_open(spec_state *sp, const run_options *o, rsr_model *m, int32_t ctx) {
    spec_draft *d = sp->draft = calloc(1, sizeof *d);
    static char why[1200];
    if (!d) die("out of memory");
    if (draft_model_open(&d->dm, o->draft_path, o->threads, &api, m, why, sizeof why)) die("-md %s", why);
    if (d->dm.recurrent) return "the draft's gated DeltaNet layers cannot go back a few positions yet";
    if (!draft_seq_init(&d->dm, &d->q, &o->session, ctx, why, sizeof why)) die("-md %s: %s", o->draft_path, why);
    d->p_min = o->draft_p_min > 0 ? o->draft_p_min - 1 : 0.75f;
    return NULL;
}

static void draft_close(spec_draft *d) {
    if (!d) return;
    draft_seq_free(&d->dm, &d->q);
    if (d->dm.m) d->dm.api.model_close(d->dm.m);
    if (d->dm.api.handle) dlclose(d->dm.api.handle);
    free(d);
}

/* --attention auto attends a decode step's query with Louver from 1024 keys on (AUTO_MIN_KEYS,
 * runtime/cpu/attention.c), and a step of several tokens densely: the two agree to Louver's
 * certified bound, not bit for bit, so under auto the drafts stay below that many keys. */
#define SPEC_AUTO_KEYS 1024

/* One step from token tok with a draft: [tok, draft] verified at once (rsr_session_eval_draft:
 * greedy, the longest prefix of the draft greedy decoding picks; sampled, speculative sampling's
 * rule), the cache cut after what was taken. Returns the first token chosen; the others wait in
 * the queue. */
static int32_t spec_step(const run_options *o, rsr_session *s, sample_state *st, int32_t tok, const int32_t *draft,
                         int32_t k) {
    spec_state *sp = &st->spec;
    int32_t seq[k + 1], chosen[k + 1], n_chosen;
    const double t0 = now();
    seq[0] = tok;
    memcpy(seq + 1, draft, sizeof *draft * (size_t)k);
    check(api.session_eval_draft(s, seq, k + 1, &o->sampler, &st->rng, chosen, &n_chosen), s);
    const int32_t a = n_chosen - 1; /* the drafted tokens taken */
    sp->steps++, sp->drafted += k, sp->accepted += a;
    spec_gate_verified(&sp->gate, now() - t0, k, a);
    /* the next draft's length: twice this one after a whole one was taken, else one past what was;
     * a stretch of text that repeats is drafted long, guesses that fail cost one or two rows */
    sp->k_next = a == k ? 2 * k : a + 1;
    memcpy(sp->queue, chosen + 1, sizeof *chosen * (size_t)a);
    sp->q_at = 0, sp->q_n = a;
    return chosen[0];
}

const char *spec_refusal(const run_options *o, const rsr_model_info *info) {
    return o->session.attention == RSR_ATTENTION_LOUVER
               ? "--attention louver attends one token's query otherwise than several tokens'"
           : o->sampler.repeat_penalty > 0 && o->sampler.repeat_penalty != 1 && o->repeat_last_n
               ? "--repeat-penalty is not applied to drafted tokens yet"
           : o->head_int8                    ? "--head int8's logits are not the exact ones"
           : strncmp(info->device, "cpu", 3) ? "the GPU gives no logits of every position"
                                             : NULL;
}

void spec_start(sample_state *st, const run_options *o, rsr_model *m, const rsr_model_info *info, int32_t ctx) {
    spec_state *sp = &st->spec;
    *sp = (spec_state){.ctx = ctx, .k_next = 4, .draft_max = o->draft_max ? o->draft_max : 16};
    if (!o->spec) return;
    const char *why = o->spec == SPEC_DRAFT ? draft_open(sp, o, m, ctx) : NULL;
    sp->mtp = o->spec == SPEC_MTP, sp->mtp_p_min = o->draft_p_min > 0 ? o->draft_p_min - 1 : 0;
    /* greedy n-gram drafts only (spec_gate.h: a seeded sampled run gives the same text every time) */
    spec_gate_init(&sp->gate, o->spec == SPEC_NGRAM && o->sampler.temperature <= 0);
    why = why ? why : spec_refusal(o, info);
    if (why) {
        fprintf(stderr, "rsr-run: note: --spec-type: decoding without speculation: %s\n", why);
        return;
    }
    sp->on = true;
    sp->dense = info->state_bytes > 0; /* a hybrid's sessions attend densely whatever auto says */
    if (!(sp->queue = malloc(sizeof *sp->queue * (size_t)(sp->draft_max + 2)))) die("out of memory");
}

int32_t run_position(rsr_session *s, const sample_state *st) {
    return api.session_position(s) - (st->spec.q_n - st->spec.q_at);
}

void spec_settle(rsr_session *s, sample_state *st) {
    spec_state *sp = &st->spec;
    if (sp->q_n > sp->q_at) check(api.session_truncate(s, run_position(s, st)), s);
    sp->q_at = sp->q_n = 0;
}

void spec_report(const sample_state *st) {
    const spec_state *sp = &st->spec;
    if (!sp->on) return; /* not asked for, or noted as not possible */
    fprintf(stderr, "rsr-run: speculative (%s): %ld steps, %ld drafted, %ld accepted (%.0f%%)",
            sp->draft ? "draft"
            : sp->mtp ? "draft-mtp"
                      : "ngram-simple",
            sp->steps, sp->drafted, sp->accepted,
            sp->drafted ? 100.0 * (double)sp->accepted / (double)sp->drafted : 0.0);
    if (sp->gate.on && sp->gate.step_s > 0)
        fprintf(stderr, "; %ld drafts held back (a drafted row %.2f of a step, %.0f%% of guesses taken)", sp->gate.held,
                sp->gate.row_s / sp->gate.step_s, 100 * spec_gate_alpha(&sp->gate));
    fputc('\n', stderr);
}

/* RSR_TRACE_DRAFTS=FILE: each draft proposed, a line "POS TOKEN D1 D2 ...": the position of the text's
 * next token TOKEN and the guesses after it (tests/gguf/qwen35_model.py drafts checks the MTP
 * layer's against its reference). */
static void trace_draft(int32_t pos, int32_t token, const int32_t *draft, int32_t k) {
    static FILE *f;
    static bool tried;
    if (!tried) {
        const char *path = getenv("RSR_TRACE_DRAFTS");
        tried = true;
        if (path && *path && !(f = fopen(path, "w"))) die("RSR_TRACE_DRAFTS=%s: %s", path, strerror(errno));
    }
    if (!f) return;
    fprintf(f, "%d %d", pos, token);
    for (int32_t i = 0; i < k; i++) fprintf(f, " %d", draft[i]);
    fputc('\n', f);
    fflush(f);
}

int32_t eval_next(const run_options *o, rsr_session *s, const int32_t *tokens, int32_t n, sample_state *st) {
    spec_state *spec = &st->spec;
    if (spec->on) {
        if (spec->q_at < spec->q_n) { /* tokens[0] was chosen by the last step and is in the cache already */
            hist_push(spec, tokens, n);
            return spec->queue[spec->q_at++];
        }
        spec->q_at = spec->q_n = 0;
        const int32_t pos = api.session_position(s);
        if (pos < spec->n_hist) spec->n_hist = pos; /* reset or cut back: the session holds a prefix of the text */
        hist_push(spec, tokens, n);                 /* (the drafts only come from it: any text is exact) */
        int32_t room = spec->ctx - pos - 1;         /* positions after tokens[0] */
        if (o->session.attention == RSR_ATTENTION_AUTO && !spec->dense && SPEC_AUTO_KEYS - 2 - pos < room)
            room = SPEC_AUTO_KEYS - 2 - pos; /* the drafts' keys below auto's first Louver step */
        if (o->session.batch > 0 && o->session.batch < room) room = o->session.batch; /* windows go back so far */
        const int32_t cap = spec->k_next > o->draft_min ? spec->k_next : o->draft_min;
        int32_t max = spec->draft_max < room ? spec->draft_max : room, draft[spec->draft_max + 1];
        if (cap < max) max = cap;
        int32_t k = 0;
        if (n == 1 && max > 0 && spec->mtp) { /* the MTP layer's guesses after tokens[0] */
            if (api.session_draft_mtp(s, tokens[0], max, spec->mtp_p_min, draft, &k) != RSR_OK) {
                fprintf(stderr, "rsr-run: note: the MTP layer drafted nothing: %s\n", api.session_errmsg(s));
                k = 0; /* the step goes on without a draft */
            }
        } else if (n == 1 && max > 0)
            k = spec->draft ? model_draft(spec, draft, max) : ngram_draft(spec->hist, spec->n_hist, draft, max);
        if (k > 0) trace_draft(pos, tokens[0], draft, k);
        if (k > 0 && k >= o->draft_min && spec_gate_open(&spec->gate, draft[0]))
            return spec_step(o, s, st, tokens[0], draft, k);
    }
    int32_t next;
    const double t0 = now();
    rsr_sampler_params sp = run_recent_push(&st->recent, o, tokens, n);
    if (o->head_int8) { /* every logit from the int8 head, then the sampler */
        eval_logits(o, s, tokens, n, st->logits);
        return api.sample(st->logits, st->vocab, &sp, &st->rng, st->probs, st->ids);
    }
    /* greedy: the certified head; sampling: exact logits of the rows that could matter */
    check(api.session_eval_sample(s, tokens, n, &sp, &st->rng, &next, NULL), s);
    if (spec->on && n == 1) spec_gate_plain(&spec->gate, now() - t0, next);
    return next;
}

rsr_sampler_params run_recent_push(recent_tokens *r, const run_options *o, const int32_t *tokens, int32_t n) {
    recent_push(r, tokens, n);
    return recent_sampler(r, o->sampler);
}

void sample_state_init(sample_state *st, const run_options *o, int32_t vocab) {
    st->vocab = vocab;
    st->rng = o->seed * 0x9e3779b97f4a7c15u + 1;
    st->logits = malloc(sizeof(float) * (size_t)vocab), st->probs = malloc(sizeof(float) * (size_t)vocab);
    st->ids = malloc(sizeof(int32_t) * (size_t)vocab);
    if (!st->logits || !st->probs || !st->ids || !recent_init(&st->recent, o->repeat_last_n)) die("out of memory");
}

void sample_state_free(sample_state *st) {
    free(st->logits), free(st->probs), free(st->ids), free(st->recent.ids);
    free(st->spec.hist), free(st->spec.queue);
    draft_close(st->spec.draft);
}

rsr_tokenizer *require_tokenizer(rsr_model *m, const char *why) {
    rsr_tokenizer *tok;
    if (api.model_tokenizer(m, &tok) != RSR_OK) die("%s needs text, but %s", why, api.model_errmsg(m));
    return tok;
}

const char *ctx_advice(int32_t ctx, int32_t model_max) {
    static __thread char buf[96];
    if (ctx < model_max)
        snprintf(buf, sizeof buf, "raise --ctx (the model allows %d)", model_max);
    else
        snprintf(buf, sizeof buf, "%d is the model's whole context", model_max);
    return buf;
}
