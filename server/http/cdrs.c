/* /api/v1/cdrs: call detail records as JSON pages (filtered, searched, sorted), as a
 * streamed CSV export in the shape of Asterisk's Master.csv, counted per time bucket and
 * disposition for the dashboard's chart, and summed up per extension (answer rate, talk). */
#include "http/http_int.h"
#include "render/render.h"
#include "util/util.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define US_PER_S         1000000LL
#define CSV_PAGE         500     /* records fetched per query while streaming CSV */
#define CSV_BLOCK        65536   /* bytes MHD asks for at a time */
#define SUMMARY_BUCKETS  10000   /* at most this many buckets in one summary */
#define SUMMARY_BUCKET   3600    /* default bucket, seconds */
#define SUMMARY_SPAN     86400LL /* default time range, seconds before now */
#define BUCKET_MIN       60
#define BUCKET_MAX       (31 * 86400)
#define CURSOR_TEXT_MAX  (24 + 2 * 21 + STORE_EXT_MAX)
#define DISPOSITION_LIST "ANSWERED, BUSY, NO ANSWER (or NO_ANSWER), CANCELLED or FAILED"

/* The dispositions as stored (db/004_records.sql), in the order the summary lists them. */
static const char *const dispositions[] = {"ANSWERED", "BUSY", "NO ANSWER", "CANCELLED", "FAILED"};
#define NDISPOSITIONS (sizeof dispositions / sizeof dispositions[0])

/* ---- query parameters ---- */

static int days_in_month(int y, int m)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : days[m - 1];
}

/* Reads exactly n digits at *p into *out and advances *p; -1 when they are not digits. */
static int digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)(*p)[i]))
            return -1;
        v = v * 10 + ((*p)[i] - '0');
    }
    *p += n;
    *out = v;
    return 0;
}

/* Parses a date ("2026-11-01", midnight UTC) or an RFC 3339 date-time
 * ("2026-11-01T10:00:00Z", "2026-11-01T10:00:00.5+01:00"; 't', 'z' and a space for the
 * 'T' are accepted, and a space for the '+' of an offset, which is what a '+' left
 * unescaped in a query string becomes). Years 1970 to 9999. Returns 0 or -1. */
static int parse_time(const char *s, int64_t *out)
{
    const char *p = s;
    int y, mo, d, h = 0, mi = 0, sec = 0;
    int64_t frac_us = 0, offset_s = 0;
    if (digits(&p, 4, &y) || *p++ != '-' || digits(&p, 2, &mo) || *p++ != '-' || digits(&p, 2, &d))
        return -1;
    if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo))
        return -1;
    if (*p) {
        if (*p != 'T' && *p != 't' && *p != ' ')
            return -1;
        p++;
        if (digits(&p, 2, &h) || *p++ != ':' || digits(&p, 2, &mi) || *p++ != ':' ||
            digits(&p, 2, &sec))
            return -1;
        if (h > 23 || mi > 59 || sec > 60) /* 60: a leap second */
            return -1;
        if (*p == '.') {
            p++;
            int n = 0;
            int64_t scale = 100000;
            while (isdigit((unsigned char)*p)) {
                if (n++ < 6) {
                    frac_us += (*p - '0') * scale;
                    scale /= 10;
                }
                p++;
            }
            if (n == 0)
                return -1;
        }
        if (*p == 'Z' || *p == 'z') {
            p++;
        } else if (*p == '+' || *p == '-' || *p == ' ') {
            int sign = *p++ == '-' ? -1 : 1, oh, om;
            if (digits(&p, 2, &oh) || *p++ != ':' || digits(&p, 2, &om) || oh > 23 || om > 59)
                return -1;
            offset_s = sign * (oh * 3600 + om * 60);
        } else {
            return -1; /* RFC 3339 wants the offset: a time without it is ambiguous */
        }
        if (*p)
            return -1;
    }
    struct tm tm = {.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d};
    int64_t t = (int64_t)timegm(&tm) + h * 3600 + mi * 60 + sec - offset_s;
    *out = t * US_PER_S + frac_us;
    return 0;
}

