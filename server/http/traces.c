/* /api/v1/traces/{call_id}: every SIP message captured for a call, in order, as JSON for
 * the dashboard's ladder diagram, or as a capture file that Wireshark and tshark open and
 * dissect as SIP: one IP packet per message, UDP or TCP as the message travelled, in a
 * classic pcap; a call with messages over TLS is a pcapng file, those messages decrypted
 * as exported PDUs for the SIP dissector, marked as such. */
#include "http/http_int.h"
#include "util/util.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define PCAP_SUFFIX        ".pcap"
#define PCAPNG_SUFFIX      ".pcapng" /* the name of the file when it is one */
#define LINKTYPE_RAW       101       /* each record is an IPv4 or IPv6 packet, no link header */
#define LINKTYPE_UPPER_PDU 252       /* Wireshark's exported PDUs: tags naming the dissector */
#define PCAP_SNAPLEN       262144    /* above any packet written */
#define IP4_HDR            20
#define IP6_HDR            40
#define UDP_HDR            8
#define TCP_HDR            20
#define IP_MAX             65535 /* the largest IPv4 total length / IPv6 payload length */
#define IPPROTO_UDP_N      17
#define IPPROTO_TCP_N      6
#define TCP_PSH_ACK        0x18
#define TCP_FIRST_SEQ      1u /* sequence numbers as Wireshark shows them relative to the start */
#define PCAP_STREAMS       32 /* TCP directions a call's capture follows (a handful in practice) */

/* pcapng (draft-ietf-opsawg-pcapng): block types and options */
#define NG_SHB            0x0a0d0d0au
#define NG_IDB            1u
#define NG_EPB            6u
#define NG_BYTE_ORDER     0x1a2b3c4du
#define NG_OPT_END        0
#define NG_OPT_COMMENT    1
#define NG_IF_NAME        2
#define NG_IF_DESCRIPTION 3
#define NG_SHB_USERAPPL   4

/* Exported-PDU tags (Wireshark's wsutil/exported_pdu_tlvs.h): big-endian type, length and a
 * value padded to 4 bytes, the list ending with a tag 0 of length 0. */
#define EPDU_DISSECTOR 12 /* the name of the dissector for the PDU: "sip" */
#define EPDU_IPV4_SRC  20
#define EPDU_IPV4_DST  21
#define EPDU_IPV6_SRC  22
#define EPDU_IPV6_DST  23
#define EPDU_PORT_TYPE 24
#define EPDU_SRC_PORT  25
#define EPDU_DST_PORT  26
#define EPDU_PT_TCP    2

#define TLS_COMMENT "sipbx: SIP over TLS, decrypted by sipbx" /* on each such packet */

/* A pcapng option: its code and a text value. */
struct ng_option {
    unsigned code;
    const char *value;
};

/* ---- helpers ---- */

/* The message as valid UTF-8 for JSON: invalid sequences and NUL bytes become U+FFFD (the
 * pcap keeps the exact bytes). Returns a new string, or NULL when out of memory. */
static char *utf8_clean(const unsigned char *s, size_t n)
{
    static const unsigned char fffd[] = {0xef, 0xbf, 0xbd};
    struct buf b = {0};
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t len = 0;
        unsigned lo = 0x80, hi = 0xbf; /* allowed range of the second byte */
        if (c >= 0x01 && c <= 0x7f)
            len = 1;
        else if (c >= 0xc2 && c <= 0xdf)
            len = 2;
        else if (c >= 0xe0 && c <= 0xef) {
            len = 3;
            lo = c == 0xe0 ? 0xa0 : 0x80;
            hi = c == 0xed ? 0x9f : 0xbf;
        } else if (c >= 0xf0 && c <= 0xf4) {
            len = 4;
            lo = c == 0xf0 ? 0x90 : 0x80;
            hi = c == 0xf4 ? 0x8f : 0xbf;
        }
        int ok = len > 0 && i + len <= n;
        for (size_t k = 1; ok && k < len; k++) {
            unsigned d = s[i + k];
            ok = k == 1 ? d >= lo && d <= hi : d >= 0x80 && d <= 0xbf;
        }
        if (ok) {
            buf_add(&b, s + i, len);
            i += len;
        } else {
            buf_add(&b, fffd, sizeof fffd);
            i++;
        }
    }
    buf_add(&b, "", 1);
    if (b.failed) {
        buf_free(&b);
        return NULL;
    }
    return b.p;
}

