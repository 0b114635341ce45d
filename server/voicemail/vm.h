/* Voicemail: sipbx's own SIP user agent (Sofia nua, on 127.0.0.1, a thread of its own) that
 * the proxy relays calls to like to any phone, with a media thread that sends and receives
 * the RTP of every voicemail call. Callers leave messages (greeting, tone, recording);
 * users dial the voicemail number to listen (DTMF by RFC 4733 or SIP INFO). Messages are WAV
 * files in the data directory's voicemail/ with their rows in SQLite (db/011). The user agent
 * takes only requests the proxy made: from this host, with a token the proxy signs
 * (vm_target) naming the mailbox. See docs/architecture.md, "Voicemail". */
#ifndef SIPBX_VM_H
#define SIPBX_VM_H

#include <stddef.h>
#include <stdint.h>

struct config;
struct events;
struct store;
struct vm;

#define VM_SECRET_LEN 32

/** What a call to the voicemail user agent does. */
enum vm_op {
    VM_LEAVE,  /* leave a message in the mailbox (a forward rule sent the call here) */
    VM_LISTEN, /* the mailbox's owner listens (dialled the voicemail number) */
};

/** Starts voicemail: its user agent on 127.0.0.1 (cfg->voicemail_port, 0: a free port),
 *  sending its own requests to the proxy at proxy_uri (e.g. "sip:127.0.0.1:5060"); the
 *  media thread on cfg's media address and RTP ports; messages in data_dir/voicemail
 *  (created), rows in the database at db_path (migrated). secret signs the tokens of
 *  vm_target; ev (may be NULL) gets voicemail.changed events. Returns 0, or -1 with one
 *  readable line in err. */
int vm_create(struct vm **out, const struct config *cfg, const unsigned char secret[VM_SECRET_LEN],
              const char *db_path, const char *data_dir, const char *proxy_uri, struct events *ev,
              char *err, size_t errlen);

/** Ends every voicemail call (messages being recorded are kept; the calls get BYE through
 *  the proxy, which should still run), stops both threads and waits for them, at most a
 *  few seconds. Any thread; once. */
void vm_stop(struct vm *vm);

/** Frees what vm_stop left; NULL is ignored. */
void vm_destroy(struct vm *vm);

/** The port of the user agent on 127.0.0.1. */
int vm_port(const struct vm *vm);

/** Writes the Request-URI that reaches op on mailbox box for the call call_id into out:
 *  sip:BOX@127.0.0.1:PORT;vm=OP;why=WHY;vmts=TIME;vmt=TOKEN, where the token is an HMAC
 *  of all of it, the time and the Call-ID, that only holders of the secret make (why: RFC
 *  5806 reason of a forward, "" for none). The user agent takes a token for a short while
 *  and once. Any thread. Returns 0, or -1 when box or why cannot be in a URI or it does
 *  not fit. */
int vm_target(const struct vm *vm, enum vm_op op, const char *box, const char *why,
              const char *call_id, char *out, size_t outlen);

/** The directory messages are kept in (data_dir/voicemail). */
const char *vm_dir(const struct vm *vm);

/** The new and heard messages in ext's mailbox as voicemail knows them now (kept in memory,
 *  updated on every change); any thread. */
void vm_counts(struct vm *vm, const char *ext, int *new_count, int *old_count);

/** Says that ext's mailbox now holds new_count new and old_count heard messages (after a
 *  change made outside the voicemail threads, e.g. over REST): updates the counts and
 *  publishes voicemail.changed when they changed. Any thread. */
void vm_changed(struct vm *vm, const char *ext, int new_count, int old_count);

/** Registers fn to be called (on the thread that made the change) whenever a mailbox's
 *  counts change: what message-waiting notifications follow. One listener; NULL stops. */
void vm_set_listener(struct vm *vm,
                     void (*fn)(const char *ext, int new_count, int old_count, void *ctx),
                     void *ctx);

/** What the media thread did since start-up, for /metrics; any thread. */
struct vm_stats {
    int calls;                       /* voicemail calls with media now */
    unsigned long long rtp_sent;     /* RTP packets sent */
    unsigned long long rtp_received; /* RTP packets received (audio and key presses) */
    unsigned long long late_ticks;   /* 20 ms ticks that came one or more ticks late */
};
void vm_get_stats(struct vm *vm, struct vm_stats *out);

/** Deletes user ext with store_user_delete and then the files of its messages from dir
 *  (the rows go with the user). Returns store_user_delete's result. */
int vm_user_delete(struct store *st, const char *dir, const char *ext);

/** Writes the voicemail directory of the database at db_path (its directory's voicemail/)
 *  into out. */
void vm_dir_of(const char *db_path, char *out, size_t outlen);

/** The longest greeting a user may upload, in seconds. */
#define VM_GREETING_MAX_SECONDS 60

/** Writes a WAV file (8 kHz, mono, 16-bit) of the greeting callers of ext hear into a new
 *  buffer (*out, free() it; *len bytes): ext's own, or the default one. *custom says which.
 *  Returns 0, ENOMEM or EIO. */
int vm_greeting_wav(struct store *st, const char *ext, void **out, size_t *len, int *custom);

#endif
