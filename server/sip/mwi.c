/* Message waiting (RFC 3842): the message-summary documents of the event server (subs.c),
 * written from voicemail's counts, and the way a change of a mailbox reaches the SIP thread:
 * voicemail calls its listener on whichever thread changed the mailbox (its user agent, an
 * HTTP thread) after the counts were read from the database, and the listener only posts
 * the extension to the SIP loop, where its subscriptions are notified. */
#include "sip/sip_int.h"
#include "voicemail/vm.h"

#include <stdlib.h>
#include <string.h>

void mwi_summary(struct sip *s, const char *ext, uint32_t version, struct buf *out)
{
    (void)version; /* RFC 3842 documents have none */
    int new_count = 0, old_count = 0;
    if (s->vm)
        vm_counts(s->vm, ext, &new_count, &old_count); /* memory under a mutex, no disk */
    buf_printf(out,
               "Messages-Waiting: %s\r\n"
               "Message-Account: sip:%s@%s\r\n"
               "Voice-Message: %d/%d (0/0)\r\n",
               new_count > 0 ? "yes" : "no", ext, s->domain, new_count, old_count);
}

int mwi_is_mailbox_uri(struct sip *s, const char *user, const char *watcher)
{
    if (!user)
        return 0;
    return strcmp(user, watcher) == 0 ||
           (s->cfg->voicemail_number[0] && strcmp(user, s->cfg->voicemail_number) == 0);
}

/* On the SIP thread: the extension a mailbox change named. Its subscriptions compute their
 * documents now (the newest counts, also of several changes in a row) and are notified
 * where the document differs from their last NOTIFY. Not through pres_changed: a mailbox is
 * not presence, and the dashboard's presence.changed would go out for nothing. */
static void on_posted(struct sip *s, void *ext)
{
    subs_notify_presentity(s, ext);
    free(ext);
}

/* voicemail's listener, on the thread that changed the mailbox: never waits for the SIP
 * thread, which may be busy; the message carries the extension by value. */
static void on_mailbox(const char *ext, int new_count, int old_count, void *ctx)
{
    (void)new_count;
    (void)old_count;
    struct sip *s = ctx;
    if (strlen(ext) >= STORE_EXT_MAX)
        return;
    if (sip_post(s, on_posted, free, util_xstrdup(ext)) != 0)
        log_error("mwi: cannot reach the SIP thread: the lamps of %s are not updated", ext);
}

void mwi_attach(struct sip *s)
{
    if (s->vm)
        vm_set_listener(s->vm, on_mailbox, s);
}

void mwi_detach(struct sip *s)
{
    if (s->vm)
        vm_set_listener(s->vm, NULL, NULL);
}
