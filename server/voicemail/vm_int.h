/* Private to the voicemail module: the prompts compiled in, audio clips, the media thread
 * (media.c), SDP offer and answer (sdp.c), mailbox storage (mailbox.c) and the user agent
 * (ua.c). */
#ifndef SIPBX_VM_INT_H
#define SIPBX_VM_INT_H

#include "audio/audio.h"
#include "voicemail/vm.h"

#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct store;
struct strmap;

/* ---- prompts (generated from prompts.txt; prompts.c looks them up) ---- */

struct vm_prompt {
    const char *name;
    const int16_t *samples; /* 8 kHz mono */
    size_t n;
};
extern const struct vm_prompt vm_prompt_table[];
extern const size_t vm_prompt_count;

/** The prompt called name; NULL when prompts.txt has none. */
const struct vm_prompt *vm_prompt(const char *name);

/* ---- clips: what the media thread plays ---- */

/* Samples on the heap shared by whoever plays them (a message, a greeting, the tone). */
struct vm_audio {
    atomic_int refs;
    size_t n;
    int16_t samples[]; /* 8 kHz mono */
};

/** A new vm_audio of n samples (one reference), or NULL. */
struct vm_audio *vm_audio_new(size_t n);
/** Takes another reference (a is not NULL). */
struct vm_audio *vm_audio_ref(struct vm_audio *a);
/** Drops a reference; the last frees it. NULL is ignored. */
void vm_audio_unref(struct vm_audio *a);

/* Something to play: static samples (a prompt, owner NULL) or part of a vm_audio (owner
 * holds a reference while the clip is queued). */
struct vm_clip {
    const int16_t *s;
    size_t n;
    struct vm_audio *owner;
};

/* A list of clips being put together (ua.c). */
#define VM_CLIPS_MAX 24
struct vm_clips {
    struct vm_clip c[VM_CLIPS_MAX];
    size_t n;
};

/** Appends prompt name (a missing one is logged and skipped). */
void vm_clips_prompt(struct vm_clips *l, const char *name);
/** Appends a (its reference is the list's until it is handed to media_play). */
void vm_clips_audio(struct vm_clips *l, struct vm_audio *a);
/** Appends n the number as words ("twenty one"); beyond 999, digit by digit. */
void vm_clips_number(struct vm_clips *l, long n);
/** Appends the digits of s one by one; 0 when s is not all digits (nothing appended). */
int vm_clips_digits(struct vm_clips *l, const char *s);
/** Drops the references the list holds (after media_play took its own, or unused). */
void vm_clips_release(struct vm_clips *l);

/* ---- media.c: the RTP thread ---- */

struct media;
struct media_session;

enum media_event_type {
    MEDIA_PLAYED,         /* the clips of a media_play are all sent; token says which */
    MEDIA_DTMF,           /* an RFC 4733 telephone-event began; digit says which */
    MEDIA_RECORD_LIMIT,   /* the recording reached its longest */
    MEDIA_RECORD_SILENCE, /* the recording ended after silence */
};

struct media_event {
    uint64_t id; /* the session's (media_open) */
    enum media_event_type type;
    uint32_t token; /* MEDIA_PLAYED */
    char digit;     /* MEDIA_DTMF: 0-9, *, #, A-D */
};

/* What the remote end said in SDP: where to send, in which format, which payload types it
 * sends (RFC 3264: the answer's formats in both directions). */
struct media_remote {
    struct sockaddr_storage addr; /* its RTP address and port */
    socklen_t addrlen;
    int send_pt; /* the payload type to send (PCMU or PCMA, maybe under a dynamic number) */
    enum audio_law send_law;
    int pt_law[128]; /* received payload type -> law + 1 (0: not audio) */
    int te_pt;       /* the telephone-event payload type, -1: none */
};

/* A recording taken from a session (media_take_recording). */
struct media_recording {
    int16_t *samples; /* 8 kHz mono (free() it) */
    size_t n;
    int voiced; /* some of it was louder than silence */
};

/** Starts the media thread: RTP sockets bound to bind_host (a numeric address), ports from
 *  port_min to port_max (even ones). on_event is called on the media thread (without locks
 *  held) for each event. Returns 0, or -1 with one readable line in err. */
int media_create(struct media **out, const char *bind_host, int port_min, int port_max,
                 void (*on_event)(const struct media_event *ev, void *ctx), void *ctx, char *err,
                 size_t errlen);
/** Stops the thread and frees every session. */
void media_destroy(struct media *m);
/** Opens a session (id: the caller's, echoed in events): an RTP socket on a free port
 *  (*port). Returns the session, or NULL (no port free, out of memory). */
struct media_session *media_open(struct media *m, uint64_t id, int *port);
/** Sets (or changes, after a re-INVITE) where and how the session sends; sending and
 *  receiving start with the first call. */
