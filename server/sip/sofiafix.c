/* Work-arounds for bugs of Sofia-SIP 1.12.11 as Debian ships it, which sipbx must build
 * against (its security fixes are Debian patches). Like tport_dump_iovec() in trace.c and
 * accept() in conns.c, the functions here are defined in the executable: Sofia's transport
 * layer calls them through the PLT, so these definitions are the ones that run, and they
 * call Sofia's own through dlsym(RTLD_NEXT).
 *
 * msg_next(): on a TCP or TLS connection every message after the first is made by
 * msg_next(), which does not carry over the size limit (NTATAG_MAXSIZE) of the message
 * before it. Without a limit a Content-Length near 2^32 wraps Sofia's 32-bit size sum in
 * msg_extract_payload() and it writes far outside the receive buffer: one unauthenticated
 * TCP connection with two requests crashed the daemon (found by tests/security/
 * test_sip_fuzz.py; test_sip_stream_overflow.py replays it). The next message gets the limit
 * of the one before it, so the body is refused as too large and the connection closed.
 *
 * msg_unref(): when a message whose body arrives in chunks has the start of the next
 * message of the stream parsed into a message of its own (msg->m_next) and then fails,
 * Sofia destroys it without that next message: about 1.4 KiB leaked per malformed TCP
 * stream (LeakSanitizer, test_sip_fuzz.py), a slow memory exhaustion for anyone who can open
 * connections. When the last reference to a message goes, its next message, if any, goes
 * with it (msg_next() takes it).
 *
 * SSL_CTX_set_cipher_list(): Sofia's TLS transport sets "ALL:!ADH:!LOW:!EXP:!MD5:@STRENGTH"
 * on a context of TLS_method() (any version the system allows) and offers no tag to change
 * either. Sofia is the only user of OpenSSL's libssl in sipbx (libmicrohttpd uses GnuTLS),
 * so sipbx's own TLS policy goes here: TLS 1.2 at least (1.3 preferred), only suites with
 * forward secrecy and authenticated encryption (Mozilla's "intermediate" list for 1.2,
 * OpenSSL's defaults for 1.3), the server's order, no compression, no renegotiation.
 *
 * SSL_shutdown(): Sofia's tls_free() (tport_tls.c) ends a TLS connection with
 * SSL_shutdown() and BIO_free() of the socket BIO, but never SSL_free(): every TLS
 * connection that closed left its SSL object and buffers behind (tens of KiB; a client
 * opening and closing connections could exhaust memory). tls_free() calls SSL_shutdown()
 * only there, just before it frees the BIO, which the SSL object holds too (SSL_set_bio),
 * and then SSL_CTX_free() of the shared context (a connection's tls_t copies the master's
 * type, so tls_free() takes it for the master's and drops a reference: the one the SSL
 * object took, which was never given back). So here, after the real shutdown, the BIO and
 * the context each get one more reference and the SSL object is freed: SSL_free() drops
 * the SSL's references, tls_free()'s BIO_free() and SSL_CTX_free() the ones added here. */
#include "sip/sip_int.h"

#include <dlfcn.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <sofia-sip/msg.h>
#include <sofia-sip/msg_buffer.h>
#include <sofia-sip/su_alloc.h>

msg_t *msg_next(msg_t *msg);
void msg_unref(msg_t *msg);

static msg_t *(*sofia_msg_next)(msg_t *);
static void (*sofia_msg_unref)(msg_t *);

/* Sofia's own functions; resolved at the first call, before any second thread could
 * call them (the SIP thread creates the agent, and only it parses messages). */
static int resolve(void)
{
    if (!sofia_msg_next)
        *(void **)&sofia_msg_next = dlsym(RTLD_NEXT, "msg_next");
    if (!sofia_msg_unref)
        *(void **)&sofia_msg_unref = dlsym(RTLD_NEXT, "msg_unref");
    return sofia_msg_next && sofia_msg_unref ? 0 : -1;
}