/* A query parameter, or NULL when absent or empty (a form sends "since=" for none). */
static const char *param(struct http_req *r, const char *name)
{
    const char *v = http_query(r, name);
    return v && *v ? v : NULL;
}

/* Reads since and until (each left alone when absent); -1 after a 400. */
static int read_range(struct http_req *r, int64_t *since, int64_t *until)
{
    static const char *const names[] = {"since", "until"};
    int64_t *dst[] = {since, until};
    for (int i = 0; i < 2; i++) {
        const char *v = param(r, names[i]);
        if (v && parse_time(v, dst[i]) != 0) {
            http_error(r, 400, "invalid_parameter",
                       "%s: not a date (2026-11-01) or an RFC 3339 time (2026-11-01T10:00:00Z, "
                       "2026-11-01T11:00:00+01:00)",
                       names[i]);
            return -1;
        }
    }
    if (*since && *until && *until <= *since) {
        http_error(r, 400, "invalid_parameter", "until: must be later than since");
        return -1;
    }
    return 0;
}

/* Reads ext into f; -1 after a 400. */
static int read_ext(struct http_req *r, struct store_cdr_filter *f)
{
    const char *ext = param(r, "ext");
    if (!ext)
        return 0;
    if (!util_valid_extension(ext)) {
        http_error(r, 400, "invalid_parameter", "ext: not an extension");
        return -1;
    }
    snprintf(f->ext, sizeof f->ext, "%s", ext);
    return 0;
}

/* Reads disposition into f: any case, "_" or "-" for the space of NO ANSWER; -1 after a
 * 400 naming the valid ones. */
static int read_disposition(struct http_req *r, struct store_cdr_filter *f)
{
    const char *v = param(r, "disposition");
    if (!v)
        return 0;
    char up[16];
    size_t n = strlen(v);
    if (n < sizeof up) {
        for (size_t i = 0; i <= n; i++)
            up[i] = v[i] == '_' || v[i] == '-' ? ' ' : (char)toupper((unsigned char)v[i]);
        for (size_t i = 0; i < NDISPOSITIONS; i++)
            if (strcmp(up, dispositions[i]) == 0) {
                snprintf(f->disposition, sizeof f->disposition, "%s", dispositions[i]);
                return 0;
            }
    }
    http_error(r, 400, "invalid_parameter", "disposition: must be one of " DISPOSITION_LIST);
    return -1;
}

/* Reads the search q into f; -1 after a 400. */
static int read_search(struct http_req *r, struct store_cdr_filter *f)
{
    const char *q = param(r, "q");
    if (!q)
        return 0;
    if (strlen(q) >= sizeof f->q) {
        http_error(r, 400, "invalid_parameter", "q: longer than %zu bytes", sizeof f->q - 1);
        return -1;
    }
    snprintf(f->q, sizeof f->q, "%s", q);
    return 0;
}

/* Reads linked_call (the Call-ID of the call the records came from) into f; -1 after a
 * 400. */
static int read_linked(struct http_req *r, struct store_cdr_filter *f)
{
    const char *v = param(r, "linked_call");
    if (!v)
        return 0;
    if (!v[0] || strlen(v) >= sizeof f->linked_call) {
        http_error(r, 400, "invalid_parameter", "linked_call: a Call-ID of 1 to %zu bytes",
                   sizeof f->linked_call - 1);
        return -1;
    }
    snprintf(f->linked_call, sizeof f->linked_call, "%s", v);
    return 0;
}

/* The filters shared by the list and the CSV export; -1 after a 400. */
static int read_filter(struct http_req *r, struct store_cdr_filter *f)
{
    memset(f, 0, sizeof *f);
    if (read_range(r, &f->since_us, &f->until_us) != 0 || read_ext(r, f) != 0 ||
        read_disposition(r, f) != 0 || read_search(r, f) != 0 || read_linked(r, f) != 0)
        return -1;
    return 0;
}

