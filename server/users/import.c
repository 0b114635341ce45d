/* Bulk import of SIP accounts from CSV (RFC 4180, a header row) or a JSON array: every row
 * is checked as POST /users and `sipbx user add` check one account, the valid ones are
 * created in one transaction, and each rejected row is reported with its reason. Shared
 * by POST /api/v1/users/import and `sipbx user import`. */
#include "users/users.h"
#include "store/store.h"
#include "util/util.h"

#include <cJSON.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* A row that passed the checks: only what the users table needs. */
struct row {
    int line;
    char extension[STORE_EXT_MAX];
    char display_name[STORE_DISPLAY_NAME_MAX];
    char ha1[STORE_HA1_LEN];
};

struct users_import {
    char realm[256];
    struct row *rows;
    size_t nrows, caprows;
    struct users_rejected *rejected;
    size_t nrejected, caprejected;
    size_t read;         /* rows read */
    size_t created;      /* by users_import_run */
    struct strmap *seen; /* extension -> line (as a pointer-sized integer) */
};

static int reject(struct users_import *im, int line, const char *ext, const char *reason,
                  const char *fmt, ...)
{
    if (im->nrejected == im->caprejected) {
        size_t cap = im->caprejected ? 2 * im->caprejected : 16;
        struct users_rejected *r = realloc(im->rejected, cap * sizeof *r);
        if (!r)
            return ENOMEM;
        im->rejected = r;
        im->caprejected = cap;
    }
    struct users_rejected *r = &im->rejected[im->nrejected++];
    memset(r, 0, sizeof *r);
    r->line = line;
    snprintf(r->extension, sizeof r->extension, "%s", ext ? ext : "");
    r->reason = reason;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->message, sizeof r->message, fmt, ap);
    va_end(ap);
    return 0;
}

/* Checks one row and keeps it or rejects it; ext, password, name may be NULL (missing).
 * Returns 0 or ENOMEM. */
static int take_row(struct users_import *im, int line, const char *ext, const char *password,
                    const char *name)
{
    im->read++;
    if (!ext || !*ext)
        return reject(im, line, NULL, "missing_field", "extension: required");
    if (!util_valid_extension(ext))
        return reject(im, line, ext, "bad_extension",
                      "extension: not a valid SIP user part (1-32 letters, digits or "
                      "-_.!~*'+, not starting with '-')");
    if (!password || !*password)
        return reject(im, line, ext, "missing_field", "password: required");
    size_t pl = strlen(password);
    if (pl < USERS_PASSWORD_MIN)
        return reject(im, line, ext, "short_password", "password: at least %d characters",
                      USERS_PASSWORD_MIN);
    if (pl > USERS_PASSWORD_MAX)
        return reject(im, line, ext, "long_password", "password: at most %d characters",
                      USERS_PASSWORD_MAX);
    char why[128];
    int bad = name ? users_display_name_problem(name, why, sizeof why) : 0;
    if (bad)
        return reject(im, line, ext, bad > 0 ? "long_display_name" : "bad_display_name",
                      "display_name: %s", why);
    void *earlier = strmap_get(im->seen, ext);
    if (earlier)
        return reject(im, line, ext, "duplicate", "extension %s: also on line %d", ext,
                      (int)(intptr_t)earlier);
    if (strmap_put(im->seen, ext, (void *)(intptr_t)line, NULL) != 0)
        return ENOMEM;
    if (im->nrows == im->caprows) {
        size_t cap = im->caprows ? 2 * im->caprows : 64;
        struct row *r = realloc(im->rows, cap * sizeof *r);
        if (!r)
            return ENOMEM;
        im->rows = r;
        im->caprows = cap;
    }
    struct row *r = &im->rows[im->nrows++];
    r->line = line;
    snprintf(r->extension, sizeof r->extension, "%s", ext);
    snprintf(r->display_name, sizeof r->display_name, "%s", name ? name : "");
    users_ha1(r->ha1, ext, im->realm, password);
    return 0;
}

/* ---- CSV ---- */

#define CSV_FIELDS_MAX 8

/* One CSV record: its fields, NUL-terminated, in buf. */
struct record {
    char *field[CSV_FIELDS_MAX];
    int nfields; /* more than CSV_FIELDS_MAX: counted, not kept */
    int line;    /* where it starts */
};

/* Reads the record at *p (up to end) into rec, unquoting into buf (at least as long as the
 * record); advances *p and *line past it. Returns 1 for a record, 0 at the end, -1 for an
 * unterminated quote. */
