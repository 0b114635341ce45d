/* The voicemail user agent: Sofia's nua on 127.0.0.1, in a thread of its own with its own
 * su_root, answering the calls the proxy relays to it. It takes only INVITEs that come from
 * this host and carry the token of vm_target (the mailbox, the operation and the Call-ID,
 * signed with a key derived from the database secret): nobody else can make it record into,
 * or play from, a mailbox. A call leaves a message (greeting, tone, recording until hang-up,
 * silence, '#' or the longest message) or listens to its own mailbox (new messages first;
 * 5 replays, 7 deletes, 6 or # goes on; DTMF as RFC 4733 telephone-events or SIP INFO).
 * Tokens are good for TOKEN_TTL seconds and once (the Call-IDs taken are remembered), so
 * one seen on the loopback or in a trace opens nothing. It runs the mailbox's disk and
 * database work too: only voicemail calls wait for it. */
#include "config/config.h"
#include "store/store.h"
#include "util/util.h"
#include "voicemail/vm_int.h"

#define SU_ROOT_MAGIC_T struct vm_ua
#define SU_TIMER_ARG_T  void
#define NUA_MAGIC_T     struct vm_ua
#define NUA_HMAGIC_T    struct vm_call

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sofia-sip/msg_addr.h>
#include <sofia-sip/nua.h>
#include <sofia-sip/nua_tag.h>
#include <sofia-sip/sip_header.h>
#include <sofia-sip/sip_status.h>
#include <sofia-sip/su.h>
#include <sofia-sip/su_tag_io.h>
#include <sofia-sip/su_wait.h>
#include <sofia-sip/url.h>

#define TOKEN_BYTES     12            /* 96 bits of HMAC-SHA256 in the Request-URI */
#define TOKEN_TTL       32            /* seconds a token is good for: the proxy sends it at once */
#define RETENTION_MS    60000         /* how often retention runs */
#define FIRST_RETENTION 5000          /* ... and first after start */
#define MENU_WAIT_MS    8000          /* silence after the menu before it is said again */
#define MENU_REPEATS    2             /* then the next message */
#define LISTEN_MAX_MS   (3600 * 1000) /* the longest a listening call lasts */
#define STOP_GRACE_MS   2000          /* at shutdown, how long BYEs may take before handles go */
#define TONE_HZ         1000.0
#define TONE_MS         400

enum state {
    ST_NEW,       /* INVITE answered, no ACK yet */
    ST_GREETING,  /* greeting and tone */
    ST_RECORDING, /* recording */
    ST_INTRO,     /* "you have ..." */
    ST_HEADER,    /* "message 2 from 1 0 1" */
    ST_AUDIO,     /* the message itself */
    ST_MENU,      /* the menu, then waiting for a key */
    ST_DELETED,   /* "message deleted", then the next one */
    ST_GOODBYE,   /* a last prompt, then BYE */
    ST_ENDED,     /* BYE sent or received */
};

struct listen_msg {
    int64_t id;
    char file[STORE_VM_FILE_MAX];
    char caller[STORE_EXT_MAX];
    int heard;
    int deleted;
};

struct vm_call {
    struct vm_call *next;
    struct vm_ua *ua;
    uint64_t id;
    nua_handle_t *nh;
    enum vm_op op;
    enum state state;
    char box[STORE_EXT_MAX], caller[STORE_EXT_MAX], caller_name[STORE_NAME_MAX];
    char call_id[256], why[16];
    struct media_session *ms;
    int media_port;
    uint64_t sdp_id;
    int offered;       /* our 200 carried an offer: the answer comes in the ACK */
    uint32_t play_seq; /* token of the media_play whose end is awaited */
    int64_t rec_start_us;
    su_timer_t *timer;
    /* listening */
    struct listen_msg *msgs;
    int nmsgs, cur, menu_repeats;
    struct vm_audio *audio; /* the current message's */
};

struct vm_ua {
    struct vm *vm;
    su_root_t *root;
    nua_t *nua;
    struct vm_call *calls;
    int ncalls;
    uint64_t next_id;
    su_timer_t *retention, *stop_timer;
    struct vm_audio *tone;
    int stopping, shutdown_sent;
    struct strmap *used; /* Call-IDs whose token was taken -> when (int64_t *): no replays */
    /* start-up handshake with vm_create's thread */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int ready; /* 1 running, -1 failed */
    char err[256];
};

/* ---- tokens ---- */

static const char *const op_names[] = {"leave", "listen"};

static void make_token(const struct vm *vm, enum vm_op op, const char *box, const char *why,
                       const char *call_id, long long ts, char out[2 * TOKEN_BYTES + 1])
{
    util_hmac_hexf(vm->key, sizeof vm->key, out, TOKEN_BYTES, "%s\n%s\n%s\n%lld\n%s", op_names[op],
                   box, why, ts, call_id);
}

