/* Starting and stopping voicemail (its directory, database connection, counts, media thread
 * and user agent), and what other modules ask of it without a running voicemail (the files
 * of a deleted user, the greeting as a WAV file). */
#include "cert/cert.h"
#include "config/config.h"
#include "store/store.h"
#include "util/util.h"
#include "voicemail/vm_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PORT_TRIES 5 /* a free port picked by the kernel may be taken before nua binds it */

void vm_dir_of(const char *db_path, char *out, size_t outlen)
{
    char data[4096];
    cert_data_dir(db_path, data, sizeof data);
    snprintf(out, outlen, "%s/voicemail", data);
}

/* A UDP port on 127.0.0.1 free a moment ago; 0 when none. */
static int free_udp_port(void)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int port = 0;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

int vm_create(struct vm **out, const struct config *cfg, const unsigned char secret[VM_SECRET_LEN],
              const char *db_path, const char *data_dir, const char *proxy_uri, struct events *ev,
              char *err, size_t errlen)
{
    struct vm *vm = calloc(1, sizeof *vm);
    if (!vm) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    pthread_mutex_init(&vm->lock, NULL);
    vm->cfg = cfg;
    vm->events = ev;
    static const char label[] = "sipbx voicemail v1";
    util_hmac_sha256(secret, VM_SECRET_LEN, label, sizeof label - 1, vm->key);
    snprintf(vm->db_path, sizeof vm->db_path, "%s", db_path);
    snprintf(vm->proxy_uri, sizeof vm->proxy_uri, "%s", proxy_uri);
    if (snprintf(vm->dir, sizeof vm->dir, "%s/voicemail", data_dir) >= (int)sizeof vm->dir) {
        snprintf(err, errlen, "data directory %s: path too long", data_dir);
        goto fail;
    }
    if (mkdir(vm->dir, 0700) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "cannot create the voicemail directory %s: %s", vm->dir,
                 strerror(errno));
        goto fail;
    }
    /* Where phones send RTP: the configured media address, else the SIP address, else (SIP
     * on every address) the host's primary one. RTP sockets bind the SIP address. */
    int wildcard = strcmp(cfg->sip_host, "0.0.0.0") == 0 || strcmp(cfg->sip_host, "::") == 0;
    if (cfg->media_address[0])
        snprintf(vm->media_host, sizeof vm->media_host, "%s", cfg->media_address);
    else if (!wildcard)
        snprintf(vm->media_host, sizeof vm->media_host, "%s", cfg->sip_host);
    else
        config_primary_address(vm->media_host, sizeof vm->media_host);
    struct util_addr probe;
    if (util_addr_parse(vm->media_host, &probe) != 0) {
        snprintf(err, errlen, "media_address: %s is not an IP address", vm->media_host);
        goto fail;
    }
    if (store_open(&vm->st, db_path, 0, err, errlen) != 0)
        goto fail;
    if (strmap_create(&vm->counts) != 0 || mailbox_load_counts(vm) != 0) {
        snprintf(err, errlen, "cannot read the voicemail messages from %s", db_path);
        goto fail;
    }
    if (media_create(&vm->media, cfg->sip_host, cfg->rtp_port_min, cfg->rtp_port_max,
                     ua_media_event, vm, err, errlen) != 0)
        goto fail;
    for (int i = 0; i < PORT_TRIES; i++) {
        vm->port = cfg->voicemail_port ? cfg->voicemail_port : free_udp_port();
        if (ua_start(vm, err, errlen) == 0)
            break;
        if (cfg->voicemail_port || i == PORT_TRIES - 1)
            goto fail;
    }
    *out = vm;
    return 0;
fail:
    vm_stop(vm);
    vm_destroy(vm);
    return -1;
}

void vm_stop(struct vm *vm)
{
    if (!vm || vm->stopped)
        return;
    vm->stopped = 1;
    ua_stop(vm);
    media_destroy(vm->media);
    vm->media = NULL;
}

void vm_destroy(struct vm *vm)
{
    if (!vm)
        return;
    vm_stop(vm);
    store_close(vm->st);
    if (vm->counts)
        strmap_destroy(vm->counts, free);
    pthread_mutex_destroy(&vm->lock);
    free(vm);
}

