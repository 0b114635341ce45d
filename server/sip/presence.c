/* What each user's presence and busy lamp say: presence documents phones PUBLISH (RFC 3903,
 * kept with their entity tags and expiry), the state derived from registrations and calls
 * where nothing is published (RFC 3856), and the dialogs of the live call table as
 * dialog-info (RFC 4235). Changes are gathered and flushed once per turn of the SIP loop:
 * an event for the dashboard and NOTIFYs to watchers (subs.c) where something changed. */
#include "events/events.h"
#include "sip/sip_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <sofia-sip/msg_header.h>
#include <sofia-sip/sip_header.h>
#include <sofia-sip/sip_status.h>
#include <sofia-sip/su_md5.h>

/* A terminated dialog stays in the busy lamp's document this long, so that watchers see
 * "terminated" before the dialog goes (RFC 4235 section 3.7.1), also when the NOTIFY that
 * says it waits for the one before it. */
#define TERMINATED_KEEP_S 2
#define PIDF_TYPE         "application/pidf+xml"

/* One published presence document (RFC 3903): an entity tag of the user's. */
struct publication {
    struct publication *next; /* the user's other publications */
    char etag[40];
    char *body;
    int64_t published_at, expires_at;
};

/* One side of a live call as a busy lamp shows it: the dialog of ext (the caller, or the
 * user whose phone rings or answered). */
struct pdialog {
    char ext[STORE_EXT_MAX];
    char other[STORE_EXT_MAX]; /* the extension at the other end ("" when not one of ours) */
    char other_name[STORE_DISPLAY_NAME_MAX]; /* the caller's display name, for the callee's lamp */
    char local_target[512];                  /* ext's device in the call, when known */
    int initiator;                           /* ext placed the call */
    char state[12];                          /* trying, early, confirmed, terminated */
    int64_t ended;                           /* monotonic second it ended, 0 while up */
};

/* A call as the busy lamps follow it: Call-ID, tags, and its two dialogs. */
struct pcall {
    char call_id[256];
    char from_tag[128];     /* the caller's tag */
    char to_tag[128];       /* the tag of the device that rings or answered ("" before) */
    struct pdialog side[2]; /* [0] the caller, [1] the callee side (ext "" when none) */
};

_Static_assert(sizeof(struct pcall) <= UTIL_POOL_MAX, "a busy-lamp entry must fit the pool");

/* What the dashboard shows of a user; an event goes out when it changes. */
struct summary {
    char basic[8];  /* open, closed */
    char note[128]; /* the published note, or the one sipbx derived */
    int busy;       /* in an answered call */
    char dialog[12];
    int published;
};

struct pres {
    struct strmap *pubs;      /* extension -> struct publication list */
    struct strmap *calls;     /* Call-ID -> struct pcall */
    struct strmap *dirty;     /* extensions whose state may have changed since the flush */
    struct strmap *summaries; /* extension -> struct summary last announced */
    su_timer_t *flush;
    int flush_armed;
    size_t npubs;
};

static void on_flush(su_root_magic_t *magic, su_timer_t *t, void *arg);

/* ---- XML ---- */

/* Appends s with the five XML specials escaped (attribute values and text alike). */
static void xml_text(struct buf *b, const char *s)
{
    for (; s && *s; s++) {
        switch (*s) {
        case '<':
            buf_str(b, "&lt;");
            break;
        case '>':
            buf_str(b, "&gt;");
            break;
        case '&':
            buf_str(b, "&amp;");
            break;
        case '"':
            buf_str(b, "&quot;");
            break;
        case '\'':
            buf_str(b, "&apos;");
            break;
        default:
            buf_add(b, s, 1);
        }
    }
}

/* The text of the first element named name (any namespace prefix) in doc, without markup
 * and with the predefined entities undone, into out ("" when there is none). Enough for
 * the dashboard's view of a published PIDF: <basic> and <note>. */
