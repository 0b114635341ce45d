/* The registrar (RFC 3261 section 10): bindings per extension in memory, every change
 * queued to the writer thread so they survive a restart, expiry by a one-second sweep. */
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

/* One registered contact as the SIP thread keeps it: what routing and the check of the
 * next REGISTER need, its strings in the same allocation. (The whole store_reg row, 1.3 KB
 * of fixed arrays, made 10,000 phones cost 13 MB.) The User-Agent and instance go to the
 * database only. */
struct binding {
    struct binding *next;
    int64_t registered_at;
    int64_t expires_at;
    uint32_t cseq;
    char transport[8];
    const char *source;  /* "addr:port" the REGISTER came from; in contact's allocation */
    const char *call_id; /* of the REGISTER that made or refreshed it; likewise */
    char contact[];      /* the contact URI, then source and call_id, each with its NUL */
};

static struct binding *binding_new(const struct store_reg *r)
{
    size_t lc = strlen(r->contact) + 1, ls = strlen(r->source) + 1, li = strlen(r->call_id) + 1;
    struct binding *b = util_xmalloc(sizeof *b + lc + ls + li);
    b->next = NULL;
    b->registered_at = r->registered_at;
    b->expires_at = r->expires_at;
    b->cseq = r->cseq;
    snprintf(b->transport, sizeof b->transport, "%s", r->transport);
    memcpy(b->contact, r->contact, lc);
    b->source = memcpy(b->contact + lc, r->source, ls);
    b->call_id = memcpy(b->contact + lc + ls, r->call_id, li);
    return b;
}

struct reg {
    struct strmap *aors; /* extension -> struct binding list */
    size_t count;
};

/* Tells event subscribers (the dashboard) that ext's registrations changed: through the
 * writer, after the change it queued just before is committed, so that what they read
 * back (GET /api/v1/registrations) has it. */
static void publish(struct sip *s, const char *ext, const char *contact, const char *action)
{
    pres_changed(s, ext); /* open or closed, for watchers of its presence */
    if (!s->events)
        return;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "extension", ext);
    cJSON_AddStringToObject(o, "contact", contact ? contact : "");
    cJSON_AddStringToObject(o, "action", action);
    char *json = o ? cJSON_PrintUnformatted(o) : NULL;
    if (json && store_writer_announce(s->writer, "registration.changed", json, 0) != 0)
        events_publish(s->events, "registration.changed", json); /* late beats never */
    cJSON_free(json);
    cJSON_Delete(o);
}

/* Queues the removal of one binding (or all of ext) and announces it. */
static void persist_remove(struct sip *s, const char *ext, const char *contact, const char *why)
{
    store_writer_reg_remove(s->writer, ext, contact);
    publish(s, ext, contact, why);
}

static void free_list(void *p)
{
    struct binding *b = p;
    while (b) {
        struct binding *next = b->next;
        free(b);
        b = next;
    }
}

static int load_binding(const struct store_reg *r, void *ctx)
{
    struct reg *reg = ctx;
    struct binding *b = binding_new(r);
    b->next = strmap_get(reg->aors, r->extension);
    strmap_put(reg->aors, r->extension, b, NULL);
    reg->count++;
    return 0;
}

int reg_create(struct reg **out, struct sip *s, struct store *st)
{
    (void)s;
    struct reg *r = calloc(1, sizeof *r);
    if (!r || strmap_create(&r->aors) != 0) {
        free(r);
        return ENOMEM;
    }
    int rc = store_reg_list(st, NULL, util_now(), load_binding, r);
    if (rc != 0) {
        reg_destroy(r);
        return rc;
    }
    if (r->count)
        log_info("registrar: %zu registration(s) restored from the database", r->count);
    *out = r;
    return 0;
}

void reg_destroy(struct reg *r)
{
    if (!r)
        return;
    strmap_destroy(r->aors, free_list);
    free(r);
}

size_t reg_count(const struct reg *r)
{
    return r->count;
}

