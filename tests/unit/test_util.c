/* Unit tests of server/util: the string map, hex, extension syntax, constant-time compare
 * admin password hashing and the allocators that abort when memory runs out. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "util/util.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- strmap ---- */

static void test_strmap_put_get(void **state)
{
    (void)state;
    struct strmap *m = NULL;
    int a = 1, b = 2;
    assert_int_equal(strmap_create(&m), 0);
    assert_non_null(m);
    assert_int_equal(strmap_count(m), 0);
    assert_null(strmap_get(m, "alice"));

    void *old = &a; /* must be cleared for a new key */
    strmap_put(m, "alice", &a, &old);
    assert_null(old);
    strmap_put(m, "bob", &b, NULL);
    assert_int_equal(strmap_count(m), 2);
    assert_ptr_equal(strmap_get(m, "alice"), &a);
    assert_ptr_equal(strmap_get(m, "bob"), &b);
    assert_null(strmap_get(m, "alic"));
    assert_null(strmap_get(m, "alice2"));
    assert_null(strmap_get(m, ""));

    /* Keys are copied: changing the caller's buffer changes nothing. */
    char key[16];
    snprintf(key, sizeof key, "carol");
    strmap_put(m, key, &b, NULL);
    snprintf(key, sizeof key, "XXXXX");
    assert_ptr_equal(strmap_get(m, "carol"), &b);
    assert_null(strmap_get(m, "XXXXX"));
    strmap_destroy(m, NULL);
}

static void test_strmap_replace(void **state)
{
    (void)state;
    struct strmap *m;
    int a = 1, b = 2;
    assert_int_equal(strmap_create(&m), 0);
    strmap_put(m, "k", &a, NULL);
    void *old = NULL;
    strmap_put(m, "k", &b, &old);
    assert_ptr_equal(old, &a);
    assert_ptr_equal(strmap_get(m, "k"), &b);
    assert_int_equal(strmap_count(m), 1);
    strmap_destroy(m, NULL);
}

static void test_strmap_remove(void **state)
{
    (void)state;
    struct strmap *m;
    int a = 1, b = 2;
    assert_int_equal(strmap_create(&m), 0);
    strmap_put(m, "a", &a, NULL);
    strmap_put(m, "b", &b, NULL);
    assert_ptr_equal(strmap_remove(m, "a"), &a);
    assert_int_equal(strmap_count(m), 1);
    assert_null(strmap_get(m, "a"));
    assert_null(strmap_remove(m, "a"));
    assert_null(strmap_remove(m, "nothere"));
    assert_int_equal(strmap_count(m), 1);
    assert_ptr_equal(strmap_get(m, "b"), &b);
    /* A removed key can be put again. */
    strmap_put(m, "a", &b, NULL);
    assert_ptr_equal(strmap_get(m, "a"), &b);
    assert_int_equal(strmap_count(m), 2);
    strmap_destroy(m, NULL);
}

struct visit {
    int seen;
    int dropped;
};

/* Drops the entries whose value is even; counts every visit. */
static int drop_even(const char *key, void *val, void *ctx)
{
    struct visit *v = ctx;
    int n = *(int *)val;
    char want[16];
    snprintf(want, sizeof want, "k%d", n);
    assert_string_equal(key, want);
    v->seen++;
    if (n % 2 == 0) {
        v->dropped++;
        return STRMAP_DROP;
    }
    return STRMAP_KEEP;
}

static void test_strmap_foreach_drop(void **state)
{
    (void)state;
    struct strmap *m;
    int vals[100];
    char key[16];
    assert_int_equal(strmap_create(&m), 0);
    for (int i = 0; i < 100; i++) {
        vals[i] = i;
        snprintf(key, sizeof key, "k%d", i);
        strmap_put(m, key, &vals[i], NULL);
    }
    struct visit v = {0, 0};
    strmap_foreach(m, drop_even, &v);
    assert_int_equal(v.seen, 100);
    assert_int_equal(v.dropped, 50);
    assert_int_equal(strmap_count(m), 50);
    for (int i = 0; i < 100; i++) {
        snprintf(key, sizeof key, "k%d", i);
        if (i % 2 == 0)
            assert_null(strmap_get(m, key));
        else
            assert_ptr_equal(strmap_get(m, key), &vals[i]);
    }
    /* A second pass sees only the survivors and drops nothing. */
    v.seen = v.dropped = 0;
    strmap_foreach(m, drop_even, &v);
    assert_int_equal(v.seen, 50);
    assert_int_equal(v.dropped, 0);
    strmap_destroy(m, NULL);
}