static void xml_first(const char *doc, const char *name, char *out, size_t outlen)
{
    out[0] = '\0';
    size_t nl = strlen(name);
    for (const char *p = strchr(doc, '<'); p; p = strchr(p + 1, '<')) {
        const char *tag = p + 1;
        const char *colon = tag;
        while (*colon && *colon != '>' && *colon != ' ' && *colon != ':' && *colon != '/')
            colon++;
        const char *local = *colon == ':' ? colon + 1 : tag;
        if (strncmp(local, name, nl) != 0 || (local[nl] != '>' && local[nl] != ' '))
            continue;
        const char *start = strchr(local, '>');
        const char *end = start ? strchr(start + 1, '<') : NULL;
        if (!start || !end)
            return;
        size_t k = 0;
        for (const char *c = start + 1; c < end && k + 1 < outlen; c++) {
            static const struct {
                const char *ent;
                char ch;
            } ents[] = {
                {"&lt;", '<'}, {"&gt;", '>'}, {"&amp;", '&'}, {"&quot;", '"'}, {"&apos;", '\''}};
            char ch = *c;
            for (size_t e = 0; e < sizeof ents / sizeof ents[0]; e++) {
                size_t el = strlen(ents[e].ent);
                if ((size_t)(end - c) >= el && strncmp(c, ents[e].ent, el) == 0) {
                    ch = ents[e].ch;
                    c += el - 1;
                    break;
                }
            }
            out[k++] = ch;
        }
        out[k] = '\0';
        /* Trim white space around the text. */
        char *a = out;
        while (*a == ' ' || *a == '\n' || *a == '\r' || *a == '\t')
            a++;
        memmove(out, a, strlen(a) + 1);
        k = strlen(out);
        while (k && (out[k - 1] == ' ' || out[k - 1] == '\n' || out[k - 1] == '\r' ||
                     out[k - 1] == '\t'))
            out[--k] = '\0';
        return;
    }
}

/* ---- the state of a user ---- */

/* The newest publication of ext that has not expired, or NULL. */
static const struct publication *current_pub(struct sip *s, const char *ext)
{
    const struct publication *best = NULL;
    int64_t now = util_now();
    for (const struct publication *p = strmap_get(s->pres->pubs, ext); p; p = p->next)
        if (p->expires_at > now && (!best || p->published_at >= best->published_at))
            best = p;
    return best;
}

/* How busy a dialog state is, to pick the one a lamp shows. */
static int state_rank(const char *state)
{
    static const char *const order[] = {"terminated", "trying", "early", "confirmed"};
    for (int i = 0; i < 4; i++)
        if (strcmp(state, order[i]) == 0)
            return i;
    return -1;
}

struct lamp_ctx {
    const char *ext;
    const char *best;
};

static int lamp_one(const char *key, void *val, void *arg)
{
    (void)key;
    struct pcall *pc = val;
    struct lamp_ctx *lc = arg;
    for (int i = 0; i < 2; i++) {
        const struct pdialog *d = &pc->side[i];
        if (strcmp(d->ext, lc->ext) == 0 &&
            (!lc->best || state_rank(d->state) > state_rank(lc->best)))
            lc->best = d->state;
    }
    return STRMAP_KEEP;
}

static void summarize(struct sip *s, const char *ext, struct summary *out)
{
    memset(out, 0, sizeof *out);
    struct lamp_ctx lc = {ext, NULL};
    strmap_foreach(s->pres->calls, lamp_one, &lc);
    snprintf(out->dialog, sizeof out->dialog, "%s",
             lc.best && strcmp(lc.best, "terminated") != 0 ? lc.best : "idle");
    out->busy = calls_busy(s, ext) > 0;
    const struct publication *p = current_pub(s, ext);
    if (p) {
        out->published = 1;
        xml_first(p->body, "basic", out->basic, sizeof out->basic);
        if (strcmp(out->basic, "open") != 0 && strcmp(out->basic, "closed") != 0)
            snprintf(out->basic, sizeof out->basic, "%s", "closed");
        xml_first(p->body, "note", out->note, sizeof out->note);
        return;
    }
    struct reg_target t;
    int registered = reg_targets(s, ext, &t, 1) > 0;
    snprintf(out->basic, sizeof out->basic, "%s", registered ? "open" : "closed");
    snprintf(out->note, sizeof out->note, "%s",
             !registered ? "Offline"
             : out->busy ? "On the phone"
                         : "Available");
}

