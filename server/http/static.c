/* The dashboard's static files (web/): GET and HEAD of any path outside /api/ are answered
 * from the web root, "/" with index.html. Files are revalidated by ETag (no build step, so
 * no hashed names that could be cached forever), and nothing outside the root is served. */
#include "http/http_int.h"
#include "util/util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define STATIC_FILE_MAX (8 * 1024 * 1024) /* the dashboard's files are far smaller */

#ifndef SIPBX_WEB_DIR
#define SIPBX_WEB_DIR "/usr/share/sipbx/web" /* where the package installs web/ */
#endif

/* Content types by file name ending; text types are UTF-8. */
static const struct {
    const char *ext;
    const char *type;
} types[] = {
    {".html", "text/html; charset=utf-8"},
    {".css", "text/css; charset=utf-8"},
    {".js", "text/javascript; charset=utf-8"},
    {".mjs", "text/javascript; charset=utf-8"},
    {".json", "application/json"},
    {".svg", "image/svg+xml"},
    {".png", "image/png"},
    {".ico", "image/x-icon"},
    {".woff2", "font/woff2"},
    {".txt", "text/plain; charset=utf-8"},
    {".webmanifest", "application/manifest+json"},
    {NULL, "application/octet-stream"},
};

/* The dashboard only talks to its own origin; a page that did get markup injected still
 * could not run a script or send data elsewhere. */
static const char csp[] = "default-src 'self'; script-src 'self'; style-src 'self'; "
                          "img-src 'self' data:; connect-src 'self'; object-src 'none'; "
                          "base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

static const char *content_type(const char *path)
{
    const char *dot = strrchr(path, '.');
    int i = 0;
    for (; types[i].ext; i++)
        if (dot && strcmp(dot, types[i].ext) == 0)
            break;
    return types[i].type;
}

/* Sets dir as the web root when it holds an index.html; returns 0 or -1. */
static int try_root(struct http *h, const char *dir)
{
    char real[PATH_MAX], index[PATH_MAX + 16];
    if (!realpath(dir, real))
        return -1;
    snprintf(index, sizeof index, "%s/index.html", real);
    if (access(index, R_OK) != 0)
        return -1;
    snprintf(h->web_root, sizeof h->web_root, "%s", real);
    return 0;
}

int http_static_init(struct http *h, const char *configured)
{
    h->web_root[0] = '\0';
    if (configured && configured[0]) {
        if (try_root(h, configured) == 0)
            return 0;
        log_warn("http: no index.html in web_root %s: the dashboard is not served", configured);
        return -1;
    }
    /* Run from a build directory inside the source tree (build/sipbx): ../web. */
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash) {
            char dir[PATH_MAX + 8];
            *slash = '\0';
            snprintf(dir, sizeof dir, "%s/../web", exe);
            if (try_root(h, dir) == 0)
                return 0;
        }
    }
    /* Installed: under the install prefix, and the Debian package's place. */
    if (try_root(h, SIPBX_WEB_DIR) == 0 || try_root(h, "/usr/share/sipbx/web") == 0)
        return 0;
    log_warn("http: dashboard files not found (../web next to the binary, %s, "
             "/usr/share/sipbx/web); set web_root to serve them",
             SIPBX_WEB_DIR);
    return -1;
}

/* True when the request path may name a file under the root: absolute, no "." or ".."
 * segment, no backslash or control character, no empty segment. (microhttpd has already
 * decoded %XX, so "%2e%2e" arrives here as "..".) */
static int safe_path(const char *p)
{
    if (p[0] != '/')
        return 0;
    for (const char *s = p; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f || *s == '\\')
            return 0;
    for (const char *seg = p + 1; *seg;) {
        size_t n = strcspn(seg, "/");
        if (n == 0 || (n == 1 && seg[0] == '.') || (n == 2 && seg[0] == '.' && seg[1] == '.'))
            return 0;
        seg += n;
        if (*seg == '/')
            seg++;
    }
    return 1;
}

static void not_found(struct http_req *r)
{
    http_error(r, 404, "not_found", "no such file: %s", r->path);
}

/* True when the If-None-Match header lists etag (or is "*"). */
static int etag_matches(const char *inm, const char *etag)
{
    if (!inm)
        return 0;
    if (strcmp(inm, "*") == 0)
        return 1;
    size_t n = strlen(etag);
    for (const char *p = strstr(inm, etag); p; p = strstr(p + 1, etag))
        if ((p == inm || p[-1] == ' ' || p[-1] == ',' || p[-1] == '/') &&
            (p[n] == '\0' || p[n] == ',' || p[n] == ' '))
            return 1;
    return 0;
}

void http_static_get(struct http_req *r)
{
    if (strncmp(r->path, "/api/", 5) == 0 || strcmp(r->path, "/api") == 0) {
        http_error(r, 404, "not_found", "no such endpoint: %s", r->path);
        return;
    }
    if (!r->h->web_root[0]) {
        http_error(r, 404, "not_found",
                   "the dashboard is not installed on this server (see web_root)");
        return;
    }
    const char *rel = strcmp(r->path, "/") == 0 ? "/index.html" : r->path;
    if (!safe_path(rel)) {
        not_found(r);
        return;
    }
    char path[PATH_MAX], real[PATH_MAX];
    if ((size_t)snprintf(path, sizeof path, "%s%s", r->h->web_root, rel) >= sizeof path ||
        !realpath(path, real)) {
        not_found(r);
        return;
    }
    /* A symbolic link inside the root must not lead out of it. */
    size_t rootlen = strlen(r->h->web_root);
    if (strncmp(real, r->h->web_root, rootlen) != 0 || real[rootlen] != '/') {
        not_found(r);
        return;
    }
    int fd = open(real, O_RDONLY | O_CLOEXEC);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode) || sb.st_size > STATIC_FILE_MAX) {
        if (fd >= 0)
            close(fd);
        not_found(r);
        return;
    }
    char etag[64];
    snprintf(etag, sizeof etag, "\"%llx-%llx-%lx\"", (unsigned long long)sb.st_mtim.tv_sec,
             (unsigned long long)sb.st_size, (long)sb.st_mtim.tv_nsec);
    /* Revalidate every time: cheap on a LAN, and an upgrade shows at the next load. */
    http_header(r, "Cache-Control", "no-cache");
    http_header(r, "ETag", etag);
    if (strcmp(rel, "/index.html") == 0 || strcmp(content_type(rel), types[0].type) == 0) {
        http_header(r, "Content-Security-Policy", csp);
        http_header(r, "Referrer-Policy", "no-referrer");
    }
    if (etag_matches(http_req_header(r, "If-None-Match"), etag)) {
        close(fd);
        http_empty(r, 304);
        return;
    }
    size_t len = (size_t)sb.st_size, got = 0;
    char *buf = malloc(len ? len : 1);
    while (buf && got < len) {
        ssize_t k = read(fd, buf + got, len - got);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        got += (size_t)k;
    }
    close(fd);
    if (!buf || got != len) {
        free(buf);
        log_error("http: cannot read %s", real);
        http_error(r, 500, "internal", "cannot read %s", r->path);
        return;
    }
    http_text(r, 200, content_type(rel), buf, len);
}
