/*
 * encode.c — text → token ids and back.
 *
 *   text ─sanitize─▶ UTF-8 ─added tokens─▶ sections ─normalize─▶ ─pre-tokenize─▶ words ─BPE─▶ ids
 *
 * The order and the rules of each stage are those of Hugging Face tokenizers, so that the ids
 * are the ones the model was trained on; tests/tokenizer compares them with a reference
 * implementation on real tokenizer files.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "tokenizer.h"
#include "utf8.h"

#define OOM(t) tok_error((t), RSR_ERR_OUT_OF_MEMORY, "out of memory while tokenizing")

static bool span_push(spanlist *l, size_t off, size_t len, int32_t id) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 64;
        struct text_span *p = realloc(l->p, sizeof *p * cap);
        if (!p) return false;
        l->p = p;
        l->cap = cap;
    }
    l->p[l->n++] = (struct text_span){(uint32_t)off, (uint32_t)len, id};
    return true;
}

static bool out_push(tok_work *w, int32_t id) {
    if (w->out_len == w->out_cap) {
        size_t cap = w->out_cap ? 2 * w->out_cap : 256;
        int32_t *p = realloc(w->out, sizeof *p * cap);
        if (!p) return false;
        w->out = p;
        w->out_cap = cap;
    }
    w->out[w->out_len++] = id;
    return true;
}

/* The WHATWG UTF-8 decoder's error handling: a maximal prefix of a valid sequence that breaks
 * off, or a byte that cannot start one, becomes one U+FFFD. */
bool utf8_sanitize(bytes *out, const char *s, size_t len) {
    static const char fffd[3] = {(char)0xEF, (char)0xBF, (char)0xBD};
    const uint8_t *u = (const uint8_t *)s;
    out->len = 0;
    if (!bytes_reserve(out, len + 1)) return false;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        const int n = utf8_scan(u + i, len - i, &cp); /* n < 0: -n bytes, one U+FFFD */
        if (n == 1) {
            out->p[out->len++] = (char)u[i++];
            continue;
        }
        if (!bytes_append(out, n > 0 ? s + i : fffd, n > 0 ? (size_t)n : 3)) return false;
        i += (size_t)(n > 0 ? n : -n);
        /* U+FFFD may be longer than what it replaces: room again for the rest, byte for byte. */
        if (n < 0 && !bytes_reserve(out, len - i + 1)) return false;
    }
    return bytes_append(out, "", 0);
}

/* JavaScript's String.prototype.trim set, which is what lstrip / rstrip of added tokens use. */
static bool is_strip_space(uint32_t c) {
    return (c >= 9 && c <= 13) || c == ' ' || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 ||
           c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000 || c == 0xFEFF;
}

static void trim_span(const char *buf, struct text_span *s, bool front, bool back) {
    const char *p = buf + s->off;
    size_t b = 0, e = s->len, last_end = 0;
    if (front)
        while (b < e) {
            uint32_t cp;
            int n = utf8_next(p + b, e - b, &cp);
            if (!is_strip_space(cp)) break;
            b += (size_t)n;
        }
    if (back) {
        for (size_t i = b; i < e;) {
            uint32_t cp;
            i += (size_t)utf8_next(p + i, e - i, &cp);
            if (!is_strip_space(cp)) last_end = i;
        }
        e = last_end > b ? last_end : b;
    }
    s->off += (uint32_t)b;
    s->len = (uint32_t)(e - b);
}

/* Splits buf[0, len) at the added tokens that may occur there: at each position the longest one
 * wins, as a trie walk would find it. */