static cJSON *summary_json(const char *ext, const struct summary *sm, size_t watchers)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    cJSON_AddStringToObject(o, "extension", ext);
    cJSON_AddStringToObject(o, "basic", sm->basic);
    cJSON_AddStringToObject(o, "note", sm->note);
    cJSON_AddBoolToObject(o, "busy", sm->busy);
    cJSON_AddStringToObject(o, "dialog", sm->dialog);
    cJSON_AddStringToObject(o, "source", sm->published ? "published" : "registration");
    cJSON_AddNumberToObject(o, "watchers", (double)watchers);
    return o;
}

void pres_pidf(struct sip *s, const char *ext, struct buf *out)
{
    const struct publication *p = current_pub(s, ext);
    if (p) {
        buf_str(out, p->body);
        return;
    }
    struct summary sm;
    summarize(s, ext, &sm);
    buf_str(out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                 "<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" "
                 "xmlns:dm=\"urn:ietf:params:xml:ns:pidf:data-model\" "
                 "xmlns:rpid=\"urn:ietf:params:xml:ns:pidf:rpid\" entity=\"sip:");
    xml_text(out, ext);
    buf_str(out, "@");
    xml_text(out, s->domain);
    buf_str(out, "\">\n <tuple id=\"sipbx\">\n  <status><basic>");
    buf_str(out, sm.basic);
    buf_str(out, "</basic></status>\n  <note>");
    xml_text(out, sm.note);
    buf_str(out, "</note>\n </tuple>\n <dm:person id=\"p");
    xml_text(out, ext);
    buf_str(out, "\">\n");
    if (strcmp(sm.basic, "open") == 0)
        buf_str(out, sm.busy ? "  <rpid:activities><rpid:on-the-phone/></rpid:activities>\n"
                             : "  <rpid:activities><rpid:unknown/></rpid:activities>\n");
    buf_str(out, "  <dm:note>");
    xml_text(out, sm.note);
    buf_str(out, "</dm:note>\n </dm:person>\n</presence>\n");
}

struct dinfo_ctx {
    struct sip *s;
    const char *ext;
    struct buf *out;
};

static void identity(struct buf *b, struct sip *s, const char *ext)
{
    buf_str(b, "sip:");
    xml_text(b, ext);
    buf_str(b, "@");
    xml_text(b, s->domain);
}

static int dinfo_one(const char *key, void *val, void *arg)
{
    (void)key;
    struct pcall *pc = val;
    struct dinfo_ctx *dc = arg;
    struct buf *b = dc->out;
    for (int i = 0; i < 2; i++) {
        const struct pdialog *d = &pc->side[i];
        if (strcmp(d->ext, dc->ext) != 0)
            continue;
        /* The dialog's tags from ext's side: its own tag is local (RFC 4235 4.1.1). A
         * phone that picks up this ringing call sends the caller an INVITE with Replaces
         * naming this Call-ID and these tags (RFC 3891, RFC 5359 2.19). */
        const char *local = d->initiator ? pc->from_tag : pc->to_tag;
        const char *remote = d->initiator ? pc->to_tag : pc->from_tag;
        char id[33];
        su_md5_t md5;
        su_md5_init(&md5);
        su_md5_strupdate(&md5, pc->call_id);
        su_md5_update(&md5, d->initiator ? "a" : "b", 1);
        su_md5_hexdigest(&md5, id);
        buf_printf(b, " <dialog id=\"%.16s\" call-id=\"", id);
        xml_text(b, pc->call_id);
        buf_str(b, "\"");
        if (local[0]) {
            buf_str(b, " local-tag=\"");
            xml_text(b, local);
            buf_str(b, "\"");
        }
        if (remote[0]) {
            buf_str(b, " remote-tag=\"");
            xml_text(b, remote);
            buf_str(b, "\"");
        }
        buf_printf(b, " direction=\"%s\">\n  <state>%s</state>\n",
                   d->initiator ? "initiator" : "recipient", d->state);
        buf_str(b, "  <local>\n   <identity>");
        identity(b, dc->s, d->ext);
        buf_str(b, "</identity>\n");
        if (d->local_target[0]) {
            buf_str(b, "   <target uri=\"");
            xml_text(b, d->local_target);
            buf_str(b, "\"/>\n");
        }
        buf_str(b, "  </local>\n");
        if (d->other[0]) {
            /* The other party's address of record, not its device: a pickup INVITE to it
             * goes through sipbx like any call and reaches the caller's phones. */
            buf_str(b, "  <remote>\n   <identity");
            if (d->other_name[0]) {
                buf_str(b, " display=\"");
                xml_text(b, d->other_name);
                buf_str(b, "\"");
            }
            buf_str(b, ">");
            identity(b, dc->s, d->other);
            buf_str(b, "</identity>\n   <target uri=\"");
            identity(b, dc->s, d->other);
            buf_str(b, "\"/>\n  </remote>\n");
        }
        buf_str(b, " </dialog>\n");
    }
    return STRMAP_KEEP;
}