int vm_target(const struct vm *vm, enum vm_op op, const char *box, const char *why,
              const char *call_id, char *out, size_t outlen)
{
    char token[2 * TOKEN_BYTES + 1];
    if (!util_valid_extension(box) || strspn(why, "abcdefghijklmnopqrstuvwxyz-") != strlen(why))
        return -1;
    long long ts = (long long)util_now();
    make_token(vm, op, box, why, call_id, ts, token);
    int n = snprintf(out, outlen, "sip:%s@127.0.0.1:%d;vm=%s%s%s;vmts=%lld;vmt=%s", box, vm->port,
                     op_names[op], why[0] ? ";why=" : "", why, ts, token);
    return n > 0 && (size_t)n < outlen ? 0 : -1;
}

/* True when the request came from this host (the proxy): a loopback address, or the address
 * the proxy listens on. */
static int from_proxy(struct vm_ua *ua)
{
    msg_t *msg = nua_current_request(ua->nua);
    su_addrinfo_t *ai = msg ? msg_addrinfo(msg) : NULL;
    if (!ai || !ai->ai_addr)
        return 0;
    struct util_addr a, mine;
    util_addr_from_sockaddr(ai->ai_addr, &a);
    if (a.family == AF_INET && a.bytes[0] == 127)
        return 1;
    static const unsigned char v6_loopback[16] = {[15] = 1};
    if (a.family == AF_INET6 && memcmp(a.bytes, v6_loopback, 16) == 0)
        return 1;
    return util_addr_parse(ua->vm->cfg->sip_host, &mine) == 0 && mine.family == a.family &&
           memcmp(mine.bytes, a.bytes, a.family == AF_INET ? 4 : 16) == 0;
}

static int drop_used(const char *key, void *val, void *ctx)
{
    (void)key;
    if (*(int64_t *)val < *(int64_t *)ctx) {
        free(val);
        return STRMAP_DROP;
    }
    return STRMAP_KEEP;
}

/* Checks the Request-URI of a new INVITE: the operation, mailbox and reason it names, signed
 * for this Call-ID a moment ago, and not taken before (a token read off the loopback or a
 * trace cannot be used again). Fills c; 0, or -1 with why set when it is not one the proxy
 * just made. */
static int check_target(struct vm_ua *ua, sip_t const *sip, struct vm_call *c, const char **why_not)
{
    url_t const *u = sip->sip_request->rq_url;
    char op[16], why[16] = "", got[2 * TOKEN_BYTES + 8], want[2 * TOKEN_BYTES + 1], ts[24];
    *why_not = "no valid token";
    if (!u->url_user || !util_valid_extension(u->url_user) || !sip->sip_call_id ||
        url_param(u->url_params, "vm", op, sizeof op) == 0 ||
        url_param(u->url_params, "vmts", ts, sizeof ts) == 0 ||
        url_param(u->url_params, "vmt", got, sizeof got) != 2 * TOKEN_BYTES + 1)
        return -1;
    char *end;
    long long t = strtoll(ts, &end, 10);
    int64_t now = util_now();
    if (*end || t < now - TOKEN_TTL || t > now + TOKEN_TTL) {
        *why_not = "an expired token";
        return -1;
    }
    if (url_param(u->url_params, "why", why, sizeof why) == 0)
        why[0] = '\0';
    if (strcmp(op, "leave") == 0)
        c->op = VM_LEAVE;
    else if (strcmp(op, "listen") == 0)
        c->op = VM_LISTEN;
    else
        return -1;
    make_token(ua->vm, c->op, u->url_user, why, sip->sip_call_id->i_id, t, want);
    if (util_ct_compare(got, want, 2 * TOKEN_BYTES) != 0)
        return -1;
    int64_t horizon = now - 2 * TOKEN_TTL;
    strmap_foreach(ua->used, drop_used, &horizon);
    if (strmap_get(ua->used, sip->sip_call_id->i_id)) {
        *why_not = "a token used before";
        return -1;
    }
    int64_t *when = util_xmalloc(sizeof *when);
    strmap_put(ua->used, sip->sip_call_id->i_id, when, NULL);
    *when = now;
    snprintf(c->box, sizeof c->box, "%s", u->url_user);
    snprintf(c->why, sizeof c->why, "%s", why);
    snprintf(c->call_id, sizeof c->call_id, "%s", sip->sip_call_id->i_id);
    return 0;
}

/* ---- calls ---- */

static struct vm_call *call_by_id(struct vm_ua *ua, uint64_t id)
{
    for (struct vm_call *c = ua->calls; c; c = c->next)
        if (c->id == id)
            return c;
    return NULL;
}

static void call_free(struct vm_ua *ua, struct vm_call *c)
{
    for (struct vm_call **pp = &ua->calls; *pp; pp = &(*pp)->next)
        if (*pp == c) {
            *pp = c->next;
            ua->ncalls--;
            break;
        }
    if (c->timer)
        su_timer_destroy(c->timer);
    media_close(ua->vm->media, c->ms);
    vm_audio_unref(c->audio);
    free(c->msgs);
    if (c->nh) {
        nua_handle_bind(c->nh, NULL);
        nua_handle_destroy(c->nh);
    }
    free(c);
}

