/*
 * mkweights.c — the values of rsr-mkmodel's tensors: the seeded generators (splitmix64 for the
 * keys, xoshiro256** for the streams; each tensor's from --seed and its name, each packed row's
 * from its own key), the float conversions, and write_tensor, which streams a tensor's bytes
 * through a sink (packed ternary codes, scales, latent and grouped matrices, norms, embeddings,
 * --poison's value). Uses mkmodel.h (the tensors, options and sink) and common/alloc.h.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "mkmodel.h"

/* ------------------------------------------------------------------------------------------ */
/* random numbers: splitmix64 for seeding, xoshiro256** for the streams                         */

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void rng_seed(rng_t *r, uint64_t key) {
    uint64_t x = key;
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
    if (!(r->s[0] | r->s[1] | r->s[2] | r->s[3])) r->s[0] = 1;
    r->have_spare = 0;
    r->spare = 0;
}

/* standard normal, Marsaglia's polar method (no sin/cos; both values of a pair are used) */
static double rng_normal(rng_t *r) {
    if (r->have_spare) {
        r->have_spare = 0;
        return r->spare;
    }
    double u, v, s;
    do {
        u = 2.0 * rng_unit(r) - 1.0;
        v = 2.0 * rng_unit(r) - 1.0;
        s = u * u + v * v;
    } while (s >= 1.0 || s == 0.0);
    double m = sqrt(-2.0 * log(s) / s);
    r->spare = v * m;
    r->have_spare = 1;
    return u * m;
}

static uint64_t fnv1a64(const char *s) {
    uint64_t h = 0xCBF29CE484222325ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001B3ull;
    return h;
}

/* key of a tensor's generator: seed and name only */
uint64_t tensor_key(uint64_t seed, const char *name) {
    uint64_t x = seed ^ 0x5253524D4B4D444Cull; /* "RSRMKMDL" */
    uint64_t a = splitmix64(&x);
    return a ^ fnv1a64(name);
}

static uint64_t row_key(uint64_t tkey, uint64_t row) {
    uint64_t x = tkey + (row + 1) * 0xD1B54A32D192ED03ull;
    return splitmix64(&x);
}

/* ------------------------------------------------------------------------------------------ */
/* float conversions                                                                           */

static uint16_t f32_to_bf16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7FFFFFFFu) > 0x7F800000u) return (uint16_t)((x >> 16) | 0x0040u); /* quiet NaN */
    x += 0x7FFFu + ((x >> 16) & 1u);                                             /* nearest even */
    return (uint16_t)(x >> 16);
}

uint16_t f32_to_f16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    uint32_t ax = x & 0x7FFFFFFFu;
    if (ax > 0x7F800000u) return (uint16_t)(sign | 0x7E00u | ((ax >> 13) & 0x3FFu)); /* NaN */
    if (ax >= 0x477FF000u) return (uint16_t)(sign | 0x7C00u);                        /* >= 65520 (and inf) -> inf */
    if (ax >= 0x38800000u) {                                                         /* normal half: >= 2^-14 */
        uint32_t h = ((ax >> 23) - 112u) << 10 | ((ax >> 13) & 0x3FFu);
        uint32_t rem = ax & 0x1FFFu;
        if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) h++; /* carry may bump the exponent */
        return (uint16_t)(sign | h);
    }
    if (ax <= 0x33000000u) return sign; /* <= 2^-25: rounds to (signed) zero */
    /* subnormal half: value = mant * 2^(e-150), unit 2^-24, so h = mant >> (126 - e) */
    uint32_t e = ax >> 23;
    uint32_t mant = (ax & 0x7FFFFFu) | 0x800000u;
    uint32_t shift = 126u - e; /* 14..24 */
    uint32_t h = mant >> shift;
    uint32_t rem = mant & ((1u << shift) - 1u);
    uint32_t half = 1u << (shift - 1u);
    if (rem > half || (rem == half && (h & 1u))) h++; /* 0x400 is the smallest normal: correct */
    return (uint16_t)(sign | h);
}

/* ------------------------------------------------------------------------------------------ */
/* writing tensor data                                                                         */

void sink_flush(sink_t *s) {
    if (s->len && fwrite(s->buf, 1, s->len, s->f) != s->len) die("cannot write %s: %s", s->path, strerror(errno));
    s->written += s->len;
    s->len = 0;
}

static inline void sink_u16(sink_t *s, uint16_t v) {
    if (s->cap - s->len < 2) sink_flush(s);
    s->buf[s->len++] = (unsigned char)(v & 0xFF);
    s->buf[s->len++] = (unsigned char)(v >> 8);
}

static inline void put_value(sink_t *s, dtype_t dt, float v) {
    sink_u16(s, dt == DT_F16 ? f32_to_f16(v) : f32_to_bf16(v));
}

static float beta_of(const tensor_t *t, rng_t *r, int binary) {
    float base = binary ? 1.0f / sqrtf((float)t->in) : 1.0f / sqrtf(0.6f * (float)t->in);
    return base * (float)rng_uniform(r, 0.8, 1.2);
}

