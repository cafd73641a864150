/*
 * rsr_elf.c — a compiled model's ELF file checked before the dynamic loader sees it, and its
 * digest (rsr_elf.h says what and why). Part of librsr_dl.
 */
#include "rsr_elf.h"

#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#ifndef DT_RELR /* an elf.h older than glibc 2.36 */
#define DT_RELRSZ 35
#define DT_RELR 36
#define DT_RELRENT 37
#endif

/* Records the first damage found in why; returns -1. */
static int rsr_elf_fail(rsr_elf *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int rsr_elf_fail(rsr_elf *e, const char *fmt, ...) {
    if (!e->why[0]) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->why, sizeof e->why, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* Bytes [off, off + n) of the file, all of them inside it. */
int rsr_elf_read(const rsr_elf *e, void *buf, uint64_t n, uint64_t off) {
    return off <= e->size && n <= e->size - off && off <= (uint64_t)LONG_MAX && fseek(e->f, (long)off, SEEK_SET) == 0 &&
           fread(buf, 1, (size_t)n, e->f) == n;
}

/* The same into memory of its own (free it), or NULL; tables larger than any rsrc writes are refused. */
static void *rsr_elf_load(const rsr_elf *e, uint64_t n, uint64_t off) {
    void *p = n <= ((uint64_t)64 << 20) ? malloc(n ? (size_t)n : 1) : NULL;
    if (p && !rsr_elf_read(e, p, n, off)) {
        free(p);
        p = NULL;
    }
    return p;
}

void rsr_elf_close(rsr_elf *e) {
    free(e->ph);
    free(e->sh);
    free(e->dyn);
    free(e->strtab);
    free(e->sym);
    free(e->rela);
    free(e->relr);
    e->ph = NULL, e->sh = NULL, e->dyn = NULL, e->strtab = NULL, e->sym = NULL, e->rela = NULL, e->relr = NULL;
}

/* Reads the ELF header of the open file f: 0, or -1 when it is not a 64-bit little-endian ELF
 * file (why says so). The caller checks e_machine, then calls rsr_elf_check; rsr_elf_close. */
int rsr_elf_open(rsr_elf *e, FILE *f) {
    memset(e, 0, sizeof *e);
    e->f = f;
    long end = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
    if (end < 0) return rsr_elf_fail(e, "cannot determine its size");
    e->size = (uint64_t)end;
    const unsigned char *id = e->eh.e_ident;
    if (!rsr_elf_read(e, &e->eh, sizeof e->eh, 0) || memcmp(id, ELFMAG, SELFMAG) != 0 || id[EI_CLASS] != ELFCLASS64 ||
        id[EI_DATA] != ELFDATA2LSB)
        return rsr_elf_fail(e, "not a 64-bit ELF shared object");
    return 0;
}

/* ---- the headers and the segments ---- */

/* The loadable segment whose memory holds [vaddr, vaddr + n) with at least the permissions
 * `flags`, or -1. Valid once rsr_elf_check_segments has bounded every segment's addresses. */
static int rsr_elf_segment(const rsr_elf *e, uint64_t vaddr, uint64_t n, uint32_t flags) {
    for (int i = 0; e->ph && i < e->eh.e_phnum; i++) {
        const Elf64_Phdr *p = &e->ph[i];
        if (p->p_type == PT_LOAD && vaddr >= p->p_vaddr && vaddr - p->p_vaddr <= p->p_memsz &&
            n <= p->p_memsz - (vaddr - p->p_vaddr) && (p->p_flags & flags) == flags)
            return i;
    }
    return -1;
}

/* Is [vaddr, vaddr + n) loaded from the file bytes at off, by one segment with `flags`? */
static int rsr_elf_maps(const rsr_elf *e, uint64_t vaddr, uint64_t off, uint64_t n, uint32_t flags) {
    int s = rsr_elf_segment(e, vaddr, n, flags);
    if (s < 0) return 0;
    const Elf64_Phdr *p = &e->ph[s];
    return off >= p->p_offset && off - p->p_offset == vaddr - p->p_vaddr && vaddr - p->p_vaddr + n <= p->p_filesz;
}

/* What the loaded object holds at [vaddr, vaddr + n) (a segment's bytes past its file part are
 * zero), in memory of its own (free it); NULL when no segment with `flags` holds it all. */
static void *rsr_elf_vread(const rsr_elf *e, uint64_t vaddr, uint64_t n, uint32_t flags) {
    int s = rsr_elf_segment(e, vaddr, n, flags);
    if (s < 0 || n > ((uint64_t)64 << 20)) return NULL;
    const Elf64_Phdr *p = &e->ph[s];
    uint64_t at = vaddr - p->p_vaddr, in_file = at < p->p_filesz ? p->p_filesz - at : 0;
    unsigned char *buf = (unsigned char *)calloc(1, n ? (size_t)n : 1);
    if (buf && !rsr_elf_read(e, buf, n < in_file ? n : in_file, p->p_offset + at)) {
        free(buf);
        buf = NULL;
    }
    return buf;
}

/* The ELF header's fields, and the program and section header tables read (each that lies inside
 * the file, whatever is wrong with the other: the digest is found through either). */
static int rsr_elf_headers(rsr_elf *e) {
    const Elf64_Ehdr *h = &e->eh;
    static const unsigned char pad[EI_NIDENT - EI_PAD];
    if (h->e_ident[EI_VERSION] != EV_CURRENT || h->e_version != EV_CURRENT)
        return rsr_elf_fail(e, "ELF version %u, not %u", h->e_version, EV_CURRENT);
    if ((h->e_ident[EI_OSABI] != ELFOSABI_SYSV && h->e_ident[EI_OSABI] != ELFOSABI_GNU) ||
        h->e_ident[EI_ABIVERSION] != 0 || memcmp(h->e_ident + EI_PAD, pad, sizeof pad) != 0)
        return rsr_elf_fail(e, "an ELF identification (OS ABI, padding) that no loader of this system accepts");
    if (h->e_type != ET_DYN) return rsr_elf_fail(e, "ELF type %u, not a shared object (%u)", h->e_type, ET_DYN);
    if (h->e_ehsize != sizeof(Elf64_Ehdr) || h->e_phentsize != sizeof(Elf64_Phdr))
        return rsr_elf_fail(e, "header sizes %u and %u, not %zu and %zu", h->e_ehsize, h->e_phentsize,
                            sizeof(Elf64_Ehdr), sizeof(Elf64_Phdr));
    int rc = 0;
    if (h->e_phnum == 0 || h->e_phnum >= PN_XNUM || h->e_phoff < sizeof *h || h->e_phoff % 8 ||
        !(e->ph = (Elf64_Phdr *)rsr_elf_load(e, (uint64_t)h->e_phnum * sizeof *e->ph, h->e_phoff)))
        rc = rsr_elf_fail(e, "%u program headers at offset %llu, outside the file of %llu bytes", h->e_phnum,
                          (unsigned long long)h->e_phoff, (unsigned long long)e->size);
    uint64_t need = 0; /* a truncated file is named so, whatever else its missing tail holds */
    for (int i = 0; e->ph && i < h->e_phnum; i++) {
        const Elf64_Phdr *p = &e->ph[i];
        const uint64_t last = p->p_offset + p->p_filesz < p->p_offset ? UINT64_MAX : p->p_offset + p->p_filesz;
        if (p->p_type == PT_LOAD && last > need) need = last;
    }
    if (need > e->size) {
        e->truncated = 1;
        return rsr_elf_fail(e, "truncated: %llu bytes, its segments need %llu", (unsigned long long)e->size,
                            (unsigned long long)need);
    }
    if (h->e_shnum == 0) {
        if (h->e_shoff || h->e_shstrndx)
            return rsr_elf_fail(e, "a section header table at offset %llu with no sections",
                                (unsigned long long)h->e_shoff);
        return rc;
    }
    if (h->e_shstrndx == SHN_UNDEF || h->e_shstrndx >= h->e_shnum)
        return rsr_elf_fail(e, "section name table %u of %u sections", h->e_shstrndx, h->e_shnum);
    if (h->e_shentsize != sizeof(Elf64_Shdr) || h->e_shoff < sizeof *h || h->e_shoff % 8 ||
        !(e->sh = (Elf64_Shdr *)rsr_elf_load(e, (uint64_t)h->e_shnum * sizeof *e->sh, h->e_shoff)))
        return rsr_elf_fail(e, "%u section headers of %u bytes at offset %llu, outside the file of %llu bytes",
                            h->e_shnum, h->e_shentsize, (unsigned long long)h->e_shoff, (unsigned long long)e->size);
    return rc;
}

static int rsr_elf_pow2(uint64_t x) { return (x & (x - 1)) == 0; }

/* A loadable segment: aligned as the loader maps it, in memory after the one before, readable. */
static int rsr_elf_check_load(rsr_elf *e, int i, uint64_t *end) {
    const Elf64_Phdr *p = &e->ph[i];
    if (p->p_filesz > p->p_memsz)
        return rsr_elf_fail(e, "loadable segment %d holds %llu bytes of the file in %llu of memory", i,
                            (unsigned long long)p->p_filesz, (unsigned long long)p->p_memsz);
    if (!rsr_elf_pow2(p->p_align) || (p->p_align > 1 && (p->p_vaddr - p->p_offset) % p->p_align))
        return rsr_elf_fail(e, "loadable segment %d: address %#llx, offset %#llx, alignment %#llx disagree", i,
                            (unsigned long long)p->p_vaddr, (unsigned long long)p->p_offset,
                            (unsigned long long)p->p_align);
    if (p->p_vaddr >= ((uint64_t)1 << 47) || p->p_memsz >= ((uint64_t)1 << 47) - p->p_vaddr)
        return rsr_elf_fail(e, "loadable segment %d: %#llx bytes at %#llx, beyond any address space", i,
                            (unsigned long long)p->p_memsz, (unsigned long long)p->p_vaddr);
    if (p->p_vaddr < *end)
        return rsr_elf_fail(e, "loadable segment %d at %#llx overlaps the one before it, or precedes it", i,
                            (unsigned long long)p->p_vaddr);
    if (!(p->p_flags & PF_R)) return rsr_elf_fail(e, "loadable segment %d is not readable", i);
    *end = p->p_vaddr + p->p_memsz;
    return 0;
}

/* The program headers: known types, the loadable segments in order, the others inside the
 * loadable ones. The loader maps PT_LOAD's, reads PT_DYNAMIC, PT_PHDR, PT_NOTE and PT_TLS's image
 * in the mapped object, and makes PT_GNU_RELRO read-only (past the object, someone else's memory). */
static int rsr_elf_check_segments(rsr_elf *e) {
    uint64_t end = 0;
    int dynamic = 0, loads = 0;
    for (int i = 0; i < e->eh.e_phnum; i++)
        if (e->ph[i].p_type == PT_LOAD && (loads++, rsr_elf_check_load(e, i, &end) != 0)) return -1;
    if (!loads) return rsr_elf_fail(e, "no loadable segment");
    for (int i = 0; i < e->eh.e_phnum; i++) {
        const Elf64_Phdr *p = &e->ph[i];
        int ok = 1;
        switch (p->p_type) {
        case PT_NULL:
        case PT_LOAD: break;
        case PT_DYNAMIC:
            dynamic++;
            ok = p->p_filesz >= sizeof(Elf64_Dyn) && p->p_filesz % sizeof(Elf64_Dyn) == 0 &&
                 rsr_elf_maps(e, p->p_vaddr, p->p_offset, p->p_filesz, PF_R);
            break;
        case PT_PHDR:
            ok = p->p_offset == e->eh.e_phoff && p->p_filesz == (uint64_t)e->eh.e_phnum * sizeof *p &&
                 rsr_elf_maps(e, p->p_vaddr, p->p_offset, p->p_filesz, PF_R);
            break;
        case PT_INTERP:
        case PT_NOTE:
        case PT_GNU_EH_FRAME:
        case PT_GNU_PROPERTY: ok = rsr_elf_maps(e, p->p_vaddr, p->p_offset, p->p_filesz, PF_R); break;
        case PT_TLS:
            ok = p->p_filesz <= p->p_memsz && p->p_memsz < ((uint64_t)1 << 30) && rsr_elf_pow2(p->p_align) &&
                 (!p->p_filesz || rsr_elf_maps(e, p->p_vaddr, p->p_offset, p->p_filesz, PF_R));
            break;
        case PT_GNU_RELRO: { /* made read-only up to its end rounded down to a page: within its segment's pages */
            const int s = rsr_elf_segment(e, p->p_vaddr, 0, PF_R | PF_W);
            ok = s >= 0 && p->p_memsz < ((uint64_t)1 << 47) &&
                 ((p->p_vaddr + p->p_memsz) & ~(uint64_t)4095) <=
                     ((e->ph[s].p_vaddr + e->ph[s].p_memsz + 4095) & ~(uint64_t)4095);
            break;
        }
        case PT_GNU_STACK:
            if (p->p_flags & PF_X) return rsr_elf_fail(e, "it asks for an executable stack (program header %d)", i);
            break;
        default:
            if (p->p_type < PT_LOPROC || p->p_type > PT_HIPROC)
                return rsr_elf_fail(e, "program header %d has type %#x, which no loader knows", i, p->p_type);
        }
        if (!ok)
            return rsr_elf_fail(e,
                                "program header %d (type %#x, %#llx bytes at %#llx, offset %#llx) lies outside "
                                "the loadable segments",
                                i, p->p_type, (unsigned long long)p->p_filesz, (unsigned long long)p->p_vaddr,
                                (unsigned long long)p->p_offset);
    }
    if (dynamic != 1) return rsr_elf_fail(e, "%d dynamic segments, not one", dynamic);
    return 0;
}

/* The section headers: inside the file, and each loaded section inside a segment that loads it
 * from the same bytes with its permissions (a segment cut short or made read-only no longer
 * does). The loader ignores them; the digest is found through them. */
static int rsr_elf_check_sections(rsr_elf *e) {
    if (!e->sh || e->eh.e_shstrndx >= e->eh.e_shnum) return 0;
    const Elf64_Shdr *names = &e->sh[e->eh.e_shstrndx];
    if (names->sh_type != SHT_STRTAB || names->sh_offset > e->size || names->sh_size > e->size - names->sh_offset)
        return rsr_elf_fail(e, "the section name table (section %u) lies outside the file", e->eh.e_shstrndx);
    for (int i = 1; i < e->eh.e_shnum; i++) {
        const Elf64_Shdr *s = &e->sh[i];
        const uint32_t flags = PF_R | (s->sh_flags & SHF_WRITE ? PF_W : 0) | (s->sh_flags & SHF_EXECINSTR ? PF_X : 0);
        if (s->sh_name >= names->sh_size || s->sh_link >= e->eh.e_shnum)
            return rsr_elf_fail(e, "section %d: name %u, link %u out of range", i, s->sh_name, s->sh_link);
        if (s->sh_type != SHT_NOBITS && (s->sh_offset > e->size || s->sh_size > e->size - s->sh_offset))
            return rsr_elf_fail(e, "section %d (%llu bytes at offset %llu) lies outside the file", i,
                                (unsigned long long)s->sh_size, (unsigned long long)s->sh_offset);
        if (!(s->sh_flags & SHF_ALLOC) || !s->sh_size || (s->sh_type == SHT_NOBITS && (s->sh_flags & SHF_TLS)))
            continue;
        if (s->sh_type == SHT_NOBITS ? rsr_elf_segment(e, s->sh_addr, s->sh_size, flags) < 0
                                     : !rsr_elf_maps(e, s->sh_addr, s->sh_offset, s->sh_size, flags))
            return rsr_elf_fail(e,
                                "section %d (%#llx bytes at %#llx, offset %#llx) lies outside the segments that "
                                "load it",
                                i, (unsigned long long)s->sh_size, (unsigned long long)s->sh_addr,
                                (unsigned long long)s->sh_offset);
    }
    return 0;
}

/* ---- the dynamic section ---- */

enum { RSR_DYN_UNKNOWN, RSR_DYN_VALUE, RSR_DYN_STRING, RSR_DYN_ADDRESS };

/* What the value of a dynamic entry is, for the tags a shared object of x86-64 or AArch64 has
 * (RSR_DYN_UNKNOWN for any other: REL, not RELA, relocations, PREINIT_ARRAY, ...). */
static int rsr_elf_dyn_kind(uint64_t tag) {
    switch (tag) {
    case DT_PLTRELSZ:
    case DT_RELASZ:
    case DT_RELAENT:
    case DT_STRSZ:
    case DT_SYMENT:
    case DT_SYMBOLIC:
    case DT_PLTREL:
    case DT_DEBUG:
    case DT_TEXTREL:
    case DT_BIND_NOW:
    case DT_INIT_ARRAYSZ:
    case DT_FINI_ARRAYSZ:
    case DT_FLAGS:
    case DT_RELRSZ:
    case DT_RELRENT:
    case DT_RELACOUNT:
    case DT_FLAGS_1:
    case DT_VERDEFNUM:
    case DT_VERNEEDNUM: return RSR_DYN_VALUE;
    case DT_NEEDED:
    case DT_SONAME:
    case DT_RPATH:
    case DT_RUNPATH:
    case DT_AUXILIARY:
    case DT_FILTER: return RSR_DYN_STRING;
    case DT_INIT:
    case DT_FINI:
    case DT_TLSDESC_PLT:
    case DT_PLTGOT:
    case DT_HASH:
    case DT_STRTAB:
    case DT_SYMTAB:
    case DT_RELA:
    case DT_JMPREL:
    case DT_INIT_ARRAY:
    case DT_FINI_ARRAY:
    case DT_RELR:
    case DT_GNU_HASH:
    case DT_TLSDESC_GOT:
    case DT_VERSYM:
    case DT_VERDEF:
    case DT_VERNEED: return RSR_DYN_ADDRESS;
    }
    return (tag >= DT_VALRNGLO && tag <= DT_VALRNGHI) || (tag >= DT_LOPROC && tag < DT_LOPROC + 16) ? RSR_DYN_VALUE
                                                                                                    : RSR_DYN_UNKNOWN;
}

/* The value of the dynamic entry `tag` into *v (when v is not NULL): 1, or 0 if there is none. */
static int rsr_elf_dyn(const rsr_elf *e, uint64_t tag, uint64_t *v) {
    for (size_t i = 0; i < e->ndyn; i++)
        if ((uint64_t)e->dyn[i].d_tag == tag) {
            if (v) *v = e->dyn[i].d_un.d_val;
            return 1;
        }
    return 0;
}

/* The entries up to DT_NULL: known tags, each once (DT_NEEDED excepted), the ones the loader
 * needs present, and the sizes it asserts. */
static int rsr_elf_read_dynamic(rsr_elf *e) {
    const Elf64_Phdr *d = NULL;
    for (int i = 0; i < e->eh.e_phnum; i++)
        if (e->ph[i].p_type == PT_DYNAMIC) d = &e->ph[i];
    const size_t n = d ? (size_t)(d->p_filesz / sizeof(Elf64_Dyn)) : 0;
    if (!d || !(e->dyn = (Elf64_Dyn *)rsr_elf_load(e, d->p_filesz, d->p_offset)))
        return rsr_elf_fail(e, "cannot read the dynamic section");
    while (e->ndyn < n && e->dyn[e->ndyn].d_tag != DT_NULL) {
        const Elf64_Dyn *x = &e->dyn[e->ndyn++];
        if (rsr_elf_dyn_kind((uint64_t)x->d_tag) == RSR_DYN_UNKNOWN)
            return rsr_elf_fail(e, "dynamic entry %zu has tag %#llx, which no loader of this system knows", e->ndyn - 1,
                                (unsigned long long)x->d_tag);
        for (size_t j = 0; x->d_tag != DT_NEEDED && j + 1 < e->ndyn; j++)
            if (e->dyn[j].d_tag == x->d_tag)
                return rsr_elf_fail(e, "dynamic entries %zu and %zu have the same tag %#llx", j, e->ndyn - 1,
                                    (unsigned long long)x->d_tag);
    }
    if (e->ndyn == n) return rsr_elf_fail(e, "the dynamic section has no end (DT_NULL)");
    static const struct {
        int64_t tag, with; /* `tag` there wherever `with` is (0: always), of the value `is` (0: any) */
        uint64_t is;
    } rules[] = {
        {DT_STRTAB, 0, 0},
        {DT_SYMTAB, 0, 0},
        {DT_STRSZ, 0, 0},
        {DT_SYMENT, 0, sizeof(Elf64_Sym)},
        {DT_RELAENT, DT_RELA, sizeof(Elf64_Rela)},
        {DT_RELASZ, DT_RELA, 0},
        {DT_RELA, DT_RELASZ, 0},
        {DT_PLTRELSZ, DT_JMPREL, 0},
        {DT_PLTREL, DT_JMPREL, DT_RELA},
        {DT_JMPREL, DT_PLTRELSZ, 0},
        {DT_RELRENT, DT_RELR, 8},
        {DT_RELRSZ, DT_RELR, 0},
        {DT_INIT_ARRAYSZ, DT_INIT_ARRAY, 0},
        {DT_INIT_ARRAY, DT_INIT_ARRAYSZ, 0},
        {DT_FINI_ARRAYSZ, DT_FINI_ARRAY, 0},
        {DT_FINI_ARRAY, DT_FINI_ARRAYSZ, 0},
        {DT_VERNEEDNUM, DT_VERNEED, 0},
        {DT_VERNEED, DT_VERNEEDNUM, 0},
        {DT_VERDEFNUM, DT_VERDEF, 0},
        {DT_VERDEF, DT_VERDEFNUM, 0},
    };
    for (size_t i = 0; i < sizeof rules / sizeof *rules; i++) {
        uint64_t v = 0;
        if (rules[i].with && !rsr_elf_dyn(e, (uint64_t)rules[i].with, NULL)) continue;
        if (!rsr_elf_dyn(e, (uint64_t)rules[i].tag, &v))
            return rsr_elf_fail(e, "no dynamic entry %#llx%s", (unsigned long long)rules[i].tag,
                                rules[i].with ? " beside the entry it goes with" : "");
        if (rules[i].is && v != rules[i].is)
            return rsr_elf_fail(e, "dynamic entry %#llx is %llu, not %llu", (unsigned long long)rules[i].tag,
                                (unsigned long long)v, (unsigned long long)rules[i].is);
    }
    if (!rsr_elf_dyn(e, DT_HASH, NULL) && !rsr_elf_dyn(e, DT_GNU_HASH, NULL))
        return rsr_elf_fail(e, "no symbol hash table (DT_HASH or DT_GNU_HASH)");
    return 0;
}

/* The address-valued entries inside the segments (code in executable ones, what the loader
 * writes in writable ones), the tables with their sizes, and every string inside the string
 * table, which is read. */
static int rsr_elf_check_dynamic(rsr_elf *e) {
    if (rsr_elf_read_dynamic(e) != 0) return -1;
    static const struct {
        int64_t tag, size; /* the table's size in bytes: the value of that entry, else that many bytes */
        uint32_t flags;
        unsigned unit;
    } tables[] = {
        {DT_STRTAB, DT_STRSZ, PF_R, 1},
        {DT_RELA, DT_RELASZ, PF_R, sizeof(Elf64_Rela)},
        {DT_JMPREL, DT_PLTRELSZ, PF_R, sizeof(Elf64_Rela)},
        {DT_RELR, DT_RELRSZ, PF_R, 8},
        {DT_INIT_ARRAY, DT_INIT_ARRAYSZ, PF_R | PF_W, 8},
        {DT_FINI_ARRAY, DT_FINI_ARRAYSZ, PF_R | PF_W, 8},
        {DT_PLTGOT, -24, PF_R | PF_W, 1},
        {DT_HASH, -8, PF_R, 1},
        {DT_GNU_HASH, -16, PF_R, 1},
        {DT_SYMTAB, -(int64_t)sizeof(Elf64_Sym), PF_R, 1},
        {DT_VERSYM, -2, PF_R, 1},
        {DT_VERNEED, -(int64_t)sizeof(Elf64_Verneed), PF_R, 1},
        {DT_VERDEF, -(int64_t)sizeof(Elf64_Verdef), PF_R, 1},
        {DT_TLSDESC_GOT, -8, PF_R | PF_W, 1},
        {DT_INIT, -1, PF_R | PF_X, 1},
        {DT_FINI, -1, PF_R | PF_X, 1},
        {DT_TLSDESC_PLT, -1, PF_R | PF_X, 1},
    };
    for (size_t i = 0; i < sizeof tables / sizeof *tables; i++) {
        uint64_t at, n = (uint64_t)-tables[i].size;
        if (!rsr_elf_dyn(e, (uint64_t)tables[i].tag, &at)) continue;
        if (tables[i].size > 0) rsr_elf_dyn(e, (uint64_t)tables[i].size, &n);
        if (n % tables[i].unit || rsr_elf_segment(e, at, n, tables[i].flags) < 0)
            return rsr_elf_fail(e, "dynamic entry %#llx: %llu bytes at %#llx, outside the loadable segments",
                                (unsigned long long)tables[i].tag, (unsigned long long)n, (unsigned long long)at);
    }
    uint64_t at = 0, count = 0, relasz = 0;
    rsr_elf_dyn(e, DT_STRTAB, &at);
    rsr_elf_dyn(e, DT_STRSZ, &e->strsz);
    if (!e->strsz || !(e->strtab = (char *)rsr_elf_vread(e, at, e->strsz, PF_R)) || e->strtab[e->strsz - 1])
        return rsr_elf_fail(e,
                            "the dynamic string table (%llu bytes at %#llx) is empty or does not end its last "
                            "string",
                            (unsigned long long)e->strsz, (unsigned long long)at);
    for (size_t i = 0; i < e->ndyn; i++)
        if (rsr_elf_dyn_kind((uint64_t)e->dyn[i].d_tag) == RSR_DYN_STRING && e->dyn[i].d_un.d_val >= e->strsz)
            return rsr_elf_fail(e, "dynamic entry %zu names string %llu of a %llu-byte table", i,
                                (unsigned long long)e->dyn[i].d_un.d_val, (unsigned long long)e->strsz);
    if (rsr_elf_dyn(e, DT_RELACOUNT, &count) && (!rsr_elf_dyn(e, DT_RELASZ, &relasz) || count > relasz / 24))
        return rsr_elf_fail(e, "%llu relative relocations counted (DT_RELACOUNT) in a table of %llu",
                            (unsigned long long)count, (unsigned long long)(relasz / 24));
    return 0;
}

/* ---- symbols, versions, relocations ---- */

/* The 32-bit word the loaded object holds at vaddr into *w: 1, or 0 outside the segments. */
static int rsr_elf_word(const rsr_elf *e, uint64_t vaddr, uint32_t *w) {
    void *p = rsr_elf_vread(e, vaddr, 4, PF_R);
    const int ok = p != NULL;
    if (ok) memcpy(w, p, 4);
    free(p);
    return ok;
}

/* The symbols DT_GNU_HASH at `at` counts into *n: its buckets inside its chains, the chain of the
 * last bucket ending inside the segment; as many as DT_HASH's (sysv) when both are there. */
static int rsr_elf_gnu_hash_count(rsr_elf *e, uint64_t at, int sysv, uint64_t *n) {
    uint32_t h[4] = {0, 0, 0, 0}, *t;
    for (int i = 0; i < 4; i++)
        if (!rsr_elf_word(e, at + 4 * (uint64_t)i, &h[i])) h[0] = 0;
    const uint64_t buckets = at + 16 + 8 * (uint64_t)h[2], chains = buckets + 4 * (uint64_t)h[0];
    uint32_t last = 0, c = 0, outside = 0;
    if (!h[0] || !h[2] || !(t = (uint32_t *)rsr_elf_vread(e, buckets, 4 * (uint64_t)h[0], PF_R)))
        return rsr_elf_fail(e, "the GNU symbol hash table at %#llx: %u buckets, %u bloom words", (unsigned long long)at,
                            h[0], h[2]);
    for (uint32_t i = 0; i < h[0]; i++) {
        outside |= t[i] && t[i] < h[1]; /* a bucket before the hashed symbols */
        if (t[i] > last) last = t[i];
    }
    free(t);
    uint64_t count = last ? last : h[1]; /* the last bucket's chain, up to the entry that ends it */
    while (!outside && last && count - last < (1u << 24) && rsr_elf_word(e, chains + 4 * (count - h[1]), &c) &&
           !(c & 1))
        count++;
    if (outside || (last && !(c & 1)) || (sysv && count + (last != 0) != *n))
        return rsr_elf_fail(e,
                            "the GNU symbol hash table at %#llx: a bucket or chain outside it, or a count of "
                            "symbols other than DT_HASH's",
                            (unsigned long long)at);
    *n = count + (last != 0);
    return 0;
}

/* The number of dynamic symbols, from the hash tables (the loader walks them and trusts them):
 * DT_HASH's buckets and chains naming symbols it counts; DT_GNU_HASH's as above. */
static int rsr_elf_count_symbols(rsr_elf *e) {
    uint64_t at, n = 0;
    uint32_t h[4] = {0, 0, 0, 0}, *t;
    const int sysv = rsr_elf_dyn(e, DT_HASH, &at);
    if (sysv) {
        if (!rsr_elf_word(e, at, &h[0]) || !rsr_elf_word(e, at + 4, &h[1]) || !h[0] ||
            !(t = (uint32_t *)rsr_elf_vread(e, at + 8, 4 * ((uint64_t)h[0] + h[1]), PF_R)))
            return rsr_elf_fail(e, "the symbol hash table (DT_HASH) at %#llx: %u buckets, %u chains",
                                (unsigned long long)at, h[0], h[1]);
        uint64_t i = 0;
        while (i < (uint64_t)h[0] + h[1] && t[i] < h[1]) i++;
        free(t);
        if (i < (uint64_t)h[0] + h[1])
            return rsr_elf_fail(e, "the symbol hash table (DT_HASH) names a symbol past its %u", h[1]);
        n = h[1];
    }
    if (!rsr_elf_dyn(e, DT_GNU_HASH, &at)) {
        e->nsyms = n;
        return 0;
    }
    if (rsr_elf_gnu_hash_count(e, at, sysv, &n) != 0) return -1;
    /* DT_GNU_HASH counts the symbols it hashes, not the undefined ones before them when it hashes
     * none: the section that holds them says how many there are */
    uint64_t symtab = 0;
    rsr_elf_dyn(e, DT_SYMTAB, &symtab);
    for (int i = 1; !sysv && e->sh && i < e->eh.e_shnum; i++)
        if (e->sh[i].sh_type == SHT_DYNSYM && e->sh[i].sh_addr == symtab && e->sh[i].sh_size / sizeof(Elf64_Sym) > n)
            n = e->sh[i].sh_size / sizeof(Elf64_Sym);
    e->nsyms = n;
    return 0;
}

/* Is the string at `name` of the dynamic string table one of the DT_NEEDED libraries? */
static int rsr_elf_needed(const rsr_elf *e, uint64_t name) {
    for (size_t i = 0; name < e->strsz && i < e->ndyn; i++)
        if (e->dyn[i].d_tag == DT_NEEDED && !strcmp(e->strtab + e->dyn[i].d_un.d_val, e->strtab + name)) return 1;
    return 0;
}

/* One version record at `at`, a Verdef when def, else a Verneed, and its auxiliary entries: the
 * version 1, the chain as long as its count, names inside the string table, a needed library
 * one of DT_NEEDED (the loader asserts it). Raises *top to the version indices it defines; *next
 * gets the address of the record after it (at itself after the last). */
static int rsr_elf_version(const rsr_elf *e, int def, uint64_t at, int last, uint64_t *top, uint64_t *next) {
    unsigned char r[20];
    uint16_t version, count, ndx = 0;
    uint32_t file = 0, aux, step;
    void *p = rsr_elf_vread(e, at, def ? 20 : 16, PF_R);
    if (!p) return -1;
    memcpy(r, p, def ? 20 : 16);
    free(p);
    memcpy(&version, r, 2);
    if (def) /* vd_version, vd_flags, vd_ndx, vd_cnt, vd_hash, vd_aux, vd_next */
        memcpy(&ndx, r + 4, 2), memcpy(&count, r + 6, 2), memcpy(&aux, r + 12, 4), memcpy(&step, r + 16, 4);
    else /* vn_version, vn_cnt, vn_file, vn_aux, vn_next */
        memcpy(&count, r + 2, 2), memcpy(&file, r + 4, 4), memcpy(&aux, r + 8, 4), memcpy(&step, r + 12, 4);
    if (version != 1 || !count || last != (step == 0) || (!def && !rsr_elf_needed(e, file))) return -1;
    if ((ndx & 0x7fff) > *top) *top = ndx & 0x7fff;
    uint64_t a = at + aux;
    for (uint32_t j = 0; j < count; j++) {
        unsigned char x[16]; /* Verdaux: vda_name, vda_next; Vernaux: hash, flags, other, name, next */
        uint32_t name, anext;
        uint16_t other = 0;
        if (!(p = rsr_elf_vread(e, a, def ? 8 : 16, PF_R))) return -1;
        memcpy(x, p, def ? 8 : 16);
        free(p);
        memcpy(&name, x + (def ? 0 : 8), 4), memcpy(&anext, x + (def ? 4 : 12), 4);
        if (!def) memcpy(&other, x + 6, 2);
        if (name >= e->strsz || (j + 1 < count) != (anext != 0)) return -1;
        if ((other & 0x7fff) > *top) *top = other & 0x7fff;
        a += anext;
    }
    *next = at + step;
    return 0;
}

/* The version records (DT_VERNEED, DT_VERDEF), as many as their counts say. Sets *top to the
 * highest version index they define. */
static int rsr_elf_check_versions(rsr_elf *e, uint64_t *top) {
    *top = 1;
    for (int def = 0; def < 2; def++) {
        uint64_t at, count = 0;
        if (!rsr_elf_dyn(e, def ? DT_VERDEF : DT_VERNEED, &at)) continue;
        rsr_elf_dyn(e, def ? DT_VERDEFNUM : DT_VERNEEDNUM, &count);
        for (uint64_t k = 0; k < count; k++)
            if (rsr_elf_version(e, def, at, k + 1 == count, top, &at) != 0)
                return rsr_elf_fail(e, "version record %llu of %llu (%s) at %#llx is damaged", (unsigned long long)k,
                                    (unsigned long long)count, def ? "DT_VERDEF" : "DT_VERNEED",
                                    (unsigned long long)at);
    }
    return 0;
}

/* The dynamic symbols: names inside the string table, defined ones inside the segments (code in
 * executable ones: dlsym hands them out to be called), their version indices defined. */
static int rsr_elf_check_symbols(rsr_elf *e) {
    uint64_t at = 0, vat, top, tls = 0;
    if (rsr_elf_count_symbols(e) != 0 || rsr_elf_check_versions(e, &top) != 0) return -1;
    for (int i = 0; i < e->eh.e_phnum; i++)
        if (e->ph[i].p_type == PT_TLS) tls = e->ph[i].p_memsz;
    rsr_elf_dyn(e, DT_SYMTAB, &at);
    const Elf64_Sym *sym = e->sym = (Elf64_Sym *)rsr_elf_vread(e, at, e->nsyms * sizeof *sym, PF_R);
    uint16_t *ver = NULL;
    if (!sym || (rsr_elf_dyn(e, DT_VERSYM, &vat) && !(ver = (uint16_t *)rsr_elf_vread(e, vat, 2 * e->nsyms, PF_R))))
        return rsr_elf_fail(e, "the %llu dynamic symbols (or their versions) lie outside the loadable segments",
                            (unsigned long long)e->nsyms);
    int bad = -1;
    for (uint64_t i = 1; bad < 0 && i < e->nsyms; i++) {
        const Elf64_Sym *s = &sym[i];
        const int type = ELF64_ST_TYPE(s->st_info), code = type == STT_FUNC || type == STT_GNU_IFUNC;
        const int bind = ELF64_ST_BIND(s->st_info), vis = ELF64_ST_VISIBILITY(s->st_other);
        int ok = s->st_name < e->strsz && (!ver || (ver[i] & 0x7fff) <= top) &&
                 (type <= STT_TLS || type == STT_GNU_IFUNC) && (bind <= STB_WEAK || bind == STB_GNU_UNIQUE);
        /* a reference is resolved elsewhere: never local, never hidden from the objects that define it */
        if (ok && s->st_shndx == SHN_UNDEF) ok = (bind == STB_GLOBAL || bind == STB_WEAK) && vis == STV_DEFAULT;
        if (ok && s->st_shndx != SHN_UNDEF && bind != STB_LOCAL) ok = vis == STV_DEFAULT || vis == STV_PROTECTED;
        if (ok && s->st_shndx != SHN_UNDEF && s->st_shndx != SHN_ABS && type != STT_SECTION && type != STT_FILE)
            ok = type == STT_TLS ? s->st_value <= tls && s->st_size <= tls - s->st_value
                                 : rsr_elf_segment(e, s->st_value, s->st_size, code ? PF_R | PF_X : PF_R) >= 0;
        if (!ok) bad = (int)i;
    }
    free(ver);
    if (bad >= 0) return rsr_elf_fail(e, "dynamic symbol %d is damaged (its name, version or address)", bad);
    return 0;
}

/* Is this relocation one this machine's loader applies, naming a symbol that exists, writing
 * inside a segment with `write` permissions, a relative one's value inside [lo, hi] (the object)? */
static int rsr_elf_reloc_ok(const rsr_elf *e, const Elf64_Rela *r, uint32_t write, uint64_t lo, uint64_t hi) {
    const int arm = e->eh.e_machine == EM_AARCH64;
    const uint32_t type = (uint32_t)ELF64_R_TYPE(r->r_info);
    const uint64_t v = (uint64_t)r->r_addend;
    const int relative = type == (arm ? R_AARCH64_RELATIVE : R_X86_64_RELATIVE),
              ifunc = type == (arm ? R_AARCH64_IRELATIVE : R_X86_64_IRELATIVE),
              desc = type == (arm ? R_AARCH64_TLSDESC : R_X86_64_TLSDESC);
    const int known = relative || ifunc || desc ||
                      (arm ? type == R_AARCH64_ABS64 || (type >= R_AARCH64_GLOB_DAT && type <= R_AARCH64_TLS_TPREL)
                           : type == R_X86_64_64 || type == R_X86_64_GLOB_DAT || type == R_X86_64_JUMP_SLOT ||
                                 (type >= R_X86_64_DTPMOD64 && type <= R_X86_64_TPOFF64));
    const int got = arm ? type >= R_AARCH64_GLOB_DAT && type <= R_AARCH64_TLSDESC && type != R_AARCH64_RELATIVE
                        : type == R_X86_64_GLOB_DAT || type == R_X86_64_JUMP_SLOT || desc ||
                              (type >= R_X86_64_DTPMOD64 && type <= R_X86_64_TPOFF64);
    if (type == 0) return 1; /* R_*_NONE */
    return known && ELF64_R_SYM(r->r_info) < e->nsyms && rsr_elf_segment(e, r->r_offset, desc ? 16 : 8, write) >= 0 &&
           (!got || r->r_offset % 8 == 0) && /* GOT entries are whole words (other data may be packed) */
           (!relative || (v >= lo && v <= hi)) && (!ifunc || rsr_elf_segment(e, v, 1, PF_R | PF_X) >= 0);
}

/* Calls visit(e, address, arg) for each address DT_RELR relocates (e->relr: an even entry is an
 * address, an odd one a bitmap of the 63 words after the last address); stops at a nonzero return. */
static int rsr_elf_relr_each(const rsr_elf *e, int (*visit)(const rsr_elf *, uint64_t, const void *), const void *arg) {
    uint64_t where = 0;
    for (size_t i = 0; i < e->nrelr; i++) {
        if (!(e->relr[i] & 1)) {
            if (visit(e, e->relr[i], arg)) return 1;
            where = e->relr[i] + 8;
            continue;
        }
        for (int bit = 1; bit < 64; bit++)
            if ((e->relr[i] >> bit & 1) && visit(e, where + 8 * (uint64_t)(bit - 1), arg)) return 1;
        where += 8 * 63;
    }
    return 0;
}

static int rsr_elf_relr_outside(const rsr_elf *e, uint64_t at, const void *write) {
    return rsr_elf_segment(e, at, 8, *(const uint32_t *)write) < 0;
}

/* DT_RELR's entries, read into e->relr: every address they relocate inside a segment with `write`. */
static int rsr_elf_check_relr(rsr_elf *e, uint32_t write) {
    uint64_t at = 0, n = 0;
    if (!rsr_elf_dyn(e, DT_RELR, &at)) return 0;
    rsr_elf_dyn(e, DT_RELRSZ, &n);
    if (!(e->relr = (uint64_t *)rsr_elf_vread(e, at, n, PF_R)))
        return rsr_elf_fail(e, "cannot read the relative relocations (DT_RELR) at %#llx", (unsigned long long)at);
    e->nrelr = (size_t)(n / 8);
    if ((e->nrelr && (e->relr[0] & 1)) || rsr_elf_relr_each(e, rsr_elf_relr_outside, &write))
        return rsr_elf_fail(e, "the relative relocations (DT_RELR) at %#llx write outside the writable segments",
                            (unsigned long long)at);
    return 0;
}

static int rsr_elf_cmp_u64(const void *a, const void *b) {
    const uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* No two relocations write the same word: one moved onto another's leaves its own word, a GOT
 * entry, say, unrelocated. */
static int rsr_elf_check_distinct(rsr_elf *e) {
    uint64_t *at = (uint64_t *)malloc(8 * e->nrela + 8), twice = 0;
    if (!at) return rsr_elf_fail(e, "out of memory");
    size_t n = 0;
    for (size_t i = 0; i < e->nrela; i++)
        if (ELF64_R_TYPE(e->rela[i].r_info) != 0) at[n++] = e->rela[i].r_offset;
    qsort(at, n, sizeof *at, rsr_elf_cmp_u64);
    for (size_t i = 1; !twice && i < n; i++)
        if (at[i] == at[i - 1]) twice = at[i];
    free(at);
    if (twice) return rsr_elf_fail(e, "two relocations write the word at %#llx", (unsigned long long)twice);
    return 0;
}

/* The relocations (DT_RELA's, then DT_JMPREL's), read into e->rela and each checked. */
static int rsr_elf_check_relocs(rsr_elf *e) {
    uint64_t lo = UINT64_MAX, hi = 0, flags = 0, at[2] = {0, 0}, n[2] = {0, 0};
    for (int i = 0; i < e->eh.e_phnum; i++)
        if (e->ph[i].p_type == PT_LOAD) {
            if (e->ph[i].p_vaddr < lo) lo = e->ph[i].p_vaddr;
            if (e->ph[i].p_vaddr + e->ph[i].p_memsz > hi) hi = e->ph[i].p_vaddr + e->ph[i].p_memsz;
        }
    rsr_elf_dyn(e, DT_FLAGS, &flags);
    const uint32_t write = rsr_elf_dyn(e, DT_TEXTREL, NULL) || (flags & DF_TEXTREL) ? PF_R : PF_R | PF_W;
    if (rsr_elf_dyn(e, DT_RELA, &at[0])) rsr_elf_dyn(e, DT_RELASZ, &n[0]);
    if (rsr_elf_dyn(e, DT_JMPREL, &at[1])) rsr_elf_dyn(e, DT_PLTRELSZ, &n[1]);
    e->rela = (Elf64_Rela *)malloc((size_t)(n[0] + n[1] + 1));
    for (int t = 0; t < 2 && e->rela; t++) {
        Elf64_Rela *r = n[t] ? (Elf64_Rela *)rsr_elf_vread(e, at[t], n[t], PF_R) : NULL;
        if (n[t] && !r) return rsr_elf_fail(e, "cannot read the relocations at %#llx", (unsigned long long)at[t]);
        if (r) memcpy(e->rela + e->nrela, r, (size_t)n[t]);
        free(r);
        for (uint64_t i = 0; i < n[t] / sizeof *r; i++, e->nrela++)
            if (!rsr_elf_reloc_ok(e, &e->rela[e->nrela], write, lo, hi))
                return rsr_elf_fail(e, "relocation %llu at %#llx (type %u, symbol %llu, offset %#llx) is damaged",
                                    (unsigned long long)i, (unsigned long long)at[t],
                                    (unsigned)ELF64_R_TYPE(e->rela[e->nrela].r_info),
                                    (unsigned long long)ELF64_R_SYM(e->rela[e->nrela].r_info),
                                    (unsigned long long)e->rela[e->nrela].r_offset);
    }
    if (!e->rela) return rsr_elf_fail(e, "out of memory");
    if (rsr_elf_check_relr(e, write) != 0 || rsr_elf_check_distinct(e) != 0) return -1;
    uint64_t relative = 0; /* the loader applies the first DT_RELACOUNT as relative ones, and asserts they are */
    rsr_elf_dyn(e, DT_RELACOUNT, &relative);
    for (uint64_t i = 0; i < relative; i++)
        if (ELF64_R_TYPE(e->rela[i].r_info) != (e->eh.e_machine == EM_AARCH64 ? R_AARCH64_RELATIVE : R_X86_64_RELATIVE))
            return rsr_elf_fail(e, "relocation %llu is not relative, and DT_RELACOUNT counts %llu",
                                (unsigned long long)i, (unsigned long long)relative);
    return 0;
}

static int rsr_elf_relr_at(const rsr_elf *e, uint64_t at, const void *slot) {
    (void)e;
    return at == *(const uint64_t *)slot;
}

/* The constructors and destructors the loader calls (DT_INIT_ARRAY, DT_FINI_ARRAY): each entry
 * relocated to code of the object (by DT_RELA, or by DT_RELR with the address in place), or to a
 * symbol. An array moved or grown by damage holds other pointers, or none. */
static int rsr_elf_check_init(rsr_elf *e) {
    const int arm = e->eh.e_machine == EM_AARCH64;
    for (int k = 0; k < 2; k++) {
        uint64_t at = 0, n = 0;
        if (!rsr_elf_dyn(e, k ? DT_FINI_ARRAY : DT_INIT_ARRAY, &at)) continue;
        rsr_elf_dyn(e, k ? DT_FINI_ARRAYSZ : DT_INIT_ARRAYSZ, &n);
        for (uint64_t slot = at; slot < at + n; slot += 8) {
            int ok = 0;
            for (size_t i = 0; !ok && i < e->nrela; i++) {
                const uint32_t type = (uint32_t)ELF64_R_TYPE(e->rela[i].r_info);
                ok = e->rela[i].r_offset == slot &&
                     (type == (arm ? R_AARCH64_ABS64 : R_X86_64_64) ||
                      (type == (arm ? R_AARCH64_RELATIVE : R_X86_64_RELATIVE) &&
                       rsr_elf_segment(e, (uint64_t)e->rela[i].r_addend, 1, PF_R | PF_X) >= 0));
            }
            uint64_t *value = !ok && rsr_elf_relr_each(e, rsr_elf_relr_at, &slot)
                                  ? (uint64_t *)rsr_elf_vread(e, slot, 8, PF_R | PF_W)
                                  : NULL;
            ok = ok || (value && rsr_elf_segment(e, *value, 1, PF_R | PF_X) >= 0);
            free(value);
            if (!ok)
                return rsr_elf_fail(e, "%s entry at %#llx is not relocated to code",
                                    k ? "DT_FINI_ARRAY" : "DT_INIT_ARRAY", (unsigned long long)slot);
        }
    }
    return 0;
}

/* The section named `name`, or -1. */
static int rsr_elf_section_named(const rsr_elf *e, const char *name) {
    const size_t len = strlen(name) + 1;
    const Elf64_Shdr *names = &e->sh[e->eh.e_shstrndx];
    char buf[32];
    for (int i = 1; len <= sizeof buf && i < e->eh.e_shnum; i++)
        if (e->sh[i].sh_name < names->sh_size && names->sh_size - e->sh[i].sh_name >= len &&
            rsr_elf_read(e, buf, len, names->sh_offset + e->sh[i].sh_name) && !memcmp(buf, name, len))
            return i;
    return -1;
}

/* Does a defined function of the dynamic or the static symbol table start at `at`? Yes too when
 * the file has no static symbol table (stripped): nothing says otherwise. */
static int rsr_elf_function_at(const rsr_elf *e, uint64_t at) {
    int stripped = 1;
    for (uint64_t i = 1; i < e->nsyms; i++)
        if (ELF64_ST_TYPE(e->sym[i].st_info) == STT_FUNC && e->sym[i].st_shndx != SHN_UNDEF && e->sym[i].st_value == at)
            return 1;
    for (int s = 1; s < e->eh.e_shnum; s++) {
        stripped &= e->sh[s].sh_type != SHT_SYMTAB;
        if (e->sh[s].sh_type != SHT_SYMTAB) continue;
        Elf64_Sym *sym = (Elf64_Sym *)rsr_elf_load(e, e->sh[s].sh_size, e->sh[s].sh_offset);
        int found = 0;
        for (uint64_t i = 1; sym && !found && i < e->sh[s].sh_size / sizeof *sym; i++)
            found = ELF64_ST_TYPE(sym[i].st_info) == STT_FUNC && sym[i].st_shndx != SHN_UNDEF && sym[i].st_value == at;
        free(sym);
        if (found) return 1;
    }
    return stripped;
}

/* The dynamic entries against the section headers, which describe the same tables apart (the
 * loader reads only the former): a table that one of them moves, grows or shrinks and the other
 * does not is damage the tables themselves may not show (a constructor array grown into other
 * pointers, a relocation table cut short). Sections of a type that occurs once, or by name. */
static int rsr_elf_check_agreement(rsr_elf *e) {
    if (!e->sh) return 0;
    uint64_t strtab = 0, symtab = 0, relasz = 0;
    rsr_elf_dyn(e, DT_STRTAB, &strtab);
    rsr_elf_dyn(e, DT_SYMTAB, &symtab);
    rsr_elf_dyn(e, DT_RELASZ, &relasz);
    static const struct {
        uint32_t type;
        const char *name;  /* else by type */
        int64_t tag, size; /* the size: that entry's value, else -(bytes per dynamic symbol), 0 unchecked */
    } pairs[] = {
        {SHT_DYNSYM, NULL, DT_SYMTAB, -(int64_t)sizeof(Elf64_Sym)},
        {SHT_GNU_versym, NULL, DT_VERSYM, -2},
        {SHT_GNU_HASH, NULL, DT_GNU_HASH, 0},
        {SHT_HASH, NULL, DT_HASH, 0},
        {SHT_GNU_verneed, NULL, DT_VERNEED, 0},
        {SHT_GNU_verdef, NULL, DT_VERDEF, 0},
        {SHT_INIT_ARRAY, NULL, DT_INIT_ARRAY, DT_INIT_ARRAYSZ},
        {SHT_FINI_ARRAY, NULL, DT_FINI_ARRAY, DT_FINI_ARRAYSZ},
        {0, ".rela.plt", DT_JMPREL, DT_PLTRELSZ},
        {0, ".rela.dyn", DT_RELA, 0},
    };
    for (size_t p = 0; p < sizeof pairs / sizeof *pairs; p++) {
        int found = -1, count = 0;
        for (int i = 1; !pairs[p].name && i < e->eh.e_shnum; i++)
            if (e->sh[i].sh_type == pairs[p].type) found = i, count++;
        if (pairs[p].name) count = (found = rsr_elf_section_named(e, pairs[p].name)) >= 0;
        if (count != 1) continue;
        const Elf64_Shdr *s = &e->sh[found];
        uint64_t v = 0, size = pairs[p].size < 0 ? e->nsyms * (uint64_t)-pairs[p].size : s->sh_size;
        if (pairs[p].size > 0) rsr_elf_dyn(e, (uint64_t)pairs[p].size, &size);
        if (!rsr_elf_dyn(e, (uint64_t)pairs[p].tag, &v) || v != s->sh_addr || size != s->sh_size ||
            (pairs[p].tag == DT_RELA && relasz != s->sh_size && (found = rsr_elf_section_named(e, ".rela.plt")) >= 0 &&
             relasz != s->sh_size + e->sh[found].sh_size))
            return rsr_elf_fail(e, "dynamic entry %#llx (%#llx) disagrees with section %d (%#llx bytes at %#llx)",
                                (unsigned long long)pairs[p].tag, (unsigned long long)v, found,
                                (unsigned long long)s->sh_size, (unsigned long long)s->sh_addr);
    }
    for (int k = 0; k < 2; k++) { /* .init's, .fini's, or a function's: -Wl,-init names one */
        uint64_t at = 0;
        const int s = rsr_elf_section_named(e, k ? ".fini" : ".init");
        if (s < 0 || !rsr_elf_dyn(e, k ? DT_FINI : DT_INIT, &at) || at == e->sh[s].sh_addr ||
            rsr_elf_function_at(e, at))
            continue;
        return rsr_elf_fail(e, "%s (%#llx) is neither the section %s nor a function", k ? "DT_FINI" : "DT_INIT",
                            (unsigned long long)at, k ? ".fini" : ".init");
    }
    const int dynsym = rsr_elf_section_named(e, ".dynsym"), dynamic = rsr_elf_section_named(e, ".dynamic");
    if (dynsym >= 0 && e->sh[dynsym].sh_addr == symtab &&
        (e->sh[e->sh[dynsym].sh_link].sh_addr != strtab || e->sh[e->sh[dynsym].sh_link].sh_size != e->strsz))
        return rsr_elf_fail(e, "the dynamic string table (DT_STRTAB, DT_STRSZ) disagrees with its section");
    for (int i = 0; dynamic >= 0 && i < e->eh.e_phnum; i++)
        if (e->ph[i].p_type == PT_DYNAMIC &&
            (e->ph[i].p_vaddr != e->sh[dynamic].sh_addr || e->ph[i].p_filesz != e->sh[dynamic].sh_size))
            return rsr_elf_fail(e, "the dynamic segment disagrees with the section .dynamic");
    return 0;
}

/* The structure of the file after rsr_elf_open: 0, or -1 with the first damage in why. */
int rsr_elf_check(rsr_elf *e) {
    if (rsr_elf_headers(e) != 0 || rsr_elf_check_segments(e) != 0 || rsr_elf_check_sections(e) != 0 ||
        rsr_elf_check_dynamic(e) != 0 || rsr_elf_check_symbols(e) != 0 || rsr_elf_check_relocs(e) != 0 ||
        rsr_elf_check_init(e) != 0 || rsr_elf_check_agreement(e) != 0)
        return -1;
    return 0;
}

/* ---- the digest ---- */

/* Does the file hold rsrc's digest note at off? */
static int rsr_elf_digest_note_at(const rsr_elf *e, uint64_t off) {
    unsigned char n[RSR_DIGEST_DESC];
    static const uint32_t head[3] = {sizeof RSR_DIGEST_NOTE_NAME, 16, RSR_DIGEST_NOTE_TYPE};
    return e->size >= RSR_DIGEST_NOTE_SIZE && off <= e->size - RSR_DIGEST_NOTE_SIZE &&
           rsr_elf_read(e, n, sizeof n, off) && memcmp(n, head, sizeof head) == 0 &&
           memcmp(n + 12, RSR_DIGEST_NOTE_NAME "\0\0\0", 8) == 0;
}

/* The digest note by the section's name: its file offset, 0 if no section has that name, or -1
 * when the section named so does not hold the note. */
static int64_t rsr_elf_digest_by_section(rsr_elf *e) {
    if (!e->sh || e->eh.e_shstrndx >= e->eh.e_shnum) return 0;
    const Elf64_Shdr *names = &e->sh[e->eh.e_shstrndx];
    for (int i = 1; i < e->eh.e_shnum; i++) {
        char name[sizeof RSR_DIGEST_SECTION];
        const Elf64_Shdr *s = &e->sh[i];
        if (s->sh_name >= names->sh_size || names->sh_size - s->sh_name < sizeof name ||
            !rsr_elf_read(e, name, sizeof name, names->sh_offset + s->sh_name) ||
            memcmp(name, RSR_DIGEST_SECTION, sizeof name))
            continue;
        if (s->sh_type != SHT_NOTE || s->sh_size != RSR_DIGEST_NOTE_SIZE || !rsr_elf_digest_note_at(e, s->sh_offset))
            return rsr_elf_fail(e, "the section %s does not hold rsrc's digest note", RSR_DIGEST_SECTION);
        return (int64_t)s->sh_offset;
    }
    return 0;
}

/* The digest note by the notes of the PT_NOTE segments: its file offset, or 0. */
static int64_t rsr_elf_digest_by_segment(const rsr_elf *e) {
    for (int i = 0; e->ph && i < e->eh.e_phnum; i++) {
        const Elf64_Phdr *p = &e->ph[i];
        const uint64_t align = p->p_align == 8 ? 8 : 4;
        if (p->p_type != PT_NOTE || p->p_offset > e->size || p->p_filesz > e->size - p->p_offset) continue;
        for (uint64_t at = p->p_offset, end = p->p_offset + p->p_filesz; end - at >= 12;) {
            uint32_t h[3];
            if (!rsr_elf_read(e, h, sizeof h, at)) break;
            if (rsr_elf_digest_note_at(e, at) && end - at >= RSR_DIGEST_NOTE_SIZE) return (int64_t)at;
            const uint64_t step =
                12 + (((uint64_t)h[0] + align - 1) & ~(align - 1)) + (((uint64_t)h[1] + align - 1) & ~(align - 1));
            if (step > end - at) break;
            at += step;
        }
    }
    return 0;
}

/* Finds the digest note after rsr_elf_open (and rsr_elf_check, whatever it found): 1 with its
 * file offset in *off, 0 when the file has none (written before the digest existed), or -1 with
 * why (the note is damaged, or the two routes to it disagree). */
int rsr_elf_find_digest(rsr_elf *e, uint64_t *off) {
    char kept[sizeof e->why];
    memcpy(kept, e->why, sizeof kept);
    e->why[0] = 0;
    const int64_t by_section = rsr_elf_digest_by_section(e), by_segment = rsr_elf_digest_by_segment(e);
    if (by_section < 0 || (by_section && by_segment && by_section != by_segment)) {
        if (!e->why[0]) rsr_elf_fail(e, "the digest note's section and segment disagree");
        return -1;
    }
    memcpy(e->why, kept, sizeof kept);
    *off = (uint64_t)(by_section ? by_section : by_segment);
    return *off != 0;
}

/* rsr_checksum_add over the whole file with the digest note's desc (at note + RSR_DIGEST_DESC)
 * read as zero: 0, or -1 when the file cannot be read. */
int rsr_elf_checksum(const rsr_elf *e, uint64_t note, uint64_t *sum) {
    enum { CHUNK = 1 << 20 };
    unsigned char *buf = (unsigned char *)malloc(CHUNK + 8);
    const uint64_t zero = note + RSR_DIGEST_DESC;
    int ok = buf != NULL;
    *sum = 0;
    for (uint64_t at = 0; ok && at < e->size; at += CHUNK) {
        const size_t n = e->size - at < CHUNK ? (size_t)(e->size - at) : CHUNK;
        ok = rsr_elf_read(e, buf, n, at);
        for (uint64_t z = zero; z < zero + 16; z++)
            if (z >= at && z < at + n) buf[z - at] = 0;
        memset(buf + n, 0, 8); /* the last word zero-padded */
        *sum = rsr_checksum_add(*sum, buf, at / 8, (n + 7) / 8);
    }
    free(buf);
    return ok ? 0 : -1;
}
