/*
 * serve_embed.c — the embedder: a thread of its own, beside the engine, that computes POST
 * /v1/embeddings and scores the prompts of completions asked for with echo and logprobs (the jobs
 * of score_job), its queue, its turns and its drain; and the embeddings endpoint (its checks, the
 * inputs' tokens, the vectors as JSON or base64). Uses the model's API (a session of its own,
 * and the scorer's), pthreads, serve_log_softmax (serve_engine.c), cJSON and the replies of
 * serve_http.c.
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "encode_all.h"
#include "serve_server.h"

/* POST /v1/embeddings is computed on a thread of its own (the embedder) with a session of its own,
 * made at the first request and kept (a KV cache of --ctx positions), one request at a time in
 * the order they came. So are the prompts of completions with echo and logprobs: their tokens'
 * log-probabilities need the logits of every position, which the engine's steps do not give. Not in the engine: rsr_session_embed evaluates a whole text in one call,
 * which between two of the engine's steps would stall every running completion for as long as
 * the text takes (the engine feeds prompts --chunk tokens a step for that reason). Not on the
 * connections' threads: each would keep an OpenMP thread pool of its own for as long as it lives.
 * Distinct sessions of one model run at once (rsr.h), so the engine and the embedder share the
 * CPUs: completions come slower while embeddings are computed, but never stop, and nothing is
 * held by both (the embedder never takes the engine's lock; the tokenizer has none).
 * Requests share the thread by turns: a turn computes one input of an embeddings request, or
 * SCORE_CHUNK positions of a scored prompt, then the request goes behind the others waiting; so a
 * one-word embedding waits for at most one input of another's embeddings or one chunk of a scored
 * prompt (66 prompts of 4000 tokens once held it for two minutes, then one prompt for seconds).
 * A prompt being scored keeps its place in a second session (the scorer's) between its turns;
 * another scored prompt starts when it is done. Up to --queue requests wait (503 beyond, as for
 * completions); a request whose client goes away leaves the queue at once, or stops after the
 * turn being computed; a drain
 * lets running and waiting requests finish until --drain's deadline and cancels the rest. */
struct embedder {
    rsr_model *m;
    rsr_session_params sp;
    int32_t hidden, vocab, max_queue;
    rsr_session *s;       /* the embedder's thread's alone; NULL until the first request */
    rsr_session *score_s; /* the scorer's: input `done` of the job `scoring` is evaluated in it */
    float *score_lg;      /* SCORE_CHUNK rows of logits */
    embed_job *scoring;   /* under the lock: the scored prompt part-way through an input, or NULL */
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t changed; /* a job came, finished or was cancelled */
    embed_job *head, *tail; /* waiting, first come first */
    int32_t queued;
    embed_job *busy; /* the job being computed, or NULL */
    bool draining, stopping;
    long inputs, tokens; /* embedded: /metrics */
    long scored;         /* prompt tokens scored */
};

static void embed_unref_n(embed_job *j, int n) { /* under the lock: n references given up at once */
    if ((j->refs -= n) > 0) return;
    serve_embed_params_free(&j->p);
    free(j->out), free(j->lp), free(j);
}
static void embed_unref(embed_job *j) { embed_unref_n(j, 1); }

/* Whether the job goes on to its next input (not cancelled: read under the lock). */
static bool embed_goes_on(embedder *em, embed_job *j) {
    pthread_mutex_lock(&em->lock);
    bool on = !j->cancelled;
    pthread_mutex_unlock(&em->lock);
    return on;
}

/* A prompt scored (echo with logprobs): the log-probability of each of its tokens after the first,
 * and the alternatives', from the exact logits of every position (rsr_session_eval_all), under the
 * definition of a generated token's (serve_log_softmax: temperature 1, no penalty). One turn
 * scores SCORE_CHUNK positions of the input being scored, in the scorer's session, which keeps
 * the positions before them. */