static bool split_added(rsr_tokenizer *t, const char *buf, size_t len, bool normalized, bool parse_special,
                        spanlist *out) {
    out->n = 0;
    size_t start = 0;
    for (size_t i = 0; i < len;) {
        int32_t best = -1;
        uint32_t best_len = 0;
        uint8_t first = (uint8_t)buf[i];
        for (int32_t j = t->added_first[first]; j < t->added_first[first + 1]; j++) { /* longest first */
            const added_token *a = &t->added[t->added_by_byte[j]];
            if ((a->normalized && t->num_norm) != normalized || (a->special && !parse_special)) continue;
            if (a->content.len <= len - i && memcmp(buf + i, tok_str(t, a->content), a->content.len) == 0) {
                best = t->added_by_byte[j], best_len = a->content.len;
                break;
            }
        }
        if (best < 0) {
            i++;
            continue;
        }
        if (i > start && !span_push(out, start, i - start, -1)) return false;
        if (!span_push(out, i, best_len, best)) return false;
        i += best_len;
        start = i;
    }
    if (start < len && !span_push(out, start, len - start, -1)) return false;
    for (size_t k = 0; k < out->n; k++) { /* the neighbours of lstrip / rstrip tokens lose their spaces */
        if (out->p[k].id < 0) continue;
        const added_token *a = &t->added[out->p[k].id];
        if (a->lstrip && k > 0 && out->p[k - 1].id < 0) trim_span(buf, &out->p[k - 1], false, true);
        if (a->rstrip && k + 1 < out->n && out->p[k + 1].id < 0) trim_span(buf, &out->p[k + 1], true, false);
    }
    for (size_t k = 0; k < out->n; k++)
        if (out->p[k].id >= 0) out->p[k].id = t->added[out->p[k].id].id;
    return true;
}

/* NFC / NFD / NFKC / NFKD of cur into tmp, by utf8proc (which allocates the result). utf8proc
 * refuses invalid UTF-8: the text is valid after utf8_sanitize, but a Prepend or Replace string of
 * tokenizer.json need not be; its invalid bytes become U+FFFD as the input's do. */
static rsr_status unicode_form(rsr_tokenizer *t, enum norm_kind kind, const bytes *cur, bytes *tmp) {
    static const utf8proc_option_t forms[] = {
        [NORM_NFC - NORM_NFC] = UTF8PROC_STABLE | UTF8PROC_COMPOSE,
        [NORM_NFD - NORM_NFC] = UTF8PROC_STABLE | UTF8PROC_DECOMPOSE,
        [NORM_NFKC - NORM_NFC] = UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT,
        [NORM_NFKD - NORM_NFC] = UTF8PROC_STABLE | UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT,
    };
    utf8proc_option_t opt = forms[kind - NORM_NFC];
    utf8proc_uint8_t *out = NULL;
    utf8proc_ssize_t n = utf8proc_map((const utf8proc_uint8_t *)cur->p, (utf8proc_ssize_t)cur->len, &out, opt);
    if (n == UTF8PROC_ERROR_INVALIDUTF8) {
        if (!utf8_sanitize(tmp, cur->p, cur->len)) return OOM(t);
        n = utf8proc_map((const utf8proc_uint8_t *)tmp->p, (utf8proc_ssize_t)tmp->len, &out, opt);
    }
    if (n == UTF8PROC_ERROR_NOMEM) return OOM(t);
    if (n < 0) return tok_error(t, RSR_ERR_INTERNAL, "Unicode normalization failed: %s", utf8proc_errmsg(n));
    tmp->len = 0;
    bool ok = bytes_append(tmp, out, (size_t)n);
    free(out);
    return ok ? RSR_OK : OOM(t);
}

