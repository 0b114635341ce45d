/* Building replies (JSON, errors, text) and reading requests (JSON bodies, typed fields,
 * query parameters, pagination). Every error reply has the one shape
 * {"error":{"code":"...","message":"..."}} and is made here. */
#include "http/http_int.h"
#include "sip/sip.h"
#include "util/util.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define PAGE_DEFAULT 100
#define PAGE_MAX     500

static void set_reply(struct http_req *r, int status, const char *ctype, char *text, size_t len)
{
    free(r->reply); /* a later reply replaces an earlier one */
    if (r->stream) {
        MHD_destroy_response(r->stream);
        r->stream = NULL;
    }
    r->status = status;
    r->content_type = ctype;
    r->reply = text;
    r->reply_len = len;
}

void http_text(struct http_req *r, int status, const char *ctype, char *text, size_t len)
{
    set_reply(r, status, ctype, text, len);
}

void http_stream(struct http_req *r, int status, const char *ctype, struct MHD_Response *resp)
{
    set_reply(r, status, ctype, NULL, 0);
    r->stream = resp;
}

void http_json(struct http_req *r, int status, cJSON *body)
{
    char *text = body ? cJSON_PrintUnformatted(body) : NULL;
    cJSON_Delete(body);
    if (text) {
        /* A final newline, so curl output ends its line in a terminal. */
        size_t n = strlen(text);
        char *t = realloc(text, n + 2);
        if (t) {
            t[n] = '\n';
            t[n + 1] = '\0';
            text = t;
        }
    }
    if (!text) {
        /* Out of memory: a fixed body that needs no allocation but the copy. */
        static const char oom[] =
            "{\"error\":{\"code\":\"internal\",\"message\":\"out of memory\"}}";
        text = strdup(oom);
        status = 500;
    }
    set_reply(r, status, "application/json", text, text ? strlen(text) : 0);
}

void http_error(struct http_req *r, int status, const char *code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cJSON *root = cJSON_CreateObject(), *err = cJSON_AddObjectToObject(root, "error");
    cJSON_AddStringToObject(err, "code", code);
    cJSON_AddStringToObject(err, "message", msg);
    http_json(r, status, root);
}

void http_sip_error(struct http_req *r)
{
    if (errno != ETIMEDOUT) {
        http_error(r, 503, "unavailable", "the SIP side cannot be reached: out of memory");
        return;
    }
    /* A stalled SIP thread makes every such request fail: one line now and then is enough. */
    static _Atomic int64_t last_logged;
    int64_t now = util_mono(), last = atomic_load(&last_logged);
    if (now - last >= 10 && atomic_compare_exchange_strong(&last_logged, &last, now))
        log_warn("http: %s %s: the SIP side did not answer within %d ms", r->method, r->path,
                 SIP_EXECUTE_TIMEOUT_MS);
    http_header(r, "Retry-After", "5");
    http_error(r, 503, "unavailable", "the SIP side did not answer within %d ms",
               SIP_EXECUTE_TIMEOUT_MS);
}

void http_store_error(struct http_req *r)
{
    log_error("http: %s %s: database error: %s", r->method, r->path,
              r->st ? store_errmsg(r->st) : "no connection");
    http_error(r, 500, "internal", "database error (see the server log)");
}

void http_empty(struct http_req *r, int status)
{
    set_reply(r, status, NULL, NULL, 0);
}

void http_header(struct http_req *r, const char *name, const char *value)
{
    if (r->nheaders == HTTP_MAX_HEADERS)
        return;
    snprintf(r->headers[r->nheaders].name, sizeof r->headers[0].name, "%s", name);
    snprintf(r->headers[r->nheaders].value, sizeof r->headers[0].value, "%s", value);
    r->nheaders++;
}