#define SCORE_CHUNK 64
static embed_state score_compute(embedder *em, embed_job *j) {
    if (!em->score_s && api.session_create(em->m, &em->sp, &em->score_s) != RSR_OK) {
        snprintf(j->err, sizeof j->err, "the scorer's session: %s", api.model_errmsg(em->m));
        em->score_s = NULL;
        return EMBED_FAILED;
    }
    if (!em->score_lg && !(em->score_lg = malloc(sizeof *em->score_lg * SCORE_CHUNK * (size_t)em->vocab)))
        return snprintf(j->err, sizeof j->err, "out of memory for the prompt's logits"), EMBED_FAILED;
    const int32_t *ids = j->p.in[j->done].ids, n = j->p.in[j->done].n_ids, at = j->at;
    int32_t m = n - 1 - at < SCORE_CHUNK ? n - 1 - at : SCORE_CHUNK; /* the last token scores none */
    if (!embed_goes_on(em, j)) return EMBED_CANCELLED;
    if (at == 0) { /* a new input: the session is the prompt's from now until its last chunk */
        pthread_mutex_lock(&em->lock);
        em->scoring = j;
        pthread_mutex_unlock(&em->lock);
        if (api.session_reset(em->score_s) != RSR_OK) m = -1;
    }
    if (m < 0 || (m > 0 && api.session_eval_all(em->score_s, ids + at, m, em->score_lg) != RSR_OK)) {
        snprintf(j->err, sizeof j->err, "%s", api.session_errmsg(em->score_s));
        return EMBED_FAILED;
    }
    serve_logprob *lp = j->lp + j->scored_before;
    for (int32_t r = 0; r < m; r++) {
        const float *row = em->score_lg + (size_t)r * (size_t)em->vocab;
        serve_logprob *x = &lp[at + r + 1];
        double lse = serve_log_softmax(row, em->vocab, j->top, x);
        x->token = ids[at + r + 1], x->logprob = (float)(row[x->token] - lse);
    }
    if ((j->at += m) < n - 1) return EMBED_RUNNING;
    pthread_mutex_lock(&em->lock); /* the input is scored: the session is free for another prompt */
    em->scored += n - 1, em->scoring = NULL;
    pthread_mutex_unlock(&em->lock);
    j->scored_before += n, j->at = 0;
    return ++j->done < j->p.n_in ? EMBED_RUNNING : EMBED_DONE;
}

/* Every input of j, outside the lock (j's inputs and vectors are the thread's while it runs). */
static embed_state embed_compute(embedder *em, embed_job *j) {
    if (j->lp) return score_compute(em, j);
    if (!em->s && api.session_create(em->m, &em->sp, &em->s) != RSR_OK) {
        snprintf(j->err, sizeof j->err, "the embeddings' session: %s", api.model_errmsg(em->m));
        em->s = NULL; /* made again at the next request */
        return EMBED_FAILED;
    }
    for (int32_t i = j->done; i < j->done + 1 && i < j->p.n_in; i++) { /* one input a turn (embed_main) */
        if (!embed_goes_on(em, j)) return EMBED_CANCELLED;
        float *v = j->out + (size_t)i * (size_t)em->hidden;
        if (api.session_embed(em->s, j->p.in[i].ids, j->p.in[i].n_ids, 1, v) != RSR_OK) {
            snprintf(j->err, sizeof j->err, "%s", api.session_errmsg(em->s));
            return EMBED_FAILED;
        }
        for (int32_t k = 0; k < em->hidden; k++)
            if (!isfinite(v[k])) {
                snprintf(j->err, sizeof j->err, "the embedding of input %d is not finite (the model overflowed)", i);
                return EMBED_FAILED;
            }
        pthread_mutex_lock(&em->lock);
        em->inputs++, em->tokens += j->p.in[i].n_ids;
        pthread_mutex_unlock(&em->lock);
    }
    return ++j->done < j->p.n_in ? EMBED_RUNNING : EMBED_DONE;
}

/* The next job to take a turn, out of the queue (under the lock): the first one waiting, but a
 * scored prompt only when the scorer's session is free or its own. */