/* The orders of the list as ?sort= names them ("-talk": descending). */
static const char *const sort_names[STORE_CDR_SORTS] = {
    [STORE_CDR_SORT_START] = "start",     [STORE_CDR_SORT_DURATION] = "duration",
    [STORE_CDR_SORT_TALK] = "talk",       [STORE_CDR_SORT_CALLER] = "caller",
    [STORE_CDR_SORT_DIALLED] = "dialled", [STORE_CDR_SORT_DISPOSITION] = "disposition",
};
#define SORT_LIST "start, duration, talk, caller, dialled or disposition (- before it: descending)"

/* Reads ?sort= into f (default: newest first); -1 after a 400. */
static int read_sort(struct http_req *r, struct store_cdr_filter *f)
{
    const char *v = param(r, "sort");
    f->sort = STORE_CDR_SORT_START;
    f->asc = 0;
    if (!v)
        return 0;
    const char *name = *v == '-' ? v + 1 : v;
    for (int i = 0; i < STORE_CDR_SORTS; i++)
        if (strcmp(name, sort_names[i]) == 0) {
            f->sort = (enum store_cdr_sort)i;
            f->asc = *v != '-';
            return 0;
        }
    http_error(r, 400, "invalid_parameter", "sort: must be one of " SORT_LIST);
    return -1;
}

/* ---- JSON ---- */

/* Adds a 64-bit integer exactly (cJSON would print a double, e.g. 1.7e+15). */
static void add_int64(cJSON *o, const char *key, int64_t v)
{
    char buf[24];
    snprintf(buf, sizeof buf, "%" PRId64, v);
    cJSON_AddRawToObject(o, key, buf);
}

/* ---- GET /cdrs ---- */

struct list_ctx {
    cJSON *items;
    int limit, n, more;
    const struct store_cdr_filter *f;
    char last[CURSOR_TEXT_MAX]; /* the cursor (as text) of the last record of the page */
};

/* The text of a cursor after c: "start:id" in the default order (newest first), else
 * "sort:start:id:key" with the sort as asked and the record's key in it. */
static void cursor_text(char *out, size_t outlen, const struct store_cdr_filter *f,
                        const struct store_cdr *c)
{
    if (f->sort == STORE_CDR_SORT_START && !f->asc) {
        snprintf(out, outlen, "%lld:%lld", (long long)c->start_us, (long long)c->id);
        return;
    }
    char key[STORE_EXT_MAX + 24];
    switch (f->sort) {
    case STORE_CDR_SORT_DURATION:
        snprintf(key, sizeof key, "%lld", (long long)c->duration);
        break;
    case STORE_CDR_SORT_TALK:
        snprintf(key, sizeof key, "%lld", (long long)c->billsec);
        break;
    case STORE_CDR_SORT_CALLER:
        snprintf(key, sizeof key, "%s", c->caller);
        break;
    case STORE_CDR_SORT_DIALLED:
        snprintf(key, sizeof key, "%s", c->dialled);
        break;
    case STORE_CDR_SORT_DISPOSITION:
        snprintf(key, sizeof key, "%s", c->disposition);
        break;
    default:
        key[0] = '\0';
        break;
    }
    snprintf(out, outlen, "%s%s:%lld:%lld:%s", f->asc ? "" : "-", sort_names[f->sort],
             (long long)c->start_us, (long long)c->id, key);
}

