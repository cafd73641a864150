/*
 * serve_endpoints.c — the endpoints besides completions and embeddings: POST /tokenize,
 * /detokenize and /apply-template (llama-server's), GET /v1/models, /info (the model and its
 * manifest) and /metrics (Prometheus text: the engine's counters, the guard's, the embedder's).
 * Uses the tokenizer through the model's API, cJSON, the chat template of serve_prompt.c and
 * serve_http.c's replies.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "encode_all.h"
#include "serve_server.h"
#ifdef RSR_HAVE_KV_EVENTS
#include "serve_kv_events.h"
#endif

/* A boolean field of a tokenize request: absent or null gives def. */
static bool flag_of(const cJSON *root, const char *key, bool def, bool *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!v || cJSON_IsNull(v)) return *out = def, true;
    return cJSON_IsBool(v) && (*out = cJSON_IsTrue(v), true);
}

/* A piece as llama-server gives it: a string where its bytes are UTF-8, else their values. */
static void add_piece(cJSON *token, const char *piece, size_t len) {
    char *clean = serve_utf8_clean(piece, len);
    if (clean && strlen(clean) == len && !memcmp(clean, piece, len)) {
        cJSON_AddStringToObject(token, "piece", clean);
    } else {
        cJSON *bytes = cJSON_AddArrayToObject(token, "piece");
        for (size_t i = 0; i < len; i++) cJSON_AddItemToArray(bytes, cJSON_CreateNumber((unsigned char)piece[i]));
    }
    free(clean);
}

/* POST /tokenize, as llama-server's: {"content": TEXT, "add_special": false, "parse_special": true,
 * "with_pieces": false} → {"tokens": [ids]} or, with pieces, [{"id", "piece"}]. */
enum MHD_Result endpoint_tokenize(server *sv, struct MHD_Connection *c, const char *body, size_t len) {
    if (!sv->tok) return no_tokenizer(c, NULL, "/tokenize");
    cJSON *root = cJSON_ParseWithLength(body, len), *out = NULL;
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(root, "content");
    bool add = false, parse = true, pieces = false;
    const char *bad = !cJSON_IsObject(root)                           ? NULL
                      : !cJSON_IsString(content)                      ? "content"
                      : !flag_of(root, "add_special", false, &add)    ? "add_special"
                      : !flag_of(root, "parse_special", true, &parse) ? "parse_special"
                      : !flag_of(root, "with_pieces", false, &pieces) ? "with_pieces"
                                                                      : "";
    if (!bad || *bad) {
        cJSON_Delete(root);
        return send_error(c, 400, "invalid_request_error", bad, NULL, "%s",
                          !bad ? "the body must be a JSON object: {\"content\": TEXT}"
                          : !strcmp(bad, "content")
                              ? "'content' must be a string"
                              : "'add_special', 'parse_special' and 'with_pieces' are true or false");
    }
    size_t n_text = strlen(content->valuestring);
    int32_t n = 0;
    rsr_status st;
    int32_t *ids = encode_all(&api, sv->tok, content->valuestring, (ptrdiff_t)n_text,
                              (add ? RSR_ENCODE_ADD_SPECIAL : 0) | (parse ? RSR_ENCODE_PARSE_SPECIAL : 0), &n, &st);
    if (ids && (out = cJSON_CreateObject())) {
        cJSON *list = cJSON_AddArrayToObject(out, "tokens");
        for (int32_t i = 0; i < n; i++) {
            if (!pieces) {
                cJSON_AddItemToArray(list, cJSON_CreateNumber(ids[i]));
                continue;
            }
            cJSON *t = cJSON_CreateObject();
            size_t plen = 0;
            const char *piece = api.tokenizer_token_piece(sv->tok, ids[i], &plen);
            cJSON_AddNumberToObject(t, "id", ids[i]);
            add_piece(t, piece ? piece : "", piece ? plen : 0);
            cJSON_AddItemToArray(list, t);
        }
    }
    if (!ids && st != RSR_ERR_OUT_OF_MEMORY) { /* the tokenizer's refusal is the request's fault */
        char why[512];
        snprintf(why, sizeof why, "%s", api.tokenizer_errmsg(sv->tok));
        cJSON_Delete(root);
        return send_error(c, 400, "invalid_request_error", "content", NULL, "%s", why);
    }
    free(ids);
    cJSON_Delete(root);
    if (!out) return send_error(c, 503, "server_error", NULL, NULL, "out of memory tokenizing");
    return send_json(c, MHD_HTTP_OK, out, 0);
}

