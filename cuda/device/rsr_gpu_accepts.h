/*
 * rsr_gpu_accepts.h — what of a model the GPU's forward pass (cuda/runtime) does not run: the
 * one list both sides read. The compiler refuses a CUDA target for a model with one of these
 * traits (compiler/main.c), and the runtime refuses an artifact with GPU code that has one
 * (runtime/src/model.c, check_gpu): each side says which traits its model has, and the first the
 * GPU lacks, in this order, is named. A trait the GPU learns leaves RSR_GPU_LACKS.
 */
#ifndef RSR_GPU_ACCEPTS_H
#define RSR_GPU_ACCEPTS_H

enum rsr_model_trait {
    RSR_TRAIT_FOLD,         /* PrismML's Hadamard fold (rsr_artifact.fold_block) */
    RSR_TRAIT_DELTANET,     /* gated DeltaNet layers (Qwen3.5) */
    RSR_TRAIT_EXPERTS,      /* a mixture of experts */
    RSR_TRAIT_PROJ_NORMS,   /* BitLinear's norm before each projection (in_norm) */
    RSR_TRAIT_QK_NORM,      /* q/k head norms */
    RSR_TRAIT_ACT_BLOCK,    /* activations quantised per block (act_block, Q8_K rounding) */
    RSR_TRAIT_POST_NORMS,   /* Gemma 3's norms after attention and FFN */
    RSR_TRAIT_WINDOWS,      /* sliding windows, a second RoPE base */
    RSR_TRAIT_GELU,         /* GELU in the FFN */
    RSR_TRAIT_SCALES,       /* the embedding's or attention's own scale */
    RSR_TRAIT_ATTN_GATE,    /* Qwen3.5's gated attention */
    RSR_TRAIT_PARTIAL_ROPE, /* RoPE on part of each head */
    RSR_TRAIT_BLOCK_TABLES, /* an embedding or head in group-scaled blocks (rsr_blocks.h) */
    RSR_TRAITS
};

/* Each trait in the words of a refusal: "<model> has <this>". */
static const char *const rsr_trait_names[RSR_TRAITS] = {
    "a Hadamard fold (PrismML's rotated inputs)",
    "gated DeltaNet layers (a recurrent state)",
    "a mixture of experts",
    "a norm before each projection",
    "q/k head norms",
    "activations per block",
    "norms after attention and FFN",
    "sliding windows (a second RoPE base)",
    "GELU activations",
    "embedding or attention scales",
    "gated attention",
    "RoPE on part of each head",
    "an embedding or head in group-scaled blocks",
};

/* The traits the GPU's forward pass lacks: all of them (it runs BitNet, Llama and Falcon-E). */
#define RSR_GPU_LACKS ((1u << RSR_TRAITS) - 1)

/* The first trait of `traits` (bit t: trait t) the GPU lacks, named; NULL when it runs them all. */
static inline const char *rsr_gpu_refuses(unsigned traits) {
    for (int t = 0; t < RSR_TRAITS; t++)
        if (traits & RSR_GPU_LACKS & (1u << t)) return rsr_trait_names[t];
    return 0;
}

#endif