void pres_dialog_info(struct sip *s, const char *ext, uint32_t version, struct buf *out)
{
    buf_printf(out,
               "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
               "<dialog-info xmlns=\"urn:ietf:params:xml:ns:dialog-info\" version=\"%u\" "
               "state=\"full\" entity=\"",
               version);
    identity(out, s, ext);
    buf_str(out, "\">\n");
    struct dinfo_ctx dc = {s, ext, out};
    strmap_foreach(s->pres->calls, dinfo_one, &dc);
    buf_str(out, "</dialog-info>\n");
}

/* ---- changes ---- */

void pres_changed(struct sip *s, const char *ext)
{
    struct pres *p = s->pres;
    if (!p || !ext || !*ext || strmap_get(p->dirty, ext))
        return;
    strmap_put(p->dirty, ext, (void *)1, NULL);
    if (!p->flush_armed && su_timer_set_interval(p->flush, on_flush, s, 0) == 0)
        p->flush_armed = 1;
}

static int flush_one(const char *ext, void *val, void *arg)
{
    (void)val;
    struct sip *s = arg;
    struct pres *p = s->pres;
    struct summary now, *last = strmap_get(p->summaries, ext);
    summarize(s, ext, &now);
    if (!last || memcmp(last, &now, sizeof now) != 0) {
        if (!last) {
            last = util_xmalloc(sizeof *last);
            strmap_put(p->summaries, ext, last, NULL);
        }
        *last = now;
        if (usercache_get(s, ext))
            sip_publish(s, "presence.changed", summary_json(ext, &now, subs_watchers(s, ext)));
    }
    subs_notify_presentity(s, ext);
    return STRMAP_DROP;
}

/* Runs once per turn of the SIP loop after a change: every change of that turn (a call's
 * state and its busy count, a binding gone) is in place, and one NOTIFY says it all. */
static void on_flush(su_root_magic_t *magic, su_timer_t *t, void *arg)
{
    (void)magic;
    (void)t;
    struct sip *s = arg;
    s->pres->flush_armed = 0;
    strmap_foreach(s->pres->dirty, flush_one, s);
}

/* The extension a call's callee side is at now: whose phone answered, else the target of
 * the last forward when that is one of ours, else the one dialled. */
static void callee_side(struct sip *s, const struct call *c, char *out, size_t outlen)
{
    const struct sip_call_info *i = &c->info;
    const char *ext = i->callee;
    if (c->answered_by[0])
        ext = c->answered_by;
    else if (i->nforwards)
        ext = i->forwards[i->nforwards - 1].to;
    const char *v = usercache_get(s, ext) ? ext : "";
    size_t n = strlen(v) < outlen ? strlen(v) : outlen - 1; /* an extension always fits */
    memcpy(out, v, n);
    out[n] = '\0';
}

static const char *dialog_state(const char *call_state)
{
    if (strcmp(call_state, "ringing") == 0)
        return "early";
    if (strcmp(call_state, "answered") == 0 || strcmp(call_state, "held") == 0)
        return "confirmed";
    if (strcmp(call_state, "ended") == 0)
        return "terminated";
    return "trying"; /* trying, forwarded: a new target is being tried */
}

static void side_set(struct pdialog *d, const char *state, int64_t mono)
{
    snprintf(d->state, sizeof d->state, "%s", state);
    if (strcmp(state, "terminated") != 0)
        d->ended = 0; /* a Call-ID used again for a new call */
    else if (!d->ended)
        d->ended = mono;
}