size_t reg_remove_user(struct sip *s, const char *ext)
{
    struct binding *list = strmap_remove(s->reg->aors, ext);
    size_t n = 0;
    for (struct binding *b = list; b; b = b->next, n++)
        s->reg->count--;
    free_list(list);
    /* The database row goes by cascade when the user is deleted; removing it here as well
     * covers a kick of a user that still exists. */
    persist_remove(s, ext, NULL, "removed");
    if (n)
        log_info("registrar: %zu registration(s) of %s removed", n, ext);
    return n;
}

struct expire_ctx {
    struct sip *s;
    int64_t now;
};

static int expire_aor(const char *key, void *val, void *arg)
{
    struct expire_ctx *ec = arg;
    struct binding *head = val;
    struct binding **link = &head;
    while (*link) {
        struct binding *b = *link;
        if (b->expires_at <= ec->now) {
            *link = b->next;
            log_info("registrar: %s expired (%s)", key, b->contact);
            persist_remove(ec->s, key, b->contact, "expired");
            ec->s->reg->count--;
            free(b);
        } else {
            link = &b->next;
        }
    }
    if (!head)
        return STRMAP_DROP;
    if (head != val)
        strmap_put(ec->s->reg->aors, key, head, NULL); /* replacing: no allocation */
    return STRMAP_KEEP;
}

void reg_expire(struct sip *s, int64_t now)
{
    struct expire_ctx ec = {s, now};
    strmap_foreach(s->reg->aors, expire_aor, &ec);
}

/* ---- REGISTER ---- */

/* Expiry asked for one contact: its expires param, else the Expires header, else default.
 * A malformed expires param counts as the default (RFC 3261 20.10 says 3600), never as 0,
 * which would remove the binding. */
static long contact_expires(struct sip *s, sip_contact_t const *m, sip_t const *sip)
{
    if (m && m->m_expires) {
        char *end;
        long e = strtol(m->m_expires, &end, 10);
        return end != m->m_expires && *end == '\0' ? e : s->cfg->default_expires;
    }
    if (sip->sip_expires)
        return (long)sip->sip_expires->ex_delta;
    return s->cfg->default_expires;
}

static struct binding *find_binding(struct binding *list, const char *contact)
{
    for (; list; list = list->next)
        if (strcmp(list->contact, contact) == 0)
            return list;
    return NULL;
}

/* Writes the contact URI (without params of the header) into out; -1 when too long. */
static int contact_uri(sip_contact_t const *m, char *out, size_t outlen)
{
    issize_t n = url_e(out, (isize_t)outlen, m->m_url);
    return (n < 0 || (size_t)n >= outlen) ? -1 : 0;
}

/* The 200 OK: every current binding with its remaining time. Bindings whose time is up
 * but that the one-second sweep has not removed yet are no longer current. */
static void reply_bindings(struct sip *s, const struct sip_req *r, const char *ext, int64_t now)
{
    struct binding *list = strmap_get(s->reg->aors, ext);
    size_t cap = 64, len = 0;
    for (struct binding *b = list; b; b = b->next)
        cap += strlen(b->contact) + 32;
    char *contacts = util_xmalloc(cap);
    contacts[0] = '\0';
    for (struct binding *b = list; b; b = b->next)
        if (b->expires_at > now)
            len += (size_t)snprintf(contacts + len, cap - len, "%s<%s>;expires=%lld",
                                    len ? ", " : "", b->contact, (long long)(b->expires_at - now));
    if (len)
        sip_req_reply(s, r, SIP_200_OK, SIPTAG_CONTACT_STR(contacts), TAG_END());
    else
        sip_req_reply(s, r, SIP_200_OK, TAG_END());
    free(contacts);
}

static void remove_all(struct sip *s, const char *ext)
{
    struct binding *list = strmap_remove(s->reg->aors, ext);
    for (struct binding *b = list; b; b = b->next) {
        log_info("registrar: %s unregistered (%s)", ext, b->contact);
        s->reg->count--;
    }
    free_list(list);
    persist_remove(s, ext, NULL, "unregistered");
}

/* 400 when a Contact of a REGISTER cannot be applied: its URI does not fit, or the request
 * is older than the one that made its binding (RFC 3261 10.3 step 7); else 0. Checked for
 * every Contact before any is applied, so a refused request changes nothing (step 8). */
