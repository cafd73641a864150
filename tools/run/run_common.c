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

/* The draft's next guess after evaluating tokens [n]: its greedy token, and false when --draft-p-min
 * asks for a probability (the draft's softmax) the guess has not. */
static bool draft_guess(spec_draft *d, const int32_t *tokens, int32_t n, int32_t *guess) {
    if (!(d->p_min > 0)) {
        if (d->api.session_eval_greedy(d->s, tokens, n, guess) != RSR_OK) die("-md: %s", d->api.session_errmsg(d->s));
        return true;
    }
    if (d->api.session_eval(d->s, tokens, n, d->logits) != RSR_OK) die("-md: %s", d->api.session_errmsg(d->s));
    int32_t best = 0;
    for (int32_t v = 1; v < d->vocab; v++)
        if (d->logits[v] > d->logits[best] || (d->logits[best] != d->logits[best] && d->logits[v] == d->logits[v]))
            best = v;
    double z = 0;
    for (int32_t v = 0; v < d->vocab; v++) z += exp((double)d->logits[v] - (double)d->logits[best]);
    *guess = best;
    return 1 / z >= d->p_min; /* NaN logits: z NaN, no guess */
}

/* --spec-type draft: the draft model's greedy continuation of the text, at most max tokens and none
 * after a guess below --draft-p-min; their number (0: the draft's context is full, or its first
 * guess is unsure). Its cache keeps what it holds of the text: it goes back
 * to where that and the text part, reads the rest of the text, then guesses on its own. */
static int32_t model_draft(spec_state *sp, int32_t *draft, int32_t max) {
    spec_draft *d = sp->draft;
    int32_t same = 0;
    while (same < d->n_held && same < sp->n_hist && d->held[same] == sp->hist[same]) same++;
    if (same == sp->n_hist) same--; /* the text's last token is read again: its logits choose the first guess */
    if (max > d->ctx - sp->n_hist) max = d->ctx - sp->n_hist;
    if (max <= 0) return 0;
    if (same < d->n_held && d->api.session_reachable(d->s, same) != same) { /* windows gone past: start over */
        d->api.session_reset(d->s);
        same = 0;
    } else if (same < d->n_held && d->api.session_truncate(d->s, same) != RSR_OK) {
        die("-md: %s", d->api.session_errmsg(d->s));
    }
    const int32_t n = sp->n_hist - same;
    memcpy(d->held + same, sp->hist + same, sizeof *d->held * (size_t)n);
    d->n_held = sp->n_hist;
    if (!draft_guess(d, sp->hist + same, n, &draft[0])) return 0;
    for (int32_t k = 1; k < max; k++) {
        const bool sure = draft_guess(d, &draft[k - 1], 1, &draft[k]);
        d->held[d->n_held++] = draft[k - 1];
        if (!sure) return k;
    }
    return max;
}

/* A token's piece for a message: at most 24 bytes, control bytes as '?'. */
static void piece_text(char out[32], const char *p, size_t n) {
    size_t i = 0;
    for (; p && i < n && i < 24; i++) out[i] = (unsigned char)p[i] < 0x20 ? '?' : p[i];
    out[i] = 0;
}

/* The draft model of -md opened beside m (its threads), and its vocabulary checked against m's:
 * the size, then each token's piece where both have a tokenizer. A mismatch is an error that
 * names it. Returns why speculation cannot use it, or NULL. */
static const char *draft_open(spec_state *sp, const run_options *o, rsr_model *m, const rsr_model_info *info,
                              int32_t ctx) {
    spec_draft *d = sp->draft = calloc(1, sizeof *d);
    char err[1024];
    if (!d) die("out of memory");
    if (rsr_api_load(&d->api, o->draft_path, err, sizeof err) != 0) die("-md: %s", err);
    const rsr_model_params mp = {.num_threads = o->threads};
    if (d->api.model_open(&d->m, &mp) != RSR_OK) die("-md %s: %s", o->draft_path, d->api.model_errmsg(d->m));
    rsr_model_info di;
    d->api.model_get_info(d->m, &di);
    if (di.vocab_size != info->vocab_size)
        die("-md %s: a vocabulary of %d tokens where the model has %d: a draft model shares its model's vocabulary",
            o->draft_path, di.vocab_size, info->vocab_size);
    rsr_tokenizer *tm, *td;
    if (api.model_tokenizer(m, &tm) == RSR_OK && d->api.model_tokenizer(d->m, &td) == RSR_OK)
        for (int32_t id = 0; id < info->vocab_size; id++) {
            size_t lm = 0, ld = 0;
            const char *pm = api.tokenizer_token_piece(tm, id, &lm), *pd = d->api.tokenizer_token_piece(td, id, &ld);
            if (lm == ld && (!lm || !memcmp(pm, pd, lm))) continue;
            char a[32], b[32];
            piece_text(a, pd, ld), piece_text(b, pm, lm);
            die("-md %s: token %d is \"%s\" there and \"%s\" in the model: a draft model shares its model's "
                "vocabulary",
                o->draft_path, id, a, b);
        }
    if (di.state_bytes > 0) return "the draft's gated DeltaNet layers cannot go back a few positions yet";
    rsr_session_params dp = o->session;
    d->ctx = dp.max_positions = ctx < di.max_positions ? ctx : di.max_positions;
    if (d->api.session_create(d->m, &dp, &d->s) != RSR_OK) die("-md %s: %s", o->draft_path, d->api.model_errmsg(d->m));
    if (!(d->held = malloc(sizeof *d->held * (size_t)(d->ctx + 1)))) die("out of memory");
    d->p_min = o->draft_p_min > 0 ? o->draft_p_min - 1 : 0.75f, d->vocab = di.vocab_size;
    if (d->p_min > 0 && !(d->logits = malloc(sizeof *d->logits * (size_t)d->vocab))) die("out of memory");
    return NULL;
}

