/* Mailboxes on disk and in the database: a message is a WAV file (8 kHz, mono, 16-bit, a
 * random name) in the voicemail directory, written and synced before its row is inserted, so
 * a row always has its file; a file without a row (a crash between the two, a user deleted
 * by the CLI) is deleted by retention. The new and heard counts of every mailbox are kept in
 * memory for the message-waiting lamps and published as voicemail.changed events. All of
 * this runs on the user agent thread, except the functions of vm.h, which any thread may
 * call. */
#include "events/events.h"
#include "config/config.h"
#include "store/store.h"
#include "util/util.h"
#include "voicemail/vm_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#define ORPHAN_AGE   60 /* seconds a file without a row is left alone (being written) */
#define EXPIRE_BATCH 1000

struct vm_count {
    int new_count, old_count;
};

/* ---- counts ---- */

void vm_counts(struct vm *vm, const char *ext, int *new_count, int *old_count)
{
    pthread_mutex_lock(&vm->lock);
    struct vm_count *c = strmap_get(vm->counts, ext);
    *new_count = c ? c->new_count : 0;
    *old_count = c ? c->old_count : 0;
    pthread_mutex_unlock(&vm->lock);
}

void vm_set_listener(struct vm *vm,
                     void (*fn)(const char *ext, int new_count, int old_count, void *ctx),
                     void *ctx)
{
    pthread_mutex_lock(&vm->lock);
    vm->listener = fn;
    vm->listener_ctx = ctx;
    pthread_mutex_unlock(&vm->lock);
}

void vm_changed(struct vm *vm, const char *ext, int new_count, int old_count)
{
    pthread_mutex_lock(&vm->lock);
    struct vm_count *c = strmap_get(vm->counts, ext);
    int changed =
        !c ? new_count || old_count : c->new_count != new_count || c->old_count != old_count;
    if (!changed) {
        pthread_mutex_unlock(&vm->lock);
        return;
    }
    if (!new_count && !old_count) {
        free(strmap_remove(vm->counts, ext));
    } else {
        if (!c) {
            c = util_xmalloc(sizeof *c);
            strmap_put(vm->counts, ext, c, NULL);
        }
        c->new_count = new_count;
        c->old_count = old_count;
    }
    void (*fn)(const char *, int, int, void *) = vm->listener;
    void *ctx = vm->listener_ctx;
    pthread_mutex_unlock(&vm->lock);
    if (vm->events) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "extension", ext);
        cJSON_AddNumberToObject(o, "new", new_count);
        cJSON_AddNumberToObject(o, "old", old_count);
        char *json = o ? cJSON_PrintUnformatted(o) : NULL;
        if (json)
            events_publish(vm->events, "voicemail.changed", json);
        free(json);
        cJSON_Delete(o);
    }
    if (fn)
        fn(ext, new_count, old_count, ctx);
}

static int load_one(const char *ext, int new_count, int old_count, void *ctx)
{
    struct strmap *m = ctx;
    struct vm_count *c = util_xmalloc(sizeof *c);
    strmap_put(m, ext, c, NULL);
    c->new_count = new_count;
    c->old_count = old_count;
    return 0;
}

int mailbox_load_counts(struct vm *vm)
{
    return store_vm_count_all(vm->st, load_one, vm->counts) == 0 ? 0 : EIO;
}

void mailbox_recount(struct vm *vm, const char *ext)
{
    int n = 0, o = 0;
    if (store_vm_counts(vm->st, ext, &n, &o) == 0)
        vm_changed(vm, ext, n, o);
}

/* ---- files ---- */

static int file_path(const char *dir, const char *file, char *out, size_t outlen)
{
    /* Names are ours (hex and .wav), but a row typed in by hand must not reach outside. */
    if (!file[0] || strchr(file, '/') || file[0] == '.')
        return -1;
    int n = snprintf(out, outlen, "%s/%s", dir, file);
    return n > 0 && (size_t)n < outlen ? 0 : -1;
}

static void remove_file(const char *dir, const char *file)
{
    char path[8192];
    if (file_path(dir, file, path, sizeof path) == 0 && unlink(path) != 0 && errno != ENOENT)
        log_warn("voicemail: cannot delete %s: %s", path, strerror(errno));
}