/* An "addr:port" or "[v6addr]:port" endpoint as stored with each message. */
struct endpoint {
    int family; /* AF_INET, AF_INET6, or 0 when the text was not an address */
    unsigned char addr[16];
    uint16_t port;
};

static void parse_endpoint(const char *s, struct endpoint *ep)
{
    memset(ep, 0, sizeof *ep);
    char host[64];
    const char *colon;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close || close[1] != ':' || (size_t)(close - s - 1) >= sizeof host)
            return;
        snprintf(host, sizeof host, "%.*s", (int)(close - s - 1), s + 1);
        colon = close + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon || (size_t)(colon - s) >= sizeof host)
            return;
        snprintf(host, sizeof host, "%.*s", (int)(colon - s), s);
    }
    char *end;
    unsigned long port = strtoul(colon + 1, &end, 10);
    if (*end || port > 65535)
        return;
    ep->port = (uint16_t)port;
    if (inet_pton(AF_INET, host, ep->addr) == 1)
        ep->family = AF_INET;
    else if (inet_pton(AF_INET6, host, ep->addr) == 1)
        ep->family = AF_INET6;
}

/* An IPv4 endpoint as an IPv4-mapped IPv6 one (::ffff:a.b.c.d), for a packet whose other
 * end is IPv6. */
static void map_v6(struct endpoint *ep)
{
    if (ep->family == AF_INET6)
        return;
    unsigned char v4[4];
    memcpy(v4, ep->addr, 4);
    memset(ep->addr, 0, 16);
    ep->addr[10] = ep->addr[11] = 0xff;
    memcpy(ep->addr + 12, v4, 4);
    ep->family = AF_INET6;
}

static void put16(unsigned char *p, unsigned v)
{
    p[0] = (unsigned char)(v >> 8);
    p[1] = (unsigned char)v;
}

static void put32(unsigned char *p, uint32_t v)
{
    put16(p, v >> 16);
    put16(p + 2, v & 0xffff);
}

static void put16le(unsigned char *p, unsigned v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
}

static void put32le(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

/* The ones' complement sum of RFC 1071 over data, added to sum (not yet folded). */
static uint32_t csum_add(uint32_t sum, const unsigned char *data, size_t n)
{
    for (size_t i = 0; i + 1 < n; i += 2)
        sum += (uint32_t)data[i] << 8 | data[i + 1];
    if (n & 1)
        sum += (uint32_t)data[n - 1] << 8;
    return sum;
}

static uint16_t csum_fold(uint32_t sum)
{
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t)~sum;
}

/* ---- pcap ---- */

/* One direction of a TCP connection: where its next segment starts. */
struct tcp_dir {
    struct endpoint src, dst;
    uint32_t next_seq;
};

/* A call without a TLS message is written as a classic pcap, which every tool reads; one
 * with a TLS message as pcapng, the only format that can hold its decrypted messages
 * (exported PDUs, a link type of their own) next to IP packets and say what they are. */
enum pcap_format { PCAP_CLASSIC, PCAP_NG };
enum pcap_iface { IFACE_IP, IFACE_TLS }; /* pcapng interfaces, written on first use */

struct pcap_ctx {
    enum pcap_format format;
    struct buf out;
    int n;
    int ifid[2]; /* pcapng interface id of each enum pcap_iface, -1 until written */
    int nif;
    struct tcp_dir dirs[PCAP_STREAMS];
    int ndirs;
};

static int same_endpoint(const struct endpoint *a, const struct endpoint *b)
{
    return a->family == b->family && a->port == b->port && memcmp(a->addr, b->addr, 16) == 0;
}