void pres_call(struct sip *s, const struct call *c)
{
    struct pres *p = s->pres;
    if (!p)
        return;
    const struct sip_call_info *i = &c->info;
    struct pcall *pc = strmap_get(p->calls, i->call_id);
    if (!pc) {
        if (strcmp(i->state, "ended") == 0)
            return; /* no lamp lit for it: none to put out */
        pc = util_pool_alloc(s->pool, sizeof *pc);
        snprintf(pc->call_id, sizeof pc->call_id, "%s", i->call_id);
        snprintf(pc->from_tag, sizeof pc->from_tag, "%s", c->from_tag);
        pc->side[0].initiator = 1;
        strmap_put(p->calls, pc->call_id, pc, NULL);
    }
    int64_t mono = util_mono();
    const char *state = dialog_state(i->state);
    snprintf(pc->to_tag, sizeof pc->to_tag, "%s", c->to_tag);

    char callee[STORE_EXT_MAX];
    callee_side(s, c, callee, sizeof callee);
    struct pdialog *a = &pc->side[0], *b = &pc->side[1];
    snprintf(a->ext, sizeof a->ext, "%s", i->caller);
    snprintf(a->local_target, sizeof a->local_target, "%s", i->caller_contact);
    snprintf(a->other, sizeof a->other, "%s", callee[0] ? callee : "");
    side_set(a, state, mono);
    pres_changed(s, a->ext);

    if (strcmp(b->ext, callee) != 0 && b->ext[0] && !b->ended) {
        /* The call left this user (forwarded, or answered by another): its lamp goes out. */
        side_set(b, "terminated", mono);
        pres_changed(s, b->ext);
        /* The old side is kept until it is shown; a new side needs a slot of its own. */
        struct pcall *gone = util_pool_alloc(s->pool, sizeof *gone);
        char key[sizeof pc->call_id + sizeof b->ext + 2];
        *gone = *pc;
        gone->side[0].ext[0] = '\0'; /* the caller stays with the live entry */
        snprintf(key, sizeof key, "%.255s\n%.32s", pc->call_id, b->ext);
        void *old = NULL;
        strmap_put(p->calls, key, gone, &old);
        util_pool_free(s->pool, old);
        memset(b, 0, sizeof *b);
    }
    if (callee[0]) {
        snprintf(b->ext, sizeof b->ext, "%s", callee);
        snprintf(b->other, sizeof b->other, "%s", i->caller);
        snprintf(b->other_name, sizeof b->other_name, "%s", i->caller_name);
        snprintf(b->local_target, sizeof b->local_target, "%s", i->callee_contact);
        side_set(b, state, mono);
        pres_changed(s, b->ext);
    }
}

/* ---- PUBLISH (RFC 3903) ---- */

static void pub_persist(struct sip *s, const char *ext, const struct publication *pub)
{
    if (strlen(pub->body) > STORE_PIDF_MAX) {
        log_error("presence: publication %s of %s is over %d bytes: not stored", pub->etag, ext,
                  STORE_PIDF_MAX);
        return;
    }
    struct store_pub *row = util_xcalloc(1, sizeof *row);
    snprintf(row->etag, sizeof row->etag, "%s", pub->etag);
    snprintf(row->extension, sizeof row->extension, "%s", ext);
    memcpy(row->body, pub->body, strlen(pub->body) + 1);
    row->published_at = pub->published_at;
    row->expires_at = pub->expires_at;
    store_writer_pub_save(s->writer, row);
    free(row);
}

static void pub_unlink(struct sip *s, const char *ext, struct publication *pub)
{
    struct publication *head = strmap_get(s->pres->pubs, ext), **link = &head;
    while (*link && *link != pub)
        link = &(*link)->next;
    if (!*link)
        return;
    *link = pub->next;
    if (head)
        strmap_put(s->pres->pubs, ext, head, NULL); /* replaces: cannot fail */
    else
        strmap_remove(s->pres->pubs, ext);
    store_writer_pub_remove(s->writer, pub->etag);
    free(pub->body);
    free(pub);
    s->pres->npubs--;
    atomic_store_explicit(&s->publications, s->pres->npubs, memory_order_relaxed);
}

static void new_etag(char out[40])
{
    unsigned char r[12];
    util_random(r, sizeof r);
    util_hex(out, r, sizeof r);
}

/* What a PUBLISH is refused with, or 0; a table rather than a branch per reason. */
enum pub_refusal { PUB_OK, PUB_NO_BODY, PUB_BAD_TYPE, PUB_TOO_BIG, PUB_NOT_PIDF };