static embed_job *embed_next(embedder *em) {
    for (embed_job **at = &em->head, *prev = NULL; *at; prev = *at, at = &(*at)->next) {
        embed_job *j = *at;
        if (j->lp && em->scoring && em->scoring != j) continue;
        *at = j->next, em->queued--;
        if (em->tail == j) em->tail = prev;
        return j;
    }
    return NULL;
}

static void *embed_main(void *arg) {
    embedder *em = arg;
    pthread_mutex_lock(&em->lock);
    for (;;) {
        while (!em->head && !em->stopping) pthread_cond_wait(&em->changed, &em->lock);
        if (em->stopping) break; /* the connections are gone: embedder_free drops what waits */
        embed_job *j = embed_next(em);
        if (!j) { /* cannot be: the scoring job is queued or was unlinked (which frees the scorer) */
            em->scoring = NULL;
            continue;
        }
        em->busy = j;
        j->state = EMBED_RUNNING;
        pthread_mutex_unlock(&em->lock);
        embed_state st = embed_compute(em, j);
        pthread_mutex_lock(&em->lock);
        em->busy = NULL;
        if (st == EMBED_RUNNING && !j->cancelled && !em->stopping) { /* more to do: behind the others */
            j->state = EMBED_QUEUED, j->next = NULL;
            if (em->tail)
                em->tail->next = j;
            else
                em->head = j;
            em->tail = j, em->queued++;
            continue;
        }
        if (em->scoring == j) em->scoring = NULL;
        j->state = st == EMBED_RUNNING ? EMBED_CANCELLED : st;
        embed_unref(j);
        pthread_cond_broadcast(&em->changed);
    }
    pthread_mutex_unlock(&em->lock);
    return NULL;
}

embedder *embedder_start(rsr_model *m, const rsr_session_params *sp, int32_t hidden, int32_t vocab, int32_t max_queue) {
    embedder *em = calloc(1, sizeof *em);
    if (!em) return NULL;
    em->m = m, em->sp = *sp, em->hidden = hidden, em->vocab = vocab, em->max_queue = max_queue;
    pthread_mutex_init(&em->lock, NULL);
    pthread_cond_init(&em->changed, NULL);
    if (pthread_create(&em->thread, NULL, embed_main, em) != 0) {
        pthread_mutex_destroy(&em->lock), pthread_cond_destroy(&em->changed), free(em);
        return NULL;
    }
    return em;
}

/* Takes the job (refs 2: the embedder's and the caller's): 0, or 1 when the server is draining,
 * 2 when the queue is full. */
int embedder_submit(embedder *em, embed_job *j) {
    pthread_mutex_lock(&em->lock);
    int refused = em->draining ? 1 : em->queued + (em->busy != NULL) > em->max_queue ? 2 : 0;
    if (!refused) {
        j->refs = 2, j->state = EMBED_QUEUED, j->next = NULL;
        if (em->tail)
            em->tail->next = j;
        else
            em->head = j;
        em->tail = j, em->queued++;
        pthread_cond_broadcast(&em->changed);
    }
    pthread_mutex_unlock(&em->lock);
    return refused;
}

/* Out of the queue, cancelled (under the lock); false when it was not queued. The embedder's
 * reference is the caller's to give up. */
static bool embed_unlink(embedder *em, embed_job *j) {
    embed_job **at = &em->head, *prev = NULL;
    while (*at && *at != j) prev = *at, at = &(*at)->next;
    if (!*at) return false;
    *at = j->next, em->queued--;
    if (em->tail == j) em->tail = prev;
    if (em->scoring == j) em->scoring = NULL;
    j->state = EMBED_CANCELLED;
    return true;
}

static void embed_dequeue(embedder *em, embed_job *j) {
    if (embed_unlink(em, j)) embed_unref(j);
}

/* Waits for the job to end, looking at the client's socket four times a second; true when the
 * client has gone (the caller then gives the job up). */