/* POST /apply-template, as llama-server's: a chat request's messages → {"prompt": the text the
 * chat template makes of them, ending where the assistant's reply begins}. */
enum MHD_Result endpoint_apply_template(server *sv, struct MHD_Connection *c, const char *body, size_t len) {
    if (!sv->tok) return no_tokenizer(c, NULL, "/apply-template");
    serve_params p;
    char err[512];
    const char *param;
    if (!serve_parse(body, len, true, &p, err, sizeof err, &param))
        return send_error(c, 400, "invalid_request_error", param, NULL, "%s", err);
    char *text = chat_text(sv, &p, err, sizeof err, NULL);
    serve_params_free(&p);
    if (!text) return send_error(c, 400, "invalid_request_error", "messages", NULL, "%s", err);
    char *clean = serve_utf8_clean(text, strlen(text));
    free(text);
    cJSON *out = clean ? cJSON_CreateObject() : NULL;
    if (!out) return free(clean), send_error(c, 503, "server_error", NULL, NULL, "out of memory");
    cJSON_AddStringToObject(out, "prompt", clean);
    free(clean);
    return send_json(c, MHD_HTTP_OK, out, 0);
}

/* POST /detokenize, as llama-server's: {"tokens": [ids]} → {"content": TEXT} (special tokens
 * written out; bytes that are not UTF-8 as U+FFFD). */
enum MHD_Result endpoint_detokenize(server *sv, struct MHD_Connection *c, const char *body, size_t len) {
    if (!sv->tok) return no_tokenizer(c, NULL, "/detokenize");
    cJSON *root = cJSON_ParseWithLength(body, len);
    const cJSON *tokens = cJSON_GetObjectItemCaseSensitive(root, "tokens"), *t;
    int32_t n = cJSON_IsArray(tokens) ? cJSON_GetArraySize(tokens) : -1, k = 0;
    int32_t *ids = n >= 0 ? malloc(sizeof *ids * (size_t)(n + 1)) : NULL;
    const char *why = !cJSON_IsObject(root) || n < 0 ? "'tokens' must be an array of token ids" : !ids ? "" : NULL;
    cJSON_ArrayForEach(t, tokens) {
        if (why) break;
        /* the range first: converting a double at or past 2^31 to int32_t is undefined */
        if (!cJSON_IsNumber(t) || !(t->valuedouble >= 0 && t->valuedouble < sv->info.vocab_size) ||
            t->valuedouble != floor(t->valuedouble))
            why = "every element of 'tokens' must be a token id of this model, in [0, vocab_size)";
        else
            ids[k++] = (int32_t)t->valuedouble;
    }
    char *text = NULL, *clean = NULL;
    size_t tlen = 0;
    if (!why) {
        rsr_status st = api.tokenizer_decode(sv->tok, ids, k, 0, NULL, 0, &tlen);
        if ((st == RSR_OK || st == RSR_ERR_BUFFER_TOO_SMALL) && (text = malloc(tlen + 1)))
            st = api.tokenizer_decode(sv->tok, ids, k, 0, text, tlen + 1, &tlen);
        if (!text || st != RSR_OK || !(clean = serve_utf8_clean(text, tlen))) why = "";
    }
    free(ids), free(text);
    cJSON_Delete(root);
    if (why && *why) return send_error(c, 400, "invalid_request_error", "tokens", NULL, "%s", why);
    cJSON *out = why ? NULL : cJSON_CreateObject();
    if (!out) return free(clean), send_error(c, 503, "server_error", NULL, NULL, "out of memory detokenizing");
    cJSON_AddStringToObject(out, "content", clean);
    free(clean);
    return send_json(c, MHD_HTTP_OK, out, 0);
}

enum MHD_Result endpoint_models(server *sv, struct MHD_Connection *c) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "object", "list");
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "id", sv->model_id);
    cJSON_AddStringToObject(m, "object", "model");
    cJSON_AddNumberToObject(m, "created", (double)sv->started);
    cJSON_AddStringToObject(m, "owned_by", "rsrc");
    /* one model is served: a request naming any other gets it, unless --strict-model */
    cJSON_AddBoolToObject(m, "any_name", !sv->strict_model);
    cJSON_AddItemToArray(cJSON_AddArrayToObject(root, "data"), m);
    return send_json(c, MHD_HTTP_OK, root, 0);
}