static const struct {
    int status;
    const char *phrase;
} pub_refusals[] = {
    [PUB_NO_BODY] = {400, "A new publication needs a PIDF body"},
    [PUB_BAD_TYPE] = {415, "Unsupported Media Type"},
    [PUB_TOO_BIG] = {413, "Presence document too large"},
    [PUB_NOT_PIDF] = {400, "Body is not a PIDF presence document"},
};

static enum pub_refusal check_body(sip_t const *sip, int required)
{
    sip_payload_t const *pl = sip->sip_payload;
    if (!pl || !pl->pl_len)
        return required ? PUB_NO_BODY : PUB_OK;
    if (!sip->sip_content_type || !sip->sip_content_type->c_type ||
        strcasecmp(sip->sip_content_type->c_type, PIDF_TYPE) != 0)
        return PUB_BAD_TYPE;
    if (pl->pl_len > STORE_PIDF_MAX)
        return PUB_TOO_BIG;
    if (memchr(pl->pl_data, '\0', pl->pl_len) || !memmem(pl->pl_data, pl->pl_len, "presence", 8) ||
        !memmem(pl->pl_data, pl->pl_len, "urn:ietf:params:xml:ns:pidf", 27))
        return PUB_NOT_PIDF;
    return PUB_OK;
}

void pres_publish_handle(struct sip *s, const struct sip_req *r, sip_t const *sip)
{
    nta_incoming_t *irq = r->irq;
    if (!sip->sip_call_id || !sip->sip_cseq || !sip->sip_from || !sip->sip_to) {
        sip_reply(s, irq, 400, "Missing mandatory header", TAG_END());
        return;
    }
    if (!sip->sip_event || !sip->sip_event->o_type ||
        strcmp(sip->sip_event->o_type, "presence") != 0) {
        sip_reply(s, irq, SIP_489_BAD_EVENT, SIPTAG_ALLOW_EVENTS_STR("presence"), TAG_END());
        return;
    }
    const struct sip_user *user;
    if (auth_check(s, r, sip, 1, &user) != AUTH_OK)
        return;
    sip_accepted(s, r, sip);
    url_t const *ruri = sip->sip_request->rq_url;
    const char *from_user = sip->sip_from->a_url->url_user;
    if (!from_user || strcmp(from_user, user->extension) != 0) {
        sip_reply(s, irq, 403, "From does not match the credentials", TAG_END());
        return;
    }
    if (!sip_host_is_ours(s, ruri->url_host) || !ruri->url_user ||
        strcmp(ruri->url_user, user->extension) != 0) {
        sip_reply(s, irq, 403, "Only your own presence can be published", TAG_END());
        return;
    }
    long expires = subs_expires(s, irq, sip);
    if (expires < 0)
        return;

    const char *ext = user->extension;
    struct publication *pub = NULL;
    if (sip->sip_if_match) {
        int64_t now = util_now();
        for (pub = strmap_get(s->pres->pubs, ext); pub; pub = pub->next)
            if (strcmp(pub->etag, sip->sip_if_match->g_string) == 0 && pub->expires_at > now)
                break;
        if (!pub) {
            sip_reply(s, irq, 412, "Conditional Request Failed", TAG_END());
            return;
        }
    }
    enum pub_refusal why = check_body(sip, pub == NULL);
    if (why != PUB_OK) {
        sip_reply(s, irq, pub_refusals[why].status, pub_refusals[why].phrase,
                  TAG_IF(why == PUB_BAD_TYPE, SIPTAG_ACCEPT_STR(PIDF_TYPE)), TAG_END());
        return;
    }
    if (pub && expires == 0) { /* removal */
        log_info("presence: %s removed publication %s", ext, pub->etag);
        pub_unlink(s, ext, pub);
        sip_reply(s, irq, SIP_200_OK, SIPTAG_EXPIRES_STR("0"), TAG_END());
        pres_changed(s, ext);
        return;
    }
    if (!pub && expires == 0) {
        /* A new publication that is over at once: nothing to keep (RFC 3903 6, step 5). */
        sip_reply(s, irq, SIP_200_OK, SIPTAG_EXPIRES_STR("0"), TAG_END());
        return;
    }
    sip_payload_t const *pl = sip->sip_payload;
    char *body = NULL;
    if (pl && pl->pl_len && !(body = strndup(pl->pl_data, pl->pl_len))) {
        sip_reply(s, irq, SIP_500_INTERNAL_SERVER_ERROR, TAG_END());
        return;
    }
    if (!pub) {
        pub = util_xcalloc(1, sizeof *pub);
        pub->next = strmap_get(s->pres->pubs, ext);
        strmap_put(s->pres->pubs, ext, pub, NULL);
        s->pres->npubs++;
        atomic_store_explicit(&s->publications, s->pres->npubs, memory_order_relaxed);
    } else {
        store_writer_pub_remove(s->writer, pub->etag); /* the row goes with its old tag */
    }
    if (body) { /* a modification, or a new document */
        free(pub->body);
        pub->body = body;
        pub->published_at = util_now();
    }
    /* A new entity tag for every accepted PUBLISH (RFC 3903 section 6, step 7). */
    new_etag(pub->etag);
    pub->expires_at = util_now() + expires;
    pub_persist(s, ext, pub);
    char exp[24];
    snprintf(exp, sizeof exp, "%ld", expires);
    sip_reply(s, irq, SIP_200_OK, SIPTAG_ETAG_STR(pub->etag), SIPTAG_EXPIRES_STR(exp), TAG_END());
    pres_changed(s, ext);
}

