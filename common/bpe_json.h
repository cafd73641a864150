/* bpe_json.h — the parts of a Llama 3 style byte-level BPE tokenizer.json that rsr-mkmodel writes
 * (mktokenizer.c) and rsrc rebuilds from a GGUF file's tokenizer.ggml.* (compiler/frontend/gguf_model.c):
 * the pre-tokenizer (Llama 3's split, then the byte-level alphabet), BOS before the text, and the
 * byte-level decoder. */
#ifndef RSR_BPE_JSON_H
#define RSR_BPE_JSON_H

#include <cjson/cJSON.h>

/* the split of Llama 3's tokenizer.json, which llama.cpp calls "llama-bpe" */
static const char bpe_llama3_split[] = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
                                       "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/* Qwen2's (llama.cpp's "qwen2", also Qwen3's): digits one at a time */
static const char bpe_qwen2_split[] = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
                                      "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/* "normalizer", "pre_tokenizer" (the split regex, then the byte-level alphabet) and "decoder" of root */
static inline void bpe_json_pipeline(cJSON *root, const char *split_regex) {
    cJSON_AddNullToObject(root, "normalizer");
    cJSON *pre = cJSON_AddObjectToObject(root, "pre_tokenizer");
    cJSON_AddStringToObject(pre, "type", "Sequence");
    cJSON *list = cJSON_AddArrayToObject(pre, "pretokenizers"), *split = cJSON_CreateObject(),
          *bl = cJSON_CreateObject();
    cJSON_AddStringToObject(split, "type", "Split");
    cJSON_AddStringToObject(cJSON_AddObjectToObject(split, "pattern"), "Regex", split_regex);
    cJSON_AddStringToObject(split, "behavior", "Isolated");
    cJSON_AddBoolToObject(split, "invert", 0);
    cJSON_AddStringToObject(bl, "type", "ByteLevel");
    cJSON_AddBoolToObject(bl, "add_prefix_space", 0);
    cJSON_AddBoolToObject(bl, "trim_offsets", 1);
    cJSON_AddBoolToObject(bl, "use_regex", 0);
    cJSON_AddItemToArray(list, split);
    cJSON_AddItemToArray(list, bl);
    cJSON *dec = cJSON_AddObjectToObject(root, "decoder");
    cJSON_AddStringToObject(dec, "type", "ByteLevel");
    cJSON_AddBoolToObject(dec, "add_prefix_space", 1);
    cJSON_AddBoolToObject(dec, "trim_offsets", 1);
    cJSON_AddBoolToObject(dec, "use_regex", 1);
}

/* One special token of a "post_processor"'s template: its item, and its entry in special_tokens. */
static inline void bpe_json_special(cJSON *single, cJSON *specials, const char *name, int id) {
    cJSON *item = cJSON_CreateObject(), *st = cJSON_AddObjectToObject(item, "SpecialToken");
    cJSON_AddStringToObject(st, "id", name);
    cJSON_AddNumberToObject(st, "type_id", 0);
    cJSON_AddItemToArray(single, item);
    if (cJSON_GetObjectItemCaseSensitive(specials, name)) return;
    cJSON *sp = cJSON_AddObjectToObject(specials, name);
    cJSON_AddStringToObject(sp, "id", name);
    cJSON_AddItemToObject(sp, "ids", cJSON_CreateIntArray((const int[]){id}, 1));
    cJSON_AddItemToObject(sp, "tokens", cJSON_CreateStringArray((const char *const[]){name}, 1));
}

/* "post_processor": token bos (named bos_name) before every text and eos after it; a negative id
 * leaves its side bare */
static inline void bpe_json_specials(cJSON *root, const char *bos_name, int bos, const char *eos_name, int eos) {
    cJSON *post = cJSON_AddObjectToObject(root, "post_processor");
    cJSON_AddStringToObject(post, "type", "TemplateProcessing");
    cJSON *single = cJSON_AddArrayToObject(post, "single"), *seq = cJSON_CreateObject();
    cJSON_AddArrayToObject(post, "pair");
    cJSON *specials = cJSON_AddObjectToObject(post, "special_tokens");
    if (bos >= 0) bpe_json_special(single, specials, bos_name, bos);
    cJSON *sa = cJSON_AddObjectToObject(seq, "Sequence");
    cJSON_AddStringToObject(sa, "id", "A");
    cJSON_AddNumberToObject(sa, "type_id", 0);
    cJSON_AddItemToArray(single, seq);
    if (eos >= 0) bpe_json_special(single, specials, eos_name, eos);
}

#endif
