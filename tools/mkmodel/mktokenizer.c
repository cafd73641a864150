/*
 * mktokenizer.c — a small byte-level BPE tokenizer.json for the models rsr-mkmodel writes, so
 * that a test model takes and prints text like a real one.
 *
 * Layout as in Llama-3: the Llama-3 pre-tokenizer regex, the 256-character byte alphabet, merges
 * learned here from a paragraph of English, special tokens <|begin_of_text|> and
 * <|end_of_text|> at the model's bos / eos ids and the chat markers at the top ids. A vocabulary
 * larger than the paragraph teaches (the 2b4t preset's 128256) is filled with made-up words, each
 * a word token of the vocabulary followed by one of its first letter runs: every id then prints
 * text, as a real model's do, and each is a merge of two tokens that the pre-tokenizer can give.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "mktokenizer.h"

#include "bpe_json.h"

static const char training_text[] =
    "A compiler reads a program and writes another one that does the same thing faster. This one reads the "
    "weights of a language model, looks at every matrix on its own, and writes code that knows the matrix by "
    "heart. The weights are only minus one, zero or one, so a product needs no multiplication at all: the "
    "inputs that share a pattern of signs are added once, and the sum is used by every row that has that "
    "pattern. The model then runs on an ordinary processor, one token after the other, and the text it writes "
    "is streamed to the terminal as soon as each token is known.\n"
    "The weather was fine in the morning. We walked along the river to the old bridge, where the water runs "
    "fast over the stones, and then up the hill to the village. There is a small market on the square, with "
    "bread, cheese, apples and flowers, and a cafe where people sit in the sun and talk about the day. In the "
    "evening it rained, and we read by the window until it was dark.\n"
    "Numbers such as 1, 2, 3, 10, 42, 100 and 2024 appear in text as well, and so do names like Paris, London, "
    "Tokyo and New York. What is the capital of France? The capital of France is Paris. What is the capital of "
    "Japan? It is Tokyo. Hello! How are you? I am well, thank you, and you?\n";

static int printable_byte(unsigned b) { return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE; }

/* The byte-level alphabet: byte b is written as this code point in vocabulary files. */
static uint32_t byte_codepoint(unsigned b) {
    if (printable_byte(b)) return b;
    uint32_t n = 0;
    for (unsigned c = 0; c < b; c++) n += !printable_byte(c);
    return 256 + n;
}

static size_t put_utf8(char *out, uint32_t cp) {
    if (cp < 0x80) return out[0] = (char)cp, 1;
    out[0] = (char)(0xC0 | cp >> 6), out[1] = (char)(0x80 | (cp & 63));
    return 2; /* the alphabet stays below U+0800 */
}

typedef struct word {
    int32_t *sym; /* token ids */
    int n, count;
} word;

static int is_letter(unsigned char c) { return (c | 32) >= 'a' && (c | 32) <= 'z'; }
static int is_digit(unsigned char c) { return c >= '0' && c <= '9'; }

/* Words of the training text: an optional space and a run of letters or digits, or one other byte. */
static int split_words(word *w, int max, const int32_t *byte_id) {
    int n = 0;
    const unsigned char *s = (const unsigned char *)training_text;
    size_t len = strlen(training_text);
    for (size_t i = 0; i < len;) {
        size_t j = i + (s[i] == ' ' && i + 1 < len && (is_letter(s[i + 1]) || is_digit(s[i + 1])));
        if (is_letter(s[j]))
            while (j < len && is_letter(s[j])) j++;
        else if (is_digit(s[j]))
            while (j < len && is_digit(s[j])) j++;
        else
            j++;
        int k;
        for (k = 0; k < n; k++) {
            int same = w[k].n == (int)(j - i);
            for (int m = 0; same && m < w[k].n; m++) same = w[k].sym[m] == byte_id[s[i + (size_t)m]];
            if (same) break;
        }
        if (k == n && n < max) {
            w[n].sym = malloc(sizeof(int32_t) * (j - i));
            if (!w[n].sym) return -1;
            w[n].n = (int)(j - i);
            for (size_t m = i; m < j; m++) w[n].sym[m - i] = byte_id[s[m]];
            n++;
        }
        if (k < n) w[k].count++;
        i = j;
    }
    return n;
}

typedef struct pair_count {
    int32_t a, b;
    long count;
} pair_count;