/* The direction src -> dst, made on first sight (its sequence numbers start at
 * TCP_FIRST_SEQ, as the capture does not have the connection's handshake). With the table
 * full, the last entry is reused: numbers then restart, which Wireshark only flags. */
static struct tcp_dir *tcp_dir(struct pcap_ctx *pc, const struct endpoint *src,
                               const struct endpoint *dst)
{
    for (int i = 0; i < pc->ndirs; i++)
        if (same_endpoint(&pc->dirs[i].src, src) && same_endpoint(&pc->dirs[i].dst, dst))
            return &pc->dirs[i];
    struct tcp_dir *d = &pc->dirs[pc->ndirs < PCAP_STREAMS ? pc->ndirs++ : PCAP_STREAMS - 1];
    d->src = *src;
    d->dst = *dst;
    d->next_seq = TCP_FIRST_SEQ;
    return d;
}

static size_t pad4(size_t n)
{
    return (n + 3) & ~(size_t)3;
}

/* The bytes a pcapng option with a value of n bytes takes (code, length, padded value). */
static size_t ng_opt_size(size_t n)
{
    return 4 + pad4(n);
}

/* Writes a pcapng option at p (its padding zeroed); returns the bytes written. */
static size_t ng_opt(unsigned char *p, unsigned code, const char *value)
{
    size_t n = strlen(value);
    put16le(p, code);
    put16le(p + 2, (unsigned)n);
    memcpy(p + 4, value, n);
    memset(p + 4 + n, 0, pad4(n) - n);
    return ng_opt_size(n);
}

/* Appends a pcapng block of type with the fixed part body (blen bytes, a multiple of 4)
 * and the options opts (code and value pairs, code 0 ending them). */
static void ng_block(struct buf *b, uint32_t type, const unsigned char *body, size_t blen,
                     const struct ng_option *opts)
{
    size_t len = 12 + blen + 4; /* type, length, body, end of options, length again */
    for (const struct ng_option *o = opts; o->code; o++)
        len += ng_opt_size(strlen(o->value));
    unsigned char *p = (unsigned char *)buf_grow(b, len);
    if (!p)
        return; /* b->failed says so */
    put32le(p, type);
    put32le(p + 4, (uint32_t)len);
    memcpy(p + 8, body, blen);
    size_t off = 8 + blen;
    for (const struct ng_option *o = opts; o->code; o++)
        off += ng_opt(p + off, o->code, o->value);
    put32le(p + off, NG_OPT_END); /* code and length 0 */
    put32le(p + off + 4, (uint32_t)len);
}

/* The pcapng interfaces: where each kind of record comes from, as Wireshark names it. */
static const struct {
    unsigned linktype;
    const char *name, *description;
} ng_ifaces[] = {
    [IFACE_IP] = {LINKTYPE_RAW, "sipbx",
                  "SIP as sipbx sent and received it: UDP datagrams and TCP segments"},
    [IFACE_TLS] = {LINKTYPE_UPPER_PDU, "sipbx-tls",
                   "SIP over TLS as sipbx decrypted it (exported PDUs, no TLS records)"},
};

/* The pcapng interface of kind, its Interface Description Block appended first when this
 * is its first packet. */
static int ng_iface(struct pcap_ctx *pc, enum pcap_iface kind)
{
    if (pc->ifid[kind] >= 0)
        return pc->ifid[kind];
    unsigned char idb[8];
    put16le(idb, ng_ifaces[kind].linktype);
    put16le(idb + 2, 0); /* reserved */
    put32le(idb + 4, PCAP_SNAPLEN);
    const struct ng_option o[] = {{NG_IF_NAME, ng_ifaces[kind].name},
                                  {NG_IF_DESCRIPTION, ng_ifaces[kind].description},
                                  {0, NULL}};
    ng_block(&pc->out, NG_IDB, idb, sizeof idb, o);
    pc->ifid[kind] = pc->nif++;
    return pc->ifid[kind];
}

