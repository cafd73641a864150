/*
 * run_parallel.c — rsr-run --parallel N outside --bench: many prompts (-f FILE, one per line; or
 * --tokens, the same ids N times) continued together through one batch (rsr_batch_eval).
 *
 * N slots each hold a session. Every step gives each busy slot's sequence either its prompt's
 * next chunk (at most CHUNK tokens, so that a long prompt does not stall the others' decode) or
 * its one new token; a slot whose continuation ends (the end-of-text or end-of-turn token, -n
 * tokens, a stop string, the context) takes the next prompt. Each prompt's continuation is what
 * `rsr-run -p LINE --seed S+i` gives alone (i its line's index from 0): the batch gives every
 * session the bits of its solo run, and each prompt draws from a random state of its own.
 * Continuations are printed in the order of the prompts, each as soon as it and those before it
 * are done.
 */
#include <stdlib.h>
#include <string.h>

#include "rsr-run.h"

#define CHUNK 32 /* prompt tokens a sequence gives one step */

typedef struct job {
    int32_t *ids, n_ids; /* the prompt */
    const char *text;    /* its text (NULL for --tokens) */
    int32_t *out;        /* generated ids */
    int32_t n_out;
    char *text_bytes; /* their bytes, as the output shows them */
    size_t n_bytes;
    int done;
} job;

typedef struct slot {
    rsr_session *s;
    job *j;       /* NULL: free */
    int32_t fed;  /* prompt tokens given so far */
    int32_t next; /* the token chosen after the last step */
    uint64_t rng;
    recent_tokens recent;  /* the repetition penalty's tokens */
    rsr_sampler_params sp; /* the sampler of this step, with them */
} slot;

/* Appends token t's bytes to the job's text as the streamed output shows them (special tokens
 * only with --special); 1 when the text now holds a stop string. */
static int add_text(rsr_tokenizer *tok, const run_options *o, job *j, int32_t t) {
    size_t len;
    const char *piece = tok ? api.tokenizer_token_piece(tok, t, &len) : NULL;
    if (!piece || (!o->special && api.tokenizer_is_special(tok, t))) return 0;
    j->text_bytes = realloc(j->text_bytes, j->n_bytes + len + 1);
    if (!j->text_bytes) die("out of memory");
    memcpy(j->text_bytes + j->n_bytes, piece, len);
    j->n_bytes += len;
    j->text_bytes[j->n_bytes] = 0;
    for (int k = 0; k < o->num_stop; k++)
        if (memmem(j->text_bytes, j->n_bytes, o->stop[k], strlen(o->stop[k]))) return 1;
    return 0;
}

static void print_job(const run_options *o, const job *j) {
    if (!j->text) { /* --tokens: the generated ids on one line */
        for (int32_t i = 0; i < j->n_out; i++) printf("%s%d", i ? " " : "", j->out[i]);
        putchar('\n');
        flush_stdout();
    } else {
        print_continuation(o, j->text, j->text_bytes ? j->text_bytes : "", j->n_bytes);
    }
}