bool embedder_wait(embedder *em, embed_job *j, int fd) {
    bool gone = false;
    pthread_mutex_lock(&em->lock);
    while ((j->state == EMBED_QUEUED || j->state == EMBED_RUNNING) && !gone) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 250000000;
        if (ts.tv_nsec >= 1000000000) ts.tv_sec++, ts.tv_nsec -= 1000000000;
        pthread_cond_timedwait(&em->changed, &em->lock, &ts);
        gone = (j->state == EMBED_QUEUED || j->state == EMBED_RUNNING) && serve_client_gone(fd);
    }
    pthread_mutex_unlock(&em->lock);
    return gone;
}

/* The connection's reference given up: a job still waiting leaves the queue, a running one stops
 * after its input. */
void embedder_release(embedder *em, embed_job *j) {
    pthread_mutex_lock(&em->lock);
    int refs = 1; /* the connection's, and the embedder's with a job taken out of the queue */
    if (j->state == EMBED_QUEUED && embed_unlink(em, j))
        refs = 2;
    else if (j->state == EMBED_RUNNING)
        j->cancelled = true;
    embed_unref_n(j, refs);
    pthread_mutex_unlock(&em->lock);
}

/* SIGINT/SIGTERM: no new request; the running and waiting ones finish until `until` (serve_now's
 * clock), then the rest are cancelled (their connections answer 503). */
void embedder_drain(embedder *em, double until) {
    pthread_mutex_lock(&em->lock);
    em->draining = true;
    while ((em->head || em->busy) && serve_now() < until) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 100000000;
        if (ts.tv_nsec >= 1000000000) ts.tv_sec++, ts.tv_nsec -= 1000000000;
        pthread_cond_timedwait(&em->changed, &em->lock, &ts);
    }
    while (em->head) embed_dequeue(em, em->head);
    if (em->busy) em->busy->cancelled = true; /* it stops after its input */
    pthread_cond_broadcast(&em->changed);
    pthread_mutex_unlock(&em->lock);
}

/* After the connections are gone: the thread stopped, the session freed. */
void embedder_free(embedder *em) {
    pthread_mutex_lock(&em->lock);
    em->stopping = true;
    pthread_cond_broadcast(&em->changed);
    pthread_mutex_unlock(&em->lock);
    pthread_join(em->thread, NULL);
    while (em->head) embed_dequeue(em, em->head);
    api.session_free(em->s), api.session_free(em->score_s), free(em->score_lg);
    pthread_mutex_destroy(&em->lock), pthread_cond_destroy(&em->changed);
    free(em);
}

/* For /metrics: inputs and tokens embedded, prompt tokens scored, requests waiting. */
void embedder_counts(embedder *em, long *inputs, long *tokens, long *scored, int32_t *waiting) {
    pthread_mutex_lock(&em->lock);
    *inputs = em->inputs, *tokens = em->tokens, *scored = em->scored, *waiting = em->queued;
    pthread_mutex_unlock(&em->lock);
}

/* How a message names input i: "input" alone, or "input[i]" of a list. */
static const char *embed_where(const serve_embed_params *p, int32_t i, char where[32]) {
    if (!p->list) return "input";
    snprintf(where, 32, "input[%d]", i);
    return where;
}

/* The request's checks that need the model, and its texts' tokens (as rsr-run --embed makes
 * them: BOS and EOS where the model adds them, special tokens read as such). false with a 400
 * queued in *ret. */