/* Appends the frame of one record around a packet of caplen bytes (of origlen before it was
 * cut) at time_us, on the interface of kind: a classic pcap record header, or a pcapng
 * Enhanced Packet Block whose padding and options (a comment on a TLS message) are written
 * too. Returns where the packet's bytes go, or NULL when out of memory. */
static unsigned char *record_begin(struct pcap_ctx *pc, enum pcap_iface kind, int64_t time_us,
                                   size_t caplen, size_t origlen)
{
    uint64_t us = time_us > 0 ? (uint64_t)time_us : 0;
    if (pc->format == PCAP_CLASSIC) {
        unsigned char *rec = (unsigned char *)buf_grow(&pc->out, 16 + caplen);
        if (!rec)
            return NULL;
        put32le(rec, (uint32_t)(us / 1000000));
        put32le(rec + 4, (uint32_t)(us % 1000000));
        put32le(rec + 8, (uint32_t)caplen);
        put32le(rec + 12, (uint32_t)origlen);
        return rec + 16;
    }
    int ifid = ng_iface(pc, kind);
    const char *comment = kind == IFACE_TLS ? TLS_COMMENT : NULL;
    size_t len = 28 + pad4(caplen) + (comment ? ng_opt_size(strlen(comment)) : 0) + 4 + 4;
    unsigned char *p = (unsigned char *)buf_grow(&pc->out, len);
    if (!p)
        return NULL;
    put32le(p, NG_EPB);
    put32le(p + 4, (uint32_t)len);
    put32le(p + 8, (uint32_t)ifid);
    put32le(p + 12, (uint32_t)(us >> 32)); /* microseconds: if_tsresol's default */
    put32le(p + 16, (uint32_t)us);
    put32le(p + 20, (uint32_t)caplen);
    put32le(p + 24, (uint32_t)origlen);
    size_t off = 28 + caplen;
    memset(p + off, 0, pad4(caplen) - caplen);
    off = 28 + pad4(caplen);
    if (comment)
        off += ng_opt(p + off, NG_OPT_COMMENT, comment);
    put32le(p + off, NG_OPT_END);
    put32le(p + off + 4, (uint32_t)len);
    return p + 28;
}

/* Writes an exported-PDU tag with a value of n bytes (n a multiple of 4); returns its size. */
static size_t pdu_tag(unsigned char *p, unsigned tag, const void *value, size_t n)
{
    put16(p, tag);
    put16(p + 2, (unsigned)n);
    memcpy(p + 4, value, n);
    return 4 + n;
}

/* A message that went over TLS, as sipbx decrypted it: one exported PDU for Wireshark's SIP
 * dissector with the real addresses and TCP ports. */
static int pcap_tls(struct pcap_ctx *pc, const struct store_trace *t, const struct endpoint *src,
                    const struct endpoint *dst)
{
    size_t alen = src->family == AF_INET6 ? 16 : 4;
    size_t tags = (4 + 4) + 2 * (4 + alen) + 3 * (4 + 4) + 4;
    unsigned char *p =
        record_begin(pc, IFACE_TLS, t->time_us, tags + t->raw_len, tags + t->raw_len);
    if (!p)
        return ENOMEM;
    unsigned char v[4];
    size_t off = pdu_tag(p, EPDU_DISSECTOR, "sip\0", 4);
    off += pdu_tag(p + off, alen == 16 ? EPDU_IPV6_SRC : EPDU_IPV4_SRC, src->addr, alen);
    off += pdu_tag(p + off, alen == 16 ? EPDU_IPV6_DST : EPDU_IPV4_DST, dst->addr, alen);
    put32(v, EPDU_PT_TCP);
    off += pdu_tag(p + off, EPDU_PORT_TYPE, v, 4);
    put32(v, src->port);
    off += pdu_tag(p + off, EPDU_SRC_PORT, v, 4);
    put32(v, dst->port);
    off += pdu_tag(p + off, EPDU_DST_PORT, v, 4);
    put32(p + off, 0); /* EPDU_END, length 0 */
    memcpy(p + tags, t->raw, t->raw_len);
    return 0;
}