void media_start(struct media *m, struct media_session *ms, const struct media_remote *r);
/** Queues the clips for sending (their references are taken: the caller keeps its own);
 *  with flush, what was queued before is dropped (its tokens never report). MEDIA_PLAYED
 *  with token follows once the last of them is sent. */
void media_play(struct media *m, struct media_session *ms, const struct vm_clip *clips, size_t n,
                int flush, uint32_t token);
/** Starts recording what the session receives, for at most max_ms, ended after silence_ms
 *  of silence (0: never): MEDIA_RECORD_LIMIT or MEDIA_RECORD_SILENCE then. */
void media_record(struct media *m, struct media_session *ms, int max_ms, int silence_ms);
/** Stops the recording and hands it over (out->samples NULL when there was none); the
 *  trailing silence that ended it is cut. */
void media_take_recording(struct media *m, struct media_session *ms, struct media_recording *out);
/** Closes the session and frees it (its socket, queue and recording). */
void media_close(struct media *m, struct media_session *ms);

/** Counters of the media thread for docs/performance.md and the metrics. */
struct media_stats {
    uint64_t sent, received, late_ticks; /* packets; timer ticks that came a tick late or more */
    int sessions;
};
void media_get_stats(struct media *m, struct media_stats *out);

/* ---- sdp.c: offer and answer (RFC 3264) for PCMU, PCMA and telephone-event ---- */

#define VM_TE_PT 101 /* our telephone-event payload type in our offers */

/** Writes sipbx's SDP (an offer of PCMU, PCMA and telephone-event; or, with answer_to, the
 *  answer to that offer) for media at addr:port into out, session version version.
 *  Returns 0, or 488 when the offer has no PCMU or PCMA audio stream, or -1 (bad SDP,
 *  no room). With an offer, fills r (except addr when the offer's address cannot be
 *  used: r->addrlen 0). */
int vm_sdp_make(const char *answer_to, size_t answer_len, const char *addr, int port,
                uint64_t session_id, unsigned version, char *out, size_t outlen,
                struct media_remote *r);
/** Reads the answer to our offer into r. Returns 0, 488 (no G.711 in it) or -1. */
int vm_sdp_read_answer(const char *sdp, size_t len, struct media_remote *r);

/* ---- mailbox.c: messages on disk and in the database ---- */

/* The state shared by the user agent, the mailbox code and the public functions. */
struct vm {
    const struct config *cfg;
    unsigned char key[32]; /* signs vm_target tokens */
    char dir[4096];        /* data_dir/voicemail */
    char db_path[4096];
    char media_host[256]; /* the address in our SDP */
    char proxy_uri[300];  /* where the user agent sends its requests */
    int port;             /* of the user agent, on 127.0.0.1 */
    struct events *events;
    struct media *media;
    struct store *st;      /* the user agent thread's connection */
    pthread_mutex_t lock;  /* counts, listener */
    struct strmap *counts; /* extension -> struct vm_count */
    void (*listener)(const char *ext, int new_count, int old_count, void *ctx);
    void *listener_ctx;
    struct vm_ua *ua; /* ua.c */
    pthread_t thread; /* the user agent's */
    int started, stopped;
};

/** Loads the counts of every mailbox (start-up). Returns 0 or EIO. */
int mailbox_load_counts(struct vm *vm);
/** Counts ext's mailbox again from the database and publishes a change. */
void mailbox_recount(struct vm *vm, const char *ext);
/** Writes a recording as a message of box (file, then row) and publishes the new counts.
 *  Returns 0, ENOENT (no such user any more), or an errno value (logged). */
int mailbox_save(struct vm *vm, const char *box, const char *caller, const char *caller_name,
                 const char *call_id, int64_t received_us, const int16_t *samples, size_t n);
/** Reads a message's audio (its WAV file) into a new vm_audio; NULL (logged) when it
 *  cannot be read. */
struct vm_audio *mailbox_audio(struct vm *vm, const char *file);
/** Deletes message id of box (row, then file) and publishes the new counts; 0 or ENOENT. */
int mailbox_delete(struct vm *vm, const char *box, int64_t id);
/** Marks message id of box heard and publishes the new counts. */
void mailbox_heard(struct vm *vm, const char *box, int64_t id);
/** Retention (every minute on the user agent thread): messages past the age limit, heard
 *  messages past the quota, files no row names; then every mailbox's counts again. */
void mailbox_retention(struct vm *vm);
/** The greeting callers of box hear: its own (a new vm_audio) or NULL for the default. */
struct vm_audio *mailbox_greeting(struct vm *vm, const char *box);

/* ---- ua.c: the user agent thread ---- */

/** Starts the user agent thread (nua on 127.0.0.1:vm->port). Returns 0, or -1 with a
 *  reason in err. */
int ua_start(struct vm *vm, char *err, size_t errlen);
/** Ends its calls and the thread (waits). */
void ua_stop(struct vm *vm);
/** The media thread's event sink (called on the media thread). */
void ua_media_event(const struct media_event *ev, void *ctx);

#endif
