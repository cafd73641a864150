/* fold.c — PrismML's Hadamard fold (Bonsai 2's prism.hadamard.* GGUF keys), read and checked.
 *
 * The contract (PrismML-Eng/llama.cpp, branch prism: src/llama-model.cpp's loader, PRs #120, #121;
 * restated in ggml-org/llama.cpp issue #29058): a listed weight W was trained in a rotated basis, so
 * its product with an input x of width n is y = W · H_B (s ⊙ x), where s is the sign vector of width
 * n (all +1 with sign_mode "identity") and H_B the normalised Sylvester Walsh-Hadamard matrix
 * (H[r][c] = ±1/√B by the parity of popcount(r & c)) applied to each block of B entries. ssm_out's
 * input, with gdn_v_grouped, is first put in grouped V-head order (out[d + r·hd + t·hd·rep] =
 * in[d + t·hd + r·hd·nk]). The embedding is stored in the rotated basis: row h = s ⊙ (H_B z) of
 * its stored row z. The runtime applies all three (runtime/cpu/fold.c); this file only reads them:
 *
 *   version u32 = 1; block_size u32 B, a power of two dividing every folded input width;
 *   transform = "normalized-sylvester-walsh-hadamard"; axis = "input-last-dimension";
 *   sign_mode "identity" | "explicit"; sign_widths i32[] (each a multiple of B, none twice) and
 *   sign_values i32[] (±1, concatenated in width order, as many as the widths' sum; explicit only);
 *   weight_names string[] (output.weight or blk.N.KIND.weight for the kinds below, none twice);
 *   inverse_weight_names = [token_embd.weight] or empty; gdn_v_grouped bool.
 *
 * Anything else under prism.hadamard., a value of another type or outside these sets, a listed
 * tensor the file has not, and inputs shared by matrices of which only some are folded are refused,
 * naming the key and the value. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "rsrc.h"

#define KEY "prism.hadamard."

/* The kinds of weight a fold may list (blk.N.KIND.weight), and the sets of them that read one input
 * (rotated once: all folded or none). */
static const char *const fold_kinds[] = {"attn_q",         "attn_k",        "attn_v",         "attn_qkv",
                                         "attn_gate",      "attn_output",   "ffn_gate",       "ffn_up",
                                         "ffn_down",       "ffn_gate_exps", "ffn_up_exps",    "ffn_down_exps",
                                         "ffn_gate_shexp", "ffn_up_shexp",  "ffn_down_shexp", "ssm_out"};
static const char *const shared_inputs[][5] = {
    {"attn_q", "attn_k", "attn_v", NULL},
    {"attn_qkv", "attn_gate", NULL},
    {"ffn_gate", "ffn_up", NULL},
    {"ffn_gate_exps", "ffn_up_exps", "ffn_gate_shexp", "ffn_up_shexp", NULL}};

static const gguf_value *fold_key(const gguf_file *g, const char *key, uint32_t type, uint32_t atype) {
    char k[96];
    snprintf(k, sizeof k, KEY "%s", key);
    const gguf_value *v = gguf_get(g, k);
    if (!v) rsrc_fatal("%s: metadata '%s' is missing: a Hadamard fold (" KEY "*) needs it", g->path, k);
    if (v->type != type || (type == GGUF_ARR && v->atype != atype))
        rsrc_fatal("%s: metadata '%s' is not %s", g->path, k,
                   type == GGUF_ARR    ? (atype == GGUF_STR ? "an array of strings" : "an array of i32")
                   : type == GGUF_STR  ? "a string"
                   : type == GGUF_BOOL ? "a bool"
                                       : "a u32");
    return v;
}

static void want_string(const gguf_file *g, const char *key, const char *const *allowed, const char **out) {
    const gguf_value *v = fold_key(g, key, GGUF_STR, 0);
    for (int i = 0; allowed[i]; i++)
        if (v->len == strlen(allowed[i]) && !memcmp(v->str, allowed[i], v->len)) {
            if (out) *out = allowed[i];
            return;
        }
    rsrc_fatal("%s: metadata '" KEY "%s' is \"%.*s\"; rsrc reads \"%s\"%s%s%s", g->path, key,
               (int)(v->len > 80 ? 80 : v->len), v->str, allowed[0], allowed[1] ? " or \"" : "",
               allowed[1] ? allowed[1] : "", allowed[1] ? "\"" : "");
}