/* Plays the clips (the list's references are dropped) and waits for their end in next. */
static void play(struct vm_call *c, struct vm_clips *l, int flush, enum state next)
{
    c->play_seq++;
    c->state = next;
    media_play(c->ua->vm->media, c->ms, l->c, l->n, flush, c->play_seq);
    vm_clips_release(l);
}

static void hang_up(struct vm_call *c)
{
    if (c->state == ST_ENDED)
        return;
    c->state = ST_ENDED;
    su_timer_reset(c->timer);
    nua_bye(c->nh, SIPTAG_REASON_STR("SIP;cause=200;text=\"Voicemail done\""), TAG_END());
}

/* A last prompt (may be NULL), then BYE. */
static void say_goodbye(struct vm_call *c, const char *prompt, int flush)
{
    struct vm_clips l = {.n = 0};
    if (prompt)
        vm_clips_prompt(&l, prompt);
    play(c, &l, flush, ST_GOODBYE);
}

/* ---- leaving a message ---- */

static void start_greeting(struct vm_call *c)
{
    struct vm *vm = c->ua->vm;
    int new_count, old_count;
    vm_counts(vm, c->box, &new_count, &old_count);
    if (new_count >= vm->cfg->voicemail_max_messages) {
        log_info("voicemail: mailbox %s is full (%d new messages): %s cannot leave one", c->box,
                 new_count, c->caller);
        struct vm_clips l = {.n = 0};
        vm_clips_prompt(&l, "box_full");
        play(c, &l, 0, ST_GOODBYE);
        return;
    }
    struct vm_clips l = {.n = 0};
    struct vm_audio *own = mailbox_greeting(vm, c->box);
    if (own) {
        vm_clips_audio(&l, own);
    } else {
        /* "The person at extension 1 0 1 is on another call. Please leave ..." */
        vm_clips_prompt(&l, "greet_person");
        if (!vm_clips_digits(&l, c->box)) {
            l.n = 0;
            vm_clips_prompt(&l, "greet_generic");
        }
        vm_clips_prompt(&l, strcmp(c->why, "user-busy") == 0 ? "greet_busy" : "greet_unavailable");
        vm_clips_prompt(&l, "greet_leave");
    }
    vm_clips_audio(&l, vm_audio_ref(c->ua->tone));
    play(c, &l, 0, ST_GREETING);
}

/* Ends the recording and stores it as a message (when anything was said). */
static void finish_recording(struct vm_call *c)
{
    if (c->state != ST_RECORDING)
        return;
    struct media_recording rec;
    media_take_recording(c->ua->vm->media, c->ms, &rec);
    c->state = ST_GOODBYE;
    if (!rec.samples || !rec.voiced) {
        log_info("voicemail: %s left no message for %s (silence)", c->caller, c->box);
    } else {
        int rc = mailbox_save(c->ua->vm, c->box, c->caller, c->caller_name, c->call_id,
                              c->rec_start_us, rec.samples, rec.n);
        if (rc == 0)
            log_info("voicemail: message of %.1f s from %s for %s (call %s)",
                     (double)rec.n / AUDIO_RATE, c->caller, c->box, c->call_id);
    }
    free(rec.samples);
}

/* ---- listening ---- */

static int collect_msg(const struct store_vm_msg *m, void *ctx)
{
    struct vm_call *c = ctx;
    c->msgs = util_xrealloc(c->msgs, (size_t)(c->nmsgs + 1) * sizeof *c->msgs);
    struct listen_msg *l = &c->msgs[c->nmsgs++];
    memset(l, 0, sizeof *l);
    l->id = m->id;
    l->heard = m->heard;
    snprintf(l->file, sizeof l->file, "%s", m->file);
    snprintf(l->caller, sizeof l->caller, "%s", m->caller);
    return 0;
}

static void play_message(struct vm_call *c, int flush);

static void next_message(struct vm_call *c, int flush)
{
    c->cur++;
    while (c->cur < c->nmsgs && c->msgs[c->cur].deleted)
        c->cur++;
    if (c->cur >= c->nmsgs) {
        say_goodbye(c, "no_more", flush);
        return;
    }
    play_message(c, flush);
}

/* "Message 2 from 1 0 1", then (ST_HEADER's end) the message. */
static void play_message(struct vm_call *c, int flush)
{
    struct listen_msg *m = &c->msgs[c->cur];
    su_timer_reset(c->timer);
    c->menu_repeats = 0;
    vm_audio_unref(c->audio);
    c->audio = mailbox_audio(c->ua->vm, m->file);
    if (!c->audio) {
        next_message(c, flush); /* gone meanwhile (deleted over REST), or unreadable */
        return;
    }
    struct vm_clips l = {.n = 0};
    vm_clips_prompt(&l, "message");
    vm_clips_number(&l, c->cur + 1);
    if (m->caller[0] && strspn(m->caller, "0123456789") == strlen(m->caller)) {
        vm_clips_prompt(&l, "from");
        vm_clips_digits(&l, m->caller);
    }
    play(c, &l, flush, ST_HEADER);
}