int mailbox_save(struct vm *vm, const char *box, const char *caller, const char *caller_name,
                 const char *call_id, int64_t received_us, const int16_t *samples, size_t n)
{
    struct store_vm_msg m;
    memset(&m, 0, sizeof m);
    unsigned char rnd[16];
    char hex[33], path[8192];
    int rc = util_random(rnd, sizeof rnd);
    if (rc != 0)
        return rc;
    util_hex(hex, rnd, sizeof rnd);
    snprintf(m.file, sizeof m.file, "%s.wav", hex);
    if (file_path(vm->dir, m.file, path, sizeof path) != 0)
        return ENAMETOOLONG;
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        rc = errno;
        log_error("voicemail: cannot create %s: %s; the message from %s for %s is lost", path,
                  strerror(rc), caller, box);
        return rc;
    }
    uint8_t head[AUDIO_WAV_HEADER];
    audio_wav_header(head, n);
    uint8_t *le = malloc(n * 2 + 1);
    if (!le) {
        rc = ENOMEM;
    } else {
        for (size_t i = 0; i < n; i++) { /* WAV is little-endian whatever the machine */
            le[2 * i] = (uint8_t)(samples[i] & 0xFF);
            le[2 * i + 1] = (uint8_t)((uint16_t)samples[i] >> 8);
        }
        rc = util_write_all(fd, head, sizeof head);
        if (rc == 0)
            rc = util_write_all(fd, le, n * 2);
        if (rc == 0 && fsync(fd) != 0)
            rc = errno;
        free(le);
    }
    if (close(fd) != 0 && rc == 0)
        rc = errno;
    if (rc != 0) {
        log_error("voicemail: cannot write %s: %s; the message from %s for %s is lost", path,
                  strerror(rc), caller, box);
        unlink(path);
        return rc;
    }
    snprintf(m.extension, sizeof m.extension, "%s", box);
    snprintf(m.caller, sizeof m.caller, "%s", caller);
    snprintf(m.caller_name, sizeof m.caller_name, "%s", caller_name);
    snprintf(m.call_id, sizeof m.call_id, "%s", call_id);
    m.received_us = received_us;
    m.duration_ms = (int64_t)n * 1000 / AUDIO_RATE;
    m.bytes = (int64_t)(AUDIO_WAV_HEADER + n * 2);
    rc = store_vm_add(vm->st, &m);
    if (rc != 0) {
        if (rc == ENOENT)
            log_info("voicemail: mailbox %s was deleted during the call: message dropped", box);
        else
            log_error("voicemail: cannot store the message from %s for %s: %s", caller, box,
                      store_errmsg(vm->st));
        unlink(path);
        return rc;
    }
    mailbox_recount(vm, box);
    return 0;
}

struct vm_audio *mailbox_audio(struct vm *vm, const char *file)
{
    char path[8192], err[160];
    char *data = NULL;
    size_t len = 0, n = 0;
    int16_t *pcm = NULL;
    if (file_path(vm->dir, file, path, sizeof path) != 0)
        return NULL;
    int rc = util_read_file(path, 64 << 20, &data, &len);
    if (rc != 0) {
        log_error("voicemail: cannot read %s: %s", path, strerror(rc));
        return NULL;
    }
    rc = audio_wav_read(data, len, &pcm, &n, err, sizeof err);
    free(data);
    if (rc != 0) {
        log_error("voicemail: %s: %s", path, rc == EINVAL ? err : strerror(rc));
        return NULL;
    }
    struct vm_audio *a = vm_audio_new(n);
    if (a)
        memcpy(a->samples, pcm, n * sizeof *pcm);
    free(pcm);
    return a;
}

int mailbox_delete(struct vm *vm, const char *box, int64_t id)
{
    struct store_vm_msg m;
    int rc = store_vm_get(vm->st, id, &m);
    if (rc == 0 && strcmp(m.extension, box) != 0)
        rc = ENOENT;
    if (rc == 0)
        rc = store_vm_delete(vm->st, id);
    if (rc == 0) {
        remove_file(vm->dir, m.file);
        mailbox_recount(vm, box);
    }
    return rc;
}

void mailbox_heard(struct vm *vm, const char *box, int64_t id)
{
    if (store_vm_set_heard(vm->st, id, 1) == 0)
        mailbox_recount(vm, box);
}

struct vm_audio *mailbox_greeting(struct vm *vm, const char *box)
{
    void *pcm;
    size_t len;
    if (store_vm_greeting_get(vm->st, box, &pcm, &len, NULL) != 0)
        return NULL;
    size_t n = len / 2;
    struct vm_audio *a = n ? vm_audio_new(n) : NULL;
    const uint8_t *b = pcm;
    for (size_t i = 0; a && i < n; i++)
        a->samples[i] = (int16_t)(uint16_t)(b[2 * i] | b[2 * i + 1] << 8);
    free(pcm);
    return a;
}

/* ---- retention ---- */

