/*
 * emit.h — the artifact's outputs: the blob of constant data, the C printer and the artifact
 * descriptor, the manifest, the model's header, the LLVM printer.
 */
#ifndef RSRC_EMIT_H
#define RSRC_EMIT_H

#include "matrix.h"

/* ---- blob.c: the artifact's constant data, streamed to a file ---- */
struct blob_writer {
    FILE *f;
    char *path;
    uint64_t size;
    uint64_t checksum; /* rsr_checksum_add of the whole words written so far */
    uint8_t tail[8];   /* the bytes of the word not yet whole: size % 8 of them */
};
typedef struct blob_writer blob_writer;
/* The checksum of everything written (the last word zero-padded), as rsr_artifact.blob_checksum. */
uint64_t blob_checksum(const blob_writer *b);
void blob_open(blob_writer *b, const char *path);
uint64_t blob_align(blob_writer *b, unsigned alignment);
uint64_t blob_write(blob_writer *b, const void *data, size_t n);
uint64_t blob_write_f32_of(blob_writer *b, const st_tensor *t); /* any float dtype → f32 */
void blob_close(blob_writer *b);
/* An embedding or LM head as stored (f32, f16 or bf16), refused unless finite; its dtype in *dtype. */
uint64_t blob_copy_tensor(blob_writer *b, const st_tensor *t, bool widen, int32_t *dtype);
/* Layer `layer`'s norm model.layers.L.WHAT.weight as f32, its size checked (layer < 0: WHAT is
 * the tensor's whole name). */
uint64_t blob_norm(blob_writer *b, const rsrc_model *m, int layer, const char *what, int64_t size);
/* The int8 copy of the LM head for certified greedy decoding (layout: rsr_artifact.h). */

/* ---- tokenizer_blob.c: tokenizer.json (or else tokenizer.model) next to the weights, checked and
 * copied into the blob; *what says which, for the manifest. RSR_NO_TENSOR when there is none. ---- */
/* The tokenizer, checked with the runtime's; *tok keeps it (free it) for blob_chat_template, NULL
 * when there is none. */
uint64_t blob_tokenizer(blob_writer *b, const rsrc_model *m, uint64_t *size, char **what, rsr_tokenizer **tok);
/* The model's own chat template (a GGUF's tokenizer.chat_template, or chat_template.jinja or
 * tokenizer_config.json's chat_template beside the weights), checked with the runtime's Jinja
 * subset on tok (NULL: no tokenizer, so no template); RSR_NO_TENSOR, with a warning naming what it
 * cannot read, when there is none it can use. */
uint64_t blob_chat_template(blob_writer *b, const rsrc_model *m, rsr_tokenizer *tok, uint64_t *size);

/* ---- emit_c.c: the C printer ---- */
struct c_file; /* what a C file holds beyond its prologue (kir.h) */
/* The head of a C file of kernels: includes, the blob, the i2 kernels' helpers of the target's
 * ISA; file (kir.h) then says what the C printer has added to it */
void emit_c_prologue(FILE *out, const char *source, const rsrc_target *t, struct c_file *file);
void c_file_init(struct c_file *file, const rsrc_target *t); /* a C file of t's with nothing added yet */
/* what i2 kernels of isa call (file's own: unprefixed, else prefixed with isa's name), once per file */
void emit_c_dot_helpers(FILE *out, const struct c_file *file, enum dot_isa isa);
/* m's kernels into a C file with the prologue, and what of the shared functions and the helpers
 * of another ISA they need that file lacks (kir.h) */
void emit_c_kernel(FILE *out, const struct kir_module *m, struct c_file *file);
/* the kernel is defined elsewhere: an LLVM object, or a C file of its own (built_by says which) */
void emit_c_kernel_decl(FILE *out, const struct kir_module *m, const char *built_by);
/* Compiles c_parts[i] into objs[i] (n files), as many at once as this process has processors. */
void link_compile_parts(char *const *c_parts, char **objs, int n, const rsrc_target *t, int opt_level);
void emit_c_string(FILE *out, const char *s); /* a C string literal, escaped */
void emit_c_offset(FILE *out, uint64_t off);  /* a blob offset, or RSR_NO_TENSOR */
/* What the artifact descriptor records of each compiled matrix (kernels are freed as we go). */
typedef struct matrix_record {
    char *name, *symbol, *batch_symbol; /* batch_symbol may be NULL */
    const char *strategy;
    int32_t rows, cols, block_rows, blocks;
    float beta;
    uint64_t data;
    uint64_t index_bytes;
    int32_t unit_cols, planes, scale_cols; /* rsr_artifact_matrix's */
    uint64_t group_scale;
    int32_t unit_stride;       /* 0: the rows */
    int32_t group_scale_dtype; /* enum rsr_dtype */
    uint64_t in_signs;         /* the Hadamard fold's (rsr_artifact_matrix's), RSR_NO_TENSOR if none */
    int32_t in_perm_groups, in_perm_head;
    int32_t sums_block;   /* rsr_artifact_matrix's: i2's sums per unit by blocks of this many rows, or 0 */
    int32_t units_layout; /* rsr_artifact_matrix's (kernel_units_layout) */
} matrix_record;
/* The entry of a kernel alone (tune's candidates, the printers' tests): scale 1, no group scales,
 * no fold. */