/* Appends one record: an IPv4 or IPv6 packet from src to dst carrying the message in a UDP
 * datagram, or for a message that came or went over TCP, in one TCP segment (PSH, ACK)
 * whose sequence number follows the bytes sent before in that direction and whose
 * acknowledgement covers those of the other. A message too long for one packet is cut, and
 * the record's original length says by how much. A message over TLS starts the file again
 * as pcapng (EAGAIN) unless it is one, and is then written by pcap_tls. */
static int pcap_one(const struct store_trace *t, void *arg)
{
    struct pcap_ctx *pc = arg;
    int in = strcmp(t->direction, "in") == 0;
    struct endpoint src, dst;
    parse_endpoint(in ? t->remote : t->local, &src);
    parse_endpoint(in ? t->local : t->remote, &dst);
    int v6 = src.family == AF_INET6 || dst.family == AF_INET6;
    if (v6) {
        map_v6(&src);
        map_v6(&dst);
    }
    if (strcmp(t->transport, "tls") == 0) {
        if (pc->format == PCAP_CLASSIC)
            return EAGAIN;
        int rc = pcap_tls(pc, t, &src, &dst);
        pc->n += rc == 0;
        return rc;
    }
    int tcp = strcmp(t->transport, "tcp") == 0;
    unsigned proto = tcp ? IPPROTO_TCP_N : IPPROTO_UDP_N;
    size_t ip_hdr = v6 ? IP6_HDR : IP4_HDR, l4_hdr = tcp ? TCP_HDR : UDP_HDR;
    size_t room = IP_MAX - l4_hdr - (v6 ? 0 : IP4_HDR);
    size_t payload = t->raw_len < room ? t->raw_len : room;
    size_t pkt = ip_hdr + l4_hdr + payload;

    unsigned char *ip = record_begin(pc, IFACE_IP, t->time_us, pkt, ip_hdr + l4_hdr + t->raw_len);
    if (!ip)
        return ENOMEM;
    unsigned char *l4 = ip + ip_hdr;
    memset(ip, 0, ip_hdr + l4_hdr);
    size_t alen = v6 ? 16 : 4;
    if (v6) {
        ip[0] = 0x60;
        put16(ip + 4, (unsigned)(l4_hdr + payload));
        ip[6] = (unsigned char)proto;
        ip[7] = 64; /* hop limit */
        memcpy(ip + 8, src.addr, 16);
        memcpy(ip + 24, dst.addr, 16);
    } else {
        ip[0] = 0x45;
        put16(ip + 2, (unsigned)pkt);
        put16(ip + 4, (unsigned)(pc->n & 0xffff)); /* identification */
        put16(ip + 6, 0x4000);                     /* don't fragment */
        ip[8] = 64;                                /* TTL */
        ip[9] = (unsigned char)proto;
        memcpy(ip + 12, src.addr, 4);
        memcpy(ip + 16, dst.addr, 4);
        put16(ip + 10, csum_fold(csum_add(0, ip, IP4_HDR)));
    }
    put16(l4, src.port);
    put16(l4 + 2, dst.port);
    if (tcp) {
        struct tcp_dir *fwd = tcp_dir(pc, &src, &dst);
        struct tcp_dir *rev = tcp_dir(pc, &dst, &src);
        put32(l4 + 4, fwd->next_seq);
        put32(l4 + 8, rev->next_seq);
        fwd->next_seq += (uint32_t)payload;
        l4[12] = (TCP_HDR / 4) << 4; /* data offset: no options */
        l4[13] = TCP_PSH_ACK;
        put16(l4 + 14, 65535); /* window */
    } else {
        put16(l4 + 4, (unsigned)(UDP_HDR + payload));
    }
    memcpy(l4 + l4_hdr, t->raw, payload);
    /* The checksum over the pseudo-header (RFC 768, RFC 793, RFC 8200 8.1), the header and
     * the data; mandatory for IPv6 and TCP, and written for IPv4 UDP too so that checkers
     * stay quiet. */
    uint32_t sum = csum_add(0, src.addr, alen);
    sum = csum_add(sum, dst.addr, alen);
    sum += proto + (uint32_t)(l4_hdr + payload);
    sum = csum_add(sum, l4, l4_hdr + payload);
    uint16_t c = csum_fold(sum);
    if (tcp)
        put16(l4 + 16, c);
    else
        put16(l4 + 6, c ? c : 0xffff);
    pc->n++;
    return 0;
}