static rsr_status normalize(tok_work *w, const char *s, size_t len) {
    rsr_tokenizer *t = w->t;
    bytes *cur = &w->normed, *tmp = &w->mapped;
    cur->len = 0;
    if (!bytes_append(cur, s, len)) return OOM(t);
    for (int32_t i = 0; i < t->num_norm; i++) {
        const norm_step *n = &t->norm[i];
        if (n->kind == NORM_PREPEND) {
            if (!cur->len) continue;
            tmp->len = 0;
            if (!bytes_append(tmp, tok_str(t, n->a), n->a.len) || !bytes_append(tmp, cur->p, cur->len)) return OOM(t);
        } else if (n->kind == NORM_SQUEEZE_SPACES) { /* SentencePiece: no space at either end, none doubled */
            tmp->len = 0;
            if (!bytes_append(tmp, "", 0)) return OOM(t);
            for (size_t k = 0; k < cur->len; k++)
                if (cur->p[k] != ' ' || (tmp->len && k + 1 < cur->len && cur->p[k + 1] != ' '))
                    if (!bytes_append(tmp, cur->p + k, 1)) return OOM(t);
        } else if (n->kind >= NORM_NFC) {
            if (!cur->len) continue;
            rsr_status st = unicode_form(t, n->kind, cur, tmp);
            if (st != RSR_OK) return st;
        } else if (!replace_all(tmp, cur->p, cur->len, tok_str(t, n->a), n->a.len, tok_str(t, n->b), n->b.len)) {
            return OOM(t);
        }
        cur->len = 0;
        if (!bytes_append(cur, tmp->p, tmp->len)) return OOM(t);
    }
    /* the pieces' offsets are 32 bits: NFKD or a Replace may make the text longer than the bound
     * rsr_tokenizer_encode's limit on its input keeps the sanitized text under */
    if (cur->len > len && cur->len > UINT32_MAX / 4 * 3)
        return tok_error(t, RSR_ERR_INVALID_ARGUMENT, "encode: %zu bytes of normalized text is too long", cur->len);
    return RSR_OK;
}

/* ---- pre-tokenization: pieces of w->pretok ---- */

static rsr_status find_matches(tok_work *w, pcre2_code *re, const char *s, size_t len) {
    rsr_tokenizer *t = w->t;
    w->matches.n = 0;
    for (size_t pos = 0; pos < len;) {
        int rc = pcre2_match(re, (PCRE2_SPTR)s, len, pos, PCRE2_NO_UTF_CHECK, w->match, NULL);
        if (rc == PCRE2_ERROR_JIT_STACKLIMIT) /* a very long run; the interpreter keeps its stack on the heap */
            rc = pcre2_match(re, (PCRE2_SPTR)s, len, pos, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, w->match, NULL);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) {
            PCRE2_UCHAR msg[160];
            pcre2_get_error_message(rc, msg, sizeof msg);
            return tok_error(t, RSR_ERR_INTERNAL, "pre-tokenizer regex failed at byte %zu: %s", pos, (const char *)msg);
        }
        const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(w->match);
        if (ov[1] == ov[0]) { /* an empty match splits nothing: move on one character */
            uint32_t cp;
            pos = ov[0] + (size_t)utf8_next(s + ov[0], len - ov[0], &cp);
            continue;
        }
        if (!span_push(&w->matches, ov[0], ov[1] - ov[0], 1)) return OOM(t);
        pos = ov[1];
    }
    return RSR_OK;
}

/* Splits one piece at the regex matches, keeping what `behavior` keeps (Hugging Face's
 * SplitDelimiterBehavior); the pieces refer to w->pretok. */