int vm_port(const struct vm *vm)
{
    return vm->port;
}

const char *vm_dir(const struct vm *vm)
{
    return vm->dir;
}

void vm_get_stats(struct vm *vm, struct vm_stats *out)
{
    struct media_stats ms = {0};
    if (vm->media)
        media_get_stats(vm->media, &ms);
    out->calls = ms.sessions;
    out->rtp_sent = ms.sent;
    out->rtp_received = ms.received;
    out->late_ticks = ms.late_ticks;
}

/* ---- without a running voicemail ---- */

struct files {
    char (*name)[STORE_VM_FILE_MAX];
    size_t n;
};

static int add_file(const struct store_vm_msg *m, void *ctx)
{
    struct files *f = ctx;
    char(*g)[STORE_VM_FILE_MAX] = realloc(f->name, (f->n + 1) * sizeof *g);
    if (!g)
        return ENOMEM;
    f->name = g;
    snprintf(f->name[f->n++], STORE_VM_FILE_MAX, "%s", m->file);
    return 0;
}

int vm_user_delete(struct store *st, const char *dir, const char *ext)
{
    struct files f = {NULL, 0};
    if (store_vm_list(st, ext, add_file, &f) != 0)
        f.n = 0; /* then retention deletes them as files without rows */
    int rc = store_user_delete(st, ext);
    for (size_t i = 0; rc == 0 && i < f.n; i++) {
        char path[8192];
        if (!strchr(f.name[i], '/') && f.name[i][0] != '.' &&
            snprintf(path, sizeof path, "%s/%s", dir, f.name[i]) < (int)sizeof path &&
            unlink(path) != 0 && errno != ENOENT)
            log_warn("voicemail: cannot delete %s: %s", path, strerror(errno));
    }
    free(f.name);
    return rc;
}

/* Appends prompt name to the n samples of buf (capacity cap); 0 or -1 when missing. */
static int append_prompt(int16_t *buf, size_t *n, size_t cap, const char *name)
{
    const struct vm_prompt *p = vm_prompt(name);
    if (!p || *n + p->n > cap)
        return -1;
    memcpy(buf + *n, p->samples, p->n * sizeof *buf);
    *n += p->n;
    return 0;
}

int vm_greeting_wav(struct store *st, const char *ext, void **out, size_t *len, int *custom)
{
    void *pcm = NULL;
    size_t bytes = 0;
    int rc = store_vm_greeting_get(st, ext, &pcm, &bytes, NULL);
    if (rc != 0 && rc != ENOENT)
        return rc;
    *custom = rc == 0;
    if (!*custom) {
        /* What a caller hears when ext does not answer: the prompts start_greeting (ua.c)
         * puts together for an unavailable user. */
        size_t cap = 0, n = 0;
        for (size_t i = 0; i < vm_prompt_count; i++)
            cap += vm_prompt_table[i].n;
        int16_t *s = malloc(cap * sizeof *s);
        if (!s)
            return ENOMEM;
        int digits = ext[0] && strspn(ext, "0123456789") == strlen(ext);
        append_prompt(s, &n, cap, digits ? "greet_person" : "greet_generic");
        for (const char *d = ext; digits && *d; d++) {
            char name[3] = {'n', *d, '\0'};
            append_prompt(s, &n, cap, name);
        }
        append_prompt(s, &n, cap, "greet_unavailable");
        append_prompt(s, &n, cap, "greet_leave");
        uint8_t *le = malloc(n * 2 + 1);
        for (size_t i = 0; le && i < n; i++) {
            le[2 * i] = (uint8_t)(s[i] & 0xFF);
            le[2 * i + 1] = (uint8_t)((uint16_t)s[i] >> 8);
        }
        free(s);
        if (!le)
            return ENOMEM;
        pcm = le;
        bytes = n * 2;
    }
    uint8_t *wav = malloc(AUDIO_WAV_HEADER + bytes);
    if (!wav) {
        free(pcm);
        return ENOMEM;
    }
    audio_wav_header(wav, bytes / 2);
    memcpy(wav + AUDIO_WAV_HEADER, pcm, bytes);
    free(pcm);
    *out = wav;
    *len = AUDIO_WAV_HEADER + bytes / 2 * 2;
    return 0;
}