static int by_pair(const void *x, const void *y) {
    const pair_count *p = x, *q = y;
    if (p->a != q->a) return p->a < q->a ? -1 : 1;
    return p->b < q->b ? -1 : p->b > q->b;
}

static cJSON *added_token(int32_t id, const char *content) {
    cJSON *t = cJSON_CreateObject();
    cJSON_AddNumberToObject(t, "id", id);
    cJSON_AddStringToObject(t, "content", content);
    cJSON_AddBoolToObject(t, "single_word", 0);
    cJSON_AddBoolToObject(t, "lstrip", 0);
    cJSON_AddBoolToObject(t, "rstrip", 0);
    cJSON_AddBoolToObject(t, "normalized", 0);
    cJSON_AddBoolToObject(t, "special", 1);
    return t;
}

/* The byte-level space (byte 0x20 in the alphabet), and whether a token is a run of letters after
 * an optional space: one the pre-tokenizer can give whole. */
static bool word_token(const char *t, bool space_ok) {
    char space[4];
    space[put_utf8(space, byte_codepoint(' '))] = 0;
    if (space_ok && !strncmp(t, space, strlen(space))) t += strlen(space);
    if (!*t) return false;
    for (; *t; t++)
        if (!is_letter((unsigned char)*t)) return false;
    return true;
}

/* A set of strings (open addressing; the table has room for n). */
typedef struct strset {
    const char **slot;
    size_t mask;
} strset;

static size_t str_hash(const char *s) {
    size_t h = 1469598103934665603u;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211u;
    return h;
}

static bool strset_add(strset *set, const char *s) { /* false: already there */
    size_t i = str_hash(s) & set->mask;
    for (; set->slot[i]; i = (i + 1) & set->mask)
        if (!strcmp(set->slot[i], s)) return false;
    set->slot[i] = s;
    return true;
}

/* Ids from next on that the learned merges left free become words: a word token (letters after an
 * optional space) followed by one of the first 64 letter-only tokens, in the order of ids, the
 * new words being word tokens too; each is a merge of the two. */
static void fill_vocabulary(char **tok, long vocab, long next, cJSON *merges) {
    size_t cap = 1;
    while (cap < 2 * (size_t)vocab) cap *= 2;
    strset set = {calloc(cap, sizeof(char *)), cap - 1};
    int32_t tails[64];
    int ntails = 0;
    if (!set.slot) return;
    for (long i = 0; i < vocab; i++) {
        if (!tok[i]) continue;
        strset_add(&set, tok[i]);
        if (ntails < 64 && word_token(tok[i], false)) tails[ntails++] = (int32_t)i;
    }
    for (long head = 0; head < vocab && next < vocab; head++) {
        if (!tok[head] || !word_token(tok[head], true)) continue;
        for (int k = 0; k < ntails && next < vocab; k++) {
            size_t la = strlen(tok[head]), lb = strlen(tok[tails[k]]);
            char *joined = malloc(la + lb + 1), *pair = malloc(la + lb + 2);
            if (!joined || !pair) {
                free(joined), free(pair);
                break;
            }
            sprintf(joined, "%s%s", tok[head], tok[tails[k]]);
            sprintf(pair, "%s %s", tok[head], tok[tails[k]]);
            if (strset_add(&set, joined)) {
                cJSON_AddItemToArray(merges, cJSON_CreateString(pair));
                tok[next] = joined;
                while (next < vocab && tok[next]) next++;
            } else {
                free(joined);
            }
            free(pair);
        }
    }
    free(set.slot);
}

