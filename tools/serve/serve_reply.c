/*
 * serve_reply.c — a completion's reply in OpenAI's shape: the choices (text, or a chat message
 * split into its thoughts, text and tool calls), the tokens' logprobs (chat's and completions'
 * shapes), the token ids, the envelope and the usage; whole (complete_reply) or as server-sent
 * events while the engine generates (complete_stream: the stream's events, read by
 * libmicrohttpd). Uses cJSON, the engine's jobs and lock (serve_engine.c), the tokenizer through
 * the model's API, the reply's split (serve_tools.c) and the replies of serve_http.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve_server.h"

static const char *finish_reason(serve_finish f) { return f == SERVE_LENGTH ? "length" : "stop"; }

/* The choice of a finished or partial job: text (or a chat message / delta), finish_reason. */
static cJSON *choice(const serve_job *j, const char *text, const char *finish, bool delta, bool role) {
    cJSON *ch = cJSON_CreateObject();
    cJSON_AddNumberToObject(ch, "index", j->p.index);
    if (!j->p.chat) {
        cJSON_AddStringToObject(ch, "text", text);
        cJSON_AddNullToObject(ch, "logprobs");
    } else {
        cJSON *msg = cJSON_AddObjectToObject(ch, delta ? "delta" : "message");
        if (role) cJSON_AddStringToObject(msg, "role", "assistant");
        if (text) cJSON_AddStringToObject(msg, "content", text);
    }
    if (finish)
        cJSON_AddStringToObject(ch, "finish_reason", finish);
    else
        cJSON_AddNullToObject(ch, "finish_reason");
    return ch;
}

/* A chat reply's calls are named after its id: call_<the id's tail>_<k>. */
static const char *call_base(const serve_job *j) {
    const char *dash = strrchr(j->id, '-');
    return dash ? dash + 1 : j->id;
}

static void add_text(cJSON *o, const char *key, const char *s, size_t n) {
    char *t = serve_utf8_clean(s, n);
    cJSON_AddStringToObject(o, key, t ? t : "");
    free(t);
}

/* A whole chat choice split into its parts (p->reply): thoughts as reasoning_content, the text,
 * and the tool calls (finish_reason "tool_calls"). */
static cJSON *chat_choice(const serve_job *j, const char *text) {
    serve_reply_parts parts;
    serve_split_reply((const serve_reply_shape *)&j->p.reply, text, strlen(text), true, call_base(j), &parts);
    const bool calls = parts.tool_calls != NULL;
    cJSON *ch = choice(j, NULL, calls ? "tool_calls" : finish_reason(j->finish), false, true);
    cJSON *msg = cJSON_GetObjectItemCaseSensitive(ch, "message");
    if (calls && !parts.n_content)
        cJSON_AddNullToObject(msg, "content");
    else
        add_text(msg, "content", parts.content, parts.n_content);
    if (parts.reasoning) add_text(msg, "reasoning_content", parts.reasoning, parts.n_reasoning);
    if (calls) cJSON_AddItemToObject(msg, "tool_calls", parts.tool_calls), parts.tool_calls = NULL;
    if (parts.call_error) cJSON_AddStringToObject(ch, "tool_call_error", parts.call_error); /* the reply is text */
    serve_reply_parts_free(&parts);
    return ch;
}

/* A token's text as JSON shows it (invalid UTF-8 replaced); *len: its bytes' count, 0 for none.
 * Without a tokenizer, "token_id:ID" (vLLM's way of naming a token by its id), of no bytes. */
static cJSON *token_text(const server *sv, int32_t id, const char **bytes, size_t *len) {
    const char *piece = sv->tok ? api.tokenizer_token_piece(sv->tok, id, len) : NULL;
    if (!piece) piece = "", *len = 0;
    char *clean = sv->tok ? serve_utf8_clean(piece, *len) : NULL, name[32];
    if (!sv->tok) snprintf(name, sizeof name, "token_id:%d", id);
    cJSON *s = cJSON_CreateString(!sv->tok ? name : clean ? clean : "");
    free(clean);
    if (bytes) *bytes = piece;
    return s;
}

