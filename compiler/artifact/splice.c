/*
 * splice.c — what is done to a linked shared object after the link: the constants put in, then
 * the digest of the whole file stamped into it.
 *
 * GNU as reads an .incbin's whole file into memory, and ld copies each input section through a
 * buffer as large as the largest one, so linking a 5 GB blob costs two processes of 5 GB each.
 * Instead the shared object is linked with the blob's first SPLICE_HEAD bytes only: the section
 * .lrodata.rsr_blob lies at the end of the last loadable segment (x86-64's .lrodata is placed
 * after .bss), so the rest of the blob can be copied into the file right after those bytes,
 * streamed. The section, its segment and the symbol rsr_blob grow by the bytes added; what
 * follows in the file (the sections that are not loaded, then the section headers) moves down by
 * as many, a multiple of 64 (the blob's alignment), so their alignment holds. Nothing else
 * changes: no address of code or data moves.
 *
 * When the linked object is laid out otherwise (another architecture's linker script, another
 * linker), splice_blob says why and the caller links the whole blob instead.
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rsr_elf.h"
#include "rsrc.h"

static bool read_at(int fd, void *buf, size_t n, uint64_t off) {
    for (size_t got = 0; got < n;) {
        ssize_t r = pread(fd, (char *)buf + got, n - got, (off_t)(off + got));
        if (r <= 0) return false;
        got += (size_t)r;
    }
    return true;
}

static void write_at(int fd, const void *buf, size_t n, uint64_t off, const char *path) {
    for (size_t put = 0; put < n;) {
        ssize_t w = pwrite(fd, (const char *)buf + put, n - put, (off_t)(off + put));
        if (w <= 0) rsrc_fatal("%s: write failed: %s", path, strerror(errno));
        put += (size_t)w;
    }
}

/* Bytes [from, from + n) of in appended to out at *at. */
static void copy_range(int in, const char *in_path, uint64_t from, uint64_t n, int out, const char *out_path,
                       uint64_t *at) {
    enum { CHUNK = 1 << 20 };
    char *buf = xmalloc(CHUNK);
    for (uint64_t done = 0; done < n;) {
        size_t want = n - done < CHUNK ? (size_t)(n - done) : CHUNK;
        if (!read_at(in, buf, want, from + done)) rsrc_fatal("%s: read failed: %s", in_path, strerror(errno));
        write_at(out, buf, want, *at, out_path);
        done += want, *at += want;
    }
    free(buf);
}

typedef struct {
    Elf64_Ehdr eh;
    Elf64_Shdr *sh;
    Elf64_Phdr *ph;
    int blob_sec, blob_seg; /* rsr_blob's section and the segment that loads it */
    uint64_t sym_at;        /* the file offset of rsr_blob's symbol */
} elf_layout;

/* rsr_blob's symbol in the linked object: its section index, value and file offset; NULL or why not. */
static const char *find_blob_symbol(int fd, elf_layout *L, uint64_t *value) {
    for (int s = 0; s < L->eh.e_shnum; s++) {
        const Elf64_Shdr *sym = &L->sh[s];
        if (sym->sh_type != SHT_SYMTAB || sym->sh_link >= L->eh.e_shnum || sym->sh_entsize != sizeof(Elf64_Sym))
            continue;
        const Elf64_Shdr *str = &L->sh[sym->sh_link];
        Elf64_Sym *syms = xmalloc(sym->sh_size + 1);
        char *names = xmalloc(str->sh_size + 1);
        bool ok = read_at(fd, syms, sym->sh_size, sym->sh_offset) && read_at(fd, names, str->sh_size, str->sh_offset);
        names[str->sh_size] = 0;
        L->blob_sec = -1;
        for (uint64_t i = 0; ok && i < sym->sh_size / sizeof *syms; i++)
            if (syms[i].st_name < str->sh_size && !strcmp(names + syms[i].st_name, "rsr_blob")) {
                L->blob_sec = syms[i].st_shndx, *value = syms[i].st_value;
                L->sym_at = sym->sh_offset + i * sizeof *syms;
                break;
            }
        free(syms), free(names);
        return L->blob_sec > 0 && L->blob_sec < L->eh.e_shnum ? NULL : "no symbol rsr_blob in a section";
    }
    return "no symbol table";
}