enum MHD_Result endpoint_info(server *sv, struct MHD_Connection *c) {
    const rsr_model_info *i = &sv->info;
    int32_t active, queued;
    serve_metrics mt;
    serve_get_metrics(sv->e, &mt, &active, &queued);
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "model", sv->model_id);
    cJSON_AddStringToObject(root, "architecture", i->architecture);
    cJSON_AddStringToObject(root, "target", i->target);
    cJSON_AddStringToObject(root, "compiler", i->compiler);
    cJSON_AddStringToObject(root, "device", i->device);
    cJSON_AddNumberToObject(root, "threads", i->num_threads);
    cJSON_AddNumberToObject(root, "layers", i->num_layers);
    cJSON_AddNumberToObject(root, "hidden_size", i->hidden_size);
    static const char *const pooling[] = {"none", "mean", "cls", "last"}; /* how /v1/embeddings pools */
    cJSON_AddStringToObject(root, "pooling", i->pooling >= 1 && i->pooling <= 3 ? pooling[i->pooling] : "none");
    cJSON_AddNumberToObject(root, "vocab_size", i->vocab_size);
    cJSON_AddBoolToObject(root, "tokenizer", sv->tok != NULL); /* false: requests give token ids */
    cJSON_AddNumberToObject(root, "context", serve_ctx(sv->e));
    cJSON_AddNumberToObject(root, "active", active);
    cJSON_AddNumberToObject(root, "queued", queued);
    cJSON_AddNumberToObject(root, "tokens_per_second", mt.recent_tok_s);
    cJSON_AddNumberToObject(root, "completion_tokens", (double)mt.completion_tokens);
    cJSON_AddStringToObject(root, "manifest", api.model_manifest(sv->m));
    return send_json(c, MHD_HTTP_OK, root, 0);
}