/* The kind of a listed name ("blk.N.KIND.weight"), its layer into *layer; -1 for output.weight. */
static int name_kind(const gguf_file *g, const rsrc_model *m, const char *name, size_t len, int *layer) {
    if (len == 13 && !memcmp(name, "output.weight", 13)) return *layer = -1, -1;
    char kind[40];
    int n = 0;
    if (len < 64) {
        char buf[64];
        memcpy(buf, name, len), buf[len] = 0;
        if (sscanf(buf, "blk.%d.%39[a-z_].weight%n", layer, kind, &n) == 2 && (size_t)n == len && *layer >= 0 &&
            *layer < m->num_layers - m->mtp + m->mtp_layers)
            for (int k = 0; k < (int)(sizeof fold_kinds / sizeof *fold_kinds); k++)
                if (!strcmp(kind, fold_kinds[k])) return k;
    }
    rsrc_fatal("%s: metadata '" KEY "weight_names' lists \"%.*s\": not a weight rsrc knows to fold (output.weight, "
               "or blk.N.KIND.weight of a layer of the file with KIND one of attn_q/k/v/qkv/gate/output, "
               "ffn_gate/up/down and their _exps and _shexp forms, ssm_out)",
               g->path, (int)(len > 80 ? 80 : len), name);
}

/* The sign vectors: explicit ones checked (±1, one per width, the count exact), in m->fold_*. */
static void read_signs(rsrc_model *m, const gguf_file *g, bool explicit_signs) {
    if (!explicit_signs) {
        char k[64];
        snprintf(k, sizeof k, KEY "sign_values");
        const gguf_value *v = gguf_get(g, k);
        if (v && (v->type != GGUF_ARR || v->n))
            rsrc_fatal("%s: metadata '%s' holds signs but " KEY "sign_mode is \"identity\"", g->path, k);
        return;
    }
    const gguf_value *w = fold_key(g, "sign_widths", GGUF_ARR, GGUF_I32);
    const gguf_value *s = fold_key(g, "sign_values", GGUF_ARR, GGUF_I32);
    if (w->n == 0 || w->n > 64)
        rsrc_fatal("%s: metadata '" KEY "sign_widths' has %" PRIu64 " widths (1 to 64)", g->path, w->n);
    m->fold_nwidths = (int32_t)w->n;
    m->fold_widths = xcalloc((size_t)w->n, sizeof *m->fold_widths);
    uint64_t total = 0;
    for (uint64_t i = 0; i < w->n; i++) {
        const int32_t x = gguf_array_i32(g, w, i);
        if (x <= 0 || x > (1 << 24) || x % m->fold_block)
            rsrc_fatal("%s: metadata '" KEY "sign_widths'[%" PRIu64 "] is %d: not a positive multiple of "
                       "block_size %d",
                       g->path, i, x, m->fold_block);
        for (uint64_t j = 0; j < i; j++)
            if (m->fold_widths[j] == x)
                rsrc_fatal("%s: metadata '" KEY "sign_widths' lists the width %d twice", g->path, x);
        m->fold_widths[i] = x, total += (uint64_t)x;
    }
    if (s->n != total)
        rsrc_fatal("%s: metadata '" KEY "sign_values' has %" PRIu64 " signs; sign_widths add up to %" PRIu64, g->path,
                   s->n, total);
    m->fold_signs = xmalloc((size_t)total);
    for (uint64_t i = 0; i < total; i++) {
        const int32_t x = gguf_array_i32(g, s, i);
        if (x != 1 && x != -1)
            rsrc_fatal("%s: metadata '" KEY "sign_values'[%" PRIu64 "] is %d, not +1 or -1", g->path, i, x);
        m->fold_signs[i] = (int8_t)x;
    }
}

