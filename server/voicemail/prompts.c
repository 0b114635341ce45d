/* What the voicemail plays: the prompts compiled in (by name), shared audio buffers, and lists
 * of clips put together from them (numbers said as words, extensions digit by digit). */
#include "util/util.h"
#include "voicemail/vm_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const struct vm_prompt *vm_prompt(const char *name)
{
    for (size_t i = 0; i < vm_prompt_count; i++)
        if (strcmp(vm_prompt_table[i].name, name) == 0)
            return &vm_prompt_table[i];
    return NULL;
}

struct vm_audio *vm_audio_new(size_t n)
{
    struct vm_audio *a = malloc(sizeof *a + n * sizeof a->samples[0]);
    if (!a)
        return NULL;
    atomic_init(&a->refs, 1);
    a->n = n;
    return a;
}

struct vm_audio *vm_audio_ref(struct vm_audio *a)
{
    atomic_fetch_add_explicit(&a->refs, 1, memory_order_relaxed);
    return a;
}

void vm_audio_unref(struct vm_audio *a)
{
    if (a && atomic_fetch_sub_explicit(&a->refs, 1, memory_order_acq_rel) == 1)
        free(a);
}

static void add_clip(struct vm_clips *l, const int16_t *s, size_t n, struct vm_audio *owner)
{
    if (l->n >= VM_CLIPS_MAX) {
        log_warn("voicemail: more than %d clips in one prompt; the rest left out", VM_CLIPS_MAX);
        vm_audio_unref(owner);
        return;
    }
    l->c[l->n++] = (struct vm_clip){s, n, owner};
}

void vm_clips_prompt(struct vm_clips *l, const char *name)
{
    const struct vm_prompt *p = vm_prompt(name);
    if (!p) {
        log_error("voicemail: no prompt %s (server/voicemail/prompts.txt)", name);
        return;
    }
    add_clip(l, p->samples, p->n, NULL);
}

void vm_clips_audio(struct vm_clips *l, struct vm_audio *a)
{
    if (a)
        add_clip(l, a->samples, a->n, a);
}

void vm_clips_number(struct vm_clips *l, long n)
{
    char name[8];
    if (n < 0 || n > 999) {
        char digits[24];
        snprintf(digits, sizeof digits, "%ld", n < 0 ? -n : n);
        vm_clips_digits(l, digits);
        return;
    }
    if (n >= 100) {
        snprintf(name, sizeof name, "n%ld", n / 100);
        vm_clips_prompt(l, name);
        vm_clips_prompt(l, "hundred");
        n %= 100;
        if (n == 0)
            return;
    }
    if (n <= 20 || n % 10 == 0) {
        snprintf(name, sizeof name, "n%ld", n);
        vm_clips_prompt(l, name);
        return;
    }
    snprintf(name, sizeof name, "n%ld", n / 10 * 10);
    vm_clips_prompt(l, name);
    snprintf(name, sizeof name, "n%ld", n % 10);
    vm_clips_prompt(l, name);
}

int vm_clips_digits(struct vm_clips *l, const char *s)
{
    if (!*s || strspn(s, "0123456789") != strlen(s))
        return 0;
    for (; *s; s++) {
        char name[4] = {'n', *s, '\0', '\0'};
        vm_clips_prompt(l, name);
    }
    return 1;
}

void vm_clips_release(struct vm_clips *l)
{
    for (size_t i = 0; i < l->n; i++)
        vm_audio_unref(l->c[i].owner);
    l->n = 0;
}