static rsr_status split_piece(tok_work *w, const pre_step *step, struct text_span piece, spanlist *out) {
    rsr_tokenizer *t = w->t;
    rsr_status st = find_matches(w, step->re, w->pretok.p + piece.off, piece.len);
    if (st != RSR_OK) return st;
    struct seg {
        uint32_t b, e;
        bool match;
    } segs_local[64], *segs = segs_local;
    size_t nseg = 0, cap = 2 * w->matches.n + 1;
    if (cap > 64 && !(segs = malloc(sizeof *segs * cap))) return OOM(t);
    uint32_t at = 0;
    for (size_t k = 0; k < w->matches.n; k++) {
        const struct text_span *m = &w->matches.p[k];
        if (m->off > at) segs[nseg++] = (struct seg){at, m->off, step->invert};
        segs[nseg++] = (struct seg){m->off, m->off + m->len, !step->invert};
        at = m->off + m->len;
    }
    if (at < piece.len) segs[nseg++] = (struct seg){at, piece.len, step->invert};

    /* Fold the segments into pieces; `merged` marks pieces that may still grow. */
    size_t first = out->n;
    bool previous_match = false;
    if (step->behavior == SPLIT_MERGED_NEXT) { /* right to left, then reversed */
        for (size_t k = nseg; k-- > 0;) {
            if (segs[k].match && !previous_match && out->n > first)
                out->p[out->n - 1].off = piece.off + segs[k].b;
            else if (!span_push(out, piece.off + segs[k].b, 0, (int32_t)(piece.off + segs[k].e)))
                goto oom;
            previous_match = segs[k].match;
        }
        for (size_t a = first, b = out->n; a + 1 < b; a++, b--) {
            struct text_span x = out->p[a];
            out->p[a] = out->p[b - 1], out->p[b - 1] = x;
        }
        for (size_t k = first; k < out->n; k++)
            out->p[k].len = (uint32_t)out->p[k].id - out->p[k].off, out->p[k].id = -1;
    } else {
        for (size_t k = 0; k < nseg; k++) {
            const struct seg *g = &segs[k];
            bool extend = (step->behavior == SPLIT_MERGED_PREVIOUS && g->match && !previous_match) ||
                          (step->behavior == SPLIT_CONTIGUOUS && g->match == previous_match);
            if (step->behavior == SPLIT_REMOVED && g->match) continue;
            if (extend && out->n > first)
                out->p[out->n - 1].len = piece.off + g->e - out->p[out->n - 1].off;
            else if (!span_push(out, piece.off + g->b, g->e - g->b, -1))
                goto oom;
            previous_match = g->match;
        }
    }
    if (segs != segs_local) free(segs);
    return RSR_OK;
oom:
    if (segs != segs_local) free(segs);
    return OOM(t);
}

static bool starts_with(const char *s, size_t len, const char *prefix, size_t plen) {
    return len >= plen && memcmp(s, prefix, plen) == 0;
}

/* Metaspace: spaces become the replacement ("▁"), one is put in front, and the text is cut before
 * each replacement. New text goes to the end of w->pretok. */
static rsr_status metaspace(tok_work *w, const pre_step *step, struct text_span piece, int section, spanlist *out) {
    rsr_tokenizer *t = w->t;
    const char *rep = tok_str(t, step->replacement);
    size_t rlen = step->replacement.len, start = w->pretok.len;
    bool prepend = step->prepend == 2 || (step->prepend == 1 && section == 0);
    const char *p = w->pretok.p + piece.off; /* a leading space becomes the replacement: no second one */
    if (prepend && !starts_with(p, piece.len, rep, rlen) && !starts_with(p, piece.len, " ", 1) &&
        !bytes_append(&w->pretok, rep, rlen))
        return OOM(t);
    for (uint32_t i = 0; i < piece.len; i++) {
        char c = w->pretok.p[piece.off + i]; /* read before appending: the buffer may move */
        if (!(c == ' ' ? bytes_append(&w->pretok, rep, rlen) : bytes_append(&w->pretok, &c, 1))) return OOM(t);
    }
    size_t end = w->pretok.len;
    if (!step->split) return span_push(out, start, end - start, -1) ? RSR_OK : OOM(t);
    size_t b = start;
    for (size_t i = start + 1; i + rlen <= end; i++)
        if (memcmp(w->pretok.p + i, rep, rlen) == 0) {
            if (!span_push(out, b, i - b, -1)) return OOM(t);
            b = i;
        }
    return b < end && !span_push(out, b, end - b, -1) ? OOM(t) : RSR_OK;
}