/* Reads a cursor made by cursor_text for the order of f into f; -1 when it is not one. */
static int cursor_read(const char *cursor, struct store_cdr_filter *f)
{
    char text[CURSOR_TEXT_MAX], sort[24];
    long long start, id;
    int used = 0;
    if (http_cursor_decode(text, sizeof text, cursor) != 0)
        return -1;
    if (f->sort == STORE_CDR_SORT_START && !f->asc) {
        if (sscanf(text, "%lld:%lld%n", &start, &id, &used) != 2 || text[used] != '\0')
            return -1;
    } else {
        snprintf(sort, sizeof sort, "%s%s:", f->asc ? "" : "-", sort_names[f->sort]);
        size_t n = strlen(sort);
        if (strncmp(text, sort, n) != 0 ||
            sscanf(text + n, "%lld:%lld:%n", &start, &id, &used) != 2 || used == 0)
            return -1;
        const char *key = text + n + used;
        if (f->sort == STORE_CDR_SORT_DURATION || f->sort == STORE_CDR_SORT_TALK) {
            char *end;
            long long v = strtoll(key, &end, 10);
            if (!*key || *end || v < 0)
                return -1;
            f->key_num = v;
        } else {
            if (strlen(key) >= sizeof f->key_text)
                return -1;
            snprintf(f->key_text, sizeof f->key_text, "%s", key);
        }
    }
    if (start <= 0 || id <= 0)
        return -1;
    f->before_start_us = start;
    f->before_id = id;
    return 0;
}

static int list_one(const struct store_cdr *c, void *arg)
{
    struct list_ctx *lc = arg;
    if (lc->n == lc->limit) {
        lc->more = 1;
        return -1; /* the page is full and one more exists */
    }
    cJSON_AddItemToArray(lc->items, render_cdr(c));
    lc->n++;
    cursor_text(lc->last, sizeof lc->last, lc->f, c);
    return 0;
}

void api_cdrs_list(struct http_req *r)
{
    struct store_cdr_filter f;
    struct list_ctx lc;
    const char *cursor;
    memset(&lc, 0, sizeof lc);
    if (read_filter(r, &f) != 0 || read_sort(r, &f) != 0 ||
        http_page_params(r, &lc.limit, &cursor) != 0)
        return;
    const char *count = param(r, "count");
    if (count && strcmp(count, "true") != 0 && strcmp(count, "false") != 0) {
        http_error(r, 400, "invalid_parameter", "count: must be true or false");
        return;
    }
    if (cursor && cursor_read(cursor, &f) != 0) {
        http_error(r, 400, "invalid_parameter",
                   "cursor: not a cursor this server returned for this order (sort)");
        return;
    }
    int64_t total = 0;
    if (count && strcmp(count, "true") == 0 && (total = store_cdr_count(r->st, &f)) < 0) {
        http_store_error(r);
        return;
    }
    lc.items = cJSON_CreateArray();
    lc.f = &f;
    int rc = store_cdr_list(r->st, &f, lc.limit + 1, list_one, &lc);
    if (rc != 0 && rc != -1) {
        cJSON_Delete(lc.items);
        http_store_error(r);
        return;
    }
    char next[2 * CURSOR_TEXT_MAX + 1];
    if (lc.more)
        http_cursor_encode(next, sizeof next, lc.last);
    cJSON *page = http_page(lc.items, lc.more ? next : NULL);
    if (count && strcmp(count, "true") == 0)
        add_int64(page, "total", total);
    http_json(r, 200, page);
}

/* ---- GET /cdrs.csv ---- */

/* The comma before a cell, unless it starts a line. */
static void csv_sep(struct buf *b)
{
    if (b->len && b->p[b->len - 1] != '\n')
        buf_add(b, ",", 1);
}

/* A text cell: always quoted, quotes doubled (RFC 4180), and a leading = + - @ (or tab or
 * CR) defused with an apostrophe, so a spreadsheet shows the text instead of running it
 * as a formula (OWASP "CSV injection"). Commas, quotes and line breaks stay data. */
static void csv_text(struct buf *b, const char *s)
{
    csv_sep(b);
    buf_add(b, "\"", 1);
    if (s[0] && strchr("=+-@\t\r", s[0]))
        buf_add(b, "'", 1);
    for (const char *p = s; *p;) {
        size_t n = strcspn(p, "\"");
        buf_add(b, p, n);
        p += n;
        if (*p == '"') {
            buf_add(b, "\"\"", 2);
            p++;
        }
    }
    buf_add(b, "\"", 1);
}

