/*
 * sentencepiece.c — reading a SentencePiece tokenizer.model (a ModelProto, protobuf wire format)
 * into the tables encode.c works on.
 *
 * The result is the tokenizer that the tokenizer.json converted from the same file describes
 * (Hugging Face's conversion, which is what the model's users tokenize with): every piece in the
 * vocabulary under its id; merges for every split of a piece into two pieces, ranked by the
 * piece's score (higher first), ties by the piece's id, then by the ids of the two halves;
 * unknown and control pieces as special added tokens and user-defined pieces as plain ones; byte
 * fallback through the <0xXX> byte pieces; a BOS in front; the normalizer and decoder that
 * add_dummy_prefix / escape_whitespaces / remove_extra_whitespaces stand for. One encoder serves
 * both files.
 *
 * The reader trusts nothing: every length is checked against what is left of its message, every
 * field against the wire type its declaration needs, and what would change the tokenization
 * but is not implemented (another model type, a normalization charsmap, whitespace as a suffix)
 * is refused with the field's name.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer.h"

#define OOM(t) tok_error((t), RSR_ERR_OUT_OF_MEMORY, "out of memory reading tokenizer.model")
#define MAX_PIECES (1 << 24) /* ids as tokenizer.json allows them */

enum wire { WIRE_VARINT = 0, WIRE_FIXED64 = 1, WIRE_BYTES = 2, WIRE_FIXED32 = 5 };
enum piece_type {
    PIECE_NORMAL = 1,
    PIECE_UNKNOWN = 2,
    PIECE_CONTROL = 3,
    PIECE_USER_DEFINED = 4,
    PIECE_UNUSED = 5,
    PIECE_BYTE = 6
};
static const char *const piece_type_name[] = {"?", "NORMAL", "UNKNOWN", "CONTROL", "USER_DEFINED", "UNUSED", "BYTE"};
static const char *const model_type_name[] = {"?", "UNIGRAM", "BPE", "WORD", "CHAR"};

/* One message being read: [p, end) of the file that starts at base. */
typedef struct pb {
    const uint8_t *base, *p, *end;
    const char *name;          /* the message, for errors: "trainer_spec", "pieces[3]" */
    const char *const *fields; /* names of its fields by number (NULL: not looked at), for errors */
    uint32_t num_fields;
} pb;

typedef struct pb_field {
    uint32_t number;
    enum wire wire;
    size_t at;      /* file offset of the tag */
    uint64_t value; /* VARINT, FIXED32, FIXED64 */
    pb body;        /* BYTES */
} pb_field;

/* The fields of each message that this reader looks at (sentencepiece_model.proto). */
#define FIELDS(a) a, (uint32_t)(sizeof a / sizeof *a)
static const char *const model_fields[] = {
    NULL, "pieces", "trainer_spec", "normalizer_spec", "self_test_data", "denormalizer_spec"};
static const char *const piece_fields[] = {NULL, "piece", "score", "type"};
static const char *const trainer_fields[] = {
    [3] = "model_type", [24] = "treat_whitespace_as_suffix", [35] = "byte_fallback", [40] = "unk_id", [41] = "bos_id",
    [42] = "eos_id"};
static const char *const normalizer_fields[] = {NULL,
                                                "name",
                                                "precompiled_charsmap",
                                                "add_dummy_prefix",
                                                "remove_extra_whitespaces",
                                                "escape_whitespaces",
                                                "normalization_rule_tsv"};

/* "trainer_spec.unk_id (field 40)", or "trainer_spec field 7" for a field not looked at. */
static const char *field_label(const pb *m, uint32_t number, char *buf, size_t size) {
    const char *name = number < m->num_fields ? m->fields[number] : NULL;
    if (name)
        snprintf(buf, size, "%s.%s (field %u)", m->name, name, number);
    else
        snprintf(buf, size, "%s field %u", m->name, number);
    return buf;
}

/* 0: read; 1: the message ends first; 2: more than 64 bits (10 bytes at most, the last 0 or 1). */
static int read_varint(pb *m, uint64_t *v) {
    uint64_t x = 0;
    for (int shift = 0; shift < 70; shift += 7) {
        if (m->p == m->end) return 1;
        uint8_t b = *m->p++;
        if (shift == 63 && b > 1) return 2;
        x |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = x;
            return 0;
        }
    }
    return 2;
}

static const char *const varint_problem[] = {"", "runs past the end of the message", "overflows 64 bits"};