static rsr_status pre_tokenize(tok_work *w, const char *s, size_t len, int section) {
    rsr_tokenizer *t = w->t;
    w->pretok.len = 0;
    w->pieces.n = 0;
    if (!bytes_append(&w->pretok, s, len) || !span_push(&w->pieces, 0, len, -1)) return OOM(t);
    for (int32_t i = 0; i < t->num_pre; i++) {
        const pre_step *step = &t->pre[i];
        w->pieces_next.n = 0;
        for (size_t k = 0; k < w->pieces.n; k++) {
            struct text_span piece = w->pieces.p[k];
            rsr_status st = RSR_OK;
            if (step->kind == PRE_METASPACE) {
                st = metaspace(w, step, piece, section, &w->pieces_next);
            } else {
                if (step->kind == PRE_BYTE_LEVEL && step->add_prefix_space &&
                    !starts_with(w->pretok.p + piece.off, piece.len, " ", 1)) {
                    size_t at = w->pretok.len;
                    if (!bytes_append(&w->pretok, " ", 1) || !bytes_reserve(&w->pretok, piece.len + 1)) return OOM(t);
                    memcpy(w->pretok.p + w->pretok.len, w->pretok.p + piece.off, piece.len);
                    w->pretok.len += piece.len;
                    piece = (struct text_span){(uint32_t)at, piece.len + 1, -1};
                }
                if (step->re)
                    st = split_piece(w, step, piece, &w->pieces_next);
                else if (!span_push(&w->pieces_next, piece.off, piece.len, -1))
                    st = OOM(t);
            }
            if (st != RSR_OK) return st;
        }
        spanlist swap = w->pieces;
        w->pieces = w->pieces_next, w->pieces_next = swap;
    }
    return RSR_OK;
}

/* ---- BPE ---- */

static bool heap_push(tok_work *w, size_t *n, int32_t rank, int32_t pos) {
    if (*n == w->heap_cap) {
        size_t cap = w->heap_cap ? 2 * w->heap_cap : 256;
        struct bpe_candidate *h = realloc(w->heap, sizeof *h * cap);
        if (!h) return false;
        w->heap = h;
        w->heap_cap = cap;
    }
    struct bpe_candidate *h = w->heap, c = {rank, pos};
    size_t i = (*n)++;
    while (i > 0) {
        size_t up = (i - 1) / 2;
        if (h[up].rank < c.rank || (h[up].rank == c.rank && h[up].pos < c.pos)) break;
        h[i] = h[up];
        i = up;
    }
    h[i] = c;
    return true;
}

static struct bpe_candidate heap_pop(tok_work *w, size_t *n) {
    struct bpe_candidate *h = w->heap, top = h[0], last = h[--*n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && (h[c + 1].rank < h[c].rank || (h[c + 1].rank == h[c].rank && h[c + 1].pos < h[c].pos))) c++;
        if (last.rank < h[c].rank || (last.rank == h[c].rank && last.pos < h[c].pos)) break;
        h[i] = h[c];
        i = c;
    }
    h[i] = last;
    return top;
}

static bool candidate(tok_work *w, size_t *heap_n, int32_t pos) {
    rsr_tokenizer *t = w->t;
    const struct bpe_symbol *s = w->syms;
    if (pos < 0 || s[pos].next < 0) return true;
    int32_t result, rank = tok_lookup_merge(t, s[pos].id, s[s[pos].next].id, &result);
    return rank < 0 || heap_push(w, heap_n, rank, pos);
}

/* Byte-level words are looked up in the vocabulary as written there: each byte as its character. */
static bool map_bytes(tok_work *w, const char *s, size_t len) {
    rsr_tokenizer *t = w->t;
    w->mapped.len = 0;
    if (!bytes_reserve(&w->mapped, 2 * len + 1)) return false;
    for (size_t i = 0; i < len; i++) {
        uint8_t b = (uint8_t)s[i];
        memcpy(w->mapped.p + w->mapped.len, t->byte_text[b], 2);
        w->mapped.len += t->byte_text_len[b];
    }
    return true;
}

