/* /api/v1/users/{ext}/voicemail: a user's mailbox (messages with their audio as WAV, marked
 * heard or deleted) and own greeting (uploaded as any common WAV, kept as 8 kHz; deleting it
 * brings the default back). Every change of the mailbox updates the message-waiting counts
 * and is announced on the event stream (voicemail.changed). */
#include "audio/audio.h"
#include "http/http_int.h"
#include "util/util.h"
#include "voicemail/vm.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define WAV_SUFFIX ".wav"

/* The user of the path; -1 after a 404 or 500 reply. */
static int path_user(struct http_req *r)
{
    struct store_user u;
    int rc = util_valid_extension(r->param) ? store_user_get(r->st, r->param, &u) : ENOENT;
    if (rc == ENOENT)
        http_error(r, 404, "not_found", "no user %s", r->param);
    else if (rc != 0)
        http_store_error(r);
    return rc == 0 ? 0 : -1;
}

static cJSON *message_json(const char *ext, const struct store_vm_msg *m)
{
    cJSON *o = cJSON_CreateObject();
    char url[HTTP_PARAM_MAX + 64];
    cJSON_AddNumberToObject(o, "id", (double)m->id);
    cJSON_AddStringToObject(o, "caller", m->caller);
    cJSON_AddStringToObject(o, "caller_name", m->caller_name);
    cJSON_AddStringToObject(o, "call_id", m->call_id);
    http_add_time_us(o, "received_at", m->received_us);
    cJSON_AddNumberToObject(o, "duration", (double)m->duration_ms / 1000.0);
    cJSON_AddBoolToObject(o, "heard", m->heard);
    cJSON_AddNumberToObject(o, "size", (double)m->bytes);
    snprintf(url, sizeof url, "/api/v1/users/%s/voicemail/%lld" WAV_SUFFIX, ext, (long long)m->id);
    cJSON_AddStringToObject(o, "audio_url", url);
    return o;
}

/* Counts ext's mailbox again and hands the counts to voicemail (lamps, events). */
static void changed(struct http_req *r, const char *ext)
{
    int n, o;
    if (store_vm_counts(r->st, ext, &n, &o) == 0)
        vm_changed(r->h->vm, ext, n, o);
}

/* ---- the mailbox ---- */

struct list_ctx {
    const char *ext;
    cJSON *items;
    int new_count, old_count;
};

static int add_message(const struct store_vm_msg *m, void *ctx)
{
    struct list_ctx *lc = ctx;
    cJSON_AddItemToArray(lc->items, message_json(lc->ext, m));
    m->heard ? lc->old_count++ : lc->new_count++;
    return 0;
}

void api_voicemail_list(struct http_req *r)
{
    if (path_user(r) != 0)
        return;
    struct list_ctx lc = {r->param, cJSON_CreateArray(), 0, 0};
    void *pcm;
    size_t len;
    int grc = store_vm_greeting_get(r->st, r->param, &pcm, &len, NULL);
    if (grc == 0)
        free(pcm);
    if (store_vm_list(r->st, r->param, add_message, &lc) != 0 || (grc != 0 && grc != ENOENT)) {
        cJSON_Delete(lc.items);
        http_store_error(r);
        return;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "items", lc.items);
    cJSON_AddNumberToObject(o, "new", lc.new_count);
    cJSON_AddNumberToObject(o, "old", lc.old_count);
    cJSON_AddStringToObject(o, "greeting", grc == 0 ? "custom" : "default");
    http_json(r, 200, o);
}

/* The message of the path (r->param2: its id, with ".wav" when wav is set) in ext's
 * mailbox; -1 after a 404 or 500 reply. */
static int path_message(struct http_req *r, int *wav, struct store_vm_msg *m)
{
    char id[HTTP_PARAM_MAX];
    snprintf(id, sizeof id, "%s", r->param2);
    size_t n = strlen(id), sl = strlen(WAV_SUFFIX);
    *wav = n > sl && strcmp(id + n - sl, WAV_SUFFIX) == 0;
    if (*wav)
        id[n - sl] = '\0';
    int64_t v = http_parse_id(id);
    int rc = v ? store_vm_get(r->st, v, m) : ENOENT;
    if (rc == 0 && strcmp(m->extension, r->param) != 0)
        rc = ENOENT; /* another user's: not in this mailbox */
    if (rc == ENOENT)
        http_error(r, 404, "not_found", "no message %s in the mailbox of %s", r->param2, r->param);
    else if (rc != 0)
        http_store_error(r);
    return rc == 0 ? 0 : -1;
}

