/*
 * rsr-tamper — writes a copy of a compiled model with fields of its artifact descriptor
 * overwritten, as damage or an attacker would: the tests check that the runtime refuses it.
 * Usage: rsr-tamper IN.so OUT.so FIELD=VALUE...
 * Fields: abi_version hidden num_layers vocab max_positions head_dim blob_size embed final_norm
 * activation rope_dims embed_dtype lm_head_dtype;
 * flip=N flips the low bit of byte N of the constants (the blob) instead.
 * The descriptor is found through the ELF symbol table; offsets come from rsr_artifact.h.
 */
#include <elf.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rsr_artifact.h"

#define STR(x) #x
#define XSTR(x) STR(x)

static void die(const char *msg, const char *what) {
    fprintf(stderr, "rsr-tamper: %s%s%s\n", msg, what ? ": " : "", what ? what : "");
    exit(1);
}

static const struct {
    const char *name;
    size_t offset, size;
} fields[] = {
#define FIELD(f)                                                                                                       \
    { #f, offsetof(rsr_artifact, f), sizeof(((rsr_artifact *)0)->f) }
    FIELD(abi_version), FIELD(hidden),      FIELD(num_layers),    FIELD(vocab),      FIELD(max_positions),
    FIELD(head_dim),    FIELD(blob_size),   FIELD(embed),         FIELD(final_norm), FIELD(activation),
    FIELD(rope_dims),   FIELD(embed_dtype), FIELD(lm_head_dtype),
#undef FIELD
};

/* File offset of a virtual address inside a section with contents. */
static size_t file_offset(const unsigned char *elf, uint64_t vaddr, size_t len) {
    const Elf64_Ehdr *eh = (const Elf64_Ehdr *)elf;
    const Elf64_Shdr *sh = (const Elf64_Shdr *)(elf + eh->e_shoff);
    for (int k = 0; k < eh->e_shnum; k++)
        if (sh[k].sh_type != SHT_NOBITS && sh[k].sh_addr && vaddr >= sh[k].sh_addr &&
            vaddr + len <= sh[k].sh_addr + sh[k].sh_size)
            return sh[k].sh_offset + (vaddr - sh[k].sh_addr);
    die("an address outside the file's sections", NULL);
    return 0;
}

/* File offset of the descriptor: RSR_ARTIFACT_SYMBOL is a pointer to it, whose value a shared
 * object holds as the addend of a relative relocation (or in place, when not relocated). */
static size_t find_descriptor(const unsigned char *elf, size_t size) {
    const Elf64_Ehdr *eh = (const Elf64_Ehdr *)elf;
    if (size < sizeof *eh || memcmp(eh->e_ident, ELFMAG, SELFMAG) || eh->e_ident[EI_CLASS] != ELFCLASS64)
        die("not a 64-bit ELF file", NULL);
    if (eh->e_shoff + (size_t)eh->e_shnum * sizeof(Elf64_Shdr) > size) die("truncated section table", NULL);
    const Elf64_Shdr *sh = (const Elf64_Shdr *)(elf + eh->e_shoff);
    uint64_t pointer = 0;
    for (int i = 0; i < eh->e_shnum && !pointer; i++) {
        if (sh[i].sh_type != SHT_DYNSYM && sh[i].sh_type != SHT_SYMTAB) continue;
        const Elf64_Sym *sym = (const Elf64_Sym *)(elf + sh[i].sh_offset);
        const char *names = (const char *)(elf + sh[sh[i].sh_link].sh_offset);
        for (size_t j = 0; j < sh[i].sh_size / sizeof *sym; j++)
            if (sym[j].st_value && strcmp(names + sym[j].st_name, XSTR(RSR_ARTIFACT_SYMBOL)) == 0)
                pointer = sym[j].st_value;
    }
    if (!pointer) die("no symbol " XSTR(RSR_ARTIFACT_SYMBOL), NULL);
    uint64_t target = 0;
    for (int i = 0; i < eh->e_shnum && !target; i++) {
        if (sh[i].sh_type != SHT_RELA) continue;
        const Elf64_Rela *r = (const Elf64_Rela *)(elf + sh[i].sh_offset);
        for (size_t j = 0; j < sh[i].sh_size / sizeof *r; j++)
            if (r[j].r_offset == pointer && ELF64_R_TYPE(r[j].r_info) == R_X86_64_RELATIVE)
                target = (uint64_t)r[j].r_addend;
    }
    if (!target) memcpy(&target, elf + file_offset(elf, pointer, 8), 8);
    return file_offset(elf, target, sizeof(rsr_artifact));
}

int main(int argc, char **argv) {
    if (argc < 4) die("usage: rsr-tamper IN.so OUT.so FIELD=VALUE...", NULL);
    FILE *f = fopen(argv[1], "rb");
    if (!f) die("cannot open", argv[1]);
    fseek(f, 0, SEEK_END);
    size_t size = (size_t)ftell(f);
    rewind(f);
    unsigned char *elf = malloc(size);
    if (!elf || fread(elf, 1, size, f) != size) die("cannot read", argv[1]);
    fclose(f);
    size_t at = find_descriptor(elf, size);
    for (int i = 3; i < argc; i++) {
        char *eq = strchr(argv[i], '=');
        if (!eq) die("expected FIELD=VALUE", argv[i]);
        *eq = 0;
        if (!strcmp(argv[i], "flip")) { /* the blob pointer is a relocated address too */
            uint64_t blob = 0, at_blob = 0;
            const Elf64_Ehdr *eh = (const Elf64_Ehdr *)elf;
            const Elf64_Shdr *sh = (const Elf64_Shdr *)(elf + eh->e_shoff);
            uint64_t desc_vaddr = 0;
            for (int s = 0; s < eh->e_shnum && !desc_vaddr; s++)
                if (sh[s].sh_type != SHT_NOBITS && sh[s].sh_addr && at >= sh[s].sh_offset &&
                    at < sh[s].sh_offset + sh[s].sh_size)
                    desc_vaddr = sh[s].sh_addr + (at - sh[s].sh_offset);
            at_blob = desc_vaddr + offsetof(rsr_artifact, blob);
            for (int s = 0; s < eh->e_shnum && !blob; s++) {
                if (sh[s].sh_type != SHT_RELA) continue;
                const Elf64_Rela *r = (const Elf64_Rela *)(elf + sh[s].sh_offset);
                for (size_t j = 0; j < sh[s].sh_size / sizeof *r; j++)
                    if (r[j].r_offset == at_blob) blob = (uint64_t)r[j].r_addend;
            }
            if (!blob) die("no relocation for the blob pointer", NULL);
            elf[file_offset(elf, blob + strtoull(eq + 1, NULL, 0), 1)] ^= 1;
            continue;
        }
        size_t k = 0;
        while (k < sizeof fields / sizeof *fields && strcmp(fields[k].name, argv[i])) k++;
        if (k == sizeof fields / sizeof *fields) die("unknown field", argv[i]);
        unsigned long long v = strtoull(eq + 1, NULL, 0);
        if (fields[k].size == 4) {
            unsigned int v32 = (unsigned int)v;
            memcpy(elf + at + fields[k].offset, &v32, 4);
        } else {
            memcpy(elf + at + fields[k].offset, &v, 8);
        }
    }
    f = fopen(argv[2], "wb");
    if (!f || fwrite(elf, 1, size, f) != size || fclose(f) != 0) die("cannot write", argv[2]);
    free(elf);
    return 0;
}
