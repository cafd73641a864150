/* mkgguf.h — writes GGUF files (rsr-mkmodel --format gguf-*): metadata, tensors, and the ternary
 * and binary encodings rsrc reads (compiler/frontend/gguf.c describes them; mkgguf.c's header too). */
#ifndef RSR_MKGGUF_H
#define RSR_MKGGUF_H

#include <stdint.h>
#include <stdio.h>

enum {
    MKG_F32 = 0,
    MKG_F16 = 1,
    MKG_Q8_0 = 8,
    MKG_Q6_K = 14,
    MKG_BF16 = 30,
    MKG_TQ1_0 = 34,
    MKG_TQ2_0 = 35,
    MKG_I2_S = 36,
    MKG_Q1_0 = 41,
    MKG_Q2_0 = 42
};

typedef struct mkg_file mkg_file;
mkg_file *mkg_new(void);
void mkg_free(mkg_file *f);
void mkg_meta_str(mkg_file *f, const char *key, const char *value);
void mkg_meta_u32(mkg_file *f, const char *key, uint32_t value);
void mkg_meta_f32(mkg_file *f, const char *key, float value);
void mkg_meta_bool(mkg_file *f, const char *key, int value);
void mkg_meta_strs(mkg_file *f, const char *key, const char *const *values, uint64_t n); /* an array of strings */
void mkg_meta_i32s(mkg_file *f, const char *key, const int32_t *values, uint64_t n);     /* an array of i32 */
void mkg_meta_bools(mkg_file *f, const char *key, const int32_t *values, uint64_t n);    /* of bools (non-zero) */
/* A tensor of ne0 x ne1 elements (ne0 innermost; ne1 = 1: one dimension); data is taken over
 * (freed by mkg_free). */
void mkg_tensor(mkg_file *f, const char *name, uint32_t type, uint64_t ne0, uint64_t ne1, uint8_t *data,
                uint64_t nbytes);
/* A tensor of ne0 x ne1 x ne2 elements (a stack of ne2 matrices, as mkg_tensor otherwise). */
void mkg_tensor3(mkg_file *f, const char *name, uint32_t type, uint64_t ne0, uint64_t ne1, uint64_t ne2, uint8_t *data,
                 uint64_t nbytes);
/* A rows x cols ternary matrix of codes 0/1/2 (-1/0/+1, row-major) with scale beta (I2_S: as f32;
 * TQ: the f16 bits beta_f16), encoded as type (MKG_I2_S, MKG_TQ1_0 or MKG_TQ2_0); *nbytes
 * receives its size. */
uint8_t *mkg_encode_ternary(uint32_t type, const uint8_t *codes, uint64_t rows, uint64_t cols, float beta,
                            uint16_t beta_f16, uint64_t *nbytes);
/* n weights of 2-bit codes (row-major, rows a whole number of blocks) in llama.cpp's group-scaled
 * type: MKG_Q2_0, codes 0..3 (values -1, 0, +1, +2), blocks of 64; or MKG_Q1_0, codes 0 and 2
 * (-1 and +1), blocks of 128; block b's scale is the f16 bits scales[b]; *nbytes receives the size. */
uint8_t *mkg_encode_grouped(uint32_t type, const uint8_t *codes, const uint16_t *scales, uint64_t n, uint64_t *nbytes);
/* n floats (a multiple of 32 for Q8_0, of 256 for Q6_K) quantised as ggml's blocks of that type
 * (a plain rounding quantiser: any valid encoding will do for the readers' tests); to_f16 is the
 * caller's f32 -> f16 rounding. */
uint8_t *mkg_quantize(uint32_t type, const float *x, uint64_t n, uint16_t (*to_f16)(float), uint64_t *nbytes);
/* The whole file; 0, or -1 when writing failed (errno says why). */
int mkg_write(const mkg_file *f, FILE *out);

#endif