static void play_audio(struct vm_call *c, int flush)
{
    struct listen_msg *m = &c->msgs[c->cur];
    if (!m->heard) {
        mailbox_heard(c->ua->vm, c->box, m->id);
        m->heard = 1;
    }
    struct vm_clips l = {.n = 0};
    vm_clips_audio(&l, vm_audio_ref(c->audio));
    play(c, &l, flush, ST_AUDIO);
}

static void play_menu(struct vm_call *c)
{
    struct vm_clips l = {.n = 0};
    vm_clips_prompt(&l, "menu");
    play(c, &l, 0, ST_MENU);
}

static void on_menu_timeout(struct vm_ua *ua, su_timer_t *t, void *arg)
{
    (void)ua;
    (void)t;
    struct vm_call *c = arg;
    if (c->state != ST_MENU)
        return;
    if (++c->menu_repeats < MENU_REPEATS)
        play_menu(c);
    else
        next_message(c, 0);
}

static void start_listening(struct vm_call *c)
{
    struct vm *vm = c->ua->vm;
    if (store_vm_list(vm->st, c->box, collect_msg, c) != 0)
        log_error("voicemail: cannot read the mailbox of %s", c->box);
    int new_count = 0, old_count = 0;
    for (int i = 0; i < c->nmsgs; i++)
        c->msgs[i].heard ? old_count++ : new_count++;
    struct vm_clips l = {.n = 0};
    if (c->nmsgs == 0) {
        vm_clips_prompt(&l, "no_messages");
        vm_clips_prompt(&l, "goodbye");
        play(c, &l, 0, ST_GOODBYE);
        return;
    }
    /* "You have 2 new messages and 1 saved message." */
    vm_clips_prompt(&l, "you_have");
    if (new_count) {
        vm_clips_number(&l, new_count);
        vm_clips_prompt(&l, new_count == 1 ? "new_message" : "new_messages");
    }
    if (old_count) {
        if (new_count)
            vm_clips_prompt(&l, "and");
        vm_clips_number(&l, old_count);
        vm_clips_prompt(&l, old_count == 1 ? "old_message" : "old_messages");
    }
    c->cur = 0;
    play(c, &l, 0, ST_INTRO);
}

/* A key the caller pressed (RFC 4733 or INFO). */
static void on_digit(struct vm_call *c, char digit)
{
    log_debug("voicemail: call %s: key %c", c->call_id, digit);
    if (c->op == VM_LEAVE) {
        if (digit == '#' && c->state == ST_RECORDING) {
            finish_recording(c);
            say_goodbye(c, "goodbye", 0);
        }
        return;
    }
    if (c->state == ST_INTRO && strchr("5679#", digit)) {
        play_message(c, 1); /* skip the introduction */
        return;
    }
    if (c->state != ST_HEADER && c->state != ST_AUDIO && c->state != ST_MENU)
        return;
    struct listen_msg *m = &c->msgs[c->cur];
    switch (digit) {
    case '5':
        su_timer_reset(c->timer);
        play_audio(c, 1);
        break;
    case '7': {
        su_timer_reset(c->timer);
        if (mailbox_delete(c->ua->vm, c->box, m->id) == 0)
            log_info("voicemail: %s deleted message %lld", c->box, (long long)m->id);
        m->deleted = 1;
        struct vm_clips l = {.n = 0};
        vm_clips_prompt(&l, "deleted");
        play(c, &l, 1, ST_DELETED);
        break;
    }
    case '6':
    case '#':
        next_message(c, 1);
        break;
    default:
        break;
    }
}

/* ---- media events (posted from the media thread) ---- */

static void on_played(struct vm_call *c)
{
    switch (c->state) {
    case ST_GREETING:
        c->state = ST_RECORDING;
        c->rec_start_us = util_now_us();
        media_record(c->ua->vm->media, c->ms, c->ua->vm->cfg->voicemail_max_seconds * 1000,
                     c->ua->vm->cfg->voicemail_silence_seconds * 1000);
        break;
    case ST_GOODBYE:
        hang_up(c);
        break;
    case ST_INTRO:
        play_message(c, 0);
        break;
    case ST_HEADER:
        play_audio(c, 0);
        break;
    case ST_AUDIO:
        play_menu(c);
        break;
    case ST_MENU:
        su_timer_set_interval(c->timer, on_menu_timeout, c, MENU_WAIT_MS);
        break;
    case ST_DELETED:
        next_message(c, 0);
        break;
    default:
        break;
    }
}