/* Ternary code (w + 1) of one weight: 32 random bits each, two weights per 64-bit draw. */
static void gen_codes_row(unsigned char *codes, uint64_t n, uint64_t tkey, uint64_t row, int binary) {
    rng_t r;
    rng_seed(&r, row_key(tkey, row));
    const uint32_t t0 = 1288490189u; /* floor(0.3 * 2^32): P(-1) = 0.3 */
    const uint32_t t1 = 3006477107u; /* floor(0.7 * 2^32): P(0) = 0.4, P(+1) = 0.3 */
    for (uint64_t j = 0; j < n; j += 2) {
        uint64_t b = rng_next(&r);
        uint32_t u[2] = {(uint32_t)(b >> 32), (uint32_t)b};
        for (int k = 0; k < 2 && j + (uint64_t)k < n; k++) {
            unsigned char c;
            if (binary)
                c = (u[k] >> 31) ? 2 : 0;
            else
                c = u[k] < t0 ? 0 : (u[k] < t1 ? 1 : 2);
            codes[j + (uint64_t)k] = c;
        }
    }
}

/* v, or the --poison value where this is the poisoned tensor's element k */
static float poisoned(const tensor_t *t, const opts_t *o, uint64_t k, float v) {
    return o->poison && k == o->poison_index && !strcmp(t->name, o->poison) ? o->poison_value : v;
}

void write_tensor(sink_t *s, const tensor_t *t, const opts_t *o) {
    const uint64_t key = tensor_key(o->seed, t->name);
    const uint64_t before = s->written + s->len;
    rng_t r;
    rng_seed(&r, key);
    switch (t->kind) {
    case K_PACKED: {
        const uint64_t R = t->out / 4, in = t->in;
        unsigned char *codes = xmalloc(4 * in);
        for (uint64_t pr = 0; pr < R; pr++) {
            for (int i = 0; i < 4; i++)
                gen_codes_row(codes + (uint64_t)i * in, in, key, (uint64_t)i * R + pr, o->binary);
            for (uint64_t c = 0; c < in;) {
                if (s->len == s->cap) sink_flush(s);
                uint64_t m = in - c;
                if (m > s->cap - s->len) m = s->cap - s->len;
                unsigned char *dst = s->buf + s->len;
                for (uint64_t j = 0; j < m; j++, c++)
                    dst[j] = (unsigned char)(codes[c] | codes[in + c] << 2 | codes[2 * in + c] << 4 |
                                             codes[3 * in + c] << 6);
                s->len += m;
            }
        }
        free(codes);
        break;
    }
    case K_SCALE: {
        float beta = beta_of(t, &r, o->binary);
        put_value(s, t->dt, poisoned(t, o, 0, t->inverted ? 1.0f / beta : beta));
        break;
    }
    case K_LATENT: {
        const double sd = 1.0 / sqrt((double)t->in);
        const uint64_t n = t->out * t->in;
        for (uint64_t k = 0; k < n; k++) {
            double w;
            if (o->binary) {
                double m = sd * rng_uniform(&r, 0.9, 1.1);
                w = (rng_next(&r) >> 63) ? m : -m;
            } else {
                w = sd * rng_normal(&r);
            }
            put_value(s, t->dt, poisoned(t, o, k, (float)w));
        }
        break;
    }
    case K_GROUPED: { /* the codes of a packed matrix's rows, times a scale per group, U(0.5, 1.5) x beta's base */
        const double base = o->binary ? 1.0 / sqrt((double)t->in) : 1.0 / sqrt(0.6 * (double)t->in);
        unsigned char *codes = xmalloc(t->in);
        for (uint64_t row = 0; row < t->out; row++) {
            gen_codes_row(codes, t->in, key, row, o->binary);
            rng_t g;
            rng_seed(&g, row_key(key ^ 0x47524F5550ull, row)); /* "GROUP" */
            float d = 0;
            for (uint64_t c = 0; c < t->in; c++) {
                if (c % (uint64_t)o->group == 0) d = (float)(base * rng_uniform(&g, 0.5, 1.5));
                put_value(s, t->dt, poisoned(t, o, row * t->in + c, (float)(codes[c] - 1) * d));
            }
        }
        free(codes);
        break;
    }
    case K_FLOAT: {
        const uint64_t n = t->shape[0] * t->shape[1];
        for (uint64_t k = 0; k < n; k++) {
            double v = t->fmean + t->fsd * rng_normal(&r);
            put_value(s, t->dt, poisoned(t, o, k, (float)(t->fneg ? -exp(v) : v)));
        }
        break;
    }
    case K_NORM:
    case K_ROUTER:
    case K_EMBED: {
        const uint64_t n = t->shape[0] * t->shape[1];
        for (uint64_t k = 0; k < n; k++) {
            double v = rng_normal(&r);
            put_value(s, t->dt, poisoned(t, o, k, (float)(t->kind == K_NORM ? 1.0 + 0.1 * v : v * o->embed_std)));
        }
        break;
    }
    }
    if (s->written + s->len - before != t->nbytes) die("internal error: %s wrote the wrong size", t->name);
}