/* Answers with the message's WAV file, read by libmicrohttpd as it sends. */
static void send_wav(struct http_req *r, const struct store_vm_msg *m)
{
    char path[8192];
    int fd = -1;
    struct stat st;
    if (!strchr(m->file, '/') && m->file[0] != '.' &&
        snprintf(path, sizeof path, "%s/%s", vm_dir(r->h->vm), m->file) < (int)sizeof path)
        fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) != 0) {
        log_error("http: the audio of message %lld (%s) cannot be read: %s", (long long)m->id,
                  m->file, strerror(errno));
        if (fd >= 0)
            close(fd);
        http_error(r, 500, "internal", "the audio of message %lld cannot be read",
                   (long long)m->id);
        return;
    }
    struct MHD_Response *resp = MHD_create_response_from_fd64((uint64_t)st.st_size, fd);
    if (!resp) {
        close(fd);
        http_error(r, 500, "internal", "out of memory");
        return;
    }
    char disposition[HTTP_PARAM_MAX + 64];
    snprintf(disposition, sizeof disposition, "inline; filename=\"voicemail-%s-%lld.wav\"",
             r->param, (long long)m->id);
    http_header(r, "Content-Disposition", disposition);
    http_header(r, "Cache-Control", "private, no-store");
    http_stream(r, 200, "audio/wav", resp);
}

void api_voicemail_get(struct http_req *r)
{
    struct store_vm_msg m;
    int wav;
    if (path_user(r) != 0 || path_message(r, &wav, &m) != 0)
        return;
    if (wav)
        send_wav(r, &m);
    else
        http_json(r, 200, message_json(r->param, &m));
}

void api_voicemail_patch(struct http_req *r)
{
    struct store_vm_msg m;
    int wav;
    if (path_user(r) != 0 || path_message(r, &wav, &m) != 0)
        return;
    if (wav) {
        http_header(r, "Allow", "GET"); /* the audio is read only (RFC 9110's 405) */
        http_error(r, 405, "method_not_allowed", "the audio cannot be changed");
        return;
    }
    static const char *const fields[] = {"heard", NULL};
    cJSON *body = http_body_object(r, fields);
    if (!body)
        return;
    int heard;
    int got = http_field_bool(r, body, "heard", &heard);
    cJSON_Delete(body);
    if (got < 0)
        return;
    if (got == 0) {
        http_error(r, 422, "missing_field", "heard: required");
        return;
    }
    int rc = store_vm_set_heard(r->st, m.id, heard);
    if (rc == ENOENT) {
        http_error(r, 404, "not_found", "no message %s in the mailbox of %s", r->param2, r->param);
        return;
    }
    if (rc != 0 || store_vm_get(r->st, m.id, &m) != 0) {
        http_store_error(r);
        return;
    }
    changed(r, r->param);
    http_json(r, 200, message_json(r->param, &m));
}

void api_voicemail_delete(struct http_req *r)
{
    struct store_vm_msg m;
    int wav;
    if (path_user(r) != 0 || path_message(r, &wav, &m) != 0)
        return;
    if (wav) {
        http_header(r, "Allow", "GET");
        http_error(r, 405, "method_not_allowed", "delete the message: DELETE %s without .wav",
                   r->path);
        return;
    }
    int rc = store_vm_delete(r->st, m.id);
    if (rc == ENOENT) {
        http_error(r, 404, "not_found", "no message %s in the mailbox of %s", r->param2, r->param);
        return;
    }
    if (rc != 0) {
        http_store_error(r);
        return;
    }
    char path[8192];
    if (!strchr(m.file, '/') && m.file[0] != '.' &&
        snprintf(path, sizeof path, "%s/%s", vm_dir(r->h->vm), m.file) < (int)sizeof path &&
        unlink(path) != 0 && errno != ENOENT)
        log_warn("http: cannot delete %s: %s (retention will)", path, strerror(errno));
    changed(r, r->param);
    log_info("http: voicemail message %lld of %s deleted", (long long)m.id, r->param);
    http_empty(r, 204);
}

/* ---- the greeting ---- */