/* Whether the token's bytes are in the text (special tokens are left out of it). */
static bool in_text(const server *sv, int32_t id) { return sv->tok && !api.tokenizer_is_special(sv->tok, id); }

/* The text of the prompt's tokens, as a reply's text is made of its tokens (special tokens left
 * out): what echo puts before the reply. *len: its bytes. */
static char *prompt_text(const server *sv, const serve_job *j, size_t *len) {
    size_t n = 0, plen;
    for (int32_t i = 0; i < j->n_ids; i++)
        if (in_text(sv, j->ids[i]) && api.tokenizer_token_piece(sv->tok, j->ids[i], &plen)) n += plen;
    char *text = malloc(n + 1);
    if (!text) return NULL;
    *len = 0;
    for (int32_t i = 0; i < j->n_ids; i++) {
        const char *piece = in_text(sv, j->ids[i]) ? api.tokenizer_token_piece(sv->tok, j->ids[i], &plen) : NULL;
        if (piece) memcpy(text + *len, piece, plen), *len += plen;
    }
    text[*len] = 0;
    return text;
}

/* Whether the replies carry token ids: asked for (return_token_ids), or the model has no tokenizer
 * (they are all there is). */
static bool wants_ids(const server *sv, const serve_job *j) { return j->p.return_token_ids || !sv->tok; }

static void add_ids(cJSON *o, const char *key, const int32_t *ids, int32_t n) {
    cJSON *a = cJSON_AddArrayToObject(o, key);
    for (int32_t i = 0; i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber(ids[i]));
}

/* A completions logprobs entry's alternatives: token → logprob (the first of a token named twice). */
static cJSON *top_object(const server *sv, const serve_logprob *x) {
    cJSON *top = cJSON_CreateObject();
    for (int32_t k = 0; k < x->n_top; k++) {
        size_t len;
        cJSON *name = token_text(sv, x->top[k], NULL, &len);
        if (!cJSON_GetObjectItemCaseSensitive(top, name->valuestring))
            cJSON_AddNumberToObject(top, name->valuestring, x->top_logprob[k]);
        cJSON_Delete(name);
    }
    return top;
}

/* A chat logprobs entry: token, logprob, bytes (OpenAI's shape). */
static cJSON *chat_token(const server *sv, int32_t id, float logprob) {
    cJSON *o = cJSON_CreateObject(), *bytes;
    const char *piece;
    size_t len;
    cJSON_AddItemToObject(o, "token", token_text(sv, id, &piece, &len));
    cJSON_AddNumberToObject(o, "logprob", logprob);
    bytes = cJSON_AddArrayToObject(o, "bytes");
    for (size_t i = 0; i < len; i++) cJSON_AddItemToArray(bytes, cJSON_CreateNumber((unsigned char)piece[i]));
    return o;
}

/* The logprobs of the job's tokens [from, to) into choice ch, in OpenAI's shape for chat
 * (content: token, logprob, bytes, top_logprobs) or for completions (tokens, token_logprobs,
 * top_logprobs as token → logprob, text_offset; *offset: where token `from`'s text starts, moved
 * past token to - 1's, so that a stream's chunks go on from each other). With echo, plp holds the
 * prompt's tokens' (serve_prompt_score), which come first, the first without one (null), as
 * OpenAI gives it; else NULL. */