static void draft_close(spec_draft *d) {
    if (!d) return;
    if (d->s) d->api.session_free(d->s);
    if (d->m) d->api.model_close(d->m);
    if (d->api.handle) dlclose(d->api.handle);
    free(d->held), free(d->logits), free(d);
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
    seq[0] = tok;
    memcpy(seq + 1, draft, sizeof *draft * (size_t)k);
    check(api.session_eval_draft(s, seq, k + 1, &o->sampler, &st->rng, chosen, &n_chosen), s);
    const int32_t a = n_chosen - 1; /* the drafted tokens taken */
    sp->steps++, sp->drafted += k, sp->accepted += a;
    /* the next draft's length: twice this one after a whole one was taken, else one past what was;
     * a stretch of text that repeats is drafted long, guesses that fail cost one or two rows */
    sp->k_next = a == k ? 2 * k : a + 1;
    memcpy(sp->queue, chosen + 1, sizeof *chosen * (size_t)a);
    sp->q_at = 0, sp->q_n = a;
    return chosen[0];
}

void spec_start(sample_state *st, const run_options *o, rsr_model *m, const rsr_model_info *info, int32_t ctx) {
    spec_state *sp = &st->spec;
    *sp = (spec_state){.ctx = ctx, .k_next = 4, .draft_max = o->draft_max ? o->draft_max : 16};
    if (!o->spec) return;
    const char *why = o->spec == SPEC_DRAFT ? draft_open(sp, o, m, info, ctx) : NULL;
    why = why ? why
          : o->session.attention == RSR_ATTENTION_LOUVER
              ? "--attention louver attends one token's query otherwise than several tokens'"
          : o->sampler.repeat_penalty > 0 && o->sampler.repeat_penalty != 1 && o->repeat_last_n
              ? "--repeat-penalty is not applied to drafted tokens yet"
          : o->head_int8                    ? "--head int8's logits are not the exact ones"
          : strncmp(info->device, "cpu", 3) ? "the GPU gives no logits of every position"
                                            : NULL;
    if (why) {
        fprintf(stderr, "rsr-run: note: --spec-type: decoding without speculation: %s\n", why);
        return;
    }
    sp->on = true;
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
    fprintf(stderr, "rsr-run: speculative (%s): %ld steps, %ld drafted, %ld accepted (%.0f%%)\n",
            sp->draft ? "draft" : "ngram-simple", sp->steps, sp->drafted, sp->accepted,
            sp->drafted ? 100.0 * (double)sp->accepted / (double)sp->drafted : 0.0);
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
        if (o->session.attention == RSR_ATTENTION_AUTO && SPEC_AUTO_KEYS - 2 - pos < room)
            room = SPEC_AUTO_KEYS - 2 - pos; /* the drafts' keys below auto's first Louver step */
        if (o->session.batch > 0 && o->session.batch < room) room = o->session.batch; /* windows go back so far */
        const int32_t cap = spec->k_next > o->draft_min ? spec->k_next : o->draft_min;
        int32_t max = spec->draft_max < room ? spec->draft_max : room, draft[spec->draft_max + 1];
        if (cap < max) max = cap;
        int32_t k = n != 1 || max <= 0 ? 0
                    : spec->draft      ? model_draft(spec, draft, max)
                                       : ngram_draft(spec->hist, spec->n_hist, draft, max);
        if (k > 0 && k >= o->draft_min) return spec_step(o, s, st, tokens[0], draft, k);
    }
    int32_t next;
    rsr_sampler_params sp = run_recent_push(&st->recent, o, tokens, n);
    if (o->head_int8) { /* every logit from the int8 head, then the sampler */
        eval_logits(o, s, tokens, n, st->logits);
        return api.sample(st->logits, st->vocab, &sp, &st->rng, st->probs, st->ids);
    }
    /* greedy: the certified head; sampling: exact logits of the rows that could matter */
    check(api.session_eval_sample(s, tokens, n, &sp, &st->rng, &next, NULL), s);
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