/* Reads the next field of m into f; false at the end of m, or with *st set when it is bad. */
static bool next_field(rsr_tokenizer *t, pb *m, pb_field *f, rsr_status *st) {
    *st = RSR_OK;
    if (m->p >= m->end) return false;
    f->at = (size_t)(m->p - m->base);
    uint64_t tag;
    int bad = read_varint(m, &tag);
    char label[96];
    if (bad) {
        *st = tok_error(t, RSR_ERR_FORMAT, "tokenizer.model: byte %zu: %s: a field tag %s", f->at, m->name,
                        varint_problem[bad]);
        return false;
    }
    if (tag >> 3 == 0 || tag >> 3 > 536870911u) {
        *st = tok_error(t, RSR_ERR_FORMAT, "tokenizer.model: byte %zu: %s: field number %llu is not valid", f->at,
                        m->name, (unsigned long long)(tag >> 3));
        return false;
    }
    f->number = (uint32_t)(tag >> 3);
    f->wire = (enum wire)(tag & 7);
    field_label(m, f->number, label, sizeof label);
    switch (f->wire) {
    case WIRE_VARINT:
        if (!(bad = read_varint(m, &f->value))) return true;
        *st = tok_error(t, RSR_ERR_FORMAT, "tokenizer.model: byte %zu: %s: the varint %s", f->at, label,
                        varint_problem[bad]);
        return false;
    case WIRE_FIXED64:
    case WIRE_FIXED32: {
        size_t n = f->wire == WIRE_FIXED64 ? 8 : 4;
        if ((size_t)(m->end - m->p) < n) {
            *st = tok_error(t, RSR_ERR_FORMAT,
                            "tokenizer.model: byte %zu: %s: a %zu-byte value, but %zu bytes are left in %s", f->at,
                            label, n, (size_t)(m->end - m->p), m->name);
            return false;
        }
        f->value = 0;
        for (size_t i = 0; i < n; i++) f->value |= (uint64_t)m->p[i] << (8 * i);
        m->p += n;
        return true;
    }
    case WIRE_BYTES: {
        uint64_t len;
        if ((bad = read_varint(m, &len))) {
            *st = tok_error(t, RSR_ERR_FORMAT, "tokenizer.model: byte %zu: %s: the length %s", f->at, label,
                            varint_problem[bad]);
            return false;
        }
        size_t left = (size_t)(m->end - m->p);
        if (len > left) {
            *st = tok_error(t, RSR_ERR_FORMAT,
                            "tokenizer.model: byte %zu: %s: length %llu runs past the end of %s (%zu bytes "
                            "left)",
                            f->at, label, (unsigned long long)len, m->name, left);
            return false;
        }
        f->body = (pb){m->base, m->p, m->p + len, NULL, NULL, 0};
        m->p += len;
        return true;
    }
    default:
        *st = tok_error(t, RSR_ERR_FORMAT,
                        "tokenizer.model: byte %zu: %s has wire type %d, which no field of a SentencePiece "
                        "model has (0, 1, 2 or 5)",
                        f->at, label, (int)f->wire);
        return false;
    }
}

/* A field this reader uses must come with the wire type of its declaration. */
static rsr_status expect_wire(rsr_tokenizer *t, const pb *m, const pb_field *f, enum wire want) {
    static const char *const names[] = {"varint", "64-bit", "length-delimited", "?", "?", "32-bit"};
    char label[96];
    if (f->wire == want) return RSR_OK;
    return tok_error(t, RSR_ERR_FORMAT, "tokenizer.model: byte %zu: %s has wire type %d, but is %s (%d)", f->at,
                     field_label(m, f->number, label, sizeof label), (int)f->wire, names[want], (int)want);
}

/* An int32 field: protobuf writes negative values as 10-byte varints of their 64-bit form. */
static rsr_status int32_field(rsr_tokenizer *t, const pb *m, const pb_field *f, int32_t *out) {
    rsr_status st = expect_wire(t, m, f, WIRE_VARINT);
    if (st != RSR_OK) return st;
    int64_t v = (int64_t)f->value;
    char label[96];
    if (v < INT32_MIN || v > INT32_MAX)
        return tok_error(t, RSR_ERR_FORMAT, "tokenizer.model: byte %zu: %s is %lld, outside int32", f->at,
                         field_label(m, f->number, label, sizeof label), (long long)v);
    *out = (int32_t)v;
    return RSR_OK;
}