/* A number cell (never quoted), or an empty one when absent. */
static void csv_num(struct buf *b, int64_t v, int present)
{
    char buf[24] = "";
    if (present)
        snprintf(buf, sizeof buf, "%" PRId64, v);
    csv_sep(b);
    buf_str(b, buf);
}

/* A time as Asterisk writes it with usegmtime: "2026-11-01 10:00:00" (UTC); "" for 0. */
static void csv_time(struct buf *b, int64_t us)
{
    char buf[32] = "";
    if (us) {
        time_t t = (time_t)(us / US_PER_S);
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
    }
    csv_text(b, buf);
}

/* The columns; docs/api.md says what each holds. The first 18 are Asterisk's Master.csv
 * in its order, so tools that read that file by position read this one too. */
static const char csv_header[] =
    "accountcode,src,dst,dcontext,clid,channel,dstchannel,lastapp,lastdata,start,answer,end,"
    "duration,billsec,disposition,amaflags,uniqueid,userfield,"
    "id,caller_name,answered_by,forwards,status,phrase,hangup_by,user_agent,interrupted,"
    "start_us,answer_us,end_us,linked_call,link\r\n";

/* The extension (or URI) a call last rang: the target of its last forward, or the dialled
 * number. */
static void last_target(const struct store_cdr *c, char *out, size_t outlen)
{
    snprintf(out, outlen, "%s", c->dialled);
    if (strcmp(c->forwards, "[]") == 0 || !c->forwards[0])
        return; /* most calls: no need to parse */
    cJSON *fw = cJSON_Parse(c->forwards);
    cJSON *last = cJSON_IsArray(fw) ? cJSON_GetArrayItem(fw, cJSON_GetArraySize(fw) - 1) : NULL;
    cJSON *to = last ? cJSON_GetObjectItemCaseSensitive(last, "to") : NULL;
    if (cJSON_IsString(to) && to->valuestring[0])
        snprintf(out, outlen, "%s", to->valuestring);
    cJSON_Delete(fw);
}

static void csv_row(struct buf *b, const struct store_cdr *c, const char *domain)
{
    char buf[2 * STORE_DISPLAY_NAME_MAX + 80], target[300];
    csv_text(b, ""); /* accountcode: sipbx has no account codes */
    csv_text(b, c->caller);
    csv_text(b, c->dialled);
    csv_text(b, domain);
    /* clid as Asterisk shows caller ID: "Name" <number>; the name's quotes are escaped. */
    size_t n = 0;
    if (c->caller_name[0]) {
        buf[n++] = '"';
        for (const char *p = c->caller_name; *p && n < sizeof buf - 80; p++) {
            if (*p == '"' || *p == '\\')
                buf[n++] = '\\';
            buf[n++] = *p;
        }
        buf[n++] = '"';
        buf[n++] = ' ';
    }
    snprintf(buf + n, sizeof buf - n, "<%s>", c->caller);
    csv_text(b, buf);
    snprintf(buf, sizeof buf, "SIP/%s-%08llx", c->caller, (unsigned long long)c->id);
    csv_text(b, buf);
    last_target(c, target, sizeof target);
    if (c->answered_by[0])
        snprintf(target, sizeof target, "%s", c->answered_by);
    snprintf(buf, sizeof buf, "SIP/%s-%08llx", target, (unsigned long long)c->id);
    csv_text(b, buf);
    csv_text(b, "Dial");
    snprintf(buf, sizeof buf, "SIP/%s", c->dialled);
    csv_text(b, buf);
    csv_time(b, c->start_us);
    csv_time(b, c->answer_us);
    csv_time(b, c->end_us);
    csv_num(b, c->duration, 1);
    csv_num(b, c->billsec, 1);
    csv_text(b, c->disposition);
    csv_text(b, "DOCUMENTATION");
    csv_text(b, c->call_id);
    csv_text(b, "");
    csv_num(b, c->id, 1);
    csv_text(b, c->caller_name);
    csv_text(b, c->answered_by);
    csv_text(b, c->forwards);
    csv_num(b, c->status, 1);
    csv_text(b, c->phrase);
    csv_text(b, c->hangup_by);
    csv_text(b, c->user_agent);
    csv_num(b, c->interrupted, 1);
    csv_num(b, c->start_us, c->start_us != 0);
    csv_num(b, c->answer_us, c->answer_us != 0);
    csv_num(b, c->end_us, c->end_us != 0);
    csv_text(b, c->linked_call);
    csv_text(b, c->link);
    buf_add(b, "\r\n", 2);
}

