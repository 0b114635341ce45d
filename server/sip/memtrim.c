/* Gives the memory of a burst back to the kernel once the burst is over. glibc keeps what
 * was freed for reuse: after a re-registration storm, when every phone registers again
 * within a minute, the process kept its peak (the completed transactions Sofia holds for
 * 64*T1 = 32 s, about 12 KB each) for ever. The SIP thread's housekeeping follows Sofia's
 * count of transactions; once it has fallen to a quarter of the highest count since the
 * last trim, and that high was a burst, malloc_trim(0) returns the free pages. Free memory
 * left by other threads (a bulk import, the capture's backlog) is returned by a check of
 * the arenas once a minute. */
#include "sip/sip_int.h"

#include <malloc.h>

#include <sofia-sip/nta_tag.h>

#define MEMTRIM_BURST    500         /* transactions: a smaller high is no burst */
#define MEMTRIM_GAP_S    10          /* at most one trim this often */
#define MEMTRIM_CHECK_S  60          /* how often the arenas are looked at */
#define MEMTRIM_FREE_MIN (16u << 20) /* free bytes in the arenas worth a trim */

static void trim(struct sip *s, int64_t now, const char *why)
{
    int64_t t0 = util_mono_ms();
    int released = malloc_trim(0);
    s->trim_at = now;
    log_debug("memory: free memory given back (%s)%s in %lld ms", why,
              released ? "" : ", nothing to give", (long long)(util_mono_ms() - t0));
}

void memtrim_tick(struct sip *s, int64_t now)
{
    usize_t irq = 0, orq = 0;
    nta_agent_get_stats(s->agent, NTATAG_S_IRQ_HASH_USED_REF(irq), NTATAG_S_ORQ_HASH_USED_REF(orq),
                        TAG_END());
    size_t n = (size_t)irq + (size_t)orq;
    if (n > s->trim_peak)
        s->trim_peak = n;
    if (now - s->trim_at < MEMTRIM_GAP_S)
        return;
    if (s->trim_peak >= MEMTRIM_BURST && n <= s->trim_peak / 4) {
        trim(s, now, "a burst of transactions is over");
        s->trim_peak = n;
        s->trim_checked = now;
        return;
    }
    if (now - s->trim_checked >= MEMTRIM_CHECK_S) {
        s->trim_checked = now;
        struct mallinfo2 mi = mallinfo2();
        if (mi.fordblks >= MEMTRIM_FREE_MIN)
            trim(s, now, "free memory in the arenas");
    }
}