struct doomed {
    struct store_vm_msg *m;
    size_t n, cap;
};

static int collect(const struct store_vm_msg *m, void *ctx)
{
    struct doomed *d = ctx;
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 64;
        d->m = util_xrealloc(d->m, cap * sizeof *d->m);
        d->cap = cap;
    }
    d->m[d->n++] = *m;
    return 0;
}

/* Deletes the collected messages (rows, then files); returns how many. */
static size_t delete_all(struct vm *vm, struct doomed *d, const char *why)
{
    size_t done = 0;
    for (size_t i = 0; i < d->n; i++) {
        if (store_vm_delete(vm->st, d->m[i].id) == 0) {
            remove_file(vm->dir, d->m[i].file);
            done++;
        }
    }
    if (done)
        log_info("voicemail: %zu message(s) deleted: %s", done, why);
    free(d->m);
    memset(d, 0, sizeof *d);
    return done;
}

static int mark_file(const char *file, void *ctx)
{
    strmap_put(ctx, file, (void *)1, NULL);
    return 0;
}

/* Deletes the files of the voicemail directory that no row names (old enough not to be
 * one being written). */
static void sweep_orphans(struct vm *vm)
{
    struct strmap *known;
    if (strmap_create(&known) != 0)
        return;
    if (store_vm_files(vm->st, mark_file, known) != 0) {
        strmap_destroy(known, NULL);
        return;
    }
    DIR *d = opendir(vm->dir);
    if (!d) {
        strmap_destroy(known, NULL);
        return;
    }
    struct dirent *e;
    time_t now = time(NULL);
    int removed = 0;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len < 5 || strcmp(e->d_name + len - 4, ".wav") != 0 || strmap_get(known, e->d_name))
            continue;
        char path[8192];
        struct stat st;
        if (file_path(vm->dir, e->d_name, path, sizeof path) != 0 || lstat(path, &st) != 0 ||
            !S_ISREG(st.st_mode) || now - st.st_mtime < ORPHAN_AGE)
            continue;
        if (unlink(path) == 0)
            removed++;
    }
    closedir(d);
    strmap_destroy(known, NULL);
    if (removed)
        log_info("voicemail: %d file(s) of deleted messages or users removed", removed);
}

struct diff_ctx {
    struct vm *vm;
    struct strmap *fresh;
};

/* A mailbox the cache knows and the database no longer has messages for. */
static int emptied(const char *ext, void *val, void *ctx)
{
    (void)val;
    struct diff_ctx *dc = ctx;
    if (!strmap_get(dc->fresh, ext)) {
        struct vm_count *z = util_xcalloc(1, sizeof *z);
        strmap_put(dc->fresh, ext, z, NULL);
    }
    return STRMAP_KEEP;
}

static int publish_fresh(const char *ext, void *val, void *ctx)
{
    struct diff_ctx *dc = ctx;
    struct vm_count *c = val;
    vm_changed(dc->vm, ext, c->new_count, c->old_count);
    return STRMAP_KEEP;
}

void mailbox_retention(struct vm *vm)
{
    const struct config *cfg = vm->cfg;
    struct doomed d = {0};
    if (cfg->voicemail_max_days > 0) {
        int64_t before = util_now_us() - (int64_t)cfg->voicemail_max_days * 86400 * 1000000;
        if (store_vm_expired(vm->st, before, EXPIRE_BATCH, collect, &d) == 0) {
            char why[64];
            snprintf(why, sizeof why, "older than %d days", cfg->voicemail_max_days);
            delete_all(vm, &d, why);
        }
        free(d.m);
        memset(&d, 0, sizeof d);
    }
    if (store_vm_over_quota(vm->st, cfg->voicemail_max_messages, collect, &d) == 0) {
        char why[96];
        snprintf(why, sizeof why, "heard, beyond the %d a mailbox keeps",
                 cfg->voicemail_max_messages);
        delete_all(vm, &d, why);
    }
    free(d.m);
    sweep_orphans(vm);
    /* Every mailbox's counts again: also what another process changed (a user deleted with
     * the CLI, rows edited by hand). */
    struct diff_ctx dc = {vm, NULL};
    if (strmap_create(&dc.fresh) != 0)
        return;
    if (store_vm_count_all(vm->st, load_one, dc.fresh) == 0) {
        pthread_mutex_lock(&vm->lock);
        strmap_foreach(vm->counts, emptied, &dc);
        pthread_mutex_unlock(&vm->lock);
        strmap_foreach(dc.fresh, publish_fresh, &dc);
    }
    strmap_destroy(dc.fresh, free);
}