static int contact_refused(struct sip *s, sip_contact_t const *m, const char *ext, sip_t const *sip)
{
    struct store_reg r; /* only for its field sizes: kept as the binding would keep them */
    if (contact_uri(m, r.contact, sizeof r.contact) != 0)
        return 400;
    snprintf(r.call_id, sizeof r.call_id, "%s", sip->sip_call_id->i_id);
    struct binding *b = find_binding(strmap_get(s->reg->aors, ext), r.contact);
    if (b && strcmp(b->call_id, r.call_id) == 0 && sip->sip_cseq->cs_seq <= b->cseq)
        return 400;
    return 0;
}

/* Applies one Contact of a REGISTER: add, refresh or remove. Returns 0, or a SIP status
 * when the request must be refused (the caller answers). */
static int apply_contact(struct sip *s, sip_contact_t const *m, const struct store_reg *proto,
                         long expires, int64_t now)
{
    struct store_reg r = *proto;
    if (contact_uri(m, r.contact, sizeof r.contact) != 0)
        return 400;
    const char *inst = msg_params_find(m->m_params, "+sip.instance=");
    if (inst)
        snprintf(r.instance, sizeof r.instance, "%s", inst);
    r.q = m->m_q ? strtod(m->m_q, NULL) : 1.0;

    struct binding *head = strmap_get(s->reg->aors, r.extension);
    struct binding *b = find_binding(head, r.contact);

    if (expires == 0) {
        if (!b)
            return 0;
        for (struct binding **pp = &head; *pp; pp = &(*pp)->next)
            if (*pp == b) {
                *pp = b->next;
                break;
            }
        if (head)
            strmap_put(s->reg->aors, r.extension, head, NULL);
        else
            strmap_remove(s->reg->aors, r.extension);
        log_info("registrar: %s unregistered (%s)", r.extension, b->contact);
        free(b);
        s->reg->count--;
        persist_remove(s, r.extension, r.contact, "unregistered");
        return 0;
    }

    r.expires_at = now + expires;
    if (b)
        r.registered_at = b->registered_at;
    if (b && strcmp(b->source, r.source) == 0 && strcmp(b->call_id, r.call_id) == 0 &&
        strcmp(b->transport, r.transport) == 0) { /* a plain refresh: in place */
        b->expires_at = r.expires_at;
        b->cseq = r.cseq;
    } else {
        struct binding *nb = binding_new(&r);
        if (!b) {
            nb->next = head;
            head = nb;
            s->reg->count++;
            log_info("registrar: %s registered %s from %s/%s (%s), %ld s", r.extension, r.contact,
                     r.source, r.transport, r.user_agent, expires);
        } else { /* a refresh from elsewhere: the new binding takes the old one's place */
            for (struct binding **pp = &head; *pp; pp = &(*pp)->next)
                if (*pp == b) {
                    nb->next = b->next;
                    *pp = nb;
                    break;
                }
            free(b);
        }
        strmap_put(s->reg->aors, r.extension, head, NULL);
    }
    store_writer_reg_save(s->writer, &r);
    publish(s, r.extension, r.contact, r.registered_at == now ? "registered" : "refreshed");
    return 0;
}