static rsr_status bool_field(rsr_tokenizer *t, const pb *m, const pb_field *f, bool *out) {
    rsr_status st = expect_wire(t, m, f, WIRE_VARINT);
    if (st == RSR_OK) *out = f->value != 0;
    return st;
}

/* ---- the messages ---- */

typedef struct sp_piece {
    const uint8_t *text;
    uint32_t len;
    float score;
    int32_t type; /* enum piece_type */
} sp_piece;

typedef struct sp_model {
    sp_piece *piece;
    int32_t n, cap;
    int32_t model_type; /* 1 UNIGRAM (the default), 2 BPE, ... */
    bool has_model_type;
    bool byte_fallback, treat_whitespace_as_suffix;
    int32_t unk_id, bos_id, eos_id;
    bool add_dummy_prefix, remove_extra_whitespaces, escape_whitespaces;
    char rules[160]; /* normalization rules found, refused after model_type; "" if none */
} sp_model;

static bool utf8_valid(rsr_tokenizer *t, const uint8_t *s, size_t len) {
    bytes *b = &t->load_scratch;
    return utf8_sanitize(b, (const char *)s, len) && b->len == len && memcmp(b->p, s, len) == 0;
}

static rsr_status read_piece(rsr_tokenizer *t, pb *m, sp_piece *x) {
    *x = (sp_piece){NULL, 0, 0.0f, PIECE_NORMAL}; /* the proto's defaults */
    size_t at = (size_t)(m->p - m->base);
    bool has_text = false;
    pb_field f;
    rsr_status st;
    while (next_field(t, m, &f, &st)) {
        if (f.number == 1) {
            if ((st = expect_wire(t, m, &f, WIRE_BYTES)) != RSR_OK) return st;
            x->text = f.body.p;
            x->len = (uint32_t)(f.body.end - f.body.p);
            has_text = true;
        } else if (f.number == 2) {
            if ((st = expect_wire(t, m, &f, WIRE_FIXED32)) != RSR_OK) return st;
            uint32_t bits = (uint32_t)f.value;
            memcpy(&x->score, &bits, 4);
        } else if (f.number == 3) {
            if ((st = expect_wire(t, m, &f, WIRE_VARINT)) != RSR_OK) return st;
            if (f.value < PIECE_NORMAL || f.value > PIECE_BYTE)
                return tok_error(t, RSR_ERR_FORMAT,
                                 "tokenizer.model: byte %zu: %s.type is %llu, not a piece type (1-6)", f.at, m->name,
                                 (unsigned long long)f.value);
            x->type = (int32_t)f.value;
        }
    }
    if (st != RSR_OK) return st;
    if (!has_text || !x->len)
        return tok_error(t, RSR_ERR_FORMAT, "tokenizer.model: byte %zu: %s has an empty piece", at, m->name);
    if (!utf8_valid(t, x->text, x->len))
        return tok_error(t, RSR_ERR_FORMAT, "tokenizer.model: %s: the piece is not valid UTF-8", m->name);
    if (!isfinite(x->score))
        return tok_error(t, RSR_ERR_FORMAT, "tokenizer.model: %s ('%.*s'): score %g is not finite", m->name,
                         (int)x->len, (const char *)x->text, (double)x->score);
    return RSR_OK;
}

static rsr_status read_trainer_spec(rsr_tokenizer *t, pb *m, sp_model *sp) {
    pb_field f;
    rsr_status st = RSR_OK;
    while (next_field(t, m, &f, &st)) {
        switch (f.number) {
        case 3:
            st = int32_field(t, m, &f, &sp->model_type);
            sp->has_model_type = true;
            break;
        case 24: st = bool_field(t, m, &f, &sp->treat_whitespace_as_suffix); break;
        case 35: st = bool_field(t, m, &f, &sp->byte_fallback); break;
        case 40: st = int32_field(t, m, &f, &sp->unk_id); break;
        case 41: st = int32_field(t, m, &f, &sp->bos_id); break;
        case 42: st = int32_field(t, m, &f, &sp->eos_id); break;
        default: break; /* training settings: no bearing on how text is tokenized */
        }
        if (st != RSR_OK) return st;
    }
    return st;
}