static void send_pcap(struct http_req *r, const char *call_id, struct pcap_ctx *pc)
{
    /* The file name: the Call-ID with anything but [A-Za-z0-9._-] replaced. */
    const char *suffix = pc->format == PCAP_NG ? PCAPNG_SUFFIX : PCAP_SUFFIX;
    char name[96], disp[160];
    size_t i = 0;
    for (const char *p = call_id; *p && i < sizeof name - sizeof PCAPNG_SUFFIX; p++)
        name[i++] = isalnum((unsigned char)*p) || strchr("._-", *p) ? *p : '_';
    snprintf(name + i, sizeof name - i, "%s", suffix);
    snprintf(disp, sizeof disp, "attachment; filename=\"%s\"", name);
    http_text(r, 200,
              pc->format == PCAP_NG ? "application/x-pcapng" : "application/vnd.tcpdump.pcap",
              pc->out.p, pc->out.len);
    pc->out.p = NULL;
    http_header(r, "Content-Disposition", disp);
}

/* The capture of call_id in format into pc; returns 0, ENOENT, ENOMEM, EIO, or EAGAIN when
 * a classic pcap met a message over TLS (pc is empty then). */
static int build_pcap(struct http_req *r, const char *call_id, enum pcap_format format,
                      struct pcap_ctx *pc)
{
    memset(pc, 0, sizeof *pc);
    pc->format = format;
    pc->ifid[IFACE_IP] = pc->ifid[IFACE_TLS] = -1;
    if (format == PCAP_NG) {
        /* Section Header Block: byte-order magic, version 1.0, section length unknown. */
        unsigned char shb[16];
        put32le(shb, NG_BYTE_ORDER);
        put16le(shb + 4, 1);
        put16le(shb + 6, 0);
        put32le(shb + 8, 0xffffffffu);
        put32le(shb + 12, 0xffffffffu);
        const struct ng_option o[] = {{NG_SHB_USERAPPL, "sipbx " SIPBX_VERSION}, {0, NULL}};
        ng_block(&pc->out, NG_SHB, shb, sizeof shb, o);
    } else {
        unsigned char *h = (unsigned char *)buf_grow(&pc->out, 24);
        if (h) {
            put32le(h, 0xa1b2c3d4); /* microsecond timestamps */
            h[4] = 2;               /* version 2.4, little-endian like every field here */
            h[5] = 0;
            h[6] = 4;
            h[7] = 0;
            put32le(h + 8, 0);  /* thiszone: UTC */
            put32le(h + 12, 0); /* sigfigs */
            put32le(h + 16, PCAP_SNAPLEN);
            put32le(h + 20, LINKTYPE_RAW);
        }
    }
    int rc = pc->out.failed ? ENOMEM : store_trace_list(r->st, call_id, pcap_one, pc);
    if (rc == 0 && pc->out.failed)
        rc = ENOMEM;
    if (rc != 0)
        buf_free(&pc->out);
    return rc;
}

/* ---- JSON ---- */

struct json_ctx {
    cJSON *messages;
    int seq;
};