static void test_strmap_growth(void **state)
{
    (void)state;
    enum { N = 5000 };
    struct strmap *m;
    char key[32];
    assert_int_equal(strmap_create(&m), 0);
    for (int i = 0; i < N; i++) {
        int *v = malloc(sizeof *v);
        assert_non_null(v);
        *v = i;
        snprintf(key, sizeof key, "user-%d@example.com", i);
        strmap_put(m, key, v, NULL);
    }
    assert_int_equal(strmap_count(m), N);
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof key, "user-%d@example.com", i);
        int *v = strmap_get(m, key);
        assert_non_null(v);
        assert_int_equal(*v, i);
    }
    for (int i = 0; i < N; i += 3) {
        snprintf(key, sizeof key, "user-%d@example.com", i);
        int *v = strmap_remove(m, key);
        assert_non_null(v);
        assert_int_equal(*v, i);
        free(v);
    }
    assert_int_equal(strmap_count(m), N - (N + 2) / 3);
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof key, "user-%d@example.com", i);
        if (i % 3 == 0)
            assert_null(strmap_get(m, key));
        else
            assert_non_null(strmap_get(m, key));
    }
    /* The rest is freed by destroy (AddressSanitizer reports a leak otherwise). */
    strmap_destroy(m, free);
}

/* ---- hex, compare, extensions ---- */

static void test_buf(void **state)
{
    (void)state;
    struct buf b = {0};
    buf_str(&b, "event: ");
    buf_printf(&b, "%s %d", "x", 42);
    buf_add(&b, "\0z", 2); /* bytes, NULs included */
    assert_false(b.failed);
    assert_int_equal(b.len, 13);
    assert_memory_equal(b.p, "event: x 42\0z", 13);
    /* Growing past the first block keeps what was there. */
    for (int i = 0; i < 5000; i++)
        buf_printf(&b, "%d,", i % 10);
    assert_false(b.failed);
    assert_int_equal(b.len, 13 + 10000);
    assert_memory_equal(b.p + 13, "0,1,2,", 6);
    char *at = buf_grow(&b, 3);
    assert_non_null(at);
    memcpy(at, "end", 3);
    assert_memory_equal(b.p + b.len - 3, "end", 3);
    buf_free(&b);
    assert_null(b.p);
    assert_int_equal(b.len, 0);
    /* A failed buffer stays failed and takes nothing more. */
    b.failed = 1;
    assert_null(buf_grow(&b, 1));
    buf_str(&b, "x");
    assert_int_equal(b.len, 0);
}

static void test_sip_header(void **state)
{
    (void)state;
    static const char msg[] = "INVITE sip:i@x SIP/2.0\r\n"
                              "Via: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"
                              "Call-Info: <http://x>\r\n"
                              "i :  abc@host \r\n"
                              "CSeq: 2 INVITE\r\n"
                              "l: 4\r\n"
                              "\r\n"
                              "Call-ID: in-the-body";
    const char *v;
    size_t n;
    /* Compact forms, white space around the colon and value trimmed. */
    assert_true(util_sip_header(msg, sizeof msg - 1, "Call-ID", 'i', &v, &n));
    assert_int_equal(n, 8);
    assert_memory_equal(v, "abc@host", 8);
    assert_true(util_sip_header(msg, sizeof msg - 1, "cseq", 0, &v, &n));
    assert_memory_equal(v, "2 INVITE", n);
    assert_true(util_sip_header(msg, sizeof msg - 1, "Content-Length", 'l', &v, &n));
    assert_memory_equal(v, "4", n);
    /* Not among the headers: a header only by prefix, the start line, the body. */
    assert_false(util_sip_header(msg, sizeof msg - 1, "Call", 0, &v, &n));
    assert_false(util_sip_header(msg, sizeof msg - 1, "INVITE sip", 0, &v, &n));
    assert_false(util_sip_header(msg, 30, "CSeq", 0, &v, &n)); /* cut before it */
    static const char body_only[] = "SIP/2.0 200 OK\r\n\r\nCall-ID: x";
    assert_false(util_sip_header(body_only, sizeof body_only - 1, "Call-ID", 'i', &v, &n));
}