struct posted {
    struct media_event ev;
};

static void on_media_msg(struct vm_ua *ua, su_msg_r msg, su_msg_arg_t *arg)
{
    (void)msg;
    const struct media_event *ev = &((struct posted *)arg)->ev;
    struct vm_call *c = call_by_id(ua, ev->id);
    if (!c || c->state == ST_ENDED)
        return;
    switch (ev->type) {
    case MEDIA_PLAYED:
        if (ev->token == c->play_seq)
            on_played(c);
        break;
    case MEDIA_DTMF:
        on_digit(c, ev->digit);
        break;
    case MEDIA_RECORD_LIMIT:
    case MEDIA_RECORD_SILENCE:
        log_info("voicemail: message for %s ended by %s", c->box,
                 ev->type == MEDIA_RECORD_LIMIT ? "its length limit" : "silence");
        finish_recording(c);
        say_goodbye(c, "goodbye", 0);
        break;
    }
}

void ua_media_event(const struct media_event *ev, void *ctx)
{
    struct vm *vm = ctx;
    struct vm_ua *ua = vm->ua;
    su_msg_r m = SU_MSG_R_INIT;
    if (su_msg_new(m, sizeof(struct posted)) != 0) {
        log_error("voicemail: out of memory: a media event is lost");
        return;
    }
    ((struct posted *)su_msg_data(m))->ev = *ev;
    if (su_msg_send_to(m, su_root_task(ua->root), on_media_msg) != 0) {
        su_msg_destroy(m);
        log_error("voicemail: cannot pass a media event to the user agent");
    }
}

/* ---- SIP ---- */

/* The SDP answer (or our offer) for c into out; the status to refuse with, or 0. */
static int session_sdp(struct vm_call *c, sip_t const *sip, char *out, size_t outlen)
{
    struct vm *vm = c->ua->vm;
    struct media_remote r;
    memset(&r, 0, sizeof r);
    const char *body = sip->sip_payload ? sip->sip_payload->pl_data : NULL;
    size_t len = sip->sip_payload ? sip->sip_payload->pl_len : 0;
    int is_sdp = body && len && sip->sip_content_type && sip->sip_content_type->c_type &&
                 strcasecmp(sip->sip_content_type->c_type, "application/sdp") == 0;
    int rc = vm_sdp_make(is_sdp ? body : NULL, len, vm->media_host, c->media_port, c->sdp_id, 1,
                         out, outlen, &r);
    if (rc == 488)
        return 488;
    if (rc != 0)
        return 400;
    c->offered = !is_sdp;
    if (is_sdp)
        media_start(vm->media, c->ms, &r);
    return 0;
}

static void respond(nua_handle_t *nh, int status, const char *phrase)
{
    nua_respond(nh, status, phrase, SIPTAG_SERVER_STR("sipbx/" SIPBX_VERSION " voicemail"),
                TAG_END());
}