static void add_logprobs(const server *sv, cJSON *ch, const serve_job *j, int32_t from, int32_t to, size_t *offset,
                         const serve_logprob *plp) {
    if (!j->p.logprobs) return;
    cJSON_DeleteItemFromObjectCaseSensitive(ch, "logprobs");
    cJSON *lp = cJSON_AddObjectToObject(ch, "logprobs");
    if (j->p.chat) {
        cJSON *content = cJSON_AddArrayToObject(lp, "content");
        for (int32_t i = from; i < to; i++) {
            cJSON *t = chat_token(sv, j->lp[i].token, j->lp[i].logprob);
            cJSON *top = cJSON_AddArrayToObject(t, "top_logprobs");
            for (int32_t k = 0; k < j->lp[i].n_top; k++)
                cJSON_AddItemToArray(top, chat_token(sv, j->lp[i].top[k], j->lp[i].top_logprob[k]));
            cJSON_AddItemToArray(content, t);
        }
        cJSON_AddNullToObject(lp, "refusal");
        return;
    }
    cJSON *tokens = cJSON_AddArrayToObject(lp, "tokens"), *lps = cJSON_AddArrayToObject(lp, "token_logprobs");
    cJSON *tops = cJSON_AddArrayToObject(lp, "top_logprobs"), *offsets = cJSON_AddArrayToObject(lp, "text_offset");
    for (int32_t i = 0; plp && i < j->n_ids; i++) {
        size_t len;
        cJSON_AddItemToArray(tokens, token_text(sv, j->ids[i], NULL, &len));
        cJSON_AddItemToArray(lps, i ? cJSON_CreateNumber(plp[i].logprob) : cJSON_CreateNull());
        cJSON_AddItemToArray(tops, i ? top_object(sv, &plp[i]) : cJSON_CreateNull());
        cJSON_AddItemToArray(offsets, cJSON_CreateNumber((double)*offset));
        if (in_text(sv, j->ids[i])) *offset += len;
    }
    for (int32_t i = from; i < to; i++) {
        size_t len;
        cJSON_AddItemToArray(tokens, token_text(sv, j->lp[i].token, NULL, &len));
        cJSON_AddItemToArray(lps, cJSON_CreateNumber(j->lp[i].logprob));
        cJSON_AddItemToArray(offsets, cJSON_CreateNumber((double)*offset));
        if (in_text(sv, j->lp[i].token)) *offset += len;
        cJSON_AddItemToArray(tops, top_object(sv, &j->lp[i]));
    }
}

static cJSON *envelope(const server *sv, const serve_job *j, bool chunk) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "id", j->id);
    cJSON_AddStringToObject(root, "object",
                            j->p.chat ? (chunk ? "chat.completion.chunk" : "chat.completion") : "text_completion");
    cJSON_AddNumberToObject(root, "created", (double)j->created);
    cJSON_AddStringToObject(root, "model", sv->model_id);
    cJSON_AddStringToObject(root, "system_fingerprint", "rsrc");
    return root;
}

/* The usage of the request's n jobs (one a prompt), summed. */
static void add_usage(cJSON *root, serve_job *const *js, int32_t n) {
    double prompt = 0, gen = 0, cached = 0;
    for (int32_t k = 0; k < n; k++) prompt += js[k]->n_ids, gen += js[k]->n_gen, cached += js[k]->n_cached;
    cJSON *u = cJSON_AddObjectToObject(root, "usage");
    cJSON_AddNumberToObject(u, "prompt_tokens", prompt);
    cJSON_AddNumberToObject(u, "completion_tokens", gen);
    cJSON_AddNumberToObject(u, "total_tokens", prompt + gen);
    cJSON *d = cJSON_AddObjectToObject(u, "prompt_tokens_details"); /* OpenAI's: the prompt found cached */
    cJSON_AddNumberToObject(d, "cached_tokens", cached);
    if (n != 1 || js[0]->n_gen < 1) return;
    /* One job's times as the server saw them (llama.cpp's names): the prompt evaluated (its cached
     * tokens left out) up to the first token, then the tokens after the first over the time from the
     * first to the last. A client cannot measure the second itself: a fast model's tokens can reach it
     * in one read. */
    const serve_job *j = js[0];
    double gen_s = j->t_last - j->t_first;
    cJSON *t = cJSON_AddObjectToObject(root, "timings");
    cJSON_AddNumberToObject(t, "prompt_n", j->n_ids - j->n_cached);
    cJSON_AddNumberToObject(t, "prompt_ms", 1e3 * (j->t_first - j->t_start));
    cJSON_AddNumberToObject(t, "predicted_n", j->n_gen);
    cJSON_AddNumberToObject(t, "predicted_ms", 1e3 * gen_s);
    cJSON_AddNumberToObject(t, "predicted_per_second", j->n_gen > 1 && gen_s > 0 ? (j->n_gen - 1) / gen_s : 0);
    if (j->draft_n) { /* speculative decoding (--spec-type), as llama-server reports it */
        cJSON_AddNumberToObject(t, "draft_n", j->draft_n);
        cJSON_AddNumberToObject(t, "draft_n_accepted", j->draft_n_accepted);
    }
}