/* normalizer_spec, or denormalizer_spec (which only carries a charsmap and rules). */
static rsr_status read_normalizer_spec(rsr_tokenizer *t, pb *m, sp_model *sp) {
    pb_field f;
    rsr_status st = RSR_OK;
    const uint8_t *name = NULL;
    size_t name_len = 0;
    while (next_field(t, m, &f, &st)) {
        switch (f.number) {
        case 1:
            if ((st = expect_wire(t, m, &f, WIRE_BYTES)) == RSR_OK)
                name = f.body.p, name_len = (size_t)(f.body.end - f.body.p);
            break;
        case 2:
        case 6:
            if ((st = expect_wire(t, m, &f, WIRE_BYTES)) == RSR_OK && f.body.end > f.body.p && !sp->rules[0]) {
                char label[96];
                snprintf(sp->rules, sizeof sp->rules, "byte %zu: %s: %zu bytes of normalization rules%s%.*s%s", f.at,
                         field_label(m, f.number, label, sizeof label), (size_t)(f.body.end - f.body.p),
                         name ? " ('" : "", name_len > 40 ? 40 : (int)name_len, name ? (const char *)name : "",
                         name ? "')" : "");
            }
            break;
        case 3: st = bool_field(t, m, &f, &sp->add_dummy_prefix); break;
        case 4: st = bool_field(t, m, &f, &sp->remove_extra_whitespaces); break;
        case 5: st = bool_field(t, m, &f, &sp->escape_whitespaces); break;
        default: break;
        }
        if (st != RSR_OK) return st;
    }
    return st;
}

static rsr_status read_model_proto(rsr_tokenizer *t, const uint8_t *data, size_t len, sp_model *sp) {
    pb top = {data, data, data + len, "ModelProto", FIELDS(model_fields)};
    pb_field f;
    rsr_status st;
    char name[32];
    while (next_field(t, &top, &f, &st)) {
        if (f.number == 1) {
            if ((st = expect_wire(t, &top, &f, WIRE_BYTES)) != RSR_OK) return st;
            if (sp->n == MAX_PIECES)
                return tok_error(t, RSR_ERR_FORMAT, "tokenizer.model: more than %d pieces", MAX_PIECES);
            if (sp->n == sp->cap) {
                int32_t cap = sp->cap ? 2 * sp->cap : 1024;
                sp_piece *p = realloc(sp->piece, sizeof *p * (size_t)cap);
                if (!p) return OOM(t);
                sp->piece = p, sp->cap = cap;
            }
            snprintf(name, sizeof name, "pieces[%d]", sp->n);
            f.body.name = name;
            f.body.fields = piece_fields, f.body.num_fields = sizeof piece_fields / sizeof *piece_fields;
            if ((st = read_piece(t, &f.body, &sp->piece[sp->n])) != RSR_OK) return st;
            sp->n++;
        } else if (f.number == 2 || f.number == 3 || f.number == 5) {
            if ((st = expect_wire(t, &top, &f, WIRE_BYTES)) != RSR_OK) return st;
            f.body.name = model_fields[f.number];
            f.body.fields = f.number == 2 ? trainer_fields : normalizer_fields;
            f.body.num_fields = f.number == 2 ? sizeof trainer_fields / sizeof *trainer_fields
                                              : sizeof normalizer_fields / sizeof *normalizer_fields;
            if (f.number == 2)
                st = read_trainer_spec(t, &f.body, sp);
            else if (f.number == 3)
                st = read_normalizer_spec(t, &f.body, sp);
            else { /* the denormalizer's flags have no meaning; its rules are refused */
                sp_model ignored = *sp;
                st = read_normalizer_spec(t, &f.body, &ignored);
                memcpy(sp->rules, ignored.rules, sizeof sp->rules);
            }
            if (st != RSR_OK) return st;
        } else if (f.number != 4) { /* 4: self_test_data */
            return tok_error(t, RSR_ERR_FORMAT,
                             "tokenizer.model: byte %zu: field %u is not a field of a SentencePiece "
                             "ModelProto (1-5): not a tokenizer.model",
                             f.at, f.number);
        }
    }
    return st;
}

/* ---- the tokenizer ---- */

typedef struct merge_candidate {
    float score;
    int32_t result, left, right;
} merge_candidate;

/* Higher score first; then the order of the pieces (ids), as the converted merge list has it. */
static int merge_order(const void *a, const void *b) {
    const merge_candidate *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    if (x->result != y->result) return x->result < y->result ? -1 : 1;
    if (x->left != y->left) return x->left < y->left ? -1 : 1;
    return (x->right > y->right) - (x->right < y->right);
}