static void on_invite(struct vm_ua *ua, nua_handle_t *nh, struct vm_call *c, sip_t const *sip)
{
    char sdp[2048];
    if (c) { /* a re-INVITE: the same answer, to a new offer if there is one */
        int st = session_sdp(c, sip, sdp, sizeof sdp);
        if (st)
            respond(nh, st, sip_status_phrase(st));
        else
            nua_respond(nh, SIP_200_OK, SIPTAG_CONTENT_TYPE_STR("application/sdp"),
                        SIPTAG_PAYLOAD_STR(sdp), TAG_END());
        return;
    }
    char source[64] = "?";
    msg_t *req = nua_current_request(ua->nua);
    su_addrinfo_t *ai = req ? msg_addrinfo(req) : NULL;
    if (ai && ai->ai_addr) {
        struct util_addr a;
        util_addr_from_sockaddr(ai->ai_addr, &a);
        util_addr_format(&a, source, sizeof source);
    }
    c = util_xcalloc(1, sizeof *c);
    c->ua = ua;
    const char *why_not = "not from this host";
    if (!from_proxy(ua) || check_target(ua, sip, c, &why_not) != 0) {
        /* Not made by the proxy: refused, and nothing about the mailbox said. */
        log_warn("voicemail: refused an INVITE from %s to %s: %s", source,
                 sip->sip_request->rq_url->url_user ? sip->sip_request->rq_url->url_user : "?",
                 why_not);
        free(c);
        respond(nh, 403, "Forbidden");
        nua_handle_destroy(nh);
        return;
    }
    if (ua->stopping || ua->ncalls >= ua->vm->cfg->voicemail_max_calls) {
        log_warn("voicemail: %s, call %s refused", ua->stopping ? "stopping" : "too many calls",
                 c->call_id);
        free(c);
        respond(nh, 503, "Voicemail Busy");
        nua_handle_destroy(nh);
        return;
    }
    struct store_user u;
    if (store_user_get(ua->vm->st, c->box, &u) != 0) {
        free(c);
        respond(nh, SIP_404_NOT_FOUND);
        nua_handle_destroy(nh);
        return;
    }
    c->id = ++ua->next_id;
    c->nh = nh;
    if (sip->sip_from && sip->sip_from->a_url->url_user)
        snprintf(c->caller, sizeof c->caller, "%s", sip->sip_from->a_url->url_user);
    if (sip->sip_from && sip->sip_from->a_display) {
        const char *d = sip->sip_from->a_display;
        size_t n = strlen(d);
        if (n >= 2 && d[0] == '"' && d[n - 1] == '"')
            snprintf(c->caller_name, sizeof c->caller_name, "%.*s", (int)(n - 2), d + 1);
        else
            snprintf(c->caller_name, sizeof c->caller_name, "%s", d);
    }
    util_random(&c->sdp_id, sizeof c->sdp_id);
    c->sdp_id >>= 1; /* SDP's session id is a decimal that fits a signed 64-bit number */
    c->timer = su_timer_create(su_root_task(ua->root), 0);
    c->ms = media_open(ua->vm->media, c->id, &c->media_port);
    c->next = ua->calls;
    ua->calls = c;
    ua->ncalls++;
    nua_handle_bind(nh, c);
    if (!c->timer || !c->ms) {
        log_error("voicemail: no RTP port free (%d to %d) or no memory: call %s refused",
                  ua->vm->cfg->rtp_port_min, ua->vm->cfg->rtp_port_max, c->call_id);
        respond(nh, 503, "No Media Port");
        c->nh = NULL;
        nua_handle_destroy(nh);
        call_free(ua, c);
        return;
    }
    int st = session_sdp(c, sip, sdp, sizeof sdp);
    if (st) {
        respond(nh, st, st == 488 ? "Not Acceptable Here: PCMU or PCMA only" : "Bad SDP");
        c->nh = NULL;
        nua_handle_destroy(nh);
        call_free(ua, c);
        return;
    }
    log_info("voicemail: %s call %s from %s for mailbox %s", op_names[c->op], c->call_id, c->caller,
             c->box);
    nua_respond(nh, SIP_200_OK, SIPTAG_CONTENT_TYPE_STR("application/sdp"), SIPTAG_PAYLOAD_STR(sdp),
                SIPTAG_SERVER_STR("sipbx/" SIPBX_VERSION " voicemail"), TAG_END());
}

/* ACK of our 200: with the answer to our offer when the INVITE had none. */
static void on_ack(struct vm_call *c, sip_t const *sip)
{
    if (!c->offered || !sip || !sip->sip_payload || !sip->sip_payload->pl_len)
        return;
    struct media_remote r;
    memset(&r, 0, sizeof r);
    if (vm_sdp_read_answer(sip->sip_payload->pl_data, sip->sip_payload->pl_len, &r) == 0) {
        media_start(c->ua->vm->media, c->ms, &r);
        c->offered = 0;
    } else {
        log_warn("voicemail: call %s: no G.711 in the answer to our offer", c->call_id);
        hang_up(c);
    }
}

/* SIP INFO with a key: application/dtmf-relay ("Signal=5") or application/dtmf ("5"). */
static void on_info(struct vm_ua *ua, nua_handle_t *nh, struct vm_call *c, sip_t const *sip)
{
    const char *type = sip->sip_content_type ? sip->sip_content_type->c_type : NULL;
    const char *body = sip->sip_payload ? sip->sip_payload->pl_data : "";
    size_t len = sip->sip_payload ? sip->sip_payload->pl_len : 0;
    char text[128];
    snprintf(text, sizeof text, "%.*s", (int)(len < sizeof text ? len : sizeof text - 1), body);
    char digit = 0;
    if (type && strcasecmp(type, "application/dtmf-relay") == 0) {
        const char *s = strcasestr(text, "Signal=");
        if (s) {
            s += 7;
            s += strspn(s, " \t");
            digit = strncmp(s, "10", 2) == 0 ? '*' : strncmp(s, "11", 2) == 0 ? '#' : *s;
        }
    } else if (type && strcasecmp(type, "application/dtmf") == 0) {
        const char *s = text + strspn(text, " \t\r\n");
        digit = *s;
    } else {
        nua_respond(nh, SIP_415_UNSUPPORTED_MEDIA, NUTAG_WITH_THIS(ua->nua),
                    SIPTAG_ACCEPT_STR("application/dtmf-relay, application/dtmf"), TAG_END());
        return;
    }
    if (digit >= 'a' && digit <= 'd')
        digit = (char)(digit - 32);
    if (!digit || !strchr("0123456789*#ABCD", digit)) {
        nua_respond(nh, 400, "No DTMF Signal", NUTAG_WITH_THIS(ua->nua), TAG_END());
        return;
    }
    nua_respond(nh, SIP_200_OK, NUTAG_WITH_THIS(ua->nua), TAG_END());
    if (c && c->state != ST_ENDED)
        on_digit(c, digit);
}