static bool embed_inputs(server *sv, struct MHD_Connection *c, embed_job *j, enum MHD_Result *ret) {
    const int32_t ctx = serve_ctx(sv->e);
    serve_embed_params *p = &j->p;
    char err[512] = "", where[32];
    serve_refusal r;
    if (!serve_admit_model(sv->model_id, sv->strict_model, p->model, &r)) return *ret = send_refusal(c, &r), false;
    if (p->dimensions >= 0 && p->dimensions != sv->info.hidden_size)
        return *ret = send_error(c, 400, "invalid_request_error", "dimensions", NULL,
                                 "'dimensions' is %d; this model's embeddings have %d (its hidden size), and are not "
                                 "shortened",
                                 p->dimensions, sv->info.hidden_size),
               false;
    for (int32_t i = 0; i < p->n_in && !sv->tok; i++)
        if (p->in[i].text) {
            snprintf(err, sizeof err, "%s, a text,", embed_where(p, i, where));
            return *ret = no_tokenizer(c, "input", err), false;
        }
    for (int32_t i = 0; i < p->n_in && !*err; i++) {
        serve_embed_input *in = &p->in[i];
        if (!in->text) continue;
        rsr_status st;
        in->ids =
            encode_all(&api, sv->tok, in->text, -1, RSR_ENCODE_ADD_SPECIAL | RSR_ENCODE_PARSE_SPECIAL, &in->n_ids, &st);
        if (st != RSR_OK)
            snprintf(err, sizeof err, "%s: %s", embed_where(p, i, where),
                     st == RSR_ERR_OUT_OF_MEMORY ? "out of memory" : api.tokenizer_errmsg(sv->tok));
        else if (!in->n_ids)
            snprintf(err, sizeof err, "%s has no tokens", embed_where(p, i, where));
    }
    if (*err) return *ret = refuse_request(c, "input", err), false;
    for (int32_t i = 0; i < p->n_in; i++) {
        if (p->in[i].n_ids > ctx)
            return *ret = send_error(c, 400, "invalid_request_error", "input", "context_length_exceeded",
                                     "%s has %d tokens; the context here is %d (rsr-serve --ctx)",
                                     embed_where(p, i, where), p->in[i].n_ids, ctx),
                   false;
        j->tokens += p->in[i].n_ids;
    }
    if (!(j->out = malloc(sizeof(float) * (size_t)p->n_in * (size_t)sv->info.hidden_size)))
        return *ret = send_error(c, 503, "server_error", NULL, NULL, "out of memory for the embeddings"), false;
    return true;
}

/* n floats as their little-endian bytes in base64 (OpenAI's encoding_format "base64"). */
static char *base64_f32(const float *v, int32_t n) {
    static const char digits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t len = 4 * (size_t)n;
    unsigned char *b = malloc(len);
    char *out = malloc(4 * ((len + 2) / 3) + 1), *w = out;
    if (!b || !out) return free(b), free(out), NULL;
    for (int32_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &v[i], 4);
        for (int k = 0; k < 4; k++) b[4 * i + k] = (unsigned char)(u >> (8 * k));
    }
    for (size_t i = 0; i < len; i += 3) {
        uint32_t x = (uint32_t)b[i] << 16 | (i + 1 < len ? (uint32_t)b[i + 1] << 8 : 0) | (i + 2 < len ? b[i + 2] : 0);
        *w++ = digits[x >> 18], *w++ = digits[(x >> 12) & 63];
        *w++ = i + 1 < len ? digits[(x >> 6) & 63] : '=';
        *w++ = i + 2 < len ? digits[x & 63] : '=';
    }
    *w = 0;
    free(b);
    return out;
}

/* n floats as a JSON array, each with the 9 significant digits that give its float back. */
static char *json_f32(const float *v, int32_t n) {
    size_t cap = 24 * (size_t)n + 3, at = 1;
    char *out = malloc(cap);
    if (!out) return NULL;
    out[0] = '[';
    for (int32_t i = 0; i < n; i++) at += (size_t)snprintf(out + at, cap - at, "%s%.9g", i ? "," : "", (double)v[i]);
    snprintf(out + at, cap - at, "]");
    return out;
}