/* One CSV export in progress: it reads the records a page at a time (keyset pagination on
 * its own database connection), so memory stays bounded whatever the table's size. */
struct csv_stream {
    struct http *h;
    struct store *st;
    struct store_cdr_filter f;
    char domain[256];
    struct buf out;
    size_t off;  /* bytes of out already handed to MHD */
    int n, done; /* records in the current page; all pages read */
};

static int csv_one(const struct store_cdr *c, void *arg)
{
    struct csv_stream *cs = arg;
    csv_row(&cs->out, c, cs->domain);
    cs->n++;
    cs->f.before_start_us = c->start_us;
    cs->f.before_id = c->id;
    return 0;
}

static ssize_t csv_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    struct csv_stream *cs = cls;
    while (cs->off == cs->out.len) {
        if (cs->done)
            return MHD_CONTENT_READER_END_OF_STREAM;
        cs->out.len = cs->off = 0;
        cs->n = 0;
        if (store_cdr_list(cs->st, &cs->f, CSV_PAGE, csv_one, cs) != 0 || cs->out.failed) {
            log_error("http: CSV export of call records cut short: %s",
                      cs->out.failed ? "out of memory" : "database error");
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
        cs->done = cs->n < CSV_PAGE;
    }
    size_t n = cs->out.len - cs->off;
    if (n > max)
        n = max;
    memcpy(buf, cs->out.p + cs->off, n);
    cs->off += n;
    return (ssize_t)n;
}

static void csv_free(void *cls)
{
    struct csv_stream *cs = cls;
    if (cs->st)
        http_pool_put(cs->h, cs->st);
    buf_free(&cs->out);
    free(cs);
}

void api_cdrs_csv(struct http_req *r)
{
    struct store_cdr_filter f;
    if (read_filter(r, &f) != 0)
        return;
    struct csv_stream *cs = calloc(1, sizeof *cs);
    if (!cs) {
        http_error(r, 500, "internal", "out of memory");
        return;
    }
    cs->h = r->h;
    cs->f = f;
    snprintf(cs->domain, sizeof cs->domain, "%s", r->h->domain);
    buf_str(&cs->out, csv_header);
    /* The stream outlives this request and its connection r->st: it takes its own. */
    cs->st = http_pool_get(r->h);
    struct MHD_Response *resp =
        cs->st && !cs->out.failed
            ? MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, CSV_BLOCK, csv_read, cs, csv_free)
            : NULL;
    if (!resp) {
        csv_free(cs);
        http_error(r, 503, "unavailable", "cannot start the export");
        return;
    }
    char name[96], disp[128];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(name, sizeof name, "sipbx-cdrs-%Y%m%dT%H%M%SZ.csv", &tm);
    snprintf(disp, sizeof disp, "attachment; filename=\"%s\"", name);
    http_stream(r, 200, "text/csv; charset=utf-8; header=present", resp);
    http_header(r, "Content-Disposition", disp);
}

/* ---- GET /cdrs/summary ---- */

struct summary_ctx {
    int64_t first, bucket_us;
    int n;
    int64_t (*counts)[NDISPOSITIONS];
};