/* The call is over (BYE either way, or it never got going). */
static void on_terminated(struct vm_ua *ua, struct vm_call *c)
{
    if (c->state == ST_RECORDING)
        finish_recording(c); /* hang-up is how most messages end */
    c->state = ST_ENDED;
    call_free(ua, c);
}

static void on_listen_timeout(struct vm_ua *ua, su_timer_t *t, void *arg)
{
    (void)ua;
    (void)t;
    struct vm_call *c = arg;
    log_info("voicemail: call %s reached its longest (%d s)", c->call_id, LISTEN_MAX_MS / 1000);
    hang_up(c);
}

static void on_ready(struct vm_call *c)
{
    if (c->state != ST_NEW)
        return;
    if (c->op == VM_LEAVE) {
        start_greeting(c);
    } else {
        start_listening(c);
    }
}

static void maybe_shutdown(struct vm_ua *ua);

static void on_event(nua_event_t event, int status, char const *phrase, nua_t *nua,
                     struct vm_ua *ua, nua_handle_t *nh, struct vm_call *c, sip_t const *sip,
                     tagi_t tags[])
{
    (void)nua;
    switch (event) {
    case nua_i_invite:
        on_invite(ua, nh, c, sip);
        break;
    case nua_i_ack:
        if (c)
            on_ack(c, sip);
        break;
    case nua_i_info:
        if (!c) {
            nua_respond(nh, SIP_481_NO_TRANSACTION, NUTAG_WITH_THIS(ua->nua), TAG_END());
            nua_handle_destroy(nh);
        } else {
            on_info(ua, nh, c, sip);
        }
        break;
    case nua_i_state: {
        int state = nua_callstate_init;
        tl_gets(tags, NUTAG_CALLSTATE_REF(state), TAG_END());
        if (!c)
            break;
        if (state == nua_callstate_ready) {
            on_ready(c);
            if (c->op == VM_LISTEN && c->state != ST_ENDED)
                su_timer_set_interval(c->timer, on_listen_timeout, c, LISTEN_MAX_MS);
        } else if (state == nua_callstate_terminated) {
            on_terminated(ua, c);
            maybe_shutdown(ua);
        }
        break;
    }
    case nua_i_bye:
        if (c && c->state == ST_RECORDING)
            finish_recording(c);
        if (c)
            c->state = ST_ENDED;
        break;
    case nua_r_shutdown:
        if (status >= 200) {
            su_timer_reset(ua->stop_timer);
            su_root_break(ua->root);
        }
        break;
    case nua_i_terminated:
    case nua_r_bye:
        break;
    default:
        if (status >= 300 && event != nua_i_error)
            log_debug("voicemail: %s: %d %s", nua_event_name(event), status, phrase);
        if (nua_event_is_incoming_request(event) && !c && nh)
            nua_handle_destroy(nh); /* out-of-dialog requests nua answered itself */
        break;
    }
}

/* ---- retention, start and stop ---- */

static void on_retention(struct vm_ua *ua, su_timer_t *t, void *arg)
{
    (void)t;
    (void)arg;
    mailbox_retention(ua->vm);
    su_timer_set_interval(ua->retention, on_retention, NULL, RETENTION_MS);
}

static void on_stop_grace(struct vm_ua *ua, su_timer_t *t, void *arg)
{
    (void)t;
    (void)arg;
    /* BYEs not answered in time: the handles go, and the shutdown completes. */
    while (ua->calls)
        call_free(ua, ua->calls);
    nua_shutdown(ua->nua);
    ua->shutdown_sent = 1;
}

/* Once the calls are gone during a stop, nua is shut down. */
static void maybe_shutdown(struct vm_ua *ua)
{
    if (ua->stopping && !ua->calls && !ua->shutdown_sent) {
        ua->shutdown_sent = 1;
        nua_shutdown(ua->nua);
    }
}

static void on_stop_msg(struct vm_ua *ua, su_msg_r msg, su_msg_arg_t *arg)
{
    (void)msg;
    (void)arg;
    ua->stopping = 1;
    su_timer_reset(ua->retention);
    for (struct vm_call *c = ua->calls; c; c = c->next) {
        finish_recording(c); /* a message being left is kept */
        if (c->state == ST_NEW) {
            c->state = ST_ENDED;
            continue; /* not answered yet: nua ends it with the shutdown */
        }
        hang_up(c);
    }
    su_timer_set_interval(ua->stop_timer, on_stop_grace, NULL, STOP_GRACE_MS);
    maybe_shutdown(ua);
}

static void ready(struct vm_ua *ua, int state, const char *err)
{
    pthread_mutex_lock(&ua->lock);
    ua->ready = state;
    if (err)
        snprintf(ua->err, sizeof ua->err, "%s", err);
    pthread_cond_signal(&ua->cond);
    pthread_mutex_unlock(&ua->lock);
}

