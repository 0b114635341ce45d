/* The rules an account's fields must meet, the same whether REST, the CLI or a bulk import
 * makes the account. */
#include "store/store.h"
#include "users/users.h"
#include "util/util.h"

#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>

int users_display_name_problem(const char *name, char *why, size_t whylen)
{
    long n = util_utf8_chars(name);
    if (n < 0) {
        snprintf(why, whylen, "not valid UTF-8");
        return -1;
    }
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        if (*p < 0x20 || *p == 0x7f) {
            snprintf(why, whylen, "must not contain control characters");
            return -1;
        }
    if (n > STORE_DISPLAY_NAME_CHARS) {
        snprintf(why, whylen, "at most %d characters (this one has %ld)", STORE_DISPLAY_NAME_CHARS,
                 n);
        return 1;
    }
    return 0;
}

void users_ha1(char out[33], const char *ext, const char *realm, const char *password)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    /* Cannot fail for a built-in digest short of memory exhaustion: then the HA1 is empty
     * and matches no password, rather than a made-up one. */
    if (!ctx || !EVP_DigestInit_ex(ctx, EVP_md5(), NULL) ||
        !EVP_DigestUpdate(ctx, ext, strlen(ext)) || !EVP_DigestUpdate(ctx, ":", 1) ||
        !EVP_DigestUpdate(ctx, realm, strlen(realm)) || !EVP_DigestUpdate(ctx, ":", 1) ||
        !EVP_DigestUpdate(ctx, password, strlen(password)) || !EVP_DigestFinal_ex(ctx, md, &n) ||
        n != 16) {
        out[0] = '\0';
        EVP_MD_CTX_free(ctx);
        return;
    }
    EVP_MD_CTX_free(ctx);
    util_hex(out, md, 16);
}