void run_parallel(rsr_model *m, const rsr_model_info *info, rsr_tokenizer *tok, const run_options *o, int32_t **prompts,
                  int32_t *lens, const char **texts, int count) {
    const int32_t ctx = o->ctx ? o->ctx : info->max_positions;
    const long n_gen = o->n_gen >= 0 ? o->n_gen : texts ? 256 : 16;
    int32_t stop_ids[3] = {info->eos_token_id, -1, -1};
    if (tok) {
        rsr_tokenizer_info ti;
        api.tokenizer_get_info(tok, &ti);
        stop_ids[1] = ti.eos_token_id, stop_ids[2] = ti.eot_token_id;
    }
    job *jobs = calloc((size_t)count, sizeof *jobs);
    const int nslots = o->parallel < count ? o->parallel : count;
    slot *slots = calloc((size_t)nslots, sizeof *slots);
    rsr_seq *q = calloc((size_t)nslots, sizeof *q);
    int *owner = calloc((size_t)nslots, sizeof *owner);
    if (!jobs || !slots || !q || !owner) die("out of memory");
    for (int i = 0; i < count; i++) {
        jobs[i] = (job){.ids = prompts[i], .n_ids = lens[i], .text = texts ? texts[i] : NULL};
        if (lens[i] >= ctx)
            die("prompt %d has %d tokens, the context %d: shorten it, or %s", i + 1, lens[i], ctx,
                ctx_advice(ctx, info->max_positions));
    }
    rsr_batch *b;
    if (api.batch_create(m, 0, &b) != RSR_OK) die("--parallel: %s", api.batch_errmsg(b));
    /* each session's cache holds what its sequence can reach: the longest prompt and -n tokens
     * (within --ctx or the model's context), not the model's whole context per slot */
    int32_t longest = 0;
    for (int i = 0; i < count; i++) longest = lens[i] > longest ? lens[i] : longest;
    rsr_session_params sp = o->session;
    sp.max_positions = (long)longest + n_gen < ctx ? (int32_t)(longest + n_gen) : ctx;
    sp.batch = 1; /* the batch holds the steps' activations */
    for (int k = 0; k < nslots; k++) {
        if (api.session_create(m, &sp, &slots[k].s) != RSR_OK) die("--parallel: %s", api.model_errmsg(m));
        if (!recent_init(&slots[k].recent, o->repeat_last_n)) die("out of memory");
    }

    int next_job = 0, printed = 0;
    long generated = 0, prompt_tokens = 0;
    double t0 = now();
    for (;;) {
        int nq = 0;
        for (int k = 0; k < nslots; k++) {
            slot *sl = &slots[k];
            if (!sl->j && next_job < count) { /* a free slot takes the next prompt */
                sl->j = &jobs[next_job], sl->fed = 0;
                sl->rng = (o->seed + (uint64_t)next_job) * 0x9e3779b97f4a7c15u + 1, sl->recent.n = 0;
                check(api.session_reset(sl->s), sl->s);
                next_job++;
            }
            if (!sl->j) continue;
            rsr_seq *x = &q[nq];
            *x = (rsr_seq){
                .session = sl->s, .output = RSR_OUTPUT_SAMPLE, .token = &sl->next, .sampler = &sl->sp, .rng = &sl->rng};
            if (sl->fed < sl->j->n_ids) {
                int32_t n = sl->j->n_ids - sl->fed < CHUNK ? sl->j->n_ids - sl->fed : CHUNK;
                x->tokens = sl->j->ids + sl->fed, x->n = n;
                if (sl->fed + n < sl->j->n_ids) x->output = RSR_OUTPUT_NONE;
                sl->fed += n, prompt_tokens += n;
            } else {
                x->tokens = &sl->j->out[sl->j->n_out - 1], x->n = 1;
            }
            sl->sp = run_recent_push(&sl->recent, o, x->tokens, x->n);
            owner[nq++] = k;
        }
        if (!nq) break;
        if (api.batch_eval(b, q, nq) != RSR_OK) die("--parallel: %s", api.batch_errmsg(b));
        for (int i = 0; i < nq; i++) { /* the sequences whose prompt is in: their new token */
            slot *sl = &slots[owner[i]];
            job *j = sl->j;
            if (q[i].output == RSR_OUTPUT_NONE) continue;
            int32_t t = sl->next;
            int end = (long)j->n_out >= n_gen ||
                      (!o->ignore_eos && (t == stop_ids[0] || t == stop_ids[1] || t == stop_ids[2]));
            if (!end) {
                j->out = realloc(j->out, sizeof *j->out * (size_t)(j->n_out + 1));
                j->out[j->n_out++] = t, generated++;
                end = add_text(tok, o, j, t) || (long)j->n_out >= n_gen || api.session_position(sl->s) >= ctx;
            }
            if (end) j->done = 1, sl->j = NULL;
        }
        while (printed < count && jobs[printed].done) print_job(o, &jobs[printed++]);
    }
    double t = now() - t0;
    fprintf(stderr,
            "rsr-run: %d prompts, %d at a time: %ld prompt tokens and %ld generated in %.3f s (%.1f tok/s "
            "together)\n",
            count, nslots, prompt_tokens, generated, t, t > 0 ? (double)(prompt_tokens + generated) / t : 0.0);
    for (int k = 0; k < nslots; k++) api.session_free(slots[k].s), free(slots[k].recent.ids);
    api.batch_free(b);
    for (int i = 0; i < count; i++) free(jobs[i].out), free(jobs[i].text_bytes);
    free(jobs), free(slots), free(q), free(owner);
}