const int8_t *model_fold_signs(const rsrc_model *m, int32_t width) {
    if (!m->fold_signs) return NULL;
    size_t at = 0;
    for (int32_t i = 0; i < m->fold_nwidths; i++) {
        if (m->fold_widths[i] == width) return m->fold_signs + at;
        at += (size_t)m->fold_widths[i];
    }
    return NULL;
}

/* A folded input of width n (what reads it: the tensor's name): B divides it, its signs exist. */
static void check_width(const rsrc_model *m, const gguf_file *g, const char *what, uint64_t n) {
    if (n % (uint64_t)m->fold_block)
        rsrc_fatal("%s: tensor '%s': its input width %" PRIu64 " is not a multiple of " KEY "block_size %d", g->path,
                   what, n, m->fold_block);
    if (m->fold_signs && !model_fold_signs(m, (int32_t)n))
        rsrc_fatal("%s: tensor '%s': " KEY "sign_widths has no signs for its input width %" PRIu64, g->path, what, n);
}

/* The listed weights: known kinds, each once, each in the file; their GGUF names into m->fold_names
 * (sorted), the head's into m->fold_lm_head. */
static void read_names(rsrc_model *m, const gguf_file *g) {
    const gguf_value *v = fold_key(g, "weight_names", GGUF_ARR, GGUF_STR);
    if (v->n > (1u << 20)) rsrc_fatal("%s: metadata '" KEY "weight_names' lists %" PRIu64 " names", g->path, v->n);
    m->fold_names = xcalloc((size_t)v->n + 1, sizeof *m->fold_names);
    uint64_t at = v->first, len;
    for (uint64_t i = 0; i < v->n; i++) {
        const char *s = gguf_next_str(g, &at, &len);
        int layer;
        const int kind = name_kind(g, m, s, (size_t)len, &layer);
        char *name = xasprintf("%.*s", (int)len, s);
        m->fold_names[m->fold_nnames++] = name;
        const gguf_tensor *t = gguf_find(g, name);
        if (!t) rsrc_fatal("%s: metadata '" KEY "weight_names' lists '%s', which the file has not", g->path, name);
        check_width(m, g, name, t->ne[0]);
        if (kind < 0) m->fold_lm_head = true;
    }
    const char *twice = rsrc_sorted_repeat(m->fold_names, (size_t)m->fold_nnames);
    if (twice) rsrc_fatal("%s: metadata '" KEY "weight_names' lists '%s' twice", g->path, twice);
}

bool model_fold_lists(const rsrc_model *m, const char *gguf_name) {
    return m->fold_nnames &&
           bsearch(&gguf_name, m->fold_names, (size_t)m->fold_nnames, sizeof *m->fold_names, rsrc_cmp_names) != NULL;
}

/* Matrices that read one input are rotated once: all of a layer's present ones folded, or none. */
static void check_shared(const rsrc_model *m, const gguf_file *g) {
    char a[96], b[96];
    for (int l = 0; l < m->num_layers; l++)
        for (size_t s = 0; s < sizeof shared_inputs / sizeof *shared_inputs; s++) {
            const char *first = NULL;
            bool first_folded = false;
            for (int k = 0; shared_inputs[s][k]; k++) {
                snprintf(b, sizeof b, "blk.%d.%s.weight", l, shared_inputs[s][k]);
                if (!gguf_find(g, b)) continue;
                if (!first) {
                    first = shared_inputs[s][k], first_folded = model_fold_lists(m, b);
                    snprintf(a, sizeof a, "%s", b);
                } else if (model_fold_lists(m, b) != first_folded)
                    rsrc_fatal("%s: metadata '" KEY "weight_names' lists '%s' but not '%s': they read one input, "
                               "which is rotated for both or for neither",
                               g->path, first_folded ? a : b, first_folded ? b : a);
            }
        }
}

