/*
 * rsr_elf.h — a compiled model's ELF file checked before the dynamic loader sees it, and the
 * digest of the whole file that rsrc records in it. Declarations; runtime/dl/rsr_elf.c defines
 * them, in librsr_dl (with rsr_dl.c: the checks before dlopen, rsr-run --verify); rsrc stamps the
 * digest after the link.
 *
 * The dynamic loader trusts the file: a program header, a dynamic entry, a symbol or a
 * relocation that damage moves sends it to read or write outside the object's mapping, or trips
 * one of its assertions, and the process dies of a signal. rsr_elf_check reads what the loader
 * reads (the headers, the dynamic section, the dynamic symbols, their hash tables, version
 * records and relocations: a few kilobytes, never the constants) and checks every offset, address
 * and size against the file and the segments, so that such damage is an error naming what is
 * wrong. It cannot see damage inside code or data; the digest can.
 *
 * The digest: every shared object rsrc writes holds a note (section RSR_DIGEST_SECTION, in a
 * PT_NOTE segment: namesz 5, descsz 16, type RSR_DIGEST_NOTE_TYPE, "rsrc", then the desc) whose
 * desc rsrc fills after the link with the file's size and rsr_checksum_add over the whole file
 * read with the desc's 16 bytes zero: any one flipped bit changes the one or the other. The note
 * is found through the section headers by the section's name and through the program headers by
 * the note's name, so a flip that hides it from one route leaves the other, and a damaged file
 * does not pass for one written before the digest existed. It catches damage, not forgery: the
 * digest travels in the file it covers.
 */
#ifndef RSR_ELF_H
#define RSR_ELF_H

#include <elf.h>
#include <stdint.h>
#include <stdio.h>

#include "rsr_artifact.h" /* rsr_checksum_add */

#define RSR_DIGEST_SECTION ".note.rsrc.digest"
#define RSR_DIGEST_NOTE_NAME "rsrc"
#define RSR_DIGEST_NOTE_TYPE 1u
enum { RSR_DIGEST_DESC = 20, RSR_DIGEST_NOTE_SIZE = 36 }; /* the desc's offset in the note; the note's size */

typedef struct rsr_elf {
    FILE *f;
    uint64_t size;
    Elf64_Ehdr eh;
    Elf64_Phdr *ph; /* eh.e_phnum, or NULL: they lie outside the file */
    Elf64_Shdr *sh; /* eh.e_shnum, or NULL: none, or outside the file */
    Elf64_Dyn *dyn; /* up to and with DT_NULL, ndyn of them */
    size_t ndyn;
    char *strtab; /* the dynamic string table, strsz bytes */
    uint64_t strsz, nsyms;
    Elf64_Sym *sym;   /* the dynamic symbols, nsyms */
    Elf64_Rela *rela; /* DT_RELA's relocations, then DT_JMPREL's: nrela */
    size_t nrela;
    uint64_t *relr; /* DT_RELR's entries: nrelr */
    size_t nrelr;
    char why[200]; /* the first damage found, "" if none */
    int truncated; /* why: the loadable segments run past the end of the file */
} rsr_elf;

/* Bytes [off, off + n) of the file, all of them inside it. */
int rsr_elf_read(const rsr_elf *e, void *buf, uint64_t n, uint64_t off);

/* Frees what rsr_elf_open and rsr_elf_check read into e (the caller closes e->f). */
void rsr_elf_close(rsr_elf *e);

/* Reads the ELF header of the open file f: 0, or -1 when it is not a 64-bit little-endian ELF
 * file (why says so). The caller checks e_machine, then calls rsr_elf_check; rsr_elf_close. */
int rsr_elf_open(rsr_elf *e, FILE *f);

/* The structure of the file after rsr_elf_open: 0, or -1 with the first damage in why. */
int rsr_elf_check(rsr_elf *e);

/* Finds the digest note after rsr_elf_open (and rsr_elf_check, whatever it found): 1 with its
 * file offset in *off, 0 when the file has none (written before the digest existed), or -1 with
 * why (the note is damaged, or the two routes to it disagree). */
int rsr_elf_find_digest(rsr_elf *e, uint64_t *off);

/* rsr_checksum_add over the whole file with the digest note's desc (at note + RSR_DIGEST_DESC)
 * read as zero: 0, or -1 when the file cannot be read. */
int rsr_elf_checksum(const rsr_elf *e, uint64_t note, uint64_t *sum);

#endif