/* Encodes one word: the lowest-ranked adjacent pair is merged first, the leftmost among equals. */
static rsr_status bpe_word(tok_work *w, const char *s, size_t len) {
    rsr_tokenizer *t = w->t;
    if (!len) return RSR_OK;
    if (t->ignore_merges) {
        int32_t id;
        if (t->byte_level) {
            if (!map_bytes(w, s, len)) return OOM(t);
            id = strmap_get(&t->vocab, t->arena.p, w->mapped.p, w->mapped.len);
        } else {
            id = strmap_get(&t->vocab, t->arena.p, s, len);
        }
        if (id >= 0) return out_push(w, id) ? RSR_OK : OOM(t);
    }
    if (len > INT32_MAX / 2)
        return tok_error(t, RSR_ERR_INVALID_ARGUMENT, "a word of %zu bytes is too long to tokenize", len);
    if (len > w->syms_cap) {
        struct bpe_symbol *p = realloc(w->syms, sizeof *p * len);
        if (!p) return OOM(t);
        w->syms = p;
        w->syms_cap = len;
    }
    struct bpe_symbol *sym = w->syms;
    int32_t n = 0;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        int w = t->byte_level ? 1 : utf8_next(s + i, len - i, &cp);
        int32_t id = t->byte_level ? t->byte_id[(uint8_t)s[i]] : strmap_get(&t->vocab, t->arena.p, s + i, (size_t)w);
        sym[n] = (struct bpe_symbol){id, n - 1, n + 1, (uint32_t)i, (uint32_t)w};
        n++;
        i += (size_t)w;
    }
    sym[n - 1].next = -1;
    size_t heap_n = 0;
    for (int32_t i = 0; i + 1 < n; i++)
        if (!candidate(w, &heap_n, i)) return OOM(t);
    while (heap_n) {
        struct bpe_candidate c = heap_pop(w, &heap_n);
        struct bpe_symbol *a = &sym[c.pos];
        if (!a->len || a->next < 0) continue;
        struct bpe_symbol *b = &sym[a->next];
        int32_t result;
        if (tok_lookup_merge(t, a->id, b->id, &result) != c.rank) continue; /* the pair changed since */
        a->id = result;
        a->len += b->len;
        b->len = 0;
        a->next = b->next;
        if (a->next >= 0) sym[a->next].prev = c.pos;
        if (!candidate(w, &heap_n, a->prev) || !candidate(w, &heap_n, c.pos)) return OOM(t);
    }
    for (int32_t i = 0; i >= 0; i = sym[i].next) {
        if (sym[i].id >= 0) {
            if (!out_push(w, sym[i].id)) return OOM(t);
            continue;
        }
        bool fallback = t->byte_fallback;
        for (uint32_t k = 0; fallback && k < sym[i].len; k++)
            fallback = t->fallback_id[(uint8_t)s[sym[i].start + k]] >= 0;
        if (fallback) {
            for (uint32_t k = 0; k < sym[i].len; k++)
                if (!out_push(w, t->fallback_id[(uint8_t)s[sym[i].start + k]])) return OOM(t);
        } else if (t->unk_id >= 0) {
            if (!out_push(w, t->unk_id)) return OOM(t);
        } else {
            return tok_error(t, RSR_ERR_INTERNAL, "'%.*s' has no token and the tokenizer has no unk_token",
                             (int)sym[i].len, s + sym[i].start);
        }
    }
    return RSR_OK;
}

/* One stretch of text between added tokens, already normalized. */
static rsr_status encode_plain(tok_work *w, const char *s, size_t len, int section) {
    rsr_tokenizer *t = w->t;
    rsr_status st = pre_tokenize(w, s, len, section);
    size_t first = w->out_len;
    for (size_t k = 0; k < w->pieces.n && st == RSR_OK; k++)
        st = bpe_word(w, w->pretok.p + w->pieces.p[k].off, w->pieces.p[k].len);
    if (st == RSR_OK && t->fuse_unk && t->unk_id >= 0) { /* runs of unknowns become one */
        size_t k = first;
        for (size_t r = first; r < w->out_len; r++)
            if (!(w->out[r] == t->unk_id && k > first && w->out[k - 1] == t->unk_id)) w->out[k++] = w->out[r];
        w->out_len = k;
    }
    return st;
}

