/* IP addresses and networks as configuration and the ban table see them: one canonical text
 * form per address (IPv4-mapped IPv6 folded to IPv4), and CIDR lists for trusted networks. */
#include "util/util.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The 16-byte form of an IPv4 address inside IPv6 (::ffff:a.b.c.d). */
static const unsigned char v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

int util_addr_parse(const char *s, struct util_addr *out)
{
    char buf[INET6_ADDRSTRLEN + 2];
    size_t n = strlen(s);
    /* "[v6]" as in a URI or a source "addr:port" is accepted without its port. */
    if (n >= 2 && s[0] == '[' && s[n - 1] == ']') {
        s++;
        n -= 2;
    }
    if (n == 0 || n >= sizeof buf)
        return EINVAL;
    memcpy(buf, s, n);
    buf[n] = '\0';
    memset(out, 0, sizeof *out);
    if (inet_pton(AF_INET, buf, out->bytes) == 1) {
        out->family = AF_INET;
        return 0;
    }
    unsigned char b6[16];
    if (inet_pton(AF_INET6, buf, b6) != 1)
        return EINVAL;
    if (memcmp(b6, v4mapped, sizeof v4mapped) == 0) {
        out->family = AF_INET;
        memcpy(out->bytes, b6 + 12, 4);
    } else {
        out->family = AF_INET6;
        memcpy(out->bytes, b6, 16);
    }
    return 0;
}

void util_addr_from_sockaddr(const void *sa, struct util_addr *out)
{
    memset(out, 0, sizeof *out);
    const struct sockaddr *a = sa;
    if (a->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = sa;
        if (memcmp(s6->sin6_addr.s6_addr, v4mapped, sizeof v4mapped) == 0) {
            out->family = AF_INET;
            memcpy(out->bytes, s6->sin6_addr.s6_addr + 12, 4);
        } else {
            out->family = AF_INET6;
            memcpy(out->bytes, s6->sin6_addr.s6_addr, 16);
        }
    } else if (a->sa_family == AF_INET) {
        const struct sockaddr_in *s4 = sa;
        out->family = AF_INET;
        memcpy(out->bytes, &s4->sin_addr, 4);
    }
}

void util_addr_format(const struct util_addr *a, char *out, size_t outlen)
{
    if (outlen == 0)
        return;
    if (a->family != AF_INET && a->family != AF_INET6) {
        snprintf(out, outlen, "?");
        return;
    }
    char buf[INET6_ADDRSTRLEN];
    inet_ntop(a->family, a->bytes, buf, sizeof buf);
    snprintf(out, outlen, "%s", buf);
}

int util_net_contains(const struct util_net *n, const struct util_addr *a)
{
    if (n->addr.family != a->family)
        return 0;
    int bits = n->prefix;
    const unsigned char *x = n->addr.bytes, *y = a->bytes;
    for (int i = 0; bits > 0; i++, bits -= 8) {
        unsigned char mask = bits >= 8 ? 0xff : (unsigned char)(0xff << (8 - bits));
        if ((x[i] & mask) != (y[i] & mask))
            return 0;
    }
    return 1;
}

/* One "ADDR" or "ADDR/PREFIX" of len bytes at s. */
static int parse_one(const char *s, size_t len, struct util_net *out, char *err, size_t errlen)
{
    char item[INET6_ADDRSTRLEN + 8];
    if (len >= sizeof item) {
        snprintf(err, errlen, "'%.*s' is not an address or network", (int)len, s);
        return EINVAL;
    }
    memcpy(item, s, len);
    item[len] = '\0';
    char *slash = strchr(item, '/');
    long prefix = -1;
    if (slash) {
        char *end;
        *slash = '\0';
        errno = 0;
        prefix = strtol(slash + 1, &end, 10);
        if (errno || end == slash + 1 || *end || prefix < 0) {
            snprintf(err, errlen, "'%.*s': the prefix length is not a number", (int)len, s);
            return EINVAL;
        }
    }
    if (util_addr_parse(item, &out->addr) != 0) {
        snprintf(err, errlen, "'%.*s' is not an IPv4 or IPv6 address or network", (int)len, s);
        return EINVAL;
    }
    int max = out->addr.family == AF_INET ? 32 : 128;
    if (prefix > max) {
        snprintf(err, errlen, "'%.*s': the prefix length is larger than %d", (int)len, s, max);
        return EINVAL;
    }
    out->prefix = prefix < 0 ? max : (int)prefix;
    return 0;
}

int util_net_parse_list(const char *list, struct util_net *out, size_t max, size_t *count,
                        char *err, size_t errlen)
{
    size_t n = 0;
    const char *p = list;
    for (;;) {
        while (*p == ',' || isspace((unsigned char)*p))
            p++;
        if (!*p)
            break;
        size_t len = strcspn(p, ", \t\r\n");
        /* "none" stands for the empty list, so a flag can switch the default off. */
        if (len == 4 && strncmp(p, "none", 4) == 0) {
            p += len;
            continue;
        }
        if (n == max) {
            snprintf(err, errlen, "more than %zu networks", max);
            return E2BIG;
        }
        int rc = parse_one(p, len, &out[n], err, errlen);
        if (rc)
            return rc;
        n++;
        p += len;
    }
    *count = n;
    return 0;
}