/* One histogram in Prometheus' text format: cumulative buckets, +Inf, sum and count. */
static void histogram(FILE *f, const char *name, const char *help, const char *model, const serve_histogram *h,
                      const serve_bounds *b) {
    fprintf(f, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    long cum = 0;
    for (int i = 0; i < b->n; i++)
        cum += h->bucket[i], fprintf(f, "%s_bucket{le=\"%g\",model_name=\"%s\"} %ld\n", name, b->le[i], model, cum);
    fprintf(f, "%s_bucket{le=\"+Inf\",model_name=\"%s\"} %ld\n%s_sum{model_name=\"%s\"} %.6f\n", name, model, h->count,
            name, model, h->sum);
    fprintf(f, "%s_count{model_name=\"%s\"} %ld\n", name, model, h->count);
}

/* What llm-d's endpoint picker and the Gateway API Inference Extension's model server protocol read,
 * and the counters and histograms their scorers and dashboards use: vLLM's names, each with
 * model_name. */
static void vllm_metrics(FILE *f, server *sv, const serve_metrics *mt, int32_t active, int32_t queued) {
    char model[256]; /* a label value: backslash, quote and newline escaped */
    size_t k = 0;
    for (const char *p = sv->model_id; *p && k + 3 < sizeof model; p++) {
        if (*p == '\\' || *p == '"' || *p == '\n') model[k++] = '\\';
        model[k++] = *p == '\n' ? 'n' : *p;
    }
    model[k] = 0;
    const long blocks = (long)serve_cache_count(sv->e) * serve_ctx(sv->e) / sv->kv_block;
    fprintf(f,
            "# HELP vllm:num_requests_running Requests in a slot.\n# TYPE vllm:num_requests_running gauge\n"
            "vllm:num_requests_running{model_name=\"%s\"} %d\n"
            "# HELP vllm:num_requests_waiting Requests waiting for a slot.\n# TYPE vllm:num_requests_waiting gauge\n"
            "vllm:num_requests_waiting{model_name=\"%s\"} %d\n"
            "# HELP vllm:kv_cache_usage_perc The slots' KV cache positions the running requests hold, 0 to 1.\n"
            "# TYPE vllm:kv_cache_usage_perc gauge\nvllm:kv_cache_usage_perc{model_name=\"%s\"} %.6g\n"
            "# HELP vllm:gpu_cache_usage_perc vllm:kv_cache_usage_perc under vLLM's older name.\n"
            "# TYPE vllm:gpu_cache_usage_perc gauge\nvllm:gpu_cache_usage_perc{model_name=\"%s\"} %.6g\n"
            "# HELP vllm:cache_config_info The KV cache's blocks (--kv-block-size positions each) in all its caches.\n"
            "# TYPE vllm:cache_config_info gauge\n"
            "vllm:cache_config_info{block_size=\"%d\",num_gpu_blocks=\"%ld\",model_name=\"%s\"} 1\n"
            "# HELP vllm:prefix_cache_queries_total Prompt tokens of the requests started.\n"
            "# TYPE vllm:prefix_cache_queries_total counter\nvllm:prefix_cache_queries_total{model_name=\"%s\"} %ld\n"
            "# HELP vllm:prefix_cache_hits_total Prompt tokens a cache held (not evaluated).\n"
            "# TYPE vllm:prefix_cache_hits_total counter\nvllm:prefix_cache_hits_total{model_name=\"%s\"} %ld\n"
            "# HELP vllm:prompt_tokens_total Prompt tokens of the requests started (cached or evaluated).\n"
            "# TYPE vllm:prompt_tokens_total counter\nvllm:prompt_tokens_total{model_name=\"%s\"} %ld\n"
            "# HELP vllm:generation_tokens_total Tokens generated.\n"
            "# TYPE vllm:generation_tokens_total counter\nvllm:generation_tokens_total{model_name=\"%s\"} %ld\n",
            model, active, model, queued, model, mt->kv_usage, model, mt->kv_usage, sv->kv_block, blocks, model, model,
            mt->prefix_queries, model, mt->prefix_hits, model, mt->prefix_queries, model, mt->completion_tokens);
    histogram(f, "vllm:time_to_first_token_seconds", "Seconds from a request's arrival to its first token.", model,
              &mt->ttft, &serve_ttft_bounds);
    histogram(f, "vllm:inter_token_latency_seconds", "Seconds between a request's tokens.", model, &mt->itl,
              &serve_itl_bounds);
    histogram(f, "vllm:e2e_request_latency_seconds",
              "Seconds from a request's arrival to its end (those that ended "
              "whole: stop or length).",
              model, &mt->e2e, &serve_e2e_bounds);
}

enum MHD_Result endpoint_metrics(server *sv, struct MHD_Connection *c) {
    serve_metrics mt;
    int32_t active, queued;
    serve_get_metrics(sv->e, &mt, &active, &queued);
    long reaped, refused_client, refused_total;
    serve_guard_counts(sv->guard, &reaped, &refused_client, &refused_total);
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    if (!f) return send_error(c, 503, "server_error", NULL, NULL, "out of memory");
    fprintf(f,
            "# HELP rsr_requests_total Completion requests by outcome.\n# TYPE rsr_requests_total counter\n"
            "rsr_requests_total{outcome=\"ok\"} %ld\nrsr_requests_total{outcome=\"cancelled\"} %ld\n"
            "rsr_requests_total{outcome=\"failed\"} %ld\nrsr_requests_total{outcome=\"rejected_queue_full\"} %ld\n"
            "rsr_requests_total{outcome=\"invalid\"} %ld\n"
            "# HELP rsr_prompt_tokens_total Prompt tokens evaluated.\n# TYPE rsr_prompt_tokens_total counter\n"
            "rsr_prompt_tokens_total %ld\n"
            "# HELP rsr_prompt_tokens_cached_total Prompt tokens a slot's cache held (prefix reuse): not evaluated.\n"
            "# TYPE rsr_prompt_tokens_cached_total counter\nrsr_prompt_tokens_cached_total %ld\n"
            "# HELP rsr_completion_tokens_total Tokens generated.\n# TYPE rsr_completion_tokens_total counter\n"
            "rsr_completion_tokens_total %ld\n"
            "# HELP rsr_steps_total Batched forward steps.\n# TYPE rsr_steps_total counter\nrsr_steps_total %ld\n"
            "# HELP rsr_draft_tokens_total Tokens proposed by speculative decoding (--spec-type).\n"
            "# TYPE rsr_draft_tokens_total counter\nrsr_draft_tokens_total %ld\n"
            "# HELP rsr_draft_tokens_accepted_total Proposed tokens taken.\n"
            "# TYPE rsr_draft_tokens_accepted_total counter\nrsr_draft_tokens_accepted_total %ld\n"
            "# HELP rsr_busy_seconds_total Time spent in steps.\n# TYPE rsr_busy_seconds_total counter\n"
            "rsr_busy_seconds_total %.3f\n"
            "# HELP rsr_mask_seconds_total Time spent masking logits to a grammar or JSON schema (part of busy).\n"
            "# TYPE rsr_mask_seconds_total counter\nrsr_mask_seconds_total %.3f\n"
            "# HELP rsr_queue_depth Requests waiting for a slot.\n# TYPE rsr_queue_depth gauge\nrsr_queue_depth %d\n"
            "# HELP rsr_active_sequences Requests in a slot.\n# TYPE rsr_active_sequences gauge\n"
            "rsr_active_sequences %d\n"
            "# HELP rsr_tokens_per_second Generation speed: generated tokens per second of the engine's steps, over "
            "its last 2 s of steps.\n"
            "# TYPE rsr_tokens_per_second gauge\nrsr_tokens_per_second %.2f\n"
            "# HELP rsr_connections_timed_out_total Connections closed for taking too long over a request.\n"
            "# TYPE rsr_connections_timed_out_total counter\nrsr_connections_timed_out_total %ld\n"
            "# HELP rsr_connections_refused_total Connections told 503 at once (over --max-per-client or "
            "--max-connections).\n# TYPE rsr_connections_refused_total counter\n"
            "rsr_connections_refused_total{limit=\"per_client\"} %ld\n"
            "rsr_connections_refused_total{limit=\"total\"} %ld\n"
            /* what inference gateways route on (the Gateway API Inference Extension), also under vLLM's names */
            "# HELP rsr_num_requests_running Requests in a slot.\n# TYPE rsr_num_requests_running gauge\n"
            "rsr_num_requests_running %d\n"
            "# HELP rsr_num_requests_waiting Requests waiting for a slot.\n# TYPE rsr_num_requests_waiting gauge\n"
            "rsr_num_requests_waiting %d\n"
            "# HELP rsr_kv_cache_usage_perc The KV cache the running requests hold, 0 to 1.\n"
            "# TYPE rsr_kv_cache_usage_perc gauge\nrsr_kv_cache_usage_perc %.6g\n",
            mt.requests_ok, mt.requests_cancelled, mt.requests_failed, mt.requests_rejected_full, mt.requests_invalid,
            mt.prompt_tokens, mt.prompt_tokens_cached, mt.completion_tokens, mt.steps, mt.draft_tokens,
            mt.draft_accepted, mt.busy_s, mt.mask_s, queued, active, mt.recent_tok_s, reaped, refused_client,
            refused_total, active, queued, mt.kv_usage);
    long inputs, tokens, scored;
    int32_t waiting;
    embedder_counts(sv->emb, &inputs, &tokens, &scored, &waiting);
    fprintf(f,
            "# HELP rsr_embedding_inputs_total Inputs embedded (/v1/embeddings).\n"
            "# TYPE rsr_embedding_inputs_total counter\nrsr_embedding_inputs_total %ld\n"
            "# HELP rsr_embedding_tokens_total Tokens of the inputs embedded.\n"
            "# TYPE rsr_embedding_tokens_total counter\nrsr_embedding_tokens_total %ld\n"
            "# HELP rsr_embedding_requests_waiting Embedding requests (and prompts to score) waiting "
            "for the one being computed.\n"
            "# TYPE rsr_embedding_requests_waiting gauge\nrsr_embedding_requests_waiting %d\n"
            "# HELP rsr_prompt_tokens_scored_total Prompt tokens given log-probabilities (echo).\n"
            "# TYPE rsr_prompt_tokens_scored_total counter\nrsr_prompt_tokens_scored_total %ld\n",
            inputs, tokens, waiting, scored);
#ifdef RSR_HAVE_KV_EVENTS
    if (sv->events)
        fprintf(
            f,
            "# HELP rsr_kv_events_dropped_total KV event messages dropped: the publisher fell behind (--kv-events).\n"
            "# TYPE rsr_kv_events_dropped_total counter\nrsr_kv_events_dropped_total %ld\n",
            kv_events_dropped(sv->events));
#endif
    vllm_metrics(f, sv, &mt, active, queued);
    enum MHD_Result ret = fclose(f) == 0 ? send_text(c, MHD_HTTP_OK, "text/plain; version=0.0.4", out, len, 0)
                                         : send_error(c, 503, "server_error", NULL, NULL, "out of memory");
    free(out);
    return ret;
}