cJSON *synthetic_tokenizer(long vocab, long bos, long eos, int add_eos, char *why, size_t whylen) {
    const char *special_name[5] = {"<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
                                   "<|eot_id|>"};
    long special_id[5] = {bos, eos, vocab - 3, vocab - 2, vocab - 1};
    if (vocab < 256 + 5 + 16 || bos < 0 || eos < 0 || bos >= vocab - 3 || eos >= vocab - 3 || bos == eos) {
        snprintf(why, whylen,
                 "a byte-level vocabulary needs 256 byte tokens, 5 special tokens and some merges; "
                 "vocab %ld is too small",
                 vocab);
        return NULL;
    }
    /* Token strings by id; ids not yet given out are NULL. */
    char **tok = calloc((size_t)vocab, sizeof *tok);
    int32_t byte_id[256];
    if (!tok) return NULL;
    for (int i = 0; i < 5; i++) tok[special_id[i]] = strdup(special_name[i]);
    long next = 0;
    for (unsigned b = 0; b < 256; b++) {
        while (tok[next]) next++;
        char s[4];
        s[put_utf8(s, byte_codepoint(b))] = 0;
        tok[next] = strdup(s);
        byte_id[b] = (int32_t)next;
    }

    word words[1024];
    int nwords = split_words(words, 1024, byte_id);
    pair_count *pairs = malloc(sizeof *pairs * sizeof training_text);
    cJSON *merges = cJSON_CreateArray();
    for (;;) {
        while (next < vocab && tok[next]) next++;
        if (next >= vocab || nwords < 0 || !pairs) break;
        /* The most frequent adjacent pair; ties go to the smaller ids, for a fixed result. */
        size_t npairs = 0;
        for (int i = 0; i < nwords; i++)
            for (int k = 0; k + 1 < words[i].n; k++)
                pairs[npairs++] = (pair_count){words[i].sym[k], words[i].sym[k + 1], words[i].count};
        qsort(pairs, npairs, sizeof *pairs, by_pair);
        int32_t best_a = -1, best_b = -1;
        long best = 0;
        for (size_t i = 0; i < npairs;) {
            size_t j = i;
            long count = 0;
            for (; j < npairs && pairs[j].a == pairs[i].a && pairs[j].b == pairs[i].b; j++) count += pairs[j].count;
            if (count > best) best = count, best_a = pairs[i].a, best_b = pairs[i].b;
            i = j;
        }
        if (best == 0) break; /* every word is one token */
        size_t la = strlen(tok[best_a]), lb = strlen(tok[best_b]);
        char *joined = malloc(la + lb + 1), *pair = malloc(la + lb + 2);
        sprintf(joined, "%s%s", tok[best_a], tok[best_b]);
        sprintf(pair, "%s %s", tok[best_a], tok[best_b]);
        cJSON_AddItemToArray(merges, cJSON_CreateString(pair));
        free(pair);
        int32_t id = -1;
        for (long i = 0; i < vocab && id < 0; i++)
            if (tok[i] && strcmp(tok[i], joined) == 0) id = (int32_t)i;
        if (id < 0)
            tok[id = (int32_t)next] = joined;
        else
            free(joined);
        for (int i = 0; i < nwords; i++) {
            int w = 0;
            for (int k = 0; k < words[i].n; k++) {
                if (k + 1 < words[i].n && words[i].sym[k] == best_a && words[i].sym[k + 1] == best_b)
                    words[i].sym[w++] = id, k++;
                else
                    words[i].sym[w++] = words[i].sym[k];
            }
            words[i].n = w;
        }
    }
    for (int i = 0; i < nwords; i++) free(words[i].sym);
    free(pairs);
    fill_vocabulary(tok, vocab, next, merges);

    cJSON *root = cJSON_CreateObject(), *model = cJSON_CreateObject(), *v = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "version", "1.0");
    cJSON_AddNullToObject(root, "truncation");
    cJSON_AddNullToObject(root, "padding");
    cJSON *added = cJSON_AddArrayToObject(root, "added_tokens");
    for (int i = 0; i < 5; i++) cJSON_AddItemToArray(added, added_token((int32_t)special_id[i], special_name[i]));
    bpe_json_pipeline(root, bpe_llama3_split);
    bpe_json_specials(root, special_name[0], (int)bos, special_name[1], add_eos ? (int)eos : -1);

    cJSON_AddStringToObject(model, "type", "BPE");
    cJSON_AddNullToObject(model, "dropout");
    cJSON_AddNullToObject(model, "unk_token");
    cJSON_AddBoolToObject(model, "fuse_unk", 0);
    cJSON_AddBoolToObject(model, "byte_fallback", 0);
    cJSON_AddBoolToObject(model, "ignore_merges", 1);
    for (long i = 0; i < vocab; i++) {
        int special = 0;
        for (int k = 0; k < 5; k++) special |= special_id[k] == i;
        if (tok[i] && !special) cJSON_AddNumberToObject(v, tok[i], (double)i);
        free(tok[i]);
    }
    free(tok);
    cJSON_AddItemToObject(model, "vocab", v);
    cJSON_AddItemToObject(model, "merges", merges);
    cJSON_AddItemToObject(root, "model", model);
    return root;
}