static void test_hex(void **state)
{
    (void)state;
    const unsigned char data[] = {0x00, 0x01, 0x7f, 0x80, 0xab, 0xff};
    char out[2 * sizeof data + 1];
    memset(out, 'X', sizeof out);
    util_hex(out, data, sizeof data);
    assert_string_equal(out, "00017f80abff");

    char empty[1] = {'X'};
    util_hex(empty, data, 0);
    assert_string_equal(empty, "");

    const char *s = "Hi";
    char two[5];
    util_hex(two, s, 2);
    assert_string_equal(two, "4869");
}

/* FIPS 180-2 example "abc" and RFC 4231 test case 2 ("Jefe"). */
static void test_sha256_hmac(void **state)
{
    (void)state;
    char hex[65];
    util_sha256_hex(hex, "abc");
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    unsigned char mac[32];
    const char *msg = "what do ya want for nothing?";
    util_hmac_sha256("Jefe", 4, msg, strlen(msg), mac);
    util_hex(hex, mac, sizeof mac);
    assert_string_equal(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    /* the same MAC of formatted text, cut to the bytes asked for (at most 32) */
    char tok[65];
    util_hmac_hexf("Jefe", 4, tok, 8, "what do %s want for %s?", "ya", "nothing");
    assert_string_equal(tok, "5bdcc146bf60754e");
    util_hmac_hexf("Jefe", 4, tok, 64, "what do ya want for nothing?");
    assert_string_equal(tok, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

static void test_valid_extension(void **state)
{
    (void)state;
    const char *good[] = {"100",    "alice",     "+4930",
                          "a",      "bob.smith", "x_y-z",
                          "o'neil", "a!~*",      "12345678901234567890123456789012" /* 32 */};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        assert_true(util_valid_extension(good[i]));

    const char *bad[] = {
        "",  "-1",   "a b",   "a@b",   "a:b",  "a/b", "a;b",
        "é", "a\tb", "a%20b", "<100>", "a\"b", NULL,  "123456789012345678901234567890123" /* 33 */};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_false(util_valid_extension(bad[i]));
}

static void test_utf8_chars(void **state)
{
    (void)state;
    assert_int_equal(util_utf8_chars(""), 0);
    assert_int_equal(util_utf8_chars("Alice"), 5);
    assert_int_equal(util_utf8_chars("J\xc3\xbcrgen"), 6);            /* ü: 2 bytes */
    assert_int_equal(util_utf8_chars("\xe5\xb1\xb1\xe7\x94\xb0"), 2); /* 山田 */
    assert_int_equal(util_utf8_chars("\xf0\x9f\x98\x80!"), 2);        /* U+1F600 */
    assert_int_equal(util_utf8_chars("\xf4\x8f\xbf\xbf"), 1);         /* U+10FFFF */
    const char *bad[] = {
        "\x80",             /* a continuation byte first */
        "a\xc3",            /* cut short */
        "\xc3\x28",         /* not followed by a continuation byte */
        "\xc0\xaf",         /* overlong '/' */
        "\xe0\x80\xaf",     /* overlong, 3 bytes */
        "\xf0\x80\x80\xaf", /* overlong, 4 bytes */
        "\xed\xa0\x80",     /* a surrogate, U+D800 */
        "\xf4\x90\x80\x80", /* U+110000 */
        "\xff",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(util_utf8_chars(bad[i]), -1);
}

static void test_ct_compare(void **state)
{
    (void)state;
    assert_int_equal(util_ct_compare("abcdef", "abcdef", 6), 0);
    assert_int_not_equal(util_ct_compare("abcdef", "Xbcdef", 6), 0);
    assert_int_not_equal(util_ct_compare("abcdef", "abcdeX", 6), 0);
    assert_int_not_equal(util_ct_compare("abcdef", "abcXef", 6), 0);
    /* Only len bytes count. */
    assert_int_equal(util_ct_compare("abcdef", "abcXYZ", 3), 0);
    assert_int_equal(util_ct_compare("a", "b", 0), 0);
    const unsigned char x[] = {0x00, 0x80}, y[] = {0x00, 0x00};
    assert_int_not_equal(util_ct_compare(x, y, 2), 0);
}

/* ---- passwords ---- */

static void test_password_hash_verify(void **state)
{
    (void)state;
    char h1[256], h2[256];
    assert_int_equal(util_password_hash("correct horse", h1, sizeof h1), 0);
    assert_memory_equal(h1, "$y$", 3);
    assert_true(strlen(h1) > 20);
    assert_true(util_password_verify("correct horse", h1));
    assert_false(util_password_verify("correct horsE", h1));
    assert_false(util_password_verify("correct hors", h1));
    assert_false(util_password_verify("", h1));

    /* A fresh salt every time: same password, different hash, both verify. */
    assert_int_equal(util_password_hash("correct horse", h2, sizeof h2), 0);
    assert_string_not_equal(h1, h2);
    assert_true(util_password_verify("correct horse", h2));

    /* Not a hash at all. */
    assert_false(util_password_verify("correct horse", "plain"));
    assert_false(util_password_verify("", ""));

    /* Too small an output buffer is an error, not a truncated hash. */
    char small[10];
    assert_int_not_equal(util_password_hash("correct horse", small, sizeof small), 0);
}

static void test_password_generate(void **state)
{
    (void)state;
    /* The alphabet leaves out characters that are easily misread. */
    static const char lookalikes[] = "0Oo1lIB";
    char a[64 + 1], b[64 + 1];
    size_t lens[] = {1, 12, 16, 64};
    for (size_t k = 0; k < sizeof lens / sizeof lens[0]; k++) {
        size_t len = lens[k];
        memset(a, 'Z', sizeof a);
        util_password_generate(a, len);
        assert_int_equal(strlen(a), len);
        for (size_t i = 0; i < len; i++) {
            unsigned char c = (unsigned char)a[i];
            assert_true((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'));
            assert_null(strchr(lookalikes, c));
        }
    }
    util_password_generate(a, 64);
    util_password_generate(b, 64);
    assert_string_not_equal(a, b);
}

/* ---- whole files ---- */

static void test_read_write_file(void **state)
{
    (void)state;
    char path[] = "/tmp/sipbx-test-util-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    char big[70000];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (char)('a' + i % 26);
    assert_int_equal(util_write_all(fd, big, sizeof big), 0);
    close(fd);
    char *data = NULL;
    size_t len = 0;
    assert_int_equal(util_read_file(path, sizeof big, &data, &len), 0);
    assert_int_equal(len, sizeof big);
    assert_memory_equal(data, big, sizeof big);
    assert_int_equal(data[len], '\0'); /* NUL-terminated for text files */
    free(data);
    data = NULL;
    assert_int_equal(util_read_file(path, sizeof big - 1, &data, &len), EFBIG);
    assert_null(data);
    unlink(path);
    assert_int_equal(util_read_file(path, sizeof big, &data, NULL), ENOENT);
    assert_int_equal(util_write_all(-1, "x", 1), EBADF);
}

/* ---- allocation that aborts ---- */

static void test_xalloc(void **state)
{
    (void)state;
    char *s = util_xstrdup("extension 100");
    assert_string_equal(s, "extension 100");
    free(s);
    assert_null(util_xstrdup(NULL));
    int *z = util_xcalloc(64, sizeof *z);
    for (int i = 0; i < 64; i++)
        assert_int_equal(z[i], 0);
    z = util_xrealloc(z, 4096 * sizeof *z);
    z[4095] = 7;
    free(z);
    free(util_xmalloc(0)); /* a unique pointer, freeable */
}

/* Runs fn in a child with its stderr captured: true when the child did not exit with 0
 * (with want_sig, when that signal ended it) and wrote want. */
static int child_dies(void (*fn)(void), int want_sig, const char *want)
{
    int err[2];
    assert_int_equal(pipe(err), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(err[1], STDERR_FILENO);
        signal(SIGABRT, SIG_DFL);
        fn();
        _exit(0);
    }
    close(err[1]);
    char out[8192] = "";
    size_t got = 0;
    ssize_t n;
    while (got < sizeof out - 1 && (n = read(err[0], out + got, sizeof out - 1 - got)) > 0)
        got += (size_t)n;
    close(err[0]);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (want_sig && !(WIFSIGNALED(status) && WTERMSIG(status) == want_sig))
        return 0;
    return !(WIFEXITED(status) && WEXITSTATUS(status) == 0) && strstr(out, want) != NULL;
}

static void xcalloc_overflow(void)
{
    volatile size_t n = SIZE_MAX / 2;
    void *p = util_xcalloc(n, 4);
    _exit(p ? 0 : 1); /* not reached */
}

/* A request that cannot be met (n * size overflows) ends the process with SIGABRT and one
 * line on stderr, rather than returning NULL to a caller that no longer checks. */
static void test_xalloc_aborts(void **state)
{
    (void)state;
    assert_true(child_dies(xcalloc_overflow, SIGABRT, "sipbx: out of memory"));
}

/* ---- the call pool ---- */

static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[128];
    long kib = -1;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0)
            kib = atol(line + 6);
    if (f)
        fclose(f);
    return kib;
}

/* Objects of many sizes do not overlap, come zeroed (also when reused) and keep what was
 * written into them while others come and go. */
static void test_pool_objects(void **state)
{
    (void)state;
    struct util_pool *p;
    assert_int_equal(util_pool_create(&p), 0);
    enum { N = 6000 };
    static unsigned char *obj[N];
    static size_t len[N];
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < N; i++) {
            if (obj[i])
                continue;
            len[i] = 1 + (size_t)((i * 7919 + round * 31) % UTIL_POOL_MAX);
            obj[i] = util_pool_alloc(p, len[i]);
            for (size_t k = 0; k < len[i]; k++)
                assert_int_equal(obj[i][k], 0);
            memset(obj[i], (i + round) & 0xff, len[i]);
        }
        for (int i = 0; i < N; i++)
            for (size_t k = 0; k < len[i]; k += 97)
                assert_int_equal(obj[i][k], (unsigned char)(obj[i][0]));
        assert_int_equal(util_pool_stats(p).objects, N);
        for (int i = round % 2; i < N; i += 2) {
            util_pool_free(p, obj[i]);
            obj[i] = NULL;
        }
        assert_int_equal(util_pool_stats(p).objects, N / 2);
    }
    char *s = util_pool_strdup(p, "sip:100@192.0.2.1:5060;transport=udp");
    assert_string_equal(s, "sip:100@192.0.2.1:5060;transport=udp");
    assert_null(util_pool_strdup(p, NULL));
    util_pool_free(p, s);
    util_pool_free(p, NULL);
    for (int i = 0; i < N; i++) {
        util_pool_free(p, obj[i]);
        obj[i] = NULL;
    }
    struct util_pool_stats st = util_pool_stats(p);
    assert_int_equal(st.objects, 0);
    assert_int_equal(st.in_use, 0);
    assert_true(st.mapped <= 32 * (64 << 10)); /* at most one empty slab per size class */
    util_pool_destroy(p);
}

/* A map can take its nodes from a pool, and free values from the same pool with itself:
 * nothing stays allocated in the pool afterwards. */
static void test_pool_strmap(void **state)
{
    (void)state;
    struct util_pool *p;
    struct strmap *m;
    assert_int_equal(util_pool_create(&p), 0);
    assert_int_equal(strmap_create(&m), 0);
    strmap_use_pool(m, p);
    char key[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(key, sizeof key, "call-%d@host", i);
        int *v = util_pool_alloc(p, sizeof *v);
        *v = i;
        strmap_put(m, key, v, NULL);
    }
    assert_int_equal(util_pool_stats(p).objects, 2000); /* values and nodes */
    for (int i = 0; i < 1000; i += 2) {
        snprintf(key, sizeof key, "call-%d@host", i);
        util_pool_free(p, strmap_remove(m, key));
    }
    assert_int_equal(util_pool_stats(p).objects, 1000);
    snprintf(key, sizeof key, "call-%d@host", 999);
    assert_int_equal(*(int *)strmap_get(m, key), 999);
    strmap_destroy_pooled(m);
    assert_int_equal(util_pool_stats(p).objects, 0);
    util_pool_destroy(p);
}

/* The point of the pool: once the objects of a burst are freed, their memory goes back to
 * the kernel (the process's resident size falls), whatever order they were freed in. */
static void test_pool_gives_back(void **state)
{
    (void)state;
    struct util_pool *p;
    assert_int_equal(util_pool_create(&p), 0);
    enum { N = 8000, SIZE = 4600 }; /* about a call's size: 37 MB */
    static void *obj[N];
    long before = rss_kib();
    for (int i = 0; i < N; i++)
        memset(obj[i] = util_pool_alloc(p, SIZE), 1, SIZE);
    assert_true(util_pool_stats(p).mapped >= (size_t)N * SIZE);
    long full = rss_kib();
    assert_true(full - before > 30000);
    for (int i = 0; i < N; i++) /* every other one first: no slab empties until the end */
        if (i % 2)
            util_pool_free(p, obj[i]);
    for (int i = 0; i < N; i++)
        if (i % 2 == 0)
            util_pool_free(p, obj[i]);
    assert_true(util_pool_stats(p).mapped <= (64 << 10));
    long after = rss_kib();
    assert_true(full - after > 30000);
    util_pool_destroy(p);
}

static void alloc_too_big(void)
{
    struct util_pool *p;
    if (util_pool_create(&p) == 0)
        util_pool_alloc(p, UTIL_POOL_MAX + 1);
}

/* An object larger than the pool's largest class is a programming error: one line, abort. */
static void test_pool_too_big(void **state)
{
    (void)state;
    assert_true(child_dies(alloc_too_big, SIGABRT, "larger than the pool's largest"));
}

#if defined(__SANITIZE_ADDRESS__)
static void use_after_free(void)
{
    struct util_pool *p;
    if (util_pool_create(&p) != 0)
        return;
    volatile char *c = util_pool_alloc(p, 100);
    util_pool_free(p, (void *)c);
    c[50] = 1;
}
#endif

/* Under AddressSanitizer a freed object is poisoned: a use after util_pool_free is
 * reported as a use after free() would be. */
static void test_pool_poisoned(void **state)
{
    (void)state;
#if defined(__SANITIZE_ADDRESS__)
    assert_true(child_dies(use_after_free, 0, "use-after-poison"));
#else
    skip();
#endif
}

int main(void)
{
    log_set_level(LOGL_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_strmap_put_get),
        cmocka_unit_test(test_strmap_replace),
        cmocka_unit_test(test_strmap_remove),
        cmocka_unit_test(test_strmap_foreach_drop),
        cmocka_unit_test(test_strmap_growth),
        cmocka_unit_test(test_hex),
        cmocka_unit_test(test_sha256_hmac),
        cmocka_unit_test(test_buf),
        cmocka_unit_test(test_sip_header),
        cmocka_unit_test(test_valid_extension),
        cmocka_unit_test(test_ct_compare),
        cmocka_unit_test(test_password_hash_verify),
        cmocka_unit_test(test_password_generate),
        cmocka_unit_test(test_utf8_chars),
        cmocka_unit_test(test_xalloc),
        cmocka_unit_test(test_xalloc_aborts),
        cmocka_unit_test(test_read_write_file),
        cmocka_unit_test(test_pool_objects),
        cmocka_unit_test(test_pool_gives_back),
        cmocka_unit_test(test_pool_strmap),
        cmocka_unit_test(test_pool_too_big),
        cmocka_unit_test(test_pool_poisoned),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