/* The ids of n bytes of text, in w->out[0, w->out_len). */
static rsr_status encode_text(tok_work *w, const char *text, size_t n, uint32_t flags) {
    rsr_tokenizer *t = w->t;
    w->out_len = 0;
    if (!utf8_sanitize(&w->clean, n ? text : "", n)) return OOM(t);
    bool parse_special = flags & RSR_ENCODE_PARSE_SPECIAL;
    if (flags & RSR_ENCODE_ADD_SPECIAL)
        for (int32_t i = 0; i < t->num_prefix; i++)
            if (!out_push(w, t->prefix_ids[i])) return OOM(t);
    if (!split_added(t, w->clean.p, w->clean.len, false, parse_special, &w->sections)) return OOM(t);
    for (size_t k = 0; k < w->sections.n; k++) {
        struct text_span sec = w->sections.p[k];
        rsr_status st = RSR_OK;
        if (sec.id >= 0) {
            if (!out_push(w, sec.id)) return OOM(t);
            continue;
        }
        if (!sec.len) continue;
        if ((st = normalize(w, w->clean.p + sec.off, sec.len)) != RSR_OK) return st;
        if (!t->any_normalized_added) {
            st = encode_plain(w, w->normed.p, w->normed.len, (int)k);
        } else {
            if (!split_added(t, w->normed.p, w->normed.len, true, parse_special, &w->subsections)) return OOM(t);
            for (size_t j = 0; j < w->subsections.n && st == RSR_OK; j++) {
                struct text_span sub = w->subsections.p[j];
                if (sub.id >= 0) {
                    if (!out_push(w, sub.id)) return OOM(t);
                } else if (sub.len) {
                    st = encode_plain(w, w->normed.p + sub.off, sub.len, (int)k);
                }
            }
        }
        if (st != RSR_OK) return st;
    }
    if (flags & RSR_ENCODE_ADD_SPECIAL)
        for (int32_t i = 0; i < t->num_suffix; i++)
            if (!out_push(w, t->suffix_ids[i])) return OOM(t);
    if (w->out_len > INT32_MAX) return tok_error(t, RSR_ERR_INVALID_ARGUMENT, "encode: more than 2^31 tokens");
    return RSR_OK;
}

rsr_status rsr_tokenizer_encode(rsr_tokenizer *t, const char *text, ptrdiff_t len, uint32_t flags, int32_t *ids,
                                int32_t capacity, int32_t *n_ids) {
    if (n_ids) *n_ids = 0;
    if (!t || !t->text) return RSR_ERR_INVALID_ARGUMENT;
    if (!n_ids || (!text && len != 0) || capacity < 0 || (capacity > 0 && !ids))
        return tok_error(t, RSR_ERR_INVALID_ARGUMENT, "encode: text, ids and n_ids must not be NULL, capacity >= 0");
    if (flags & ~(uint32_t)(RSR_ENCODE_ADD_SPECIAL | RSR_ENCODE_PARSE_SPECIAL))
        return tok_error(t, RSR_ERR_INVALID_ARGUMENT, "encode: unknown flags 0x%x", flags);
    size_t n = len < 0 ? strlen(text) : (size_t)len;
    if (n > UINT32_MAX / 4) return tok_error(t, RSR_ERR_INVALID_ARGUMENT, "encode: %zu bytes of text is too long", n);
    tok_work *w = tok_work_take(t);
    if (!w) return OOM(t);
    rsr_status st = encode_text(w, text, n, flags);
    if (st == RSR_OK) {
        *n_ids = (int32_t)w->out_len;
        if (capacity && w->out_len)
            memcpy(ids, w->out, sizeof *ids * (w->out_len < (size_t)capacity ? w->out_len : (size_t)capacity));
        if (w->out_len > (size_t)capacity)
            st = tok_error(t, RSR_ERR_BUFFER_TOO_SMALL, "encode: the text has %zu tokens, the buffer room for %d",
                           w->out_len, capacity);
    }
    tok_work_give(t, w);
    return st;
}