static int json_one(const struct store_trace *t, void *arg)
{
    struct json_ctx *jc = arg;
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return ENOMEM;
    cJSON_AddItemToArray(jc->messages, o);
    int in = strcmp(t->direction, "in") == 0;
    char buf[64];
    cJSON_AddNumberToObject(o, "seq", ++jc->seq);
    snprintf(buf, sizeof buf, "%" PRId64, t->time_us);
    cJSON_AddRawToObject(o, "time_us", buf);
    http_add_time_us(o, "time", t->time_us);
    cJSON_AddStringToObject(o, "direction", t->direction);
    cJSON_AddStringToObject(o, "transport", t->transport);
    cJSON_AddStringToObject(o, "src", in ? t->remote : t->local);
    cJSON_AddStringToObject(o, "dst", in ? t->local : t->remote);
    char *first = utf8_clean((const unsigned char *)t->first_line, strlen(t->first_line));
    cJSON_AddStringToObject(o, "first_line", first ? first : "");
    int status;
    char reason[128] = "";
    if (sscanf(t->first_line, "SIP/2.0 %3d %127[^\r\n]", &status, reason) >= 1) {
        cJSON_AddNumberToObject(o, "status", status);
        cJSON *rs = cJSON_CreateString(reason);
        cJSON_AddItemToObject(o, "reason", rs);
    } else {
        size_t n = strcspn(t->first_line, " ");
        snprintf(buf, sizeof buf, "%.*s", (int)(n < sizeof buf ? n : sizeof buf - 1),
                 t->first_line);
        cJSON_AddStringToObject(o, "method", buf);
    }
    free(first);
    char cseq[128] = "";
    const char *v;
    size_t vl;
    if (util_sip_header(t->raw, t->raw_len, "CSeq", 0, &v, &vl))
        snprintf(cseq, sizeof cseq, "%.*s", (int)vl, v);
    char *cs = utf8_clean((const unsigned char *)cseq, strlen(cseq));
    cJSON_AddStringToObject(o, "cseq", cs ? cs : "");
    free(cs);
    cJSON_AddBoolToObject(o, "retransmission", t->retransmission);
    char *raw = utf8_clean((const unsigned char *)t->raw, t->raw_len);
    if (!raw)
        return ENOMEM;
    cJSON_AddStringToObject(o, "raw", raw);
    free(raw);
    return 0;
}

/* The JSON trace of call_id; returns 0 (reply set), ENOENT, ENOMEM or EIO. */
static int send_json(struct http_req *r, const char *call_id)
{
    struct json_ctx jc = {cJSON_CreateArray(), 0};
    if (!jc.messages)
        return ENOMEM;
    int rc = store_trace_list(r->st, call_id, json_one, &jc);
    if (rc != 0) {
        cJSON_Delete(jc.messages);
        return rc;
    }
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "call_id", call_id);
    cJSON_AddItemToObject(root, "messages", jc.messages);
    http_json(r, 200, root);
    return 0;
}

/* ---- GET /traces/{call_id}[.pcap] ---- */

void api_traces_get(struct http_req *r)
{
    /* The path is already percent-decoded, so a Call-ID with "@", "/" or "%" arrives whole. A
     * name ending in ".pcap" asks for the capture file, unless no call has the shorter id
     * but one has the name as it is (a Call-ID may end in ".pcap" itself). */
    char id[HTTP_PARAM_MAX];
    snprintf(id, sizeof id, "%s", r->param);
    size_t n = strlen(id), sl = strlen(PCAP_SUFFIX);
    int rc = ENOENT, pcap = n > sl && strcmp(id + n - sl, PCAP_SUFFIX) == 0;
    if (pcap) {
        struct pcap_ctx pc;
        id[n - sl] = '\0';
        rc = build_pcap(r, id, PCAP_CLASSIC, &pc);
        if (rc == EAGAIN)
            rc = build_pcap(r, id, PCAP_NG, &pc);
        if (rc == 0) {
            send_pcap(r, id, &pc);
            return;
        }
        id[n - sl] = PCAP_SUFFIX[0];
    }
    if (rc == ENOENT)
        rc = send_json(r, id);
    if (rc == ENOENT)
        http_error(r, 404, "not_found", "no SIP messages captured for call %.*s",
                   (int)(pcap ? n - sl : n), id);
    else if (rc == ENOMEM)
        http_error(r, 500, "internal", "out of memory");
    else if (rc != 0)
        http_store_error(r);
}
