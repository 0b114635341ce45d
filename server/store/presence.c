/* The subscriptions and presence_publications tables (db/009): the persistent copy of the
 * SIP event server's dialogs and of the presence documents phones published, written by the
 * writer thread and read once at start-up. */
#include "store/store_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int store_sub_save(struct store *st, const struct store_sub *sub)
{
    sqlite3_stmt *s = store_stmt(
        st, "INSERT OR REPLACE INTO subscriptions (call_id, local_tag, package, event_id, "
            "watcher, presentity, remote, local, target, next_hop, route, contact, local_cseq, "
            "remote_cseq, state_hash, version, created_at, expires_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
    if (!s)
        return EIO;
    const char *text[] = {sub->call_id, sub->local_tag,  sub->package, sub->event_id,
                          sub->watcher, sub->presentity, sub->remote,  sub->local,
                          sub->target,  sub->next_hop,   sub->route,   sub->contact};
    int i = 0;
    for (; i < (int)(sizeof text / sizeof text[0]); i++)
        store_bind_text(s, i + 1, text[i]);
    sqlite3_bind_int64(s, ++i, sub->local_cseq);
    sqlite3_bind_int64(s, ++i, sub->remote_cseq);
    store_bind_text(s, ++i, sub->state_hash);
    sqlite3_bind_int64(s, ++i, sub->version);
    sqlite3_bind_int64(s, ++i, sub->created_at);
    sqlite3_bind_int64(s, ++i, sub->expires_at);
    return store_step_done(st, s);
}

int store_sub_remove(struct store *st, const char *call_id, const char *local_tag)
{
    sqlite3_stmt *s =
        store_stmt(st, "DELETE FROM subscriptions WHERE call_id = ? AND local_tag = ?");
    if (!s)
        return EIO;
    store_bind_text(s, 1, call_id);
    store_bind_text(s, 2, local_tag);
    return store_step_done(st, s);
}

int store_sub_list(struct store *st, int (*cb)(const struct store_sub *sub, void *ctx), void *ctx)
{
    sqlite3_stmt *s = store_stmt(
        st, "SELECT call_id, local_tag, package, event_id, watcher, presentity, remote, local, "
            "target, next_hop, route, contact, local_cseq, remote_cseq, state_hash, version, "
            "created_at, expires_at FROM subscriptions ORDER BY created_at, call_id");
    if (!s)
        return EIO;
    struct store_sub *sub = malloc(sizeof *sub);
    if (!sub) {
        sqlite3_reset(s);
        return ENOMEM;
    }
    int rc, ret = 0;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        memset(sub, 0, sizeof *sub);
        struct {
            char *out;
            size_t len;
        } text[] = {{sub->call_id, sizeof sub->call_id}, {sub->local_tag, sizeof sub->local_tag},
                    {sub->package, sizeof sub->package}, {sub->event_id, sizeof sub->event_id},
                    {sub->watcher, sizeof sub->watcher}, {sub->presentity, sizeof sub->presentity},
                    {sub->remote, sizeof sub->remote},   {sub->local, sizeof sub->local},
                    {sub->target, sizeof sub->target},   {sub->next_hop, sizeof sub->next_hop},
                    {sub->route, sizeof sub->route},     {sub->contact, sizeof sub->contact}};
        int i = 0;
        for (; i < (int)(sizeof text / sizeof text[0]); i++)
            store_col_text(s, i, text[i].out, text[i].len);
        sub->local_cseq = (uint32_t)sqlite3_column_int64(s, i++);
        sub->remote_cseq = (uint32_t)sqlite3_column_int64(s, i++);
        store_col_text(s, i++, sub->state_hash, sizeof sub->state_hash);
        sub->version = (uint32_t)sqlite3_column_int64(s, i++);
        sub->created_at = sqlite3_column_int64(s, i++);
        sub->expires_at = sqlite3_column_int64(s, i++);
        if ((ret = cb(sub, ctx)) != 0)
            break;
    }
    sqlite3_reset(s);
    free(sub);
    if (ret)
        return ret;
    return rc == SQLITE_DONE ? 0 : EIO;
}

int store_pub_save(struct store *st, const struct store_pub *p)
{
    sqlite3_stmt *s = store_stmt(st, "INSERT OR REPLACE INTO presence_publications (etag, "
                                     "extension, body, published_at, expires_at) "
                                     "VALUES (?, ?, ?, ?, ?)");
    if (!s)
        return EIO;
    store_bind_text(s, 1, p->etag);
    store_bind_text(s, 2, p->extension);
    store_bind_text(s, 3, p->body);
    sqlite3_bind_int64(s, 4, p->published_at);
    sqlite3_bind_int64(s, 5, p->expires_at);
    return store_step_done(st, s);
}

int store_pub_remove(struct store *st, const char *etag)
{
    sqlite3_stmt *s = store_stmt(st, "DELETE FROM presence_publications WHERE etag = ?");
    if (!s)
        return EIO;
    store_bind_text(s, 1, etag);
    return store_step_done(st, s);
}

int store_pub_list(struct store *st, int (*cb)(const struct store_pub *p, void *ctx), void *ctx)
{
    sqlite3_stmt *s = store_stmt(st, "SELECT etag, extension, body, published_at, expires_at "
                                     "FROM presence_publications ORDER BY published_at, etag");
    if (!s)
        return EIO;
    struct store_pub *p = malloc(sizeof *p);
    if (!p) {
        sqlite3_reset(s);
        return ENOMEM;
    }
    int rc, ret = 0;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        memset(p, 0, sizeof *p);
        store_col_text(s, 0, p->etag, sizeof p->etag);
        store_col_text(s, 1, p->extension, sizeof p->extension);
        store_col_text(s, 2, p->body, sizeof p->body);
        p->published_at = sqlite3_column_int64(s, 3);
        p->expires_at = sqlite3_column_int64(s, 4);
        if ((ret = cb(p, ctx)) != 0)
            break;
    }
    sqlite3_reset(s);
    free(p);
    if (ret)
        return ret;
    return rc == SQLITE_DONE ? 0 : EIO;
}