static rsr_status build_merges(rsr_tokenizer *t, const sp_model *sp) {
    size_t n = 0, cap = (size_t)sp->n * 2 + 16;
    merge_candidate *m = malloc(sizeof *m * cap);
    if (!m) return OOM(t);
    for (int32_t id = 0; id < sp->n; id++) {
        const sp_piece *x = &sp->piece[id];
        const char *s = (const char *)x->text;
        for (uint32_t k = 1; k < x->len; k++) {
            if (((uint8_t)s[k] & 0xC0) == 0x80) continue; /* splits between characters only */
            int32_t left = strmap_get(&t->vocab, t->arena.p, s, k);
            int32_t right = left < 0 ? -1 : strmap_get(&t->vocab, t->arena.p, s + k, x->len - k);
            if (right < 0) continue;
            if (n == cap) {
                merge_candidate *p = realloc(m, sizeof *m * (cap *= 2));
                if (!p) {
                    free(m);
                    return OOM(t);
                }
                m = p;
            }
            m[n++] = (merge_candidate){x->score, id, left, right};
        }
    }
    qsort(m, n, sizeof *m, merge_order);
    if (!tok_merges_alloc(t, n)) {
        free(m);
        return OOM(t);
    }
    for (size_t i = 0; i < n; i++) tok_merge_insert(t, m[i].left, m[i].right, m[i].result, (int32_t)i);
    free(m);
    return RSR_OK;
}

static bool add_norm(rsr_tokenizer *t, enum norm_kind kind, const char *a, const char *b) {
    norm_step step = {kind, {0, 0}, {0, 0}};
    if ((a && !tok_arena_add(t, a, strlen(a), &step.a)) || (b && !tok_arena_add(t, b, strlen(b), &step.b)))
        return false;
    norm_step *grown = realloc(t->norm, sizeof *t->norm * (size_t)(t->num_norm + 1));
    if (!grown) return false;
    t->norm = grown;
    t->norm[t->num_norm++] = step;
    return true;
}

static rsr_status check_id(rsr_tokenizer *t, const sp_model *sp, const char *field, int32_t id, int want_type) {
    if (id == -1 && want_type != PIECE_UNKNOWN) return RSR_OK; /* -1: the model has none */
    if (id < 0 || id >= sp->n)
        return tok_error(t, RSR_ERR_FORMAT,
                         "tokenizer.model: trainer_spec.%s %d is not a piece id (the model has %d pieces)", field, id,
                         sp->n);
    if (want_type && sp->piece[id].type != want_type)
        return tok_error(t, RSR_ERR_FORMAT, "tokenizer.model: trainer_spec.%s %d names '%.*s', a %s piece, not %s",
                         field, id, (int)sp->piece[id].len, (const char *)sp->piece[id].text,
                         piece_type_name[sp->piece[id].type], piece_type_name[want_type]);
    return RSR_OK;
}