/* ---- life cycle ---- */

static int load_pub(const struct store_pub *row, void *ctx)
{
    struct sip *s = ctx;
    if (row->expires_at <= util_now() || !usercache_get(s, row->extension)) {
        store_writer_pub_remove(s->writer, row->etag);
        return 0;
    }
    struct publication *pub = util_xcalloc(1, sizeof *pub);
    pub->body = util_xstrdup(row->body);
    snprintf(pub->etag, sizeof pub->etag, "%s", row->etag);
    pub->published_at = row->published_at;
    pub->expires_at = row->expires_at;
    pub->next = strmap_get(s->pres->pubs, row->extension);
    strmap_put(s->pres->pubs, row->extension, pub, NULL);
    s->pres->npubs++;
    return 0;
}

int pres_create(struct sip *s, struct store *st)
{
    struct pres *p = calloc(1, sizeof *p);
    if (!p)
        return ENOMEM;
    s->pres = p;
    if (strmap_create(&p->pubs) != 0 || strmap_create(&p->calls) != 0 ||
        strmap_create(&p->dirty) != 0 || strmap_create(&p->summaries) != 0 ||
        !(p->flush = su_timer_create(su_root_task(s->root), 0)))
        return ENOMEM;
    strmap_use_pool(p->calls, s->pool); /* busy-lamp entries live as long as calls */
    int rc = store_pub_list(st, load_pub, s);
    if (rc != 0)
        return rc;
    atomic_store_explicit(&s->publications, p->npubs, memory_order_relaxed);
    if (p->npubs)
        log_info("presence: %zu publication(s) restored from the database", p->npubs);
    return 0;
}

static void free_pubs(void *v)
{
    for (struct publication *p = v, *next; p; p = next) {
        next = p->next;
        free(p->body);
        free(p);
    }
}

void pres_destroy(struct sip *s)
{
    struct pres *p = s->pres;
    if (!p)
        return;
    if (p->flush)
        su_timer_destroy(p->flush);
    if (p->pubs)
        strmap_destroy(p->pubs, free_pubs);
    strmap_destroy_pooled(p->calls);
    if (p->dirty)
        strmap_destroy(p->dirty, NULL);
    if (p->summaries)
        strmap_destroy(p->summaries, free);
    free(p);
    s->pres = NULL;
}

struct expire_ctx {
    struct sip *s;
    int64_t now, mono;
};

static int expire_pubs(const char *ext, void *val, void *arg)
{
    struct expire_ctx *ec = arg;
    struct publication *head = val, **link = &head;
    int changed = 0;
    while (*link) {
        struct publication *pub = *link;
        if (pub->expires_at > ec->now) {
            link = &pub->next;
            continue;
        }
        *link = pub->next;
        log_info("presence: publication %s of %s expired", pub->etag, ext);
        store_writer_pub_remove(ec->s->writer, pub->etag);
        free(pub->body);
        free(pub);
        ec->s->pres->npubs--;
        changed = 1;
    }
    if (changed)
        pres_changed(ec->s, ext);
    if (!head)
        return STRMAP_DROP;
    if (head != val)
        strmap_put(ec->s->pres->pubs, ext, head, NULL); /* replaces: cannot fail */
    return STRMAP_KEEP;
}