const char *http_req_header(struct http_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

const char *http_query(struct http_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
}

/* True when the Content-Type names JSON (parameters such as charset allowed). */
static int is_json(const char *ctype)
{
    if (!ctype)
        return 0;
    while (*ctype == ' ')
        ctype++;
    size_t n = strlen("application/json");
    return strncasecmp(ctype, "application/json", n) == 0 &&
           (ctype[n] == '\0' || ctype[n] == ';' || ctype[n] == ' ');
}

#define NUL_PATH_DEPTH 8 /* object keys kept to name the field of a \u0000 */

/* Looks for strings that hold the escape \u0000 in the (already parsed, so well-formed)
 * JSON text p of n bytes: cJSON keeps strings NUL-terminated, so such a string would be
 * cut there ("a\u0000b" read as "a"). Returns 1 and writes the dotted path of the field
 * ("busy.target"; "" for a field name that holds one) into path, or 0 when there is none. */
static int find_nul_escape(const char *p, size_t n, char *path, size_t pathlen)
{
    /* Per open container: whether it is an object, and its current key (the string
     * before the last ':'). */
    struct {
        int object;
        const char *key;
        size_t keylen;
    } stack[NUL_PATH_DEPTH];
    int depth = 0, expect_key = 0;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (c == '{' || c == '[') {
            if (depth < NUL_PATH_DEPTH) {
                stack[depth].object = c == '{';
                stack[depth].key = NULL;
                stack[depth].keylen = 0;
            }
            depth++;
            expect_key = c == '{';
        } else if (c == '}' || c == ']') {
            depth--;
        } else if (c == ',') {
            expect_key = depth > 0 && depth <= NUL_PATH_DEPTH && stack[depth - 1].object;
        } else if (c == '"') {
            size_t start = ++i;
            int nul = 0;
            for (; i < n && p[i] != '"'; i++)
                if (p[i] == '\\') {
                    nul |= i + 5 < n && memcmp(p + i + 1, "u0000", 5) == 0;
                    i++; /* the escaped character (a quote does not end the string) */
                }
            int is_key = expect_key;
            expect_key = 0;
            if (is_key && depth > 0 && depth <= NUL_PATH_DEPTH) {
                stack[depth - 1].key = p + start;
                stack[depth - 1].keylen = i - start;
            }
            if (!nul)
                continue;
            size_t len = 0;
            path[0] = '\0';
            for (int d = 0; !is_key && d < depth && d < NUL_PATH_DEPTH; d++)
                if (stack[d].object && stack[d].key && len + stack[d].keylen + 2 < pathlen) {
                    len += (size_t)snprintf(path + len, pathlen - len, "%s%.*s", len ? "." : "",
                                            (int)stack[d].keylen, stack[d].key);
                }
            return 1;
        }
    }
    return 0;
}

