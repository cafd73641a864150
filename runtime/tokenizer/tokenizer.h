/*
 * tokenizer.h — the tokenizer's private structures, shared by tokenizer.c (reading
 * tokenizer.json), sentencepiece.c (reading a SentencePiece tokenizer.model), encode.c
 * (text → ids), chat.c (chat templates).
 *
 * All strings the tokenizer keeps live in one growing byte arena and are named by (offset,
 * length) spans, so that the arena may move when it grows.
 */
#ifndef RSR_TOKENIZER_INTERNAL_H
#define RSR_TOKENIZER_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "rsr.h"

#define TOK_ERRMSG_SIZE 320

typedef struct span {
    uint32_t off, len;
} span;

/* A growable byte buffer; the tokenizer's arena and the encoder's scratch texts. */
typedef struct bytes {
    char *p;
    size_t len, cap;
} bytes;
bool bytes_reserve(bytes *b, size_t extra);
bool bytes_append(bytes *b, const void *data, size_t n);

/* string → int32, open addressing over spans of one arena. */
typedef struct strmap {
    struct strmap_entry {
        uint32_t hash, off, len;
        int32_t value;
    } * slot;
    uint32_t mask, count; /* mask + 1 slots, a power of two */
} strmap;
uint32_t str_hash(const char *s, size_t len);
int32_t strmap_get(const strmap *m, const char *arena, const char *s, size_t len);
bool strmap_put(strmap *m, const char *arena, span key, int32_t value); /* keeps the first value of a key */

/* Pieces of a text: [off, off + len) of some buffer; id >= 0 marks an added token. */
typedef struct spanlist {
    struct text_span {
        uint32_t off, len;
        int32_t id;
    } * p;
    size_t n, cap;
} spanlist;

enum token_flag { TF_USED = 1, TF_ADDED = 2, TF_SPECIAL = 4 };

typedef struct added_token {
    span content;
    int32_t id;
    bool special, normalized, lstrip, rstrip;
} added_token;

/* NORM_NFC .. NORM_NFKD: the Unicode normalization forms (utf8proc), in this order. */
enum norm_kind { NORM_PREPEND, NORM_REPLACE, NORM_SQUEEZE_SPACES, NORM_NFC, NORM_NFD, NORM_NFKC, NORM_NFKD };
typedef struct norm_step {
    enum norm_kind kind;
    span a, b; /* PREPEND: a; REPLACE: a → b; SQUEEZE_SPACES and the Unicode forms: none */
} norm_step;

enum split_behavior { SPLIT_REMOVED, SPLIT_ISOLATED, SPLIT_MERGED_PREVIOUS, SPLIT_MERGED_NEXT, SPLIT_CONTIGUOUS };
enum pre_kind { PRE_SPLIT, PRE_BYTE_LEVEL, PRE_METASPACE };
typedef struct pre_step {
    enum pre_kind kind;
    pcre2_code *re; /* SPLIT (regex or escaped string); BYTE_LEVEL with use_regex */
    enum split_behavior behavior;
    bool invert;
    bool add_prefix_space; /* BYTE_LEVEL */
    span replacement;      /* METASPACE: "▁" */
    int prepend;           /* METASPACE: 0 never, 1 first, 2 always */
    bool split;            /* METASPACE */
} pre_step;

struct rsr_tokenizer {
    bytes arena;
    const char *kind;

    /* vocabulary: per id, the token as written in tokenizer.json and the bytes it decodes to */
    int32_t vocab_size;
    span *text, *piece;
    uint8_t *flags; /* enum token_flag */
    strmap vocab;   /* the BPE model's vocabulary: text → id */

    /* BPE: merges keyed by the pair of ids, ranked by their order in the file */
    struct merge_slot {
        uint64_t key; /* (left << 32 | right) + 1; 0: empty */
        int32_t rank, result;
    } * merges;
    uint32_t merge_mask;
    bool byte_fallback, ignore_merges, fuse_unk;
    int32_t unk_id;
    int32_t fallback_id[256]; /* <0xXX> tokens, -1 when absent */

    /* added tokens, matched longest first at each position of the text */
    added_token *added;
    int32_t num_added;
    int32_t *added_by_byte;   /* indices of added tokens grouped by first byte, longest first */
    int32_t added_first[257]; /* added_by_byte[added_first[b] .. added_first[b + 1]) start with b */
    bool any_normalized_added;

