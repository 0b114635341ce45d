/* The api_tokens table: long-lived bearer tokens for scripts, stored as SHA-256 hashes. */
#include "store/store_int.h"
#include "util/util.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define TOKEN_BYTES 32
/* last_used_at is rewritten at most this often, so reading the API is not a disk write
 * per request. */
#define LAST_USED_GRANULARITY 60

#define TOKEN_COLS "id, name, created_at, coalesce(last_used_at, 0)"

static void read_token(sqlite3_stmt *s, struct store_token *t)
{
    memset(t, 0, sizeof *t);
    t->id = sqlite3_column_int64(s, 0);
    store_col_text(s, 1, t->name, sizeof t->name);
    t->created_at = sqlite3_column_int64(s, 2);
    t->last_used_at = sqlite3_column_int64(s, 3);
}

int store_token_create(struct store *st, const char *name, int64_t now,
                       char secret[STORE_TOKEN_LEN], struct store_token *out)
{
    unsigned char raw[TOKEN_BYTES];
    char hex[2 * TOKEN_BYTES + 1], hash[65];
    int rc = util_random(raw, sizeof raw);
    if (rc != 0)
        return rc;
    util_hex(hex, raw, sizeof raw);
    char tok[STORE_TOKEN_LEN];
    snprintf(tok, sizeof tok, "%s%s", STORE_TOKEN_PREFIX, hex);
    util_sha256_hex(hash, tok);
    sqlite3_stmt *s = store_stmt(st, "INSERT INTO api_tokens (name, token_hash, created_at) "
                                     "VALUES (?, ?, ?)");
    if (!s)
        return EIO;
    store_bind_text(s, 1, name);
    store_bind_text(s, 2, hash);
    sqlite3_bind_int64(s, 3, now);
    rc = store_step_done(st, s);
    if (rc != 0)
        return EIO;
    memset(out, 0, sizeof *out);
    out->id = sqlite3_last_insert_rowid(sqlite3_db_handle(s));
    snprintf(out->name, sizeof out->name, "%s", name);
    out->created_at = now;
    memcpy(secret, tok, STORE_TOKEN_LEN);
    return 0;
}

/* True when s looks like a token we issue: the prefix and 64 lowercase hex digits. */
static int well_formed(const char *s)
{
    size_t plen = strlen(STORE_TOKEN_PREFIX);
    if (strncmp(s, STORE_TOKEN_PREFIX, plen) != 0 || strlen(s) != plen + 2 * TOKEN_BYTES)
        return 0;
    for (const char *p = s + plen; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return 0;
    return 1;
}

int store_token_check(struct store *st, const char *secret, int64_t now, struct store_token *out)
{
    if (!well_formed(secret))
        return ENOENT;
    char hash[65], stored[65];
    util_sha256_hex(hash, secret);
    /* The lookup by hash may take time that depends on the hash, which tells an attacker
     * nothing about a token; the final comparison is constant-time all the same. */
    sqlite3_stmt *s =
        store_stmt(st, "SELECT " TOKEN_COLS ", token_hash FROM api_tokens WHERE token_hash = ?");
    if (!s)
        return EIO;
    store_bind_text(s, 1, hash);
    struct store_token t;
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        read_token(s, &t);
        store_col_text(s, 4, stored, sizeof stored);
    }
    sqlite3_reset(s);
    if (rc == SQLITE_DONE)
        return ENOENT;
    if (rc != SQLITE_ROW)
        return EIO;
    if (strlen(stored) != 64 || util_ct_compare(stored, hash, 64) != 0)
        return ENOENT;
    if (t.last_used_at == 0 || now - t.last_used_at >= LAST_USED_GRANULARITY) {
        s = store_stmt(st, "UPDATE api_tokens SET last_used_at = ? WHERE id = ?");
        if (!s)
            return EIO;
        sqlite3_bind_int64(s, 1, now);
        sqlite3_bind_int64(s, 2, t.id);
        if (store_step_done(st, s) == 0)
            t.last_used_at = now;
        /* A failed bookkeeping write does not refuse a valid token (logged by the store). */
    }
    if (out)
        *out = t;
    return 0;
}

int store_token_get(struct store *st, int64_t id, struct store_token *out)
{
    sqlite3_stmt *s = store_stmt(st, "SELECT " TOKEN_COLS " FROM api_tokens WHERE id = ?");
    if (!s)
        return EIO;
    sqlite3_bind_int64(s, 1, id);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        read_token(s, out);
    sqlite3_reset(s);
    return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? ENOENT : EIO;
}

int store_token_list(struct store *st, int64_t after, int limit,
                     int (*cb)(const struct store_token *t, void *ctx), void *ctx)
{
    sqlite3_stmt *s = store_stmt(st, "SELECT " TOKEN_COLS " FROM api_tokens WHERE id > ? "
                                     "ORDER BY id LIMIT ?");
    if (!s)
        return EIO;
    sqlite3_bind_int64(s, 1, after);
    sqlite3_bind_int(s, 2, limit > 0 ? limit : -1);
    int rc, ret = 0;
    struct store_token t;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        read_token(s, &t);
        if ((ret = cb(&t, ctx)) != 0)
            break;
    }
    if (ret == 0 && rc != SQLITE_DONE)
        ret = EIO;
    sqlite3_reset(s);
    return ret;
}

int store_token_delete(struct store *st, int64_t id)
{
    sqlite3_stmt *s = store_stmt(st, "DELETE FROM api_tokens WHERE id = ?");
    if (!s)
        return EIO;
    sqlite3_bind_int64(s, 1, id);
    return store_step_changed(st, s);
}