/* {"object": "list", "data": [{"object": "embedding", "index", "embedding"}], "model", "usage"} */
static enum MHD_Result embed_reply(server *sv, struct MHD_Connection *c, const embed_job *j) {
    const int32_t h = sv->info.hidden_size;
    cJSON *root = cJSON_CreateObject(), *data;
    cJSON_AddStringToObject(root, "object", "list");
    data = cJSON_AddArrayToObject(root, "data");
    bool ok = data != NULL;
    for (int32_t i = 0; ok && i < j->p.n_in; i++) {
        char *v =
            j->p.base64 ? base64_f32(j->out + (size_t)i * (size_t)h, h) : json_f32(j->out + (size_t)i * (size_t)h, h);
        cJSON *e = v ? cJSON_CreateObject() : NULL;
        ok = e != NULL;
        if (ok) {
            cJSON_AddStringToObject(e, "object", "embedding");
            cJSON_AddNumberToObject(e, "index", i);
            cJSON_AddItemToObject(e, "embedding", j->p.base64 ? cJSON_CreateString(v) : cJSON_CreateRaw(v));
            cJSON_AddItemToArray(data, e);
        }
        free(v);
    }
    if (!ok) {
        cJSON_Delete(root);
        return send_error(c, 503, "server_error", NULL, NULL, "out of memory for the reply");
    }
    cJSON_AddStringToObject(root, "model", sv->model_id);
    cJSON *u = cJSON_AddObjectToObject(root, "usage");
    cJSON_AddNumberToObject(u, "prompt_tokens", j->tokens);
    cJSON_AddNumberToObject(u, "total_tokens", j->tokens);
    return send_json(c, MHD_HTTP_OK, root, 0);
}

/* POST /v1/embeddings: OpenAI's, every vector of unit length. */
enum MHD_Result endpoint_embeddings(server *sv, struct MHD_Connection *c, const char *body, size_t len) {
    embed_job *j = calloc(1, sizeof *j);
    char err[512];
    const char *param;
    enum MHD_Result ret = MHD_NO;
    if (!j) return send_error(c, 503, "server_error", NULL, NULL, "out of memory");
    if (!serve_embed_parse(body, len, sv->info.vocab_size, &j->p, err, sizeof err, &param)) {
        free(j);
        return send_error(c, 400, "invalid_request_error", param, NULL, "%s", err);
    }
    int refused = -1; /* -1: refused by embed_inputs (ret); 1: draining; 2: the queue is full */
    if (embed_inputs(sv, c, j, &ret)) refused = serve_draining(sv->e) ? 1 : embedder_submit(sv->emb, j);
    if (refused) {
        serve_embed_params_free(&j->p), free(j->out), free(j);
        return refused < 0
                   ? ret
                   : send_error(c, MHD_HTTP_SERVICE_UNAVAILABLE, "server_overloaded", NULL, NULL,
                                refused == 1 ? "the server is shutting down"
                                             : "the embeddings' queue is full (rsr-serve --queue); retry shortly");
    }
    if (embedder_wait(sv->emb, j, connection_fd(c))) { /* no one to answer: the work stops */
        embedder_release(sv->emb, j);
        return MHD_NO;
    }
    if (j->state == EMBED_FAILED)
        ret = send_error(c, 500, "server_error", NULL, NULL, "%s", j->err);
    else if (j->state == EMBED_CANCELLED)
        ret = send_error(c, MHD_HTTP_SERVICE_UNAVAILABLE, "server_overloaded", NULL, NULL,
                         "the server stopped before the request finished");
    else
        ret = embed_reply(sv, c, j);
    embedder_release(sv->emb, j);
    return ret;
}

/* The embedder's job that scores every prompt of the request (echo with logprobs), or NULL when
 * out of memory. */
embed_job *score_job(serve_job *const *js, int32_t n) {
    embed_job *s = calloc(1, sizeof *s);
    if (!s || !(s->p.in = calloc((size_t)n, sizeof *s->p.in))) return free(s), NULL;
    s->p.n_in = n, s->top = js[0]->p.top_logprobs;
    bool ok = true;
    for (int32_t k = 0; k < n && ok; k++) {
        serve_embed_input *in = &s->p.in[k];
        if ((ok = (in->ids = malloc(sizeof *in->ids * (size_t)js[k]->n_ids)) != NULL))
            memcpy(in->ids, js[k]->ids, sizeof *in->ids * (size_t)js[k]->n_ids), in->n_ids = js[k]->n_ids;
        s->tokens += js[k]->n_ids;
    }
    if (!ok || !(s->lp = calloc((size_t)s->tokens, sizeof *s->lp))) {
        serve_embed_params_free(&s->p), free(s);
        return NULL;
    }
    return s;
}
