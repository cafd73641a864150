/* artifact_pin.c — see artifact_pin.h. SHA-256 is OpenSSL's (libcrypto). */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "artifact_pin.h"

static const char *bare(const char *digest) { return strncasecmp(digest, "sha256:", 7) ? digest : digest + 7; }

bool artifact_digest_valid(const char *digest) {
    const char *d = bare(digest);
    for (int i = 0; i < 64; i++)
        if (!isxdigit((unsigned char)d[i])) return false;
    return d[64] == 0;
}

/* The digest of what fd reads from its start. */
static int digest_fd(int fd, const char *path, char hex[65], char *err, size_t errlen) {
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx || !EVP_DigestInit_ex(ctx, EVP_sha256(), NULL)) {
        EVP_MD_CTX_free(ctx);
        snprintf(err, errlen, "%s: cannot start a SHA-256", path);
        return -1;
    }
    static unsigned char buf[1 << 16];
    ssize_t n;
    off_t at = 0;
    while ((n = pread(fd, buf, sizeof buf, at)) > 0) EVP_DigestUpdate(ctx, buf, (size_t)n), at += n;
    unsigned char md[32];
    unsigned len = 0;
    EVP_DigestFinal_ex(ctx, md, &len);
    EVP_MD_CTX_free(ctx);
    if (n < 0) {
        snprintf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
        return -1;
    }
    for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", md[i]);
    return 0;
}

int artifact_digest(const char *path, char hex[65], char *err, size_t errlen) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    int rc = digest_fd(fd, path, hex, err, errlen);
    close(fd);
    return rc;
}

int artifact_pin(const char *path, const char *digest, char *load_path, size_t load_len, char *err, size_t errlen) {
    int fd = open(path, O_RDONLY); /* kept open: the loader reads the same file through it */
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s (compile a model first: rsrc MODEL_DIR -o %s)", path, strerror(errno), path);
        return -1;
    }
    char hex[65];
    if (digest_fd(fd, path, hex, err, errlen) != 0) {
        close(fd);
        return -1;
    }
    if (strcasecmp(hex, bare(digest)) != 0) {
        snprintf(err, errlen,
                 "%s: its SHA-256 is %s, not the %s it was expected to be: refusing to load it (a different or altered "
                 "file)",
                 path, hex, bare(digest));
        close(fd);
        return -1;
    }
    snprintf(load_path, load_len, "/proc/self/fd/%d", fd);
    return 0;
}