rsr_status tok_copy_out(rsr_tokenizer *t, const char *s, size_t n, char *text, size_t capacity, size_t *len) {
    *len = n;
    if (capacity) {
        size_t k = n < capacity ? n : capacity - 1;
        memcpy(text, s, k);
        text[k] = 0;
    }
    if (n >= capacity)
        return tok_error(t, RSR_ERR_BUFFER_TOO_SMALL, "the text is %zu bytes, the buffer room for %zu and a NUL", n,
                         capacity ? capacity - 1 : 0);
    return RSR_OK;
}

/* The text of n ids (checked) into w->mapped; [*start, *end) is what the decoder rules keep. */
static rsr_status decode_text(tok_work *w, const int32_t *ids, int32_t n, uint32_t flags, size_t *start, size_t *end) {
    rsr_tokenizer *t = w->t;
    bytes *b = &w->mapped;
    b->len = 0;
    for (int32_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= t->vocab_size)
            return tok_error(t, RSR_ERR_BAD_TOKEN, "decode: token id %d (at %d) is outside [0, %d)", ids[i], i,
                             t->vocab_size);
        if ((flags & RSR_DECODE_SKIP_SPECIAL) && (t->flags[ids[i]] & TF_SPECIAL)) continue;
        if (!bytes_append(b, tok_str(t, t->piece[ids[i]]), t->piece[ids[i]].len)) return OOM(t);
    }
    size_t clen = t->strip_content.len;
    const char *c = tok_str(t, t->strip_content);
    *start = 0, *end = b->len;
    for (int32_t k = 0; clen && k < t->strip_start && *start + clen <= *end && memcmp(b->p + *start, c, clen) == 0; k++)
        *start += clen;
    for (int32_t k = 0; clen && k < t->strip_stop && *end >= *start + clen && memcmp(b->p + *end - clen, c, clen) == 0;
         k++)
        *end -= clen;
    return RSR_OK;
}

rsr_status rsr_tokenizer_decode(rsr_tokenizer *t, const int32_t *ids, int32_t n, uint32_t flags, char *text,
                                size_t capacity, size_t *len) {
    if (len) *len = 0;
    if (!t || !t->text) return RSR_ERR_INVALID_ARGUMENT;
    if (!len || n < 0 || (n > 0 && !ids) || (capacity && !text))
        return tok_error(t, RSR_ERR_INVALID_ARGUMENT, "decode: ids, text and len must not be NULL, n >= 0");
    if (flags & ~(uint32_t)RSR_DECODE_SKIP_SPECIAL)
        return tok_error(t, RSR_ERR_INVALID_ARGUMENT, "decode: unknown flags 0x%x", flags);
    tok_work *w = tok_work_take(t);
    if (!w) return OOM(t);
    size_t start = 0, end = 0;
    rsr_status st = decode_text(w, ids, n, flags, &start, &end);
    if (st == RSR_OK) st = tok_copy_out(t, w->mapped.p ? w->mapped.p + start : "", end - start, text, capacity, len);
    tok_work_give(t, w);
    return st;
}

/* ---- scratch: the tokenizer's spare, or a fresh one while another call holds it ---- */

tok_work *tok_work_take(rsr_tokenizer *t) {
    tok_work *w = atomic_exchange(&t->spare, NULL);
    if (w) return w;
    if (!(w = calloc(1, sizeof *w))) return NULL;
    w->t = t;
    if (!(w->match = pcre2_match_data_create(4, NULL))) return free(w), NULL;
    return w;
}

void tok_work_give(rsr_tokenizer *t, tok_work *w) {
    tok_work *none = NULL;
    if (!atomic_compare_exchange_strong(&t->spare, &none, w)) tok_work_free(w);
}

void tok_work_free(tok_work *w) {
    if (!w) return;
    pcre2_match_data_free(w->match);
    free(w->clean.p), free(w->normed.p), free(w->pretok.p), free(w->mapped.p);
    free(w->sections.p), free(w->subsections.p), free(w->pieces.p), free(w->pieces_next.p), free(w->matches.p);
    free(w->syms), free(w->heap), free(w->out);
    free(w);
}