void emit_c_kernel_entry(FILE *out, const char *name, const struct rsrc_kernel *kn);
typedef struct artifact_desc {
    const rsrc_model *m;
    const rsrc_target *t;
    int32_t num_matrices;
    const matrix_record *mats;
    const rsr_artifact_layer *layers;
    uint64_t embed, lm_head, final_norm, blob_size;
    uint64_t blob_checksum; /* blob_checksum() of the whole blob */
    int32_t embed_dtype, lm_head_dtype;
    uint64_t tokenizer_json, tokenizer_json_size;
    char *tokenizer;                            /* "tokenizer.model (BPE with byte fallback, 32000 tokens)", or NULL */
    uint64_t chat_template, chat_template_size; /* the model's own Jinja chat template, or RSR_NO_TENSOR */
    uint64_t head_q8, head_q8_scale, head_q8_err; /* the int8 greedy head, or RSR_NO_TENSOR */
    uint64_t embed_signs, lm_head_signs;          /* the Hadamard fold's, or RSR_NO_TENSOR */
    uint64_t mtp_enorm, mtp_hnorm, mtp_head_norm; /* the MTP layer's (m->mtp), or RSR_NO_TENSOR */
    int32_t head_q8_stride;
    const char *gpu;      /* the rsr_artifact_gpu descriptor's name (gpu.c), or NULL */
    const char *manifest; /* manifest.c */
    const char *name;     /* --name: NAME_model_open and NAME_artifact are defined */
    bool default_model;   /* rsr_model_open opens it (model.so, or an object without --name) */
} artifact_desc;
void emit_c_artifact(FILE *out, const artifact_desc *d);

/* ---- manifest.c: what was compiled and how, kept in the artifact (rsr_model_manifest) ---- */
/* flags: the options that shape the code, as given; backend: "c" or "llvm". */
char *manifest_text(const artifact_desc *d, const char *source, const char *backend, const char *flags);

/* ---- emit_header.c: NAME.h, the sizes as macros and the entry points of a compiled model ---- */
/* name NULL: the default model (rsr_model_open), macros prefixed MODEL_. */
void emit_header(FILE *out, const rsrc_model *m, const rsrc_target *t, const char *name, const char *source);
bool valid_model_name(const char *name, char *why, size_t whylen);

/* ---- emit_llvm.c: the LLVM printer (LLVM C API), optimised and emitted in-process ---- */
typedef struct llvm_emitter llvm_emitter;
enum llvm_output { LLVM_OUT_IR, LLVM_OUT_ASM, LLVM_OUT_OBJ };
llvm_emitter *emit_llvm_begin(const rsrc_target *t, const char *module_name, int opt_level);
void emit_llvm_kernel(llvm_emitter *e, const struct kir_module *m);
void emit_llvm_finish(llvm_emitter *e, enum llvm_output what, const char *path); /* runs default<O3> */
void emit_llvm_end(llvm_emitter *e);
/* A model with many matrices is emitted in parts, each an object of its own, so that LLVM never
 * holds them all: flush optimises and emits the kernels so far into path (LLVM_OUT_OBJ) and
 * starts an empty module; pending counts the instructions not yet emitted. */
void emit_llvm_flush(llvm_emitter *e, const char *path);
uint64_t emit_llvm_pending(const llvm_emitter *e);
/* NVPTX: the newest GPU and PTX version LLVM 14 knows; newer specs get sm_86 PTX (JIT-compiled by
 * the driver). Raise both when the minimum LLVM is raised. */
#define LLVM_NVPTX_MAX_SM 86
#define LLVM_NVPTX_PTX_FEATURE "+ptx75"
int llvm_nvptx_sm(const rsrc_target *t);

#endif