/* The headers, and the checks that the blob's head ends its section, that section ends the last
 * loadable segment, and nothing loaded follows it in the file or in memory. */
static const char *read_layout(int fd, uint64_t head, elf_layout *L) {
    Elf64_Ehdr *eh = &L->eh;
    if (!read_at(fd, eh, sizeof *eh, 0) || memcmp(eh->e_ident, ELFMAG, SELFMAG) ||
        eh->e_ident[EI_CLASS] != ELFCLASS64 || eh->e_ident[EI_DATA] != ELFDATA2LSB)
        return "not a 64-bit little-endian ELF file";
    if (eh->e_shentsize != sizeof(Elf64_Shdr) || eh->e_phentsize != sizeof(Elf64_Phdr) || !eh->e_shnum)
        return "unexpected header sizes";
    L->sh = xcalloc(eh->e_shnum, sizeof *L->sh);
    L->ph = xcalloc(eh->e_phnum ? eh->e_phnum : 1, sizeof *L->ph);
    if (!read_at(fd, L->sh, sizeof *L->sh * eh->e_shnum, eh->e_shoff) ||
        !read_at(fd, L->ph, sizeof *L->ph * eh->e_phnum, eh->e_phoff))
        return "truncated headers";
    uint64_t value = 0;
    const char *why = find_blob_symbol(fd, L, &value);
    if (why) return why;
    const Elf64_Shdr *b = &L->sh[L->blob_sec];
    const uint64_t end = b->sh_offset + b->sh_size;
    if (b->sh_type != SHT_PROGBITS || !(b->sh_flags & SHF_ALLOC) || value + head != b->sh_addr + b->sh_size)
        return "rsr_blob does not end its section";
    L->blob_seg = -1;
    for (int p = 0; p < eh->e_phnum; p++) {
        const Elf64_Phdr *ph = &L->ph[p];
        if (ph->p_type == PT_LOAD && ph->p_vaddr <= b->sh_addr && b->sh_addr < ph->p_vaddr + ph->p_memsz)
            L->blob_seg = p;
        else if (ph->p_type == PT_LOAD && ph->p_vaddr > b->sh_addr)
            return "a loadable segment follows the blob's";
        else if (ph->p_filesz && ph->p_offset + ph->p_filesz > end)
            return "a segment's bytes follow the blob's";
    }
    const Elf64_Phdr *seg = L->blob_seg >= 0 ? &L->ph[L->blob_seg] : NULL;
    if (!seg || seg->p_offset + seg->p_filesz != end || seg->p_filesz != seg->p_memsz)
        return "the blob's section does not end its segment";
    if (eh->e_phoff + sizeof *L->ph * eh->e_phnum > end) return "the program headers follow the blob";
    for (int s = 0; s < eh->e_shnum; s++)
        if (s != L->blob_sec && (L->sh[s].sh_flags & SHF_ALLOC) && L->sh[s].sh_addr > b->sh_addr)
            return "a loaded section follows the blob's";
    return NULL;
}