msg_t *msg_next(msg_t *msg)
{
    if (resolve() != 0)
        return NULL; /* cannot happen while Sofia is linked; no next message is safe */
    msg_t *next = sofia_msg_next(msg);
    usize_t max = msg ? msg_maxsize(msg, 0) : 0;
    if (next && max && !msg_maxsize(next, 0))
        msg_maxsize(next, max);
    return next;
}

void msg_unref(msg_t *msg)
{
    if (!msg || resolve() != 0)
        return;
    /* Only a next message already made: with bytes committed past the message,
     * msg_next() would make one (and that one the next, and so on). */
    if (su_home_refcount(msg_home(msg)) == 1 && msg_buf_committed(msg) == 0) {
        msg_t *next = sofia_msg_next(msg);
        if (next)
            msg_unref(next);
    }
    sofia_msg_unref(msg);
}

#define SIP_TLS_CIPHERS                                                                            \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"     \
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"       \
    "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384"

int SSL_CTX_set_cipher_list(SSL_CTX *ctx, const char *str)
{
    static int (*sofia_set)(SSL_CTX *, const char *);
    (void)str; /* Sofia's list: replaced by sipbx's */
    if (!sofia_set)
        *(void **)&sofia_set = dlsym(RTLD_NEXT, "SSL_CTX_set_cipher_list");
    if (!sofia_set || !SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION))
        return 0; /* Sofia then refuses to start the transport: no weaker TLS instead */
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE);
    return sofia_set(ctx, SIP_TLS_CIPHERS);
}

int SSL_shutdown(SSL *ssl)
{
    static int (*sofia_shutdown)(SSL *);
    if (!sofia_shutdown)
        *(void **)&sofia_shutdown = dlsym(RTLD_NEXT, "SSL_shutdown");
    if (!sofia_shutdown)
        return -1;
    int rc = sofia_shutdown(ssl);
    BIO *bio = SSL_get_rbio(ssl);
    SSL_CTX *ctx = SSL_get_SSL_CTX(ssl);
    if (bio && ctx && BIO_up_ref(bio) == 1) {
        if (SSL_CTX_up_ref(ctx) == 1)
            SSL_free(ssl); /* the BIO and context live on for tls_free() */
        else
            BIO_free(bio);
    }
    ERR_clear_error(); /* see ssl_io() */
    return rc;
}

/* SSL_accept(), SSL_read(), SSL_write(): OpenSSL requires the thread's error queue to be
 * empty before an I/O call, or SSL_get_error() reports an error left over from an earlier
 * call; Sofia never clears it, so a connection that failed (a peer that went away without
 * close_notify) made the next connection's handshake fail too. Each call Sofia makes
 * starts with an empty queue here. */
#define SSL_IO_WRAPPER(name, params, args)                                                         \
    int name params                                                                                \
    {                                                                                              \
        static int(*sofia_##name) params;                                                          \
        if (!sofia_##name)                                                                         \
            *(void **)&sofia_##name = dlsym(RTLD_NEXT, #name);                                     \
        if (!sofia_##name)                                                                         \
            return -1;                                                                             \
        ERR_clear_error();                                                                         \
        int rc_ = sofia_##name args;                                                               \
        if (rc_ <= 0 && ERR_peek_error()) {                                                        \
            char e_[256];                                                                          \
            ERR_error_string_n(ERR_peek_error(), e_, sizeof e_);                                   \
            log_debug("tls: %s: %s", #name, e_);                                                   \
        }                                                                                          \
        return rc_;                                                                                \
    }

SSL_IO_WRAPPER(SSL_accept, (SSL * ssl), (ssl))
SSL_IO_WRAPPER(SSL_connect, (SSL * ssl), (ssl))
SSL_IO_WRAPPER(SSL_read, (SSL * ssl, void *buf, int num), (ssl, buf, num))
SSL_IO_WRAPPER(SSL_write, (SSL * ssl, const void *buf, int num), (ssl, buf, num))

int sip_sofia_fixed(void)
{
    return resolve() == 0;
}