/* ---- streaming: server-sent events ---- */

typedef struct stream {
    server *sv;
    serve_job *j;
    embed_job *score;         /* echo with logprobs: the prompt's, scored before the stream starts; or NULL */
    const serve_logprob *plp; /* its log-probabilities */
    int fd;                   /* the client's socket: a client gone while its request waits cancels it */
    char *out;                /* an event not yet sent */
    size_t n_out, at;
    int phase;        /* 0: the chat role chunk, or completions' echo; 1: content; 2: [DONE] queued; 3: done */
    int32_t lp_sent;  /* the job's logprobs sent */
    int32_t ids_sent; /* the job's token ids sent (wants_ids) */
    size_t lp_offset; /* completions: where the next one's text starts (text_offset) */
    size_t sent_reasoning, sent_content; /* a split chat reply (p->reply): the parts' bytes sent */
} stream;

/* Queues an event after those not yet sent (json NULL: [DONE]); json is freed. */
static void queue_event(stream *st, cJSON *json) {
    char *text = json ? cJSON_PrintUnformatted(json) : NULL;
    if (json) cJSON_Delete(json);
    const char *payload = text ? text : "[DONE]";
    size_t n = strlen(payload) + 8, keep = st->out ? st->n_out - st->at : 0;
    char *out = malloc(keep + n + 1);
    if (out) {
        if (keep) memcpy(out, st->out + st->at, keep);
        st->n_out = keep + (size_t)snprintf(out + keep, n + 1, "data: %s\n\n", payload);
    }
    free(st->out);
    st->out = out, st->at = 0;
    if (!out) st->n_out = 0;
    free(text);
}

/* A split chat reply's chunk: the thoughts and text that have become certain since the last
 * (delta.reasoning_content, delta.content); at the end the rest, each tool call as OpenAI streams
 * it (index, id, type and name first, then the arguments), and the final chunk. Under the lock. */