    norm_step *norm;
    int32_t num_norm;
    pre_step *pre;
    int32_t num_pre;
    bool byte_level;        /* the last pre-tokenizer maps bytes to the byte-level alphabet */
    int32_t byte_id[256];   /* byte-level: the id of each byte's one-character token */
    char byte_text[256][2]; /* byte-level: each byte's character in UTF-8 (U+0021..U+0143) */
    uint8_t byte_text_len[256];

    /* post-processor (TemplateProcessing, single sequence): ids around the text */
    int32_t *prefix_ids, num_prefix, *suffix_ids, num_suffix;

    /* decoder rules applied to the whole text after the per-token pieces */
    span strip_content;
    int32_t strip_start, strip_stop;

    int32_t bos_id, eos_id, eot_id;
    const char *chat_template;    /* what name NULL renders: "model" when jinja is set, else builtin_template */
    const char *builtin_template; /* the built-in template that suits the vocabulary, or NULL */
    struct jinja_template *jinja; /* the model's own Jinja template (rsr_tokenizer_set_chat_template), or NULL */

    /* encoder scratch: one kept between calls, taken by the call that runs (tok_work_take) */
    struct tok_work *_Atomic spare;
    bytes load_scratch; /* the readers' scratch while loading (one thread) */
};

/* What one encoding or decoding writes as it goes. rsr_tokenizer_encode may run in many threads
 * at once: each call takes the tokenizer's spare (or a new one when another call holds it) and
 * gives it back, so a lone caller reuses its buffers and concurrent callers share nothing. */
typedef struct tok_work {
    rsr_tokenizer *t;
    bytes clean, normed, pretok, mapped;
    spanlist sections, subsections, pieces, pieces_next, matches;
    struct bpe_symbol {
        int32_t id, prev, next;
        uint32_t start, len;
    } * syms;
    size_t syms_cap;
    struct bpe_candidate {
        int32_t rank, pos;
    } * heap;
    size_t heap_cap;
    int32_t *out;
    size_t out_len, out_cap;
    pcre2_match_data *match;
} tok_work;
tok_work *tok_work_take(rsr_tokenizer *t); /* NULL when out of memory */
void tok_work_give(rsr_tokenizer *t, tok_work *w);
void tok_work_free(tok_work *w);

/* The decoder rules that make each token's piece (those before Fuse) and the text's (Strip). */
enum dec_kind { DEC_BYTE_LEVEL, DEC_REPLACE, DEC_BYTE_FALLBACK, DEC_FUSE, DEC_STRIP, DEC_METASPACE };
typedef struct dec_step {
    enum dec_kind kind;
    const char *a, *b;
    int32_t start, stop;
} dec_step;

/* What both readers share: the arena, the merge table, and the steps after the vocabulary. */
bool tok_arena_add(rsr_tokenizer *t, const char *s, size_t len, span *out);
bool tok_merges_alloc(rsr_tokenizer *t, size_t n); /* a table for n merges */
void tok_merge_insert(rsr_tokenizer *t, int32_t left, int32_t right, int32_t result, int32_t rank);
rsr_status tok_build_pieces(rsr_tokenizer *t, const dec_step *steps, int n);
rsr_status tok_finish(rsr_tokenizer *t); /* indexes, special ids, chat template */
/* sentencepiece.c: a ModelProto begins with its pieces (field 1); tokenizer.json with '{'. */
bool tok_is_sentencepiece(const char *data, size_t len);
rsr_status tok_load_sentencepiece(rsr_tokenizer *t, const uint8_t *data, size_t len);

rsr_status tok_error(rsr_tokenizer *t, rsr_status st, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static inline const char *tok_str(const rsr_tokenizer *t, span s) { return t->arena.p + s.off; }
bool replace_all(bytes *out, const char *s, size_t len, const char *from, size_t from_len, const char *to,
                 size_t to_len);
/* Copies n bytes and a NUL to text when they fit; otherwise RSR_ERR_BUFFER_TOO_SMALL. */
rsr_status tok_copy_out(rsr_tokenizer *t, const char *s, size_t n, char *text, size_t capacity, size_t *len);
int32_t tok_lookup_merge(const rsr_tokenizer *t, int32_t left, int32_t right, int32_t *result);
/* Appends valid UTF-8 to out: each maximal invalid subsequence becomes U+FFFD (WHATWG). */
bool utf8_sanitize(bytes *out, const char *s, size_t len);
int utf8_encode(uint32_t cp, char out[4]);
/* Decodes one code point of valid UTF-8 at s (n bytes left); returns its length. */
int utf8_next(const char *s, size_t n, uint32_t *cp);

#endif