void fold_read(rsrc_model *m, const gguf_file *g) {
    bool any = false;
    static const char *const known[] = {
        "version",      "block_size",           "transform",    "axis", "sign_mode", "sign_widths", "sign_values",
        "weight_names", "inverse_weight_names", "gdn_v_grouped"};
    for (uint64_t i = 0; i < g->nkv; i++) {
        const char *k = g->kv[i].key;
        if (strncmp(k, KEY, strlen(KEY))) continue;
        bool ok = false;
        for (size_t j = 0; j < sizeof known / sizeof *known; j++) ok |= !strcmp(k + strlen(KEY), known[j]);
        if (!ok)
            rsrc_fatal("%s: metadata '%s': a key of PrismML's Hadamard fold that rsrc does not know (it reads " KEY
                       "version 1's keys)",
                       g->path, k);
        any = true;
    }
    if (!any) return;
    const gguf_value *ver = fold_key(g, "version", GGUF_U32, 0);
    if (ver->u != 1) rsrc_fatal("%s: metadata '" KEY "version' is %" PRIu64 "; rsrc reads version 1", g->path, ver->u);
    const gguf_value *bs = fold_key(g, "block_size", GGUF_U32, 0);
    if (bs->u < 2 || bs->u > 65536 || (bs->u & (bs->u - 1)))
        rsrc_fatal("%s: metadata '" KEY "block_size' is %" PRIu64 ": not a power of two from 2 to 65536", g->path,
                   bs->u);
    m->fold_block = (int32_t)bs->u;
    want_string(g, "transform", (const char *const[]){"normalized-sylvester-walsh-hadamard", NULL}, NULL);
    want_string(g, "axis", (const char *const[]){"input-last-dimension", NULL}, NULL);
    const char *mode;
    want_string(g, "sign_mode", (const char *const[]){"identity", "explicit", NULL}, &mode);
    read_signs(m, g, !strcmp(mode, "explicit"));
    m->fold_v_grouped = fold_key(g, "gdn_v_grouped", GGUF_BOOL, 0)->u != 0;
    read_names(m, g);
    const gguf_value *inv = fold_key(g, "inverse_weight_names", GGUF_ARR, GGUF_STR);
    uint64_t at = inv->first, len;
    for (uint64_t i = 0; i < inv->n; i++) {
        const char *s = gguf_next_str(g, &at, &len);
        if (len != 17 || memcmp(s, "token_embd.weight", 17) || i)
            rsrc_fatal("%s: metadata '" KEY "inverse_weight_names' lists \"%.*s\"; rsrc reads [token_embd.weight]",
                       g->path, (int)(len > 80 ? 80 : len), s);
        const gguf_tensor *t = gguf_find(g, "token_embd.weight");
        if (!t)
            rsrc_fatal("%s: metadata '" KEY "inverse_weight_names' lists 'token_embd.weight', which the file has not",
                       g->path);
        check_width(m, g, "token_embd.weight", t->ne[0]);
        m->fold_embed = true;
    }
    check_shared(m, g);
    rsrc_note(1, "%s: a Hadamard fold of blocks of %d (%s signs) on %d weights%s", g->path, m->fold_block, mode,
              m->fold_nnames, m->fold_embed ? ", the embedding stored rotated" : "");
}

void fold_free(rsrc_model *m) {
    for (int32_t i = 0; i < m->fold_nnames; i++) free(m->fold_names[i]);
    free(m->fold_names), free(m->fold_widths), free(m->fold_signs);
    for (int32_t i = 0; i < m->nfolded; i++) free(m->folded[i]);
    free(m->folded);
}

void model_fold_add(rsrc_model *m, const char *name) {
    m->folded = xrealloc(m->folded, sizeof *m->folded * (size_t)(m->nfolded + 1));
    m->folded[m->nfolded++] = xstrdup(name);
}

void fold_finish(rsrc_model *m) {
    if (m->nfolded) qsort(m->folded, (size_t)m->nfolded, sizeof *m->folded, rsrc_cmp_names);
}

bool model_folded(const rsrc_model *m, const char *name) {
    return m->nfolded && bsearch(&name, m->folded, (size_t)m->nfolded, sizeof *m->folded, rsrc_cmp_names) != NULL;
}