static void split_events(stream *st, size_t to, serve_finish fin) {
    serve_job *j = st->j;
    const bool final = fin != SERVE_RUNNING;
    char *text = serve_utf8_clean(j->text ? j->text : "", to);
    serve_reply_parts parts;
    serve_split_reply((const serve_reply_shape *)&j->p.reply, text ? text : "", text ? strlen(text) : 0, final,
                      call_base(j), &parts);
    cJSON *delta_chunk = NULL;
    if (parts.n_reasoning > st->sent_reasoning || parts.n_content > st->sent_content) {
        delta_chunk = envelope(st->sv, j, true);
        cJSON *ch = choice(j, NULL, NULL, true, false), *d = cJSON_GetObjectItemCaseSensitive(ch, "delta");
        if (parts.n_reasoning > st->sent_reasoning)
            add_text(d, "reasoning_content", parts.reasoning + st->sent_reasoning,
                     parts.n_reasoning - st->sent_reasoning);
        if (parts.n_content > st->sent_content)
            add_text(d, "content", parts.content + st->sent_content, parts.n_content - st->sent_content);
        add_logprobs(st->sv, ch, j, st->lp_sent, j->n_lp, &st->lp_offset, NULL);
        st->lp_sent = j->n_lp;
        cJSON_AddItemToArray(cJSON_AddArrayToObject(delta_chunk, "choices"), ch);
        st->sent_reasoning = parts.n_reasoning, st->sent_content = parts.n_content;
    }
    if (delta_chunk) queue_event(st, delta_chunk);
    if (final) {
        const cJSON *call;
        int k = 0;
        cJSON_ArrayForEach(call, parts.tool_calls) {
            const cJSON *f = cJSON_GetObjectItemCaseSensitive(call, "function");
            for (int half = 0; half < 2; half++) {
                cJSON *root = envelope(st->sv, j, true), *ch = choice(j, NULL, NULL, true, false);
                cJSON *tc = cJSON_CreateObject(), *fn;
                cJSON_AddNumberToObject(tc, "index", k);
                if (!half) {
                    cJSON_AddStringToObject(tc, "id", cJSON_GetStringValue(cJSON_GetObjectItem(call, "id")));
                    cJSON_AddStringToObject(tc, "type", "function");
                }
                fn = cJSON_AddObjectToObject(tc, "function");
                if (!half) cJSON_AddStringToObject(fn, "name", cJSON_GetStringValue(cJSON_GetObjectItem(f, "name")));
                cJSON_AddStringToObject(fn, "arguments",
                                        half ? cJSON_GetStringValue(cJSON_GetObjectItem(f, "arguments")) : "");
                cJSON *list = cJSON_AddArrayToObject(cJSON_GetObjectItemCaseSensitive(ch, "delta"), "tool_calls");
                cJSON_AddItemToArray(list, tc);
                cJSON_AddItemToArray(cJSON_AddArrayToObject(root, "choices"), ch);
                queue_event(st, root);
            }
            k++;
        }
        cJSON *root = envelope(st->sv, j, true),
              *last = choice(j, NULL, k ? "tool_calls" : finish_reason(fin), true, false);
        if (parts.call_error) cJSON_AddStringToObject(last, "tool_call_error", parts.call_error); /* sent as text */
        cJSON_AddItemToArray(cJSON_AddArrayToObject(root, "choices"), last);
        add_usage(root, &st->j, 1);
        queue_event(st, root);
        st->phase = 2;
    }
    serve_reply_parts_free(&parts);
    free(text);
}

