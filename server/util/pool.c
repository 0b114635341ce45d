/* A pool for objects that live as long as something outside the pool's owner decides (a
 * call lives minutes), kept apart from the heap where the same thread's short-lived
 * memory comes and goes. Why: the SIP thread's heap fills with Sofia's transactions in a
 * burst of calls (each kept 32 s); the calls' own small blocks, allocated in between,
 * stayed scattered over that memory after the transactions went, and every page holding
 * one stayed resident: 1,000 calls up held 38 MB of free heap that malloc_trim could not
 * give back. Here the blocks of calls sit next to each other, in 64 KiB slabs mapped for
 * the pool, and a slab whose last object is freed goes back to the kernel.
 *
 * Objects are rounded up to one of a few size classes (at most 25% more); each slab holds
 * objects of one class. A slab's free objects are linked through their first word; objects
 * never used are taken from the end of the used part, so that a slab's pages are touched
 * only as they are needed. One thread owns a pool (no locks). Under AddressSanitizer free
 * objects are poisoned, so that a use after pool_free is reported as one after free(). */
#include "util/util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define POISON(p, n)   ASAN_POISON_MEMORY_REGION((p), (n))
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define POISON(p, n)   ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#define SLAB_SIZE ((size_t)64 << 10) /* also their alignment: an object's slab is found by it */
#define PAGE      ((size_t)4096)     /* the first page holds the slab's header: kept */

static const uint32_t class_size[] = {16,   32,   48,   64,   80,   96,   112,  128,
                                      160,  192,  224,  256,  320,  384,  448,  512,
                                      640,  768,  896,  1024, 1280, 1536, 1792, 2048,
                                      2560, 3072, 3584, 4096, 5120, 6144, 7168, UTIL_POOL_MAX};
#define NCLASSES (sizeof class_size / sizeof class_size[0])

struct slab {
    struct slab *prev, *next;         /* in the pool's list of slabs of this class with room */
    struct slab *all_prev, *all_next; /* in the list of all the pool's slabs */
    void *free;                       /* freed objects, linked through their first word */
    uint32_t nfree;                   /* free objects, whether freed or never used */
    uint32_t cap;                     /* objects the slab holds */
    uint32_t used;                    /* objects taken from the slab's end so far */
    uint32_t cls;
    int listed; /* in the list of slabs with room */
};

#define OBJ0 ((sizeof(struct slab) + 15) & ~(size_t)15) /* offset of the first object */

struct util_pool {
    struct slab *room[NCLASSES]; /* slabs with a free object, per class */
    struct slab *all;
    struct util_pool_stats st;
};