cJSON *http_body_object(struct http_req *r, const char *const *allowed)
{
    /* Demanding application/json also keeps plain HTML forms of other sites out: a browser
     * only sends that type cross-site after a CORS preflight, which sipbx never grants. */
    if (!is_json(http_req_header(r, MHD_HTTP_HEADER_CONTENT_TYPE))) {
        http_error(r, 415, "unsupported_media_type",
                   "send the body as JSON with 'Content-Type: application/json'");
        return NULL;
    }
    if (!r->body || r->body_len == 0) {
        http_error(r, 400, "invalid_json", "the request body is empty: expected a JSON object");
        return NULL;
    }
    const char *end = NULL;
    cJSON *obj = cJSON_ParseWithLengthOpts(r->body, r->body_len, &end, 0);
    if (obj) {
        /* Only white space may follow the value. */
        while (end && end < r->body + r->body_len && isspace((unsigned char)*end))
            end++;
        if (end && end < r->body + r->body_len) {
            cJSON_Delete(obj);
            obj = NULL;
        }
    }
    /* A NUL byte is no JSON white space or text; cJSON would stop reading a string at it. */
    if (obj && memchr(r->body, '\0', r->body_len)) {
        cJSON_Delete(obj);
        obj = NULL;
    }
    if (!obj) {
        http_error(r, 400, "invalid_json", "the request body is not valid JSON");
        return NULL;
    }
    char path[128];
    if (find_nul_escape(r->body, r->body_len, path, sizeof path)) {
        cJSON_Delete(obj);
        if (path[0])
            http_error(r, 422, "invalid_field", "%s: must not contain \\u0000 (NUL)", path);
        else
            http_error(r, 422, "invalid_field", "a field name must not contain \\u0000 (NUL)");
        return NULL;
    }
    if (!cJSON_IsObject(obj)) {
        cJSON_Delete(obj);
        http_error(r, 400, "invalid_json", "the request body must be a JSON object");
        return NULL;
    }
    for (const cJSON *f = obj->child; f; f = f->next) {
        for (const cJSON *g = obj->child; g != f; g = g->next)
            if (strcmp(g->string, f->string) == 0) {
                http_error(r, 400, "invalid_json", "%s: given twice", f->string);
                cJSON_Delete(obj);
                return NULL;
            }
        const char *const *a = allowed;
        while (*a && strcmp(*a, f->string) != 0)
            a++;
        if (!*a) {
            http_error(r, 422, "unknown_field", "%s: unknown field", f->string);
            cJSON_Delete(obj);
            return NULL;
        }
    }
    return obj;
}

static const cJSON *field(const cJSON *obj, const char *name)
{
    /* Case-sensitive: "Password" is not "password". */
    return cJSON_GetObjectItemCaseSensitive(obj, name);
}

int http_field_string(struct http_req *r, const cJSON *obj, const char *name, int required,
                      size_t maxlen, int empty_ok, const char **out)
{
    const cJSON *f = field(obj, name);
    if (!f) {
        if (required) {
            http_error(r, 422, "missing_field", "%s: required", name);
            return -1;
        }
        return 0;
    }
    if (!cJSON_IsString(f) || !f->valuestring) {
        http_error(r, 422, "invalid_field", "%s: must be a string", name);
        return -1;
    }
    const char *s = f->valuestring;
    size_t n = strlen(s);
    if (n == 0 && !empty_ok) {
        http_error(r, 422, "invalid_field", "%s: must not be empty", name);
        return -1;
    }
    if (n > maxlen) {
        http_error(r, 422, "invalid_field", "%s: longer than %zu bytes", name, maxlen);
        return -1;
    }
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p == 0x7f) {
            http_error(r, 422, "invalid_field", "%s: must not contain control characters", name);
            return -1;
        }
    *out = s;
    return 1;
}

int http_field_bool(struct http_req *r, const cJSON *obj, const char *name, int *out)
{
    const cJSON *f = field(obj, name);
    if (!f)
        return 0;
    if (!cJSON_IsBool(f)) {
        http_error(r, 422, "invalid_field", "%s: must be true or false", name);
        return -1;
    }
    *out = cJSON_IsTrue(f) ? 1 : 0;
    return 1;
}

int http_field_int(struct http_req *r, const cJSON *obj, const char *name, int lo, int hi,
                   int null_ok, int *out)
{
    const cJSON *f = field(obj, name);
    if (!f)
        return 0;
    if (null_ok && cJSON_IsNull(f)) {
        *out = 0;
        return 1;
    }
    double v = cJSON_IsNumber(f) ? f->valuedouble : 0;
    /* Range first: converting a huge double to an integer type is undefined. */
    if (!cJSON_IsNumber(f) || !(v >= lo && v <= hi) || v != (double)(int)v) {
        http_error(r, 422, "invalid_field", "%s: must be an integer from %d to %d%s", name, lo, hi,
                   null_ok ? ", or null" : "");
        return -1;
    }
    *out = (int)v;
    return 1;
}