static int summary_one(int64_t start_us, const char *disposition, int64_t count, void *arg)
{
    struct summary_ctx *sc = arg;
    int64_t i = (start_us - sc->first) / sc->bucket_us;
    if (i < 0 || i >= sc->n)
        return 0;
    for (size_t d = 0; d < NDISPOSITIONS; d++)
        if (strcmp(disposition, dispositions[d]) == 0)
            sc->counts[i][d] += count;
    return 0;
}

void api_cdrs_summary(struct http_req *r)
{
    struct store_cdr_filter f;
    memset(&f, 0, sizeof f);
    int64_t bucket = SUMMARY_BUCKET;
    const char *b = param(r, "bucket");
    if (b) {
        char *end;
        long long v = strtoll(b, &end, 10);
        if (*end || v < BUCKET_MIN || v > BUCKET_MAX) {
            http_error(r, 400, "invalid_parameter",
                       "bucket: must be a number of seconds from %d to %d", BUCKET_MIN, BUCKET_MAX);
            return;
        }
        bucket = v;
    }
    if (read_range(r, &f.since_us, &f.until_us) != 0 || read_ext(r, &f) != 0)
        return;
    if (!f.until_us)
        f.until_us = util_now_us() + 1; /* now included */
    if (!f.since_us)
        f.since_us = f.until_us - SUMMARY_SPAN * US_PER_S;
    if (f.since_us >= f.until_us) {
        http_error(r, 400, "invalid_parameter", "since: must be earlier than until");
        return;
    }
    struct summary_ctx sc;
    sc.bucket_us = bucket * US_PER_S;
    sc.first = f.since_us / sc.bucket_us * sc.bucket_us;
    int64_t n = (f.until_us - 1) / sc.bucket_us - sc.first / sc.bucket_us + 1;
    if (n > SUMMARY_BUCKETS) {
        http_error(r, 400, "invalid_parameter",
                   "bucket: too small for the time range (at most %d buckets)", SUMMARY_BUCKETS);
        return;
    }
    sc.n = (int)n;
    sc.counts = calloc((size_t)n, sizeof *sc.counts);
    if (!sc.counts) {
        http_error(r, 500, "internal", "out of memory");
        return;
    }
    if (store_cdr_summary(r->st, &f, sc.bucket_us, summary_one, &sc) != 0) {
        free(sc.counts);
        http_store_error(r);
        return;
    }
    cJSON *root = cJSON_CreateObject(), *items = cJSON_CreateArray();
    add_int64(root, "bucket", bucket);
    http_add_time_us(root, "since", f.since_us);
    http_add_time_us(root, "until", f.until_us);
    for (int i = 0; i < sc.n; i++) {
        cJSON *o = cJSON_CreateObject();
        int64_t start = sc.first + i * sc.bucket_us, total = 0;
        http_add_time_us(o, "start", start);
        add_int64(o, "start_us", start);
        for (size_t d = 0; d < NDISPOSITIONS; d++) {
            add_int64(o, dispositions[d], sc.counts[i][d]);
            total += sc.counts[i][d];
        }
        add_int64(o, "total", total);
        cJSON_AddItemToArray(items, o);
    }
    cJSON_AddItemToObject(root, "items", items);
    free(sc.counts);
    http_json(r, 200, root);
}

/* ---- GET /cdrs/stats ---- */

/* The periods ?period= names, back from now. */
static const struct {
    const char *name;
    int64_t seconds;
} periods[] = {{"24h", 86400}, {"7d", 7 * 86400}, {"30d", 30 * 86400}};

/* x / n (both >= 0) rounded to a multiple of 1 / scale, or null when n is 0. */
static void add_ratio(cJSON *o, const char *key, int64_t x, int64_t n, int64_t scale)
{
    if (n > 0)
        cJSON_AddNumberToObject(o, key, (double)((2 * x * scale + n) / (2 * n)) / (double)scale);
    else
        cJSON_AddNullToObject(o, key);
}