const char *splice_blob(const char *linked, const char *blob_path, uint64_t head, const char *out_path) {
    int in = open(linked, O_RDONLY), blob = open(blob_path, O_RDONLY);
    if (in < 0) rsrc_fatal("%s: cannot open: %s", linked, strerror(errno));
    if (blob < 0) rsrc_fatal("%s: cannot open: %s", blob_path, strerror(errno));
    struct stat ls, bs;
    if (fstat(in, &ls) || fstat(blob, &bs)) rsrc_fatal("%s: cannot stat: %s", linked, strerror(errno));
    elf_layout L = {0};
    const char *why = read_layout(in, head, &L);
    const uint64_t size = (uint64_t)bs.st_size, delta = size - head;
    if (!why && (size < head || delta % 64)) why = "the blob is not a multiple of 64 bytes";
    const uint64_t end = L.sh && !why ? L.sh[L.blob_sec].sh_offset + L.sh[L.blob_sec].sh_size : 0;
    for (int s = 0; !why && s < L.eh.e_shnum; s++)
        if (L.sh[s].sh_offset >= end && L.sh[s].sh_type != SHT_NOBITS && L.sh[s].sh_addralign > 1 &&
            delta % L.sh[s].sh_addralign)
            why = "a section after the blob is aligned beyond 64 bytes";
    if (!why) {
        int out = open(out_path, O_WRONLY | O_TRUNC);
        if (out < 0) rsrc_fatal("%s: cannot write: %s", out_path, strerror(errno));
        uint64_t at = 0;
        copy_range(in, linked, 0, end, out, out_path, &at);
        copy_range(blob, blob_path, head, delta, out, out_path, &at);
        copy_range(in, linked, end, (uint64_t)ls.st_size - end, out, out_path, &at);
        /* the headers, moved and grown */
        for (int s = 0; s < L.eh.e_shnum; s++)
            if (L.sh[s].sh_offset >= end && L.sh[s].sh_type != SHT_NOBITS && s != L.blob_sec)
                L.sh[s].sh_offset += delta;
        L.sh[L.blob_sec].sh_size += delta;
        L.ph[L.blob_seg].p_filesz += delta, L.ph[L.blob_seg].p_memsz += delta;
        if (L.eh.e_shoff >= end) L.eh.e_shoff += delta;
        uint64_t sym_at = L.sym_at >= end ? L.sym_at + delta : L.sym_at;
        Elf64_Sym sym;
        if (!read_at(in, &sym, sizeof sym, L.sym_at)) rsrc_fatal("%s: read failed", linked);
        sym.st_size = size;
        write_at(out, &L.eh, sizeof L.eh, 0, out_path);
        write_at(out, L.ph, sizeof *L.ph * L.eh.e_phnum, L.eh.e_phoff, out_path);
        write_at(out, L.sh, sizeof *L.sh * L.eh.e_shnum, L.eh.e_shoff, out_path);
        write_at(out, &sym, sizeof sym, sym_at, out_path);
        if (close(out) != 0) rsrc_fatal("%s: write failed: %s", out_path, strerror(errno));
    }
    close(in), close(blob);
    free(L.sh), free(L.ph);
    return why;
}

/* The checks are the ones rsr_dl.h makes before dlopen: a linker whose output they refuse is
 * reported here, not where the model is loaded. The desc is zero in the linked file, as the
 * digest reads it. */
void stamp_digest(const char *path) {
    FILE *f = fopen(path, "r+b");
    if (!f) rsrc_fatal("%s: cannot open: %s", path, strerror(errno));
    rsr_elf e;
    uint64_t note = 0, desc[2];
    if (rsr_elf_open(&e, f) != 0 || rsr_elf_check(&e) != 0)
        rsrc_fatal("%s: the linked shared object fails the checks made before loading it: %s", path, e.why);
    if (rsr_elf_find_digest(&e, &note) != 1)
        rsrc_fatal("%s: the linked shared object has no digest note (section %s)%s%s", path, RSR_DIGEST_SECTION,
                   e.why[0] ? ": " : "", e.why);
    desc[0] = e.size;
    if (rsr_elf_checksum(&e, note, &desc[1]) != 0) rsrc_fatal("%s: read failed: %s", path, strerror(errno));
    rsr_elf_close(&e);
    if (fseek(f, (long)(note + RSR_DIGEST_DESC), SEEK_SET) != 0 || fwrite(desc, sizeof desc, 1, f) != 1 ||
        fclose(f) != 0)
        rsrc_fatal("%s: write failed: %s", path, strerror(errno));
}