int http_page_params(struct http_req *r, int *limit, const char **cursor)
{
    const char *l = http_query(r, "limit");
    *limit = PAGE_DEFAULT;
    if (l) {
        char *end;
        long v = strtol(l, &end, 10);
        if (!*l || *end || v < 1 || v > PAGE_MAX) {
            http_error(r, 400, "invalid_parameter", "limit: must be an integer from 1 to %d",
                       PAGE_MAX);
            return -1;
        }
        *limit = (int)v;
    }
    *cursor = http_query(r, "cursor");
    if (*cursor && !**cursor)
        *cursor = NULL;
    return 0;
}

int http_id_page_start(struct http_req *r, struct http_id_page *p, int64_t *after)
{
    const char *cursor;
    memset(p, 0, sizeof *p);
    *after = 0;
    if (http_page_params(r, &p->limit, &cursor) != 0)
        return -1;
    if (cursor && (*after = http_parse_id(cursor)) == 0) {
        http_error(r, 400, "invalid_parameter", "cursor: not a cursor this server returned");
        return -1;
    }
    p->items = cJSON_CreateArray();
    return 0;
}

int http_id_page_full(struct http_id_page *p)
{
    if (p->n < p->limit)
        return 0;
    p->more = 1;
    return 1;
}

void http_id_page_add(struct http_id_page *p, cJSON *item, int64_t id)
{
    cJSON_AddItemToArray(p->items, item);
    p->n++;
    p->last = id;
}

void http_id_page_reply(struct http_req *r, struct http_id_page *p, int rc)
{
    if (rc != 0 && rc != -1) {
        cJSON_Delete(p->items);
        http_store_error(r);
        return;
    }
    char next[24];
    if (p->more)
        snprintf(next, sizeof next, "%lld", (long long)p->last);
    http_json(r, 200, http_page(p->items, p->more ? next : NULL));
}

void http_created(struct http_req *r, cJSON *body, const char *fmt, ...)
{
    char location[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(location, sizeof location, fmt, ap);
    va_end(ap);
    http_header(r, "Location", location);
    http_json(r, 201, body);
}

cJSON *http_page(cJSON *items, const char *next)
{
    cJSON *page = cJSON_CreateObject();
    cJSON_AddItemToObject(page, "items", items);
    if (next)
        cJSON_AddStringToObject(page, "next_cursor", next);
    else
        cJSON_AddNullToObject(page, "next_cursor");
    return page;
}

int64_t http_parse_id(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 18 || s[0] == '0' || strspn(s, "0123456789") != n)
        return 0;
    return strtoll(s, NULL, 10);
}

void http_add_time(cJSON *obj, const char *key, int64_t t)
{
    if (t == 0) {
        cJSON_AddNullToObject(obj, key);
        return;
    }
    char buf[32];
    util_format_time(buf, sizeof buf, t);
    cJSON_AddStringToObject(obj, key, buf);
}

void http_add_time_us(cJSON *obj, const char *key, int64_t us)
{
    if (us == 0) {
        cJSON_AddNullToObject(obj, key);
        return;
    }
    char buf[40];
    util_format_time_us(buf, sizeof buf, us);
    cJSON_AddStringToObject(obj, key, buf);
}

void http_cursor_encode(char *out, size_t outlen, const char *s)
{
    size_t n = strlen(s);
    if (2 * n + 1 > outlen)
        n = (outlen - 1) / 2;
    util_hex(out, s, n);
}

int http_cursor_decode(char *out, size_t outlen, const char *cursor)
{
    size_t n = strlen(cursor);
    if (n % 2 || n / 2 + 1 > outlen)
        return -1;
    for (size_t i = 0; i < n / 2; i++) {
        unsigned v;
        if (!isxdigit((unsigned char)cursor[2 * i]) ||
            !isxdigit((unsigned char)cursor[2 * i + 1]) || sscanf(cursor + 2 * i, "%2x", &v) != 1 ||
            v == 0)
            return -1;
        out[i] = (char)v;
    }
    out[n / 2] = '\0';
    return 0;
}