static cJSON *side_json(const struct store_cdr_side *s)
{
    cJSON *o = cJSON_CreateObject();
    add_int64(o, "calls", s->calls);
    add_int64(o, "answered", s->answered);
    add_int64(o, "talk_seconds", s->talk);
    return o;
}

static int stats_one(const struct store_cdr_ext_stats *e, void *arg)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "extension", e->extension);
    cJSON_AddStringToObject(o, "display_name", e->display_name);
    cJSON_AddItemToObject(o, "placed", side_json(&e->placed));
    cJSON_AddItemToObject(o, "received", side_json(&e->received));
    add_ratio(o, "answer_rate", e->received.answered, e->received.calls, 10000);
    add_ratio(o, "average_talk_seconds", e->placed.talk + e->received.talk,
              e->placed.answered + e->received.answered, 10);
    cJSON_AddItemToArray(arg, o);
    return 0;
}

struct totals_ctx {
    int64_t count[NDISPOSITIONS], talk;
};

static int totals_one(const char *disposition, int64_t count, int64_t talk, void *arg)
{
    struct totals_ctx *tc = arg;
    for (size_t d = 0; d < NDISPOSITIONS; d++)
        if (strcmp(disposition, dispositions[d]) == 0)
            tc->count[d] += count;
    tc->talk += talk;
    return 0;
}

void api_cdrs_stats(struct http_req *r)
{
    struct store_cdr_filter f;
    memset(&f, 0, sizeof f);
    const char *period = param(r, "period");
    if (read_range(r, &f.since_us, &f.until_us) != 0 || read_ext(r, &f) != 0)
        return;
    if (period && (f.since_us || f.until_us)) {
        http_error(r, 400, "invalid_parameter", "period: give either period or since/until");
        return;
    }
    int64_t span = periods[0].seconds;
    if (period) {
        size_t i = 0;
        while (i < sizeof periods / sizeof periods[0] && strcmp(period, periods[i].name) != 0)
            i++;
        if (i == sizeof periods / sizeof periods[0]) {
            http_error(r, 400, "invalid_parameter", "period: must be 24h, 7d or 30d");
            return;
        }
        span = periods[i].seconds;
    }
    if (!f.until_us)
        f.until_us = util_now_us() + 1; /* now included */
    if (!f.since_us)
        f.since_us = f.until_us - span * US_PER_S;
    if (f.since_us >= f.until_us) {
        http_error(r, 400, "invalid_parameter", "since: must be earlier than until");
        return;
    }
    struct totals_ctx tc;
    memset(&tc, 0, sizeof tc);
    cJSON *items = cJSON_CreateArray();
    if (store_cdr_totals(r->st, &f, totals_one, &tc) != 0 ||
        store_cdr_stats(r->st, &f, stats_one, items) != 0) {
        cJSON_Delete(items);
        http_store_error(r);
        return;
    }
    int64_t calls = 0;
    for (size_t d = 0; d < NDISPOSITIONS; d++)
        calls += tc.count[d];
    cJSON *root = cJSON_CreateObject(), *totals = cJSON_CreateObject();
    cJSON *by = cJSON_CreateObject();
    http_add_time_us(root, "since", f.since_us);
    http_add_time_us(root, "until", f.until_us);
    if (f.ext[0])
        cJSON_AddStringToObject(root, "ext", f.ext);
    add_int64(totals, "calls", calls);
    add_int64(totals, "answered", tc.count[0]); /* dispositions[0] is ANSWERED */
    add_ratio(totals, "answer_rate", tc.count[0], calls, 10000);
    add_int64(totals, "talk_seconds", tc.talk);
    add_ratio(totals, "average_talk_seconds", tc.talk, tc.count[0], 10);
    for (size_t d = 0; d < NDISPOSITIONS; d++)
        add_int64(by, dispositions[d], tc.count[d]);
    cJSON_AddItemToObject(totals, "dispositions", by);
    cJSON_AddItemToObject(root, "totals", totals);
    cJSON_AddItemToObject(root, "items", items);
    http_json(r, 200, root);
}