static int csv_next(const char **p, const char *end, int *line, char *buf, struct record *rec)
{
    const char *s = *p;
    /* Empty lines are no records. */
    while (s < end && (*s == '\n' || *s == '\r')) {
        if (*s == '\n')
            (*line)++;
        s++;
    }
    if (s >= end) {
        *p = s;
        return 0;
    }
    rec->line = *line;
    rec->nfields = 0;
    char *o = buf;
    for (;;) {
        char *start = o;
        if (s < end && *s == '"') {
            s++;
            for (;;) {
                if (s >= end)
                    return -1;
                if (*s == '"') {
                    if (s + 1 < end && s[1] == '"') {
                        *o++ = '"';
                        s += 2;
                        continue;
                    }
                    s++;
                    break;
                }
                if (*s == '\n')
                    (*line)++;
                *o++ = *s++;
            }
            /* After the closing quote only the separator or the end of the record. */
            while (s < end && *s != ',' && *s != '\n' && *s != '\r')
                *o++ = *s++;
        } else {
            while (s < end && *s != ',' && *s != '\n' && *s != '\r')
                *o++ = *s++;
        }
        *o++ = '\0';
        if (rec->nfields < CSV_FIELDS_MAX)
            rec->field[rec->nfields] = start;
        rec->nfields++;
        if (s < end && *s == ',') {
            s++;
            continue;
        }
        break;
    }
    if (s < end && *s == '\r')
        s++;
    if (s < end && *s == '\n') {
        s++;
        (*line)++;
    }
    *p = s;
    return 1;
}

static int parse_csv(struct users_import *im, const char *data, size_t len, char *err,
                     size_t errlen)
{
    const char *p = data, *end = data + len;
    if (len >= 3 && memcmp(p, "\xef\xbb\xbf", 3) == 0)
        p += 3; /* a byte order mark, as spreadsheets write */
    int line = 1;
    char *buf = malloc(len + 1);
    if (!buf)
        return ENOMEM;
    struct record rec;
    int rc = csv_next(&p, end, &line, buf, &rec);
    if (rc <= 0) {
        snprintf(err, errlen, "%s",
                 rc == 0 ? "no header row (extension,password,display_name)"
                         : "the header row has an unterminated quote");
        free(buf);
        return EINVAL;
    }
    int col_ext = -1, col_pw = -1, col_name = -1, ncols = rec.nfields;
    if (ncols > CSV_FIELDS_MAX) {
        snprintf(err, errlen, "the header row has %d columns; at most %d", ncols, CSV_FIELDS_MAX);
        free(buf);
        return EINVAL;
    }
    for (int i = 0; i < ncols; i++) {
        const char *h = rec.field[i];
        int *col = strcasecmp(h, "extension") == 0 || strcasecmp(h, "username") == 0 ? &col_ext
                   : strcasecmp(h, "password") == 0                                  ? &col_pw
                   : strcasecmp(h, "display_name") == 0                              ? &col_name
                                                                                     : NULL;
        if (!col || *col >= 0) {
            snprintf(err, errlen,
                     "header row, column %d: '%.40s' is %s (the columns are extension, "
                     "password, display_name)",
                     i + 1, h, col ? "named twice" : "not a column this import knows");
            free(buf);
            return EINVAL;
        }
        *col = i;
    }
    if (col_ext < 0 || col_pw < 0) {
        snprintf(err, errlen, "the header row must name the columns extension and password");
        free(buf);
        return EINVAL;
    }
    rc = 0;
    for (;;) {
        int got = csv_next(&p, end, &line, buf, &rec);
        if (got == 0)
            break;
        if (got < 0) {
            im->read++;
            rc = reject(im, rec.line, NULL, "bad_row", "a quote that does not end");
            break;
        }
        if (rec.nfields != ncols) {
            im->read++;
            rc = reject(im, rec.line, rec.field[col_ext < rec.nfields ? col_ext : 0], "bad_row",
                        "%d fields where the header has %d", rec.nfields, ncols);
        } else {
            rc = take_row(im, rec.line, rec.field[col_ext], rec.field[col_pw],
                          col_name >= 0 ? rec.field[col_name] : NULL);
        }
        if (rc != 0)
            break;
    }
    free(buf);
    return rc;
}

/* ---- JSON ---- */

