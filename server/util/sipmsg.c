/* Reading a header out of the raw text of a SIP message, for the places that see the bytes
 * without Sofia's parser (the capture thread, stored traces). */
#include "util/util.h"

#include <string.h>
#include <strings.h>

int util_sip_header(const char *msg, size_t len, const char *name, char compact, const char **value,
                    size_t *vlen)
{
    size_t nl = strlen(name);
    const char *end = msg + len;
    const char *p = memchr(msg, '\n', len); /* the start line is no header */
    for (p = p ? p + 1 : end; p < end;) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol)
            eol = end;
        if (eol - p <= 1 && (eol == p || *p == '\r'))
            return 0; /* the empty line: end of the headers */
        const char *v = NULL;
        if ((size_t)(eol - p) > nl && strncasecmp(p, name, nl) == 0)
            v = p + nl;
        else if (compact && (p[0] | 0x20) == (compact | 0x20))
            v = p + 1;
        while (v && v < eol && (*v == ' ' || *v == '\t'))
            v++;
        if (v && v < eol && *v == ':') {
            v++;
            const char *e = eol;
            while (v < e && (*v == ' ' || *v == '\t'))
                v++;
            while (e > v && (e[-1] == '\r' || e[-1] == ' ' || e[-1] == '\t'))
                e--;
            *value = v;
            *vlen = (size_t)(e - v);
            return 1;
        }
        p = eol + 1;
    }
    return 0;
}
