/* Private to the store module: the connection struct and the statement cache. */
#ifndef SIPBX_STORE_INT_H
#define SIPBX_STORE_INT_H

#include "store/store.h"

#include <sqlite3.h>

/* Statements a connection keeps prepared: more than any one connection uses (an HTTP
 * connection of the pool may serve every endpoint in turn). */
#define STORE_STMT_CACHE 128

struct store {
    sqlite3 *db;
    char path[256];
    char tx_error[320]; /* why the last store_tx failed; cleared by the next statement */
    struct {
        const char *sql; /* identity of a static SQL string */
        sqlite3_stmt *stmt;
    } cache[STORE_STMT_CACHE];
};

/** Returns a prepared, reset statement for a static SQL string (cached per connection),
 *  or NULL after logging the error. */
sqlite3_stmt *store_stmt(struct store *st, const char *sql);
/** Runs a static query that yields one integer (a count, a counter); -1 on error. */
int64_t store_scalar(struct store *st, const char *sql);
/** Binds text, or NULL when s is NULL. */
void store_bind_text(sqlite3_stmt *s, int idx, const char *s_val);
/** Copies column col as text into out (empty for NULL). */
void store_col_text(sqlite3_stmt *s, int col, char *out, size_t outlen);
/** Runs a statement that returns no rows to completion; returns 0, EEXIST (unique key),
 *  ENOENT (foreign key), EINVAL (check or not-null constraint) or EIO (logged). */
int store_step_done(struct store *st, sqlite3_stmt *s);
/** store_step_done for an UPDATE or DELETE of one row: ENOENT when it changed none. */
int store_step_changed(struct store *st, sqlite3_stmt *s);

#endif