static int parse_json(struct users_import *im, const char *data, size_t len, char *err,
                      size_t errlen)
{
    /* cJSON would end a string at an escaped NUL: "12\u00003" would be read as "12" (a
     * password cut short). Such text is refused as a whole (rarely a false alarm: an
     * escaped backslash followed by the letters u0000). */
    for (size_t i = 0; i + 6 <= len; i++)
        if (data[i] == '\\' && (data[i + 1] == 'u' || data[i + 1] == 'U') &&
            memcmp(data + i + 2, "0000", 4) == 0) {
            snprintf(err, errlen, "the body must not contain \\u0000 (NUL)");
            return EINVAL;
        }
    const char *endp = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(data, len, &endp, 0);
    if (!root || !cJSON_IsArray(root)) {
        snprintf(err, errlen, "%s",
                 root ? "the body is not a JSON array of users" : "the body is not valid JSON");
        cJSON_Delete(root);
        return EINVAL;
    }
    int n = 0, rc = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, root)
    {
        n++;
        if (!cJSON_IsObject(item)) {
            im->read++;
            rc = reject(im, n, NULL, "bad_row", "not an object");
        } else {
            const char *f[3] = {NULL, NULL, NULL};
            const char *names[3] = {"extension", "password", "display_name"};
            const char *bad = NULL;
            const cJSON *kv;
            cJSON_ArrayForEach(kv, item)
            {
                int k = strcmp(kv->string, "username") == 0 ? 0 : -1;
                for (int i = 0; i < 3 && k < 0; i++)
                    if (strcmp(kv->string, names[i]) == 0)
                        k = i;
                if (k < 0 || !cJSON_IsString(kv) || (f[k] && strcmp(f[k], kv->valuestring))) {
                    bad = kv->string;
                    break;
                }
                f[k] = kv->valuestring;
            }
            if (bad) {
                im->read++;
                rc = reject(im, n, f[0], "bad_row",
                            "%.40s: not a field of a user, not a string, or given twice", bad);
            } else {
                rc = take_row(im, n, f[0], f[1], f[2]);
            }
        }
        if (rc != 0)
            break;
    }
    cJSON_Delete(root);
    return rc;
}

int users_import_parse(struct users_import **out, const char *data, size_t len,
                       enum users_format fmt, const char *realm, char *err, size_t errlen)
{
    if (memchr(data, '\0', len)) {
        snprintf(err, errlen, "the data holds a NUL byte");
        return EINVAL;
    }
    struct users_import *im = calloc(1, sizeof *im);
    if (!im || strmap_create(&im->seen) != 0) {
        free(im);
        snprintf(err, errlen, "out of memory");
        return ENOMEM;
    }
    snprintf(im->realm, sizeof im->realm, "%s", realm);
    int rc = fmt == USERS_JSON ? parse_json(im, data, len, err, errlen)
                               : parse_csv(im, data, len, err, errlen);
    if (rc != 0) {
        if (rc == ENOMEM)
            snprintf(err, errlen, "out of memory");
        users_import_destroy(im);
        return rc;
    }
    *out = im;
    return 0;
}

static int insert_all(struct store *st, void *arg)
{
    struct users_import *im = arg;
    struct store_user u;
    memset(&u, 0, sizeof u);
    snprintf(u.realm, sizeof u.realm, "%s", im->realm);
    u.enabled = 1;
    u.call_waiting = 1;
    u.created_at = util_now();
    im->created = 0;
    for (size_t i = 0; i < im->nrows; i++) {
        const struct row *r = &im->rows[i];
        memcpy(u.extension, r->extension, sizeof u.extension);
        memcpy(u.display_name, r->display_name, sizeof u.display_name);
        memcpy(u.ha1, r->ha1, sizeof u.ha1);
        /* A failed INSERT ends that statement only, not the transaction. */
        int rc = store_user_add(st, &u);
        if (rc == EEXIST)
            rc = reject(im, r->line, r->extension, "duplicate",
                        "user %s already exists (or a ring group has the extension)", r->extension);
        else if (rc == 0)
            im->created++;
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int by_line(const void *a, const void *b)
{
    int la = ((const struct users_rejected *)a)->line,
        lb = ((const struct users_rejected *)b)->line;
    return (la > lb) - (la < lb);
}

int users_import_run(struct users_import *im, struct store *st)
{
    size_t rejected = im->nrejected;
    int rc = store_tx(st, insert_all, im);
    if (rc != 0) {
        /* Rolled back (by a row or by the commit): nothing was created, and no row was
         * a duplicate after all. */
        im->created = 0;
        im->nrejected = rejected;
        return rc;
    }
    if (im->nrejected)
        qsort(im->rejected, im->nrejected, sizeof *im->rejected, by_line);
    return 0;
}

size_t users_import_created(const struct users_import *im)
{
    return im->created;
}

size_t users_import_rejected(const struct users_import *im, const struct users_rejected **list)
{
    *list = im->rejected;
    return im->nrejected;
}

size_t users_import_rows(const struct users_import *im)
{
    return im->read;
}

void users_import_destroy(struct users_import *im)
{
    if (!im)
        return;
    strmap_destroy(im->seen, NULL);
    free(im->rows);
    free(im->rejected);
    free(im);
}
