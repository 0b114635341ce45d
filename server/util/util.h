/* Small shared helpers: logging, randomness, hex, SHA-256 and HMAC (libcrypto), time and a
 * string-keyed hash map. */
#ifndef SIPBX_UTIL_H
#define SIPBX_UTIL_H

#include <stddef.h>
#include <stdint.h>

enum log_level { LOGL_ERROR = 0, LOGL_WARN, LOGL_INFO, LOGL_DEBUG };

/** Sets the most verbose level that log_msg() prints (default LOGL_INFO). */
void log_set_level(enum log_level level);
/** Returns the current level. */
enum log_level log_get_level(void);
/** Prints one line to stderr with a UTC timestamp and the level; thread-safe. */
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOGL_ERROR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOGL_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(LOGL_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOGL_DEBUG, __VA_ARGS__)

/* Out of memory, one policy (docs/architecture.md, "Out of memory"). Memory whose size the
 * program fixes -- an object (a call, a binding, a subscription), a map node, a copy of a
 * header that is already bounded by the parser -- comes from these: when the heap is
 * exhausted they log one line and abort, and systemd restarts sipbx (the store's crash
 * guarantee applies). Error paths for such allocations were many, rarely run and never
 * tested; a half-built call is worse than a restart. Memory whose size a peer or a user
 * chooses -- request bodies, imports, exports, query results, the trace queue -- still comes
 * from malloc and a failure is answered (413, 500, 503), since a big request must not
 * take the daemon down. Constructors (module_create) keep returning ENOMEM: they run at
 * start-up, where the error reaches the operator as a readable line. */
/** Writes "sipbx: out of memory (allocating SIZE bytes), aborting" to stderr, aborts. */
_Noreturn void util_out_of_memory(size_t size);
/** malloc that aborts on exhaustion (see above); size 0 returns a unique pointer. */
void *util_xmalloc(size_t size);
/** calloc that aborts on exhaustion or when n * size overflows. */
void *util_xcalloc(size_t n, size_t size);
/** realloc that aborts on exhaustion. */
void *util_xrealloc(void *p, size_t size);
/** strdup that aborts on exhaustion; NULL for a NULL s. */
char *util_xstrdup(const char *s);

/** Reads the whole file at path into a new NUL-terminated buffer (*out, free() it; *len
 *  its length without the NUL, when len is not NULL). Returns 0 or an errno value: EFBIG
 *  when the file holds more than max bytes, ENOMEM when its buffer cannot be had (a
 *  file's size is the caller's to bound, so this is not an aborting allocation). */
int util_read_file(const char *path, size_t max, char **out, size_t *len);
/** Writes all of len bytes to fd, again after EINTR and short writes; 0 or an errno value. */
int util_write_all(int fd, const void *data, size_t len);
/** Fills buf with len bytes from the kernel's CSPRNG; returns 0 or an errno value. */
int util_random(void *buf, size_t len);
/** Writes 2*len lowercase hex digits and a NUL to out (which holds 2*len+1 bytes). */
void util_hex(char *out, const void *data, size_t len);
/** Microseconds since the Unix epoch (wall clock). */
int64_t util_now_us(void);
/** Seconds since the Unix epoch (wall clock). */
int64_t util_now(void);
/** Seconds from a monotonic clock, for timers that must not jump. */
int64_t util_mono(void);
/** Milliseconds from the same monotonic clock. */
int64_t util_mono_ms(void);
/** Writes the time t (seconds since the epoch) as RFC 3339 UTC, "YYYY-MM-DDTHH:MM:SSZ",
 *  into out (at least 21 bytes). */
void util_format_time(char *out, size_t outlen, int64_t t);
/** Writes the time us (microseconds since the epoch) as RFC 3339 UTC with microseconds,
 *  "YYYY-MM-DDTHH:MM:SS.ffffffZ", into out (at least 28 bytes). */
void util_format_time_us(char *out, size_t outlen, int64_t us);
/** Compares two byte strings in time independent of where they differ; 0 when equal. */
int util_ct_compare(const void *a, const void *b, size_t len);
/** True when s is a valid SIP user part we accept for an extension: 1-32 characters of
 *  letters, digits and -_.!~*'+ (RFC 3261 unreserved plus '+'), not starting with '-'. */
int util_valid_extension(const char *s);
/** The number of characters (Unicode code points) of the UTF-8 string s, or -1 when s is
 *  not well-formed UTF-8 (overlong forms, surrogates and values past U+10FFFF included). */
long util_utf8_chars(const char *s);

/** SHA-256 of len bytes of data into out. */
void util_sha256(const void *data, size_t len, unsigned char out[32]);
/** Lowercase hex SHA-256 of the string s (64 digits and a NUL) into out. */
void util_sha256_hex(char out[65], const char *s);
/** HMAC-SHA256 (RFC 2104) of len bytes of data under a keylen-byte key into out. */
void util_hmac_sha256(const void *key, size_t keylen, const void *data, size_t len,
                      unsigned char out[32]);
/** The first bytes (at most 32) of the HMAC-SHA256 under a keylen-byte key of the text fmt
 *  makes (its first 1,023 bytes), in lowercase hex into out (2*bytes+1 bytes): the tokens
 *  sipbx signs and checks without keeping them. */