static int hex_digit(char c) { /* upper case, as SentencePiece writes byte pieces; -1 otherwise */
    return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

static rsr_status build(rsr_tokenizer *t, const sp_model *sp) {
    rsr_status st;
    if (sp->model_type != 2)
        return tok_error(t, RSR_ERR_FORMAT,
                         "tokenizer.model: trainer_spec.model_type is %s (%d%s); only BPE (2) is supported",
                         sp->model_type >= 1 && sp->model_type <= 4 ? model_type_name[sp->model_type] : "unknown",
                         sp->model_type, sp->has_model_type ? "" : ", the default: the field is absent");
    if (sp->rules[0])
        return tok_error(t, RSR_ERR_FORMAT, "tokenizer.model: %s; only the identity normalizer (no rules) is supported",
                         sp->rules);
    if (sp->treat_whitespace_as_suffix)
        return tok_error(t, RSR_ERR_FORMAT,
                         "tokenizer.model: trainer_spec.treat_whitespace_as_suffix is not supported");
    if (!sp->n) return tok_error(t, RSR_ERR_FORMAT, "tokenizer.model: no pieces (field 1)");
    if ((st = check_id(t, sp, "unk_id", sp->unk_id, PIECE_UNKNOWN)) != RSR_OK ||
        (st = check_id(t, sp, "bos_id", sp->bos_id, 0)) != RSR_OK ||
        (st = check_id(t, sp, "eos_id", sp->eos_id, 0)) != RSR_OK)
        return st;

    t->vocab_size = sp->n;
    t->text = calloc((size_t)sp->n, sizeof *t->text);
    t->piece = calloc((size_t)sp->n, sizeof *t->piece);
    t->flags = calloc((size_t)sp->n, 1);
    t->added = calloc((size_t)sp->n + 1, sizeof *t->added);
    if (!t->text || !t->piece || !t->flags || !t->added) return OOM(t);
    for (int b = 0; b < 256; b++) t->fallback_id[b] = -1;
    for (int32_t id = 0; id < sp->n; id++) {
        const sp_piece *x = &sp->piece[id];
        const char *s = (const char *)x->text;
        if (!tok_arena_add(t, s, x->len, &t->text[id])) return OOM(t);
        int32_t seen = strmap_get(&t->vocab, t->arena.p, s, x->len);
        if (seen >= 0)
            return tok_error(t, RSR_ERR_FORMAT, "tokenizer.model: pieces[%d] '%.*s' repeats pieces[%d]", id,
                             (int)x->len, s, seen);
        if (!strmap_put(&t->vocab, t->arena.p, t->text[id], id)) return OOM(t);
        t->flags[id] = TF_USED;
        if (x->type == PIECE_BYTE) {
            bool form = x->len == 6 && memcmp(s, "<0x", 3) == 0 && s[5] == '>';
            int hi = form ? hex_digit(s[3]) : -1, lo = form ? hex_digit(s[4]) : -1, v = hi * 16 + lo;
            if (hi < 0 || lo < 0)
                return tok_error(t, RSR_ERR_FORMAT,
                                 "tokenizer.model: pieces[%d] '%.*s' is a BYTE piece, but not written <0xXX>", id,
                                 (int)x->len, s);
            t->fallback_id[v] = id;
        } else if (x->type == PIECE_UNKNOWN || x->type == PIECE_CONTROL || x->type == PIECE_USER_DEFINED) {
            bool special = x->type != PIECE_USER_DEFINED;
            t->added[t->num_added++] = (added_token){t->text[id], id, special, false, false, false};
            t->flags[id] |= TF_ADDED | (special ? TF_SPECIAL : 0);
        }
    }
    t->unk_id = sp->unk_id;
    t->byte_fallback = sp->byte_fallback;
    t->fuse_unk = true;
    if ((st = build_merges(t, sp)) != RSR_OK) return st;

    const char *space = sp->escape_whitespaces ? "\xe2\x96\x81" : " "; /* "▁" stands for a space in pieces */
    if ((sp->remove_extra_whitespaces && !add_norm(t, NORM_SQUEEZE_SPACES, NULL, NULL)) ||
        (sp->add_dummy_prefix && !add_norm(t, NORM_PREPEND, space, NULL)) ||
        (sp->escape_whitespaces && !add_norm(t, NORM_REPLACE, " ", space)))
        return OOM(t);
    if (sp->bos_id >= 0) {
        t->prefix_ids = malloc(sizeof(int32_t));
        if (!t->prefix_ids) return OOM(t);
        t->prefix_ids[t->num_prefix++] = sp->bos_id;
    }
    dec_step steps[4];
    int n = 0;
    if (sp->escape_whitespaces) steps[n++] = (dec_step){DEC_REPLACE, space, " ", 0, 0};
    steps[n++] = (dec_step){DEC_BYTE_FALLBACK, NULL, NULL, 0, 0};
    steps[n++] = (dec_step){DEC_FUSE, NULL, NULL, 0, 0};
    if (sp->add_dummy_prefix) steps[n++] = (dec_step){DEC_STRIP, " ", NULL, 1, 0};
    if ((st = tok_build_pieces(t, steps, n)) != RSR_OK || (st = tok_finish(t)) != RSR_OK) return st;
    if (sp->eos_id >= 0) t->eos_id = sp->eos_id; /* the file says which; the names are a guess */
    return RSR_OK;
}

bool tok_is_sentencepiece(const char *data, size_t len) {
    size_t i = 0;
    while (i < len && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r')) i++;
    if (i < len && data[i] == '{') return false; /* JSON */
    return len > 0 && data[0] == 0x0A;
}

rsr_status tok_load_sentencepiece(rsr_tokenizer *t, const uint8_t *data, size_t len) {
    /* The proto's defaults for fields a file leaves out. */
    sp_model sp = {.model_type = 1,
                   .unk_id = 0,
                   .bos_id = 1,
                   .eos_id = 2,
                   .add_dummy_prefix = true,
                   .remove_extra_whitespaces = true,
                   .escape_whitespaces = true};
    rsr_status st = read_model_proto(t, data, len, &sp);
    if (st == RSR_OK) st = build(t, &sp);
    free(sp.piece);
    return st;
}
