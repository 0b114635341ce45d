/* Hashes and MACs from OpenSSL's libcrypto: API tokens and session ids are stored as their
 * SHA-256, and the proxy signs the Record-Route of every dialog it carries with an
 * HMAC-SHA256. A well-kept library rather than hand-written cryptography. */
#include "util/util.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

void util_sha256(const void *data, size_t len, unsigned char out[32])
{
    unsigned int n = 32;
    /* Cannot fail for a built-in digest short of memory exhaustion, where OpenSSL aborts. */
    EVP_Digest(data, len, out, &n, EVP_sha256(), NULL);
}

void util_sha256_hex(char out[65], const char *s)
{
    unsigned char d[32];
    util_sha256(s, strlen(s), d);
    util_hex(out, d, sizeof d);
}

void util_hmac_sha256(const void *key, size_t keylen, const void *data, size_t len,
                      unsigned char out[32])
{
    unsigned int n = 32;
    HMAC(EVP_sha256(), key, (int)keylen, data, len, out, &n);
}

void util_hmac_hexf(const void *key, size_t keylen, char *out, size_t bytes, const char *fmt, ...)
{
    char data[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(data, sizeof data, fmt, ap);
    va_end(ap);
    unsigned char mac[32];
    util_hmac_sha256(key, keylen, data,
                     n < 0                     ? 0
                     : (size_t)n < sizeof data ? (size_t)n
                                               : sizeof data - 1,
                     mac);
    util_hex(out, mac, bytes < sizeof mac ? bytes : sizeof mac);
}
