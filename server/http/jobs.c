/* The HTTP handler threads: route handlers that may wait (for the SIP thread, the database
 * writer or the write lock, a password hash) run here, so that the libmicrohttpd threads,
 * which serve every connection, never wait on them. A bounded queue in front of a few
 * threads; what does not fit is refused at once. */
#include "http/http_int.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

struct http_jobs {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct http_job *head, *tail;
    int queued, max_queued;
    int stopping;
    pthread_t *threads;
    int nthreads;
};

static void *worker(void *arg)
{
    struct http_jobs *j = arg;
    pthread_mutex_lock(&j->lock);
    for (;;) {
        while (!j->head && !j->stopping)
            pthread_cond_wait(&j->cond, &j->lock);
        struct http_job *job = j->head;
        if (!job)
            break; /* stopping, and all that was queued has run */
        j->head = job->next;
        if (!j->head)
            j->tail = NULL;
        j->queued--;
        pthread_mutex_unlock(&j->lock);
        job->run(job);
        pthread_mutex_lock(&j->lock);
    }
    pthread_mutex_unlock(&j->lock);
    return NULL;
}

int http_jobs_create(struct http_jobs **out, int nthreads, int max_queued)
{
    struct http_jobs *j = calloc(1, sizeof *j);
    if (!j || !(j->threads = calloc((size_t)nthreads, sizeof *j->threads))) {
        free(j);
        return ENOMEM;
    }
    pthread_mutex_init(&j->lock, NULL);
    pthread_cond_init(&j->cond, NULL);
    j->max_queued = max_queued;
    for (; j->nthreads < nthreads; j->nthreads++) {
        int e = pthread_create(&j->threads[j->nthreads], NULL, worker, j);
        if (e != 0) {
            http_jobs_destroy(j);
            return e;
        }
    }
    *out = j;
    return 0;
}

int http_jobs_submit(struct http_jobs *j, struct http_job *job)
{
    pthread_mutex_lock(&j->lock);
    if (j->stopping || j->queued >= j->max_queued) {
        pthread_mutex_unlock(&j->lock);
        return EBUSY;
    }
    job->next = NULL;
    if (j->tail)
        j->tail->next = job;
    else
        j->head = job;
    j->tail = job;
    j->queued++;
    pthread_cond_signal(&j->cond);
    pthread_mutex_unlock(&j->lock);
    return 0;
}

void http_jobs_destroy(struct http_jobs *j)
{
    if (!j)
        return;
    pthread_mutex_lock(&j->lock);
    j->stopping = 1;
    pthread_cond_broadcast(&j->cond);
    pthread_mutex_unlock(&j->lock);
    for (int i = 0; i < j->nthreads; i++)
        pthread_join(j->threads[i], NULL);
    pthread_mutex_destroy(&j->lock);
    pthread_cond_destroy(&j->cond);
    free(j->threads);
    free(j);
}
