/*
 * serve_gbnf.h — structured output by a GBNF grammar (the `grammar` field of a request): which
 * bytes may come next in a reply that must be a sentence of the grammar. The engine masks every
 * token whose bytes cannot continue the reply, as it does for JSON schemas (serve_json.c).
 * serve_gbnf.c says what is accepted and how the recognizer works.
 */
#ifndef RSR_SERVE_GBNF_H
#define RSR_SERVE_GBNF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GBNF_MAX_TEXT 65536  /* bytes of grammar text */
#define GBNF_MAX_RULES 1024  /* rules once repetitions and groups are rewritten into rules */
#define GBNF_MAX_REPEAT 256  /* the largest m or n of {m}, {m,}, {m,n} */
#define GBNF_MAX_STACKS 4096 /* the ways a reply may be read at once */
#define GBNF_MAX_DEPTH 256   /* rules open at once in one of them */

typedef struct gbnf_grammar gbnf_grammar;
typedef struct gbnf_state gbnf_state;

/* Compiles GBNF text whose start rule is `root`. NULL with a message in err naming the line,
 * column and what is wrong: a syntax error, an undefined rule (named), a missing root, a
 * left-recursive rule (named), or a grammar too big (the limits above). */
gbnf_grammar *gbnf_compile(const char *src, size_t len, char *err, size_t errlen);
void gbnf_free(gbnf_grammar *g);                   /* drops a holder's reference; the last frees it */
gbnf_grammar *gbnf_ref(gbnf_grammar *g);           /* one more holder of g (any thread); g */
gbnf_state *gbnf_state_new(const gbnf_grammar *g); /* the empty reply; NULL: out of memory */
/* A copy of src that takes no scratch memory until it is fed: a state that is only copied to and
 * from (a mask's states along a token's bytes) costs its stacks alone. NULL: out of memory. */
gbnf_state *gbnf_state_dup(const gbnf_state *src);
void gbnf_state_free(gbnf_state *st);
/* Feeds bytes of the reply. false: no reply the grammar accepts begins with the bytes fed so far
 * (st is then spoilt: feed a copy), or the reply needs more than the limits above. A reply may
 * stop in the middle of a UTF-8 sequence between calls: the bytes are UTF-8 and character
 * classes are over code points. */
bool gbnf_state_feed(gbnf_state *st, const char *bytes, size_t n);
bool gbnf_state_done(const gbnf_state *st); /* the bytes so far are a whole sentence of the grammar */
/* st was spoilt by the limits above (or out of memory), not by the grammar refusing its bytes. */
bool gbnf_state_over(const gbnf_state *st);
/* A hash of st's readings, and whether two states read the reply alike (then every byte does the
 * same to both): what lets a mask feed each byte once per distinct state. */
uint64_t gbnf_state_hash(const gbnf_state *st);
bool gbnf_state_same(const gbnf_state *a, const gbnf_state *b);
size_t gbnf_state_bytes(const gbnf_state *st); /* the memory st holds, scratch aside */
/* dst becomes a copy of src (dst from gbnf_state_new of the same grammar: false otherwise, or when
 * out of memory). Reuses dst's memory: no allocation unless src holds more than dst ever did. */
bool gbnf_state_copy(gbnf_state *dst, const gbnf_state *src);

#endif