/* The next event: new text, the final chunk, or [DONE]; waits for the engine while nothing is new. */
static void next_event(stream *st) {
    serve_job *j = st->j;
    serve_engine *e = st->sv->e;
    const bool ids = wants_ids(st->sv, j);
    if (st->phase == 0) {
        st->phase = 1;
        if (j->p.chat) {
            cJSON *root = envelope(st->sv, j, true);
            cJSON_AddItemToArray(cJSON_AddArrayToObject(root, "choices"), choice(j, "", NULL, true, true));
            if (ids) add_ids(root, "prompt_token_ids", j->ids, j->n_ids);
            queue_event(st, root);
            return;
        }
        if (j->p.echo || ids) { /* the prompt's text and log-probabilities, its ids, before the reply's */
            size_t len = 0;
            char *raw = j->p.echo ? prompt_text(st->sv, j, &len) : NULL, *text = serve_utf8_clean(raw ? raw : "", len);
            cJSON *root = envelope(st->sv, j, true), *ch = choice(j, text ? text : "", NULL, true, false);
            if (j->p.echo) add_logprobs(st->sv, ch, j, 0, 0, &st->lp_offset, st->plp);
            if (ids) add_ids(ch, "prompt_token_ids", j->ids, j->n_ids);
            cJSON_AddItemToArray(cJSON_AddArrayToObject(root, "choices"), ch);
            free(raw), free(text);
            queue_event(st, root);
            return;
        }
    }
    if (st->phase == 2) {
        queue_event(st, NULL), st->phase = 3;
        return;
    }
    serve_lock(e);
    while (j->finish == SERVE_RUNNING && j->ready <= j->sent && !(ids && j->n_gen > st->ids_sent)) {
        serve_wait(e, 0.25);
        if (j->finish == SERVE_RUNNING && serve_client_gone(st->fd)) {
            j->cancelled = true; /* the engine frees its slot or queue entry at its next turn */
            serve_unlock(e);
            free(st->out), st->out = NULL;
            return;
        }
    }
    size_t from = j->sent, to = j->ready;
    serve_finish fin = j->finish;
    if (j->p.chat && (j->p.reply.reasoning || j->p.reply.tools) && fin != SERVE_FAILED && fin != SERVE_CANCELLED) {
        j->sent = to;
        free(st->out), st->out = NULL, st->n_out = st->at = 0;
        split_events(st, to, fin);
        serve_unlock(e);
        if (!st->out) { /* nothing certain yet (a marker may be beginning): an empty delta */
            cJSON *root = envelope(st->sv, j, true);
            cJSON_AddItemToArray(cJSON_AddArrayToObject(root, "choices"), choice(j, NULL, NULL, true, false));
            queue_event(st, root);
        }
        return;
    }
    char *text = to > from ? serve_utf8_clean(j->text + from, to - from) : NULL;
    bool new_ids = ids && j->n_gen > st->ids_sent && fin != SERVE_FAILED && fin != SERVE_CANCELLED;
    j->sent = to;
    cJSON *root = envelope(st->sv, j, true);
    if (text || (new_ids && fin == SERVE_RUNNING)) { /* new text (or ids) first, with the logprobs of the
                                                     * tokens so far; the final chunk comes next */
        cJSON *ch = choice(j, text ? text : j->p.chat ? NULL : "", NULL, true, false);
        add_logprobs(st->sv, ch, j, st->lp_sent, j->n_lp, &st->lp_offset, NULL);
        st->lp_sent = j->n_lp;
        if (ids) add_ids(ch, "token_ids", j->out_ids + st->ids_sent, j->n_gen - st->ids_sent);
        st->ids_sent = j->n_gen;
        cJSON_AddItemToArray(cJSON_AddArrayToObject(root, "choices"), ch);
    } else if (fin == SERVE_FAILED || fin == SERVE_CANCELLED) { /* the runtime failed, or the server stopped */
        cJSON_Delete(root);
        root = cJSON_CreateObject();
        cJSON *err = cJSON_AddObjectToObject(root, "error");
        cJSON_AddStringToObject(err, "message",
                                fin == SERVE_FAILED ? j->err : "the server stopped before the request finished");
        cJSON_AddStringToObject(err, "type",
                                fin != SERVE_FAILED ? "server_overloaded"
                                : j->err_param      ? "invalid_request_error"
                                                    : "server_error");
        if (fin == SERVE_FAILED && j->err_param) cJSON_AddStringToObject(err, "param", j->err_param);
        st->phase = 2;
    } else {
        cJSON *ch = choice(j, j->p.chat ? NULL : "", finish_reason(fin), true, false);
        if (st->lp_sent < j->n_lp) add_logprobs(st->sv, ch, j, st->lp_sent, j->n_lp, &st->lp_offset, NULL);
        st->lp_sent = j->n_lp;
        if (new_ids) add_ids(ch, "token_ids", j->out_ids + st->ids_sent, j->n_gen - st->ids_sent);
        st->ids_sent = j->n_gen;
        cJSON_AddItemToArray(cJSON_AddArrayToObject(root, "choices"), ch);
        add_usage(root, &st->j, 1);
        st->phase = 2;
    }
    serve_unlock(e);
    free(text);
    queue_event(st, root);
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    stream *st = cls;
    while (st->at == st->n_out) {
        if (st->phase == 3) return MHD_CONTENT_READER_END_OF_STREAM;
        next_event(st);
        if (!st->out) return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    size_t n = st->n_out - st->at < max ? st->n_out - st->at : max;
    memcpy(buf, st->out + st->at, n);
    st->at += n;
    return (ssize_t)n;
}

/* The connection is done with the stream, finished or not: a client that went away cancels its
 * request, which leaves its slot at the next step. */
static void stream_free(void *cls) {
    stream *st = cls;
    serve_release(st->sv->e, st->j);
    if (st->score) embedder_release(st->sv->emb, st->score);
    free(st->out);
    free(st);
}

/* The text of a choice: the prompt's first with echo, then the reply's (invalid UTF-8 replaced). */
static char *choice_text(const server *sv, const serve_job *j) {
    size_t plen = 0;
    char *raw = j->p.echo ? prompt_text(sv, j, &plen) : NULL;
    if (j->p.echo && !raw) return NULL;
    char *all = realloc(raw, plen + j->n_text + 1);
    if (!all) return free(raw), NULL;
    if (j->n_text) memcpy(all + plen, j->text, j->n_text);
    char *text = serve_utf8_clean(all, plen + j->n_text);
    free(all);
    return text;
}

/* The reply to a request whose jobs have all finished: a choice for each, in the prompts' order
 * (plp: the prompts' scores, one after another, or NULL); an error when one of them failed. */
enum MHD_Result complete_reply(server *sv, struct MHD_Connection *c, serve_job *const *js, int32_t n,
                               const serve_logprob *plp) {
    for (int32_t k = 0; k < n; k++) {
        const serve_job *j = js[k];
        if (j->finish == SERVE_FAILED && j->err_param) /* the request's own doing: its grammar or schema */
            return send_error(c, 400, "invalid_request_error", j->err_param, NULL, "%s", j->err);
        if (j->finish == SERVE_FAILED) return send_error(c, 500, "server_error", NULL, NULL, "%s", j->err);
        if (j->finish == SERVE_CANCELLED)
            return send_error(c, MHD_HTTP_SERVICE_UNAVAILABLE, "server_overloaded", NULL, NULL,
                              "the server stopped before the request finished");
    }
    cJSON *root = envelope(sv, js[0], false), *choices = cJSON_AddArrayToObject(root, "choices");
    for (int32_t k = 0; k < n; k++) {
        const serve_job *j = js[k];
        char *text = choice_text(sv, j);
        if (!text) {
            cJSON_Delete(root);
            return send_error(c, 503, "server_error", NULL, NULL, "out of memory for the reply");
        }
        cJSON *ch = j->p.chat ? chat_choice(j, text) : choice(j, text, finish_reason(j->finish), false, true);
        size_t offset = 0;
        add_logprobs(sv, ch, j, 0, j->n_lp, &offset, plp);
        if (wants_ids(sv, j)) {
            if (!j->p.chat) add_ids(ch, "prompt_token_ids", j->ids, j->n_ids);
            add_ids(ch, "token_ids", j->out_ids, j->n_gen);
        }
        cJSON_AddItemToArray(choices, ch);
        free(text);
        if (plp) plp += j->n_ids;
    }
    if (js[0]->p.chat && wants_ids(sv, js[0])) add_ids(root, "prompt_token_ids", js[0]->ids, js[0]->n_ids);
    add_usage(root, js, n);
    return send_json(c, MHD_HTTP_OK, root, 0);
}

/* A stream of the request's one job (and its prompt's score, already computed, or NULL). */
enum MHD_Result complete_stream(server *sv, struct MHD_Connection *c, serve_job *j, embed_job *score) {
    stream *st = calloc(1, sizeof *st);
    struct MHD_Response *r =
        st ? MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_read, st, stream_free) : NULL;
    if (!r) {
        free(st);
        serve_release(sv->e, j);
        if (score) embedder_release(sv->emb, score);
        return MHD_NO;
    }
    st->sv = sv, st->j = j, st->fd = connection_fd(c);
    st->score = score, st->plp = score ? score->lp : NULL;
    MHD_add_response_header(r, "Content-Type", "text/event-stream");
    MHD_add_response_header(r, "Cache-Control", "no-cache");
    if (http_current) http_current->status = MHD_HTTP_OK;
    enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return ret;
}