static cJSON *greeting_json(const char *ext, int custom, size_t samples, int64_t updated_at)
{
    cJSON *o = cJSON_CreateObject();
    char url[HTTP_PARAM_MAX + 64];
    cJSON_AddStringToObject(o, "greeting", custom ? "custom" : "default");
    cJSON_AddNumberToObject(o, "duration", (double)samples / AUDIO_RATE);
    http_add_time(o, "updated_at", custom ? updated_at : 0);
    snprintf(url, sizeof url, "/api/v1/users/%s/voicemail/greeting.wav", ext);
    cJSON_AddStringToObject(o, "audio_url", url);
    return o;
}

void api_voicemail_greeting_get(struct http_req *r)
{
    if (path_user(r) != 0)
        return;
    void *pcm;
    size_t len;
    int64_t at = 0;
    int rc = store_vm_greeting_get(r->st, r->param, &pcm, &len, &at);
    if (rc == 0) {
        free(pcm);
        http_json(r, 200, greeting_json(r->param, 1, len / 2, at));
        return;
    }
    if (rc != ENOENT) {
        http_store_error(r);
        return;
    }
    void *wav;
    int custom;
    if (vm_greeting_wav(r->st, r->param, &wav, &len, &custom) != 0) {
        http_store_error(r);
        return;
    }
    free(wav);
    http_json(r, 200, greeting_json(r->param, 0, (len - AUDIO_WAV_HEADER) / 2, 0));
}

void api_voicemail_greeting_wav(struct http_req *r)
{
    if (path_user(r) != 0)
        return;
    void *wav;
    size_t len;
    int custom;
    if (vm_greeting_wav(r->st, r->param, &wav, &len, &custom) != 0) {
        http_store_error(r);
        return;
    }
    http_header(r, "Cache-Control", "private, no-store");
    http_text(r, 200, "audio/wav", wav, len);
}

/* True for the content types of WAV files (RFC 2361 and what browsers send). */
static int is_wav_type(const char *ctype)
{
    static const char *const types[] = {"audio/wav", "audio/x-wav", "audio/wave", "audio/vnd.wave"};
    if (!ctype)
        return 0;
    size_t n = strcspn(ctype, "; \t");
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (strlen(types[i]) == n && strncasecmp(ctype, types[i], n) == 0)
            return 1;
    return 0;
}

void api_voicemail_greeting_put(struct http_req *r)
{
    if (path_user(r) != 0)
        return;
    if (!is_wav_type(http_req_header(r, "Content-Type"))) {
        http_error(r, 415, "unsupported_media_type",
                   "send the greeting as a WAV file (Content-Type: audio/wav)");
        return;
    }
    int16_t *pcm;
    size_t n;
    char why[160];
    int rc = audio_wav_read(r->body ? r->body : "", r->body_len, &pcm, &n, why, sizeof why);
    if (rc == EINVAL) {
        http_error(r, 422, "invalid_audio", "%s", why);
        return;
    }
    if (rc != 0) {
        http_error(r, 500, "internal", "out of memory");
        return;
    }
    if (n > (size_t)VM_GREETING_MAX_SECONDS * AUDIO_RATE || n < AUDIO_RATE / 2) {
        http_error(r, 422, "invalid_audio",
                   "the greeting lasts %.1f s: it must last from half a second to %d seconds",
                   (double)n / AUDIO_RATE, VM_GREETING_MAX_SECONDS);
        free(pcm);
        return;
    }
    uint8_t *le = malloc(n * 2);
    if (!le) {
        free(pcm);
        http_error(r, 500, "internal", "out of memory");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        le[2 * i] = (uint8_t)(pcm[i] & 0xFF);
        le[2 * i + 1] = (uint8_t)((uint16_t)pcm[i] >> 8);
    }
    free(pcm);
    int64_t now = util_now();
    rc = store_vm_greeting_set(r->st, r->param, le, n * 2, now);
    free(le);
    if (rc == ENOENT) {
        http_error(r, 404, "not_found", "no user %s", r->param);
        return;
    }
    if (rc != 0) {
        http_store_error(r);
        return;
    }
    log_info("http: greeting of %s set (%.1f s)", r->param, (double)n / AUDIO_RATE);
    http_json(r, 200, greeting_json(r->param, 1, n, now));
}

void api_voicemail_greeting_delete(struct http_req *r)
{
    if (path_user(r) != 0)
        return;
    int rc = store_vm_greeting_delete(r->st, r->param);
    if (rc == ENOENT) {
        http_error(r, 404, "not_found", "%s has no greeting of its own", r->param);
        return;
    }
    if (rc != 0) {
        http_store_error(r);
        return;
    }
    log_info("http: greeting of %s deleted: the default one is used", r->param);
    http_empty(r, 204);
}