static int expire_calls(const char *key, void *val, void *arg)
{
    (void)key;
    struct expire_ctx *ec = arg;
    struct pcall *pc = val;
    int live = 0;
    for (int i = 0; i < 2; i++) {
        struct pdialog *d = &pc->side[i];
        if (!d->ext[0])
            continue;
        if (d->ended && ec->mono - d->ended >= TERMINATED_KEEP_S) {
            pres_changed(ec->s, d->ext);
            d->ext[0] = '\0';
        } else {
            live = 1;
        }
    }
    if (live)
        return STRMAP_KEEP;
    util_pool_free(ec->s->pool, pc);
    return STRMAP_DROP;
}

void pres_expire(struct sip *s, int64_t now)
{
    struct expire_ctx ec = {s, now, util_mono()};
    strmap_foreach(s->pres->pubs, expire_pubs, &ec);
    atomic_store_explicit(&s->publications, s->pres->npubs, memory_order_relaxed);
    strmap_foreach(s->pres->calls, expire_calls, &ec);
}

void pres_user_deleted(struct sip *s, const char *ext)
{
    struct publication *list = strmap_remove(s->pres->pubs, ext);
    for (struct publication *p = list; p; p = p->next) {
        store_writer_pub_remove(s->writer, p->etag);
        s->pres->npubs--;
    }
    free_pubs(list);
    atomic_store_explicit(&s->publications, s->pres->npubs, memory_order_relaxed);
    free(strmap_remove(s->pres->summaries, ext));
    subs_user_deleted(s, ext);
}

/* ---- the REST view ---- */

struct snap_ctx {
    struct sip *s;
    const char *only;
    struct sip_presence_info *arr;
    size_t n, cap;
};

static int snap_one(const char *ext, void *val, void *arg)
{
    (void)val;
    struct snap_ctx *sc = arg;
    if ((sc->only && strcmp(sc->only, ext) != 0) || sc->n >= sc->cap)
        return STRMAP_KEEP;
    struct summary sm;
    summarize(sc->s, ext, &sm);
    struct sip_presence_info *o = &sc->arr[sc->n++];
    snprintf(o->extension, sizeof o->extension, "%s", ext);
    snprintf(o->basic, sizeof o->basic, "%s", sm.basic);
    snprintf(o->note, sizeof o->note, "%s", sm.note);
    o->busy = sm.busy;
    snprintf(o->dialog, sizeof o->dialog, "%s", sm.dialog);
    o->published = sm.published;
    o->watchers = subs_watchers(sc->s, ext);
    return STRMAP_KEEP;
}

static int snapshot_on_sip_thread(void *arg)
{
    struct snap_ctx *sc = arg;
    sc->cap = sc->only ? 1 : strmap_count(sc->s->users);
    sc->arr = util_xcalloc(sc->cap, sizeof *sc->arr);
    if (sc->only) {
        if (usercache_get(sc->s, sc->only))
            snap_one(sc->only, NULL, sc);
    } else {
        strmap_foreach(sc->s->users, snap_one, sc);
    }
    return (int)sc->n;
}

static int by_extension(const void *a, const void *b)
{
    return strcmp(((const struct sip_presence_info *)a)->extension,
                  ((const struct sip_presence_info *)b)->extension);
}

int sip_presence(struct sip *s, const char *ext, struct sip_presence_info **out)
{
    struct snap_ctx sc = {s, ext, NULL, 0, 0};
    int n = sip_execute(s, snapshot_on_sip_thread, &sc);
    if (n < 0) {
        free(sc.arr);
        return -1;
    }
    qsort(sc.arr, (size_t)n, sizeof *sc.arr, by_extension);
    *out = sc.arr;
    return n;
}

cJSON *sip_presence_json(const struct sip_presence_info *p)
{
    struct summary sm;
    memset(&sm, 0, sizeof sm);
    snprintf(sm.basic, sizeof sm.basic, "%s", p->basic);
    snprintf(sm.note, sizeof sm.note, "%s", p->note);
    sm.busy = p->busy;
    snprintf(sm.dialog, sizeof sm.dialog, "%s", p->dialog);
    sm.published = p->published;
    return summary_json(p->extension, &sm, p->watchers);
}