void util_hmac_hexf(const void *key, size_t keylen, char *out, size_t bytes, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/** Hashes a password with crypt(3) yescrypt into out; returns 0 or an errno value. */
int util_password_hash(const char *password, char *out, size_t outlen);
/** True when password matches a crypt(3) hash (compared in constant time). */
int util_password_verify(const char *password, const char *hash);
/** Writes a random password of len characters (letters and digits, no look-alikes). */
void util_password_generate(char *out, size_t len);

/** Finds header name, or its compact form (0: none), among the headers of the raw SIP
 *  message msg (len bytes; they end at the first empty line). Sets *value and *vlen to its
 *  value without the surrounding white space and returns 1; 0 when it is not there. */
int util_sip_header(const char *msg, size_t len, const char *name, char compact, const char **value,
                    size_t *vlen);

/* A growing byte buffer (replies, CSV pages, pcap files, event text). On running out of
 * memory it stops growing and sets failed; whoever uses it checks that once at the end. */
struct buf {
    char *p;
    size_t len, cap;
    int failed;
};

/** Makes room for n more bytes and returns where they go (len already counts them), or
 *  NULL once failed. */
char *buf_grow(struct buf *b, size_t n);
/** Appends n bytes. */
void buf_add(struct buf *b, const void *data, size_t n);
/** Appends a string (without its NUL). */
void buf_str(struct buf *b, const char *s);
/** Appends printf-formatted text (without a NUL). */
void buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/** Frees the bytes and empties the buffer (it can be used again). */
void buf_free(struct buf *b);

/* A string-keyed hash map of pointers. Keys are copied; values are the caller's. */
/* A pool for long-lived objects of one thread (the calls of the SIP thread), kept apart
 * from the heap where that thread's short-lived memory comes and goes, so that a burst of
 * short-lived memory can be given back around them (pool.c says why). Not thread-safe:
 * its owner alone allocates and frees. Objects are zeroed, at most 8 KiB; running out of
 * memory aborts, as util_xmalloc does. */
struct util_pool;
#define UTIL_POOL_MAX 8192 /* the largest object a pool gives */
struct util_pool_stats {
    size_t objects; /* allocated and not freed */
    size_t in_use;  /* their bytes, rounded up to their size class */
    size_t mapped;  /* bytes of slabs the pool holds */
};
/** Creates an empty pool; 0 or ENOMEM. */
int util_pool_create(struct util_pool **out);
/** Gives every slab back; objects not freed are gone. */
void util_pool_destroy(struct util_pool *p);
void *util_pool_alloc(struct util_pool *p, size_t n);
/** A copy of s in the pool; NULL for a NULL s. */
char *util_pool_strdup(struct util_pool *p, const char *s);
/** Frees obj (NULL: nothing), which p gave. */
void util_pool_free(struct util_pool *p, void *obj);
struct util_pool_stats util_pool_stats(const struct util_pool *p);

struct strmap;

/** Creates an empty map; returns 0 or ENOMEM. */
int strmap_create(struct strmap **out);
/** Frees the map; calls free_val (when not NULL) on every value. */
void strmap_destroy(struct strmap *m, void (*free_val)(void *));
/** Takes m's nodes from pool from now on (m must be empty; pool outlives m and has
 *  m's owner as its thread). Keys are copied into nodes, so they must fit the pool's
 *  largest object. */
void strmap_use_pool(struct strmap *m, struct util_pool *pool);
/** Frees a map whose values, like its nodes, came from its pool (strmap_use_pool). */
void strmap_destroy_pooled(struct strmap *m);
/** Returns the value for key, or NULL. */
void *strmap_get(const struct strmap *m, const char *key);
/** Inserts or replaces (aborting when out of memory, as util_xmalloc). The old value (if
 *  any) goes to *old. */
void strmap_put(struct strmap *m, const char *key, void *val, void **old);
/** Removes key and returns its value, or NULL when absent. */
void *strmap_remove(struct strmap *m, const char *key);
/** Number of entries. */
size_t strmap_count(const struct strmap *m);

/** Return value of a strmap_foreach callback: keep going, or drop this entry. */
enum { STRMAP_KEEP = 0, STRMAP_DROP = 1 };
/** Calls fn on every entry; an entry whose callback returns STRMAP_DROP is removed
 *  (its value is not freed: fn owns that decision). */
void strmap_foreach(struct strmap *m, int (*fn)(const char *key, void *val, void *ctx), void *ctx);

/* ---- IP addresses and networks (net.c) ---- */

/** An IPv4 or IPv6 address; IPv4-mapped IPv6 addresses are kept as IPv4. */
struct util_addr {
    int family; /* AF_INET or AF_INET6 (0: none) */
    unsigned char bytes[16];
};
/** An address block: addr with the first prefix bits significant. */
struct util_net {
    struct util_addr addr;
    int prefix;
};
/** The longest text util_addr_format writes, NUL included. */
#define UTIL_ADDR_STRLEN 46

/** Parses an IPv4 or IPv6 address ("[v6]" too); returns 0 or EINVAL. */
int util_addr_parse(const char *s, struct util_addr *out);
/** The address of a struct sockaddr_in or sockaddr_in6 (passed as void *). */
void util_addr_from_sockaddr(const void *sa, struct util_addr *out);
/** Writes the canonical text form ("192.0.2.1", "2001:db8::1"): one text per address. */
void util_addr_format(const struct util_addr *a, char *out, size_t outlen);
/** True when a is inside network n. */
int util_net_contains(const struct util_net *n, const struct util_addr *a);
/** Parses a list of addresses and CIDR networks separated by commas or spaces
 *  ("127.0.0.0/8, ::1, 2001:db8::/32"; "none" or "" is the empty list) into out (at most
 *  max). Returns 0 with *count set, or EINVAL / E2BIG with one readable line in err. */
int util_net_parse_list(const char *list, struct util_net *out, size_t max, size_t *count,
                        char *err, size_t errlen);

#endif
