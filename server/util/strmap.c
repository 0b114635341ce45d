/* A chained hash map from C strings to pointers (FNV-1a hash, doubling at load 1). */
#include "util/util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct node {
    struct node *next;
    uint32_t hash;
    void *val;
    char key[];
};

struct strmap {
    struct node **buckets;
    size_t nbuckets; /* always a power of two */
    size_t count;
    struct util_pool *pool; /* where nodes come from; NULL: the heap */
};

static void node_free(struct strmap *m, struct node *n)
{
    if (m->pool)
        util_pool_free(m->pool, n);
    else
        free(n);
}

void strmap_use_pool(struct strmap *m, struct util_pool *pool)
{
    m->pool = pool;
}

static uint32_t hash_str(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

int strmap_create(struct strmap **out)
{
    struct strmap *m = calloc(1, sizeof *m);
    if (!m)
        return ENOMEM;
    m->nbuckets = 16;
    m->buckets = calloc(m->nbuckets, sizeof *m->buckets);
    if (!m->buckets) {
        free(m);
        return ENOMEM;
    }
    *out = m;
    return 0;
}

void strmap_destroy(struct strmap *m, void (*free_val)(void *))
{
    if (!m)
        return;
    for (size_t i = 0; i < m->nbuckets; i++) {
        struct node *n = m->buckets[i];
        while (n) {
            struct node *next = n->next;
            if (free_val)
                free_val(n->val);
            node_free(m, n);
            n = next;
        }
    }
    free(m->buckets);
    free(m);
}

static struct node **find_slot(const struct strmap *m, const char *key, uint32_t h)
{
    struct node **pp = &m->buckets[h & (m->nbuckets - 1)];
    for (; *pp; pp = &(*pp)->next)
        if ((*pp)->hash == h && strcmp((*pp)->key, key) == 0)
            break;
    return pp;
}

void *strmap_get(const struct strmap *m, const char *key)
{
    struct node *n = *find_slot(m, key, hash_str(key));
    return n ? n->val : NULL;
}

static void grow(struct strmap *m)
{
    size_t nb = m->nbuckets * 2;
    struct node **b = util_xcalloc(nb, sizeof *b);
    for (size_t i = 0; i < m->nbuckets; i++) {
        struct node *n = m->buckets[i];
        while (n) {
            struct node *next = n->next;
            n->next = b[n->hash & (nb - 1)];
            b[n->hash & (nb - 1)] = n;
            n = next;
        }
    }
    free(m->buckets);
    m->buckets = b;
    m->nbuckets = nb;
}

void strmap_put(struct strmap *m, const char *key, void *val, void **old)
{
    uint32_t h = hash_str(key);
    struct node **pp = find_slot(m, key, h);
    if (old)
        *old = NULL;
    if (*pp) {
        if (old)
            *old = (*pp)->val;
        (*pp)->val = val;
        return;
    }
    size_t len = strlen(key);
    struct node *n =
        m->pool ? util_pool_alloc(m->pool, sizeof *n + len + 1) : util_xmalloc(sizeof *n + len + 1);
    memcpy(n->key, key, len + 1);
    n->hash = h;
    n->val = val;
    n->next = NULL;
    *pp = n;
    if (++m->count > m->nbuckets)
        grow(m);
}

void *strmap_remove(struct strmap *m, const char *key)
{
    struct node **pp = find_slot(m, key, hash_str(key));
    struct node *n = *pp;
    if (!n)
        return NULL;
    void *val = n->val;
    *pp = n->next;
    node_free(m, n);
    m->count--;
    return val;
}

size_t strmap_count(const struct strmap *m)
{
    return m->count;
}

void strmap_foreach(struct strmap *m, int (*fn)(const char *key, void *val, void *ctx), void *ctx)
{
    for (size_t i = 0; i < m->nbuckets; i++) {
        struct node **pp = &m->buckets[i];
        while (*pp) {
            struct node *n = *pp;
            if (fn(n->key, n->val, ctx) == STRMAP_DROP) {
                *pp = n->next;
                node_free(m, n);
                m->count--;
            } else {
                pp = &n->next;
            }
        }
    }
}

void strmap_destroy_pooled(struct strmap *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->nbuckets; i++)
        for (struct node *n = m->buckets[i]; n; n = n->next)
            util_pool_free(m->pool, n->val);
    strmap_destroy(m, NULL);
}