void reg_handle(struct sip *s, const struct sip_req *r, sip_t const *sip)
{
    if (!sip->sip_to || !sip->sip_to->a_url->url_user || !sip->sip_call_id || !sip->sip_cseq) {
        sip_req_reply(s, r, 400, "Missing To user, Call-ID or CSeq", TAG_END());
        return;
    }
    const struct sip_user *user;
    if (auth_check(s, r, sip, 0, &user) != AUTH_OK)
        return;
    sip_accepted(s, r, sip);
    const char *aor_user = sip->sip_to->a_url->url_user;
    if (strcmp(aor_user, user->extension) != 0) {
        log_info("registrar: %s tried to register %s", user->extension, aor_user);
        sip_req_reply(s, r, 403, "Not your address of record", TAG_END());
        return;
    }
    int64_t now = util_now();

    /* Contact: * removes everything, and only with Expires: 0 (RFC 3261 10.3 step 6). */
    for (sip_contact_t const *m = sip->sip_contact; m; m = m->m_next) {
        if (m->m_url->url_type == url_any) {
            if (sip->sip_contact->m_next || m != sip->sip_contact || !sip->sip_expires ||
                sip->sip_expires->ex_delta != 0) {
                sip_req_reply(s, r, 400, "Wildcard Contact needs Expires: 0 and no other Contact",
                              TAG_END());
                return;
            }
            remove_all(s, user->extension);
            reply_bindings(s, r, user->extension, now);
            return;
        }
    }

    /* Check every Contact before changing anything, so a 400 or 423 leaves all bindings
     * alone. */
    for (sip_contact_t const *m = sip->sip_contact; m; m = m->m_next) {
        if (contact_refused(s, m, user->extension, sip)) {
            sip_req_reply(s, r, 400, "Bad or out-of-order Contact", TAG_END());
            return;
        }
        long e = contact_expires(s, m, sip);
        if (e < 0) {
            sip_req_reply(s, r, 400, "Bad expires", TAG_END());
            return;
        }
        if (e > 0 && e < s->cfg->min_expires) {
            sip_min_expires_t me[1];
            sip_min_expires_init(me);
            me->me_delta = (unsigned long)s->cfg->min_expires;
            sip_req_reply(s, r, SIP_423_INTERVAL_TOO_BRIEF, SIPTAG_MIN_EXPIRES(me), TAG_END());
            return;
        }
    }

    struct store_reg proto;
    memset(&proto, 0, sizeof proto);
    snprintf(proto.extension, sizeof proto.extension, "%s", user->extension);
    sip_source(s, r, proto.source, sizeof proto.source, proto.transport, sizeof proto.transport);
    if (sip->sip_user_agent && sip->sip_user_agent->g_string)
        snprintf(proto.user_agent, sizeof proto.user_agent, "%s", sip->sip_user_agent->g_string);
    snprintf(proto.call_id, sizeof proto.call_id, "%s", sip->sip_call_id->i_id);
    proto.cseq = sip->sip_cseq->cs_seq;
    proto.registered_at = now;

    for (sip_contact_t const *m = sip->sip_contact; m; m = m->m_next) {
        long e = contact_expires(s, m, sip);
        if (e > s->cfg->max_expires)
            e = s->cfg->max_expires;
        int status = apply_contact(s, m, &proto, e, now);
        if (status) {
            sip_req_reply(s, r, status, status == 400 ? "Bad or out-of-order Contact" : NULL,
                          TAG_END());
            return;
        }
    }
    reply_bindings(s, r, user->extension, now);
}

static void format_next_hop(const struct binding *b, char *out, size_t outlen)
{
    snprintf(out, outlen, "sip:%s;transport=%s", b->source, b->transport);
}

size_t reg_targets(struct sip *s, const char *ext, struct reg_target *out, size_t max)
{
    size_t n = 0;
    int64_t now = util_now();
    for (struct binding *b = strmap_get(s->reg->aors, ext); b && n < max; b = b->next) {
        if (b->expires_at <= now)
            continue;
        /* All bindings ring in parallel, so q values do not order anything here. */
        snprintf(out[n].contact, sizeof out[n].contact, "%s", b->contact);
        format_next_hop(b, out[n].next_hop, sizeof out[n].next_hop);
        n++;
    }
    return n;
}

struct contact_find {
    const char *want;
    const struct binding *hit;
};

static int find_contact(const char *key, void *val, void *arg)
{
    (void)key;
    struct contact_find *f = arg;
    for (const struct binding *b = val; b && !f->hit; b = b->next)
        if (strcmp(b->contact, f->want) == 0)
            f->hit = b;
    return STRMAP_KEEP;
}

int reg_next_hop(struct sip *s, url_t const *contact, char *out, size_t outlen)
{
    char want[512];
    if (url_e(want, sizeof want, contact) < 0)
        return -1;
    /* The Contact's user part is the extension for most phones, so that list first; others
     * write one of their own (baresip: "100-0x55d3..."), and then every binding is looked
     * at (one in-dialog request per call does this, not each REGISTER). */
    struct contact_find f = {want, NULL};
    if (contact->url_user)
        find_contact(NULL, strmap_get(s->reg->aors, contact->url_user), &f);
    if (!f.hit)
        strmap_foreach(s->reg->aors, find_contact, &f);
    if (!f.hit)
        return -1;
    format_next_hop(f.hit, out, outlen);
    return 0;
}