static size_t class_of(size_t n)
{
    size_t lo = 0, hi = NCLASSES - 1;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (class_size[mid] < n)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Maps SLAB_SIZE bytes aligned to SLAB_SIZE: twice as much, the rest given back. */
static struct slab *slab_map(void)
{
    char *p = mmap(NULL, 2 * SLAB_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        util_out_of_memory(2 * SLAB_SIZE);
    uintptr_t a = ((uintptr_t)p + SLAB_SIZE - 1) & ~(uintptr_t)(SLAB_SIZE - 1);
    size_t head = a - (uintptr_t)p, tail = SLAB_SIZE - head;
    if (head)
        munmap(p, head);
    if (tail)
        munmap((char *)a + SLAB_SIZE, tail);
    return (struct slab *)a;
}

static void unlist(struct util_pool *p, struct slab *sl)
{
    if (!sl->listed)
        return;
    if (sl->prev)
        sl->prev->next = sl->next;
    else
        p->room[sl->cls] = sl->next;
    if (sl->next)
        sl->next->prev = sl->prev;
    sl->prev = sl->next = NULL;
    sl->listed = 0;
}

static void list(struct util_pool *p, struct slab *sl)
{
    sl->prev = NULL;
    sl->next = p->room[sl->cls];
    if (sl->next)
        sl->next->prev = sl;
    p->room[sl->cls] = sl;
    sl->listed = 1;
}

static struct slab *slab_new(struct util_pool *p, size_t cls)
{
    struct slab *sl = slab_map();
    memset(sl, 0, sizeof *sl);
    sl->cls = (uint32_t)cls;
    sl->cap = (uint32_t)((SLAB_SIZE - OBJ0) / class_size[cls]);
    sl->nfree = sl->cap;
    POISON((char *)sl + OBJ0, SLAB_SIZE - OBJ0);
    sl->all_next = p->all;
    if (p->all)
        p->all->all_prev = sl;
    p->all = sl;
    list(p, sl);
    p->st.mapped += SLAB_SIZE;
    return sl;
}

static void slab_unmap(struct util_pool *p, struct slab *sl)
{
    unlist(p, sl);
    if (sl->all_prev)
        sl->all_prev->all_next = sl->all_next;
    else
        p->all = sl->all_next;
    if (sl->all_next)
        sl->all_next->all_prev = sl->all_prev;
    p->st.mapped -= SLAB_SIZE;
    UNPOISON(sl, SLAB_SIZE);
    munmap(sl, SLAB_SIZE);
}

int util_pool_create(struct util_pool **out)
{
    struct util_pool *p = calloc(1, sizeof *p);
    if (!p)
        return ENOMEM;
    *out = p;
    return 0;
}

void util_pool_destroy(struct util_pool *pool)
{
    struct util_pool *p = pool;
    if (!p)
        return;
    while (p->all)
        slab_unmap(p, p->all);
    free(p);
}

void *util_pool_alloc(struct util_pool *pool, size_t n)
{
    struct util_pool *p = pool;
    if (n == 0)
        n = 1;
    if (n > class_size[NCLASSES - 1]) {
        log_error("pool: an object of %zu bytes is larger than the pool's largest (%u); stopping",
                  n, class_size[NCLASSES - 1]);
        abort();
    }
    size_t cls = class_of(n);
    struct slab *sl = p->room[cls];
    if (!sl)
        sl = slab_new(p, cls);
    char *obj;
    if (sl->free) {
        obj = sl->free;
        UNPOISON(obj, sizeof(void *));
        memcpy(&sl->free, obj, sizeof(void *));
    } else {
        obj = (char *)sl + OBJ0 + (size_t)sl->used * class_size[cls];
        sl->used++;
    }
    if (--sl->nfree == 0)
        unlist(p, sl);
    UNPOISON(obj, n);
    memset(obj, 0, n);
    p->st.objects++;
    p->st.in_use += class_size[cls];
    return obj;
}

char *util_pool_strdup(struct util_pool *pool, const char *s)
{
    if (!s)
        return NULL;
    size_t n = strlen(s) + 1;
    return memcpy(util_pool_alloc(pool, n), s, n);
}

void util_pool_free(struct util_pool *pool, void *obj)
{
    struct util_pool *p = pool;
    if (!obj)
        return;
    struct slab *sl = (struct slab *)((uintptr_t)obj & ~(uintptr_t)(SLAB_SIZE - 1));
    size_t size = class_size[sl->cls];
    POISON(obj, size);
    UNPOISON(obj, sizeof(void *));
    memcpy(obj, &sl->free, sizeof(void *));
    POISON(obj, sizeof(void *));
    sl->free = obj;
    p->st.objects--;
    p->st.in_use -= size;
    if (++sl->nfree == sl->cap) {
        if (sl->listed ? sl->next || sl->prev : p->room[sl->cls] != NULL) {
            slab_unmap(p, sl); /* empty, and another slab of its class has room */
            return;
        }
        /* The class's only slab with room: kept for the next object, its pages given back
         * (as a new slab, nothing used). */
        sl->free = NULL;
        sl->used = 0;
        UNPOISON((char *)sl + OBJ0, SLAB_SIZE - OBJ0);
        madvise((char *)sl + PAGE, SLAB_SIZE - PAGE, MADV_DONTNEED);
        POISON((char *)sl + OBJ0, SLAB_SIZE - OBJ0);
    }
    if (!sl->listed)
        list(p, sl);
}

struct util_pool_stats util_pool_stats(const struct util_pool *pool)
{
    return pool->st;
}
