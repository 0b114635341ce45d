/* Admin passwords: yescrypt hashes through libcrypt, and generated first-start passwords. */
#include "util/util.h"

#include <crypt.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int util_password_hash(const char *password, char *out, size_t outlen)
{
    char salt[CRYPT_GENSALT_OUTPUT_SIZE];
    if (!crypt_gensalt_rn("$y$", 0, NULL, 0, salt, sizeof salt))
        return errno ? errno : EINVAL;
    struct crypt_data *cd = calloc(1, sizeof *cd);
    if (!cd)
        return ENOMEM;
    const char *h = crypt_r(password, salt, cd);
    int rc = 0;
    if (!h || h[0] == '*' || strlen(h) >= outlen)
        rc = EINVAL;
    else
        snprintf(out, outlen, "%s", h);
    free(cd);
    return rc;
}

int util_password_verify(const char *password, const char *hash)
{
    struct crypt_data *cd = calloc(1, sizeof *cd);
    if (!cd)
        return 0;
    const char *h = crypt_r(password, hash, cd);
    size_t n = strlen(hash);
    int ok = h && h[0] != '*' && strlen(h) == n && util_ct_compare(h, hash, n) == 0;
    free(cd);
    return ok;
}

void util_password_generate(char *out, size_t len)
{
    static const char alphabet[] = "abcdefghijkmnpqrstuvwxyzACDEFGHJKLMNPQRSTUVWXYZ23456789";
    unsigned char rnd[64];
    if (len > sizeof rnd)
        len = sizeof rnd;
    util_random(rnd, len);
    for (size_t i = 0; i < len; i++)
        out[i] = alphabet[rnd[i] % (sizeof alphabet - 1)];
    out[len] = '\0';
}
