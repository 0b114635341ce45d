/* The rules an account's fields must meet, the same whether REST, the CLI or a bulk import
 * makes the account. */
#include "store/store.h"
#include "users/users.h"
#include "util/util.h"

#include <stdio.h>

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
