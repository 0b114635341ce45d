/* SIP accounts as the REST API and the CLI both create them: the rules a new account must
 * meet, and the bulk import of many accounts (CSV or JSON) in one transaction. */
#ifndef SIPBX_USERS_H
#define SIPBX_USERS_H

#include <stddef.h>

struct store;

#define USERS_PASSWORD_MIN 4   /* characters */
#define USERS_PASSWORD_MAX 128 /* characters */

/** Whether name can be an account's display name: valid UTF-8 without control characters,
 *  at most STORE_DISPLAY_NAME_CHARS characters whatever their bytes. Returns 0 when it
 *  can; else writes why (one readable phrase, e.g. "at most 127 characters (this one has
 *  130)") and returns 1 when it is too long, -1 when it is not a valid name at all. The one
 *  rule REST, the CLI and the import apply. */
int users_display_name_problem(const char *name, char *why, size_t whylen);

/** Writes the digest HA1 of an account, hex MD5(ext ":" realm ":" password) (RFC 2617
 *  3.2.2.2): what the database stores instead of the password, and what SIP digest
 *  authentication checks against. */
void users_ha1(char out[33], const char *ext, const char *realm, const char *password);

/** The formats users_import_parse reads. */
enum users_format {
    USERS_CSV,  /* a header row naming extension, password and optionally display_name */
    USERS_JSON, /* an array of {"extension" (or "username"), "password", "display_name"} */
};

/** A row that was not created, and why. */
struct users_rejected {
    int line;           /* CSV: the line it starts on (the header is line 1); JSON: the
                           element's position in the array, from 1 */
    char extension[33]; /* as given (cut to fit), "" when there was none */
    const char *reason; /* duplicate, bad_extension, short_password, long_password,
                           long_display_name, bad_display_name, missing_field, bad_row */
    char message[160];  /* one readable sentence */
};

/** Parsed rows on their way into the database. */
struct users_import;

/** Reads len bytes of data in format fmt into a new import (*out); the passwords are
 *  turned into HA1 digests for realm at once and not kept. Rows that break a rule are
 *  rejected here already. Returns 0; EINVAL when the data as a whole cannot be read (not
 *  a JSON array, no usable CSV header, a NUL byte), with one readable line in err; or
 *  ENOMEM. */
int users_import_parse(struct users_import **out, const char *data, size_t len,
                       enum users_format fmt, const char *realm, char *err, size_t errlen);

/** Creates every row that passed users_import_parse in one transaction of st; a row
 *  whose extension exists already is rejected as a duplicate. Returns 0, or an errno
 *  value (EIO) when the transaction failed: then nothing was created. */
int users_import_run(struct users_import *im, struct store *st);

/** Rows created by users_import_run. */
size_t users_import_created(const struct users_import *im);

/** The rejected rows in the order of the input; *list stays valid until destroy. */
size_t users_import_rejected(const struct users_import *im, const struct users_rejected **list);

/** Rows read from the input (created or rejected). */
size_t users_import_rows(const struct users_import *im);

void users_import_destroy(struct users_import *im);

#endif