static void *ua_thread(void *arg)
{
    struct vm_ua *ua = arg;
    struct vm *vm = ua->vm;
    char url[64], err[256];
    pthread_setname_np(pthread_self(), "sipbx-voicemail");
    ua->root = su_root_create(ua);
    if (!ua->root) {
        ready(ua, -1, "cannot create the voicemail event loop");
        return NULL;
    }
    su_root_threading(ua->root, 0); /* nua's stack runs on this thread too */
    snprintf(url, sizeof url, "sip:127.0.0.1:%d;transport=udp", vm->port);
    ua->nua = nua_create(ua->root, on_event, ua, NUTAG_URL(url), NUTAG_PROXY(vm->proxy_uri),
                         NUTAG_MEDIA_ENABLE(0), NUTAG_APPL_METHOD("INFO"),
                         NUTAG_ALLOW("INVITE, ACK, BYE, CANCEL, OPTIONS, INFO, UPDATE"),
                         NUTAG_ENABLEMESSAGE(0), NUTAG_AUTOANSWER(0), NUTAG_AUTOACK(1),
                         NUTAG_SESSION_REFRESHER(nua_remote_refresher),
                         SIPTAG_USER_AGENT_STR("sipbx/" SIPBX_VERSION " voicemail"), TAG_END());
    ua->retention = su_timer_create(su_root_task(ua->root), 0);
    ua->stop_timer = su_timer_create(su_root_task(ua->root), 0);
    if (!ua->nua || !ua->retention || !ua->stop_timer) {
        snprintf(err, sizeof err, "cannot start the voicemail user agent on 127.0.0.1:%d%s",
                 vm->port, ua->nua ? "" : " (port in use?)");
        if (ua->retention)
            su_timer_destroy(ua->retention);
        if (ua->stop_timer)
            su_timer_destroy(ua->stop_timer);
        if (ua->nua) {
            nua_shutdown(ua->nua);
            su_root_run(ua->root); /* until nua_r_shutdown */
            nua_destroy(ua->nua);
        }
        su_root_destroy(ua->root);
        ua->root = NULL;
        ready(ua, -1, err);
        return NULL;
    }
    su_timer_set_interval(ua->retention, on_retention, NULL, FIRST_RETENTION);
    ready(ua, 1, NULL);
    su_root_run(ua->root);
    while (ua->calls)
        call_free(ua, ua->calls);
    su_timer_destroy(ua->retention);
    su_timer_destroy(ua->stop_timer);
    nua_destroy(ua->nua);
    su_root_destroy(ua->root);
    ua->root = NULL;
    return NULL;
}

int ua_start(struct vm *vm, char *err, size_t errlen)
{
    struct vm_ua *ua = calloc(1, sizeof *ua);
    if (!ua) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    ua->vm = vm;
    if (strmap_create(&ua->used) != 0) {
        free(ua);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    pthread_mutex_init(&ua->lock, NULL);
    pthread_cond_init(&ua->cond, NULL);
    size_t tone_n = AUDIO_RATE * TONE_MS / 1000;
    ua->tone = vm_audio_new(tone_n);
    if (!ua->tone) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    audio_tone(ua->tone->samples, tone_n, TONE_HZ, 8000);
    vm->ua = ua;
    if (pthread_create(&vm->thread, NULL, ua_thread, ua) != 0) {
        snprintf(err, errlen, "cannot start the voicemail thread");
        goto fail;
    }
    pthread_mutex_lock(&ua->lock);
    while (ua->ready == 0)
        pthread_cond_wait(&ua->cond, &ua->lock);
    pthread_mutex_unlock(&ua->lock);
    if (ua->ready < 0) {
        pthread_join(vm->thread, NULL);
        snprintf(err, errlen, "%s", ua->err);
        goto fail;
    }
    vm->started = 1;
    return 0;
fail:
    vm->ua = NULL;
    vm_audio_unref(ua->tone);
    strmap_destroy(ua->used, free);
    pthread_mutex_destroy(&ua->lock);
    pthread_cond_destroy(&ua->cond);
    free(ua);
    return -1;
}

void ua_stop(struct vm *vm)
{
    struct vm_ua *ua = vm->ua;
    if (!ua)
        return;
    if (vm->started) {
        su_msg_r m = SU_MSG_R_INIT;
        if (su_msg_new(m, 1) != 0 || su_msg_send_to(m, su_root_task(ua->root), on_stop_msg) != 0) {
            su_msg_destroy(m);
            log_error("voicemail: cannot ask the user agent to stop");
        }
        pthread_join(vm->thread, NULL);
        vm->started = 0;
    }
    vm->ua = NULL;
    vm_audio_unref(ua->tone);
    strmap_destroy(ua->used, free);
    pthread_mutex_destroy(&ua->lock);
    pthread_cond_destroy(&ua->cond);
    free(ua);
}
