/*
 * worker/ondemand.c - on-demand enrichment of one indicator (worker.h,
 * wk_ondemand_submit; POST /v1/enrichments in docs/enrichment.md). A
 * bounded queue served by one thread of its own, with its own database
 * connection (opened at the first lookup) and libcurl handle, so that the
 * event loops never wait for a provider and the job threads are not held
 * up: it runs with --workers 0 as well. A lookup reads the cache for every
 * provider that answers the type, asks each http provider without a fresh
 * answer (through the same rate limits and concurrency caps as the jobs),
 * answers list and cidr providers from memory, writes the new answers to
 * the cache and hands the results back through the caller's callback.
 */
#include "wk_int.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct od_item {
    struct od_item *next;
    char *type, *value;
    char **providers;
    size_t nproviders;
    bool refresh;
    int64_t deadline_us;
    wk_ondemand_cb done;
    void *ctx;
} od_item_t;

struct wk_ondemand {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    od_item_t *head, *tail;
    size_t n, cap;
    bool stop, running;
    pthread_t thread;
};

static void item_free(od_item_t *it)
{
    for (size_t i = 0; i < it->nproviders; i++)
        free(it->providers[i]);
    free(it->providers);
    free(it->type);
    free(it->value);
    free(it);
}

static void answer(od_item_t *it, int status, const char *code, char *body, int retry_after_s)
{
    wk_metrics_ondemand(status);
    wk_ondemand_answer_t a = {status, code, body, retry_after_s};
    it->done(it->ctx, &a);
}

static void answer_error(od_item_t *it, int status, const char *code, const char *message)
{
    answer(it, status, code, am_xstrdup(message), status == 503 ? 1 : 0);
}

/* One provider's part of the answer. */
typedef struct od_part {
    size_t prov;
    const char *name;
    eng_provider_kind_t kind;
    bool cached;
    store_enrich_cached_t c;
    eng_presult_t r; /* asked or looked up (r.fields NULL otherwise) */
    char error[320];
    bool failed_only; /* not asked (rate limit, stopping): error says why */
} od_part_t;

static int cmp_part(const void *a, const void *b)
{
    return strcmp(((const od_part_t *)a)->name, ((const od_part_t *)b)->name);
}

static json_t *part_json(const od_part_t *p, const char *now)
{
    json_t *o = json_object();
    json_object_set_new(o, "provider", json_string(p->name));
    if (p->cached) {
        json_object_set_new(o, "outcome", json_string(p->c.outcome));
        json_object_set_new(o, "verdict",
                            p->c.verdict[0] ? json_string(p->c.verdict) : json_null());
        json_t *f = json_loads(p->c.fields ? p->c.fields : "{}", 0, NULL);
        json_object_set_new(o, "result", f ? f : json_object());
        if (p->c.error != NULL)
            json_object_set_new(o, "error", json_string(p->c.error));
        json_object_set_new(o, "fetched_at", json_string(p->c.fetched_at));
        json_object_set_new(o, "cached", json_true());
        return o;
    }
    bool ok =
        !p->failed_only && (p->r.outcome == ENG_OUT_FOUND || p->r.outcome == ENG_OUT_NOT_FOUND);
    json_object_set_new(o, "outcome",
                        json_string(!ok                             ? "failed"
                                    : p->r.outcome == ENG_OUT_FOUND ? "found"
                                                                    : "not_found"));
    json_object_set_new(o, "verdict",
                        ok && p->r.outcome == ENG_OUT_FOUND && p->r.verdict != ENG_VERDICT_NONE
                            ? json_string(eng_verdict_name(p->r.verdict))
                            : json_null());
    json_object_set_new(o, "result",
                        p->r.fields != NULL ? json_incref(p->r.fields) : json_object());
    if (!ok)
        json_object_set_new(o, "error", json_string(p->error));
    json_object_set_new(o, "fetched_at", json_string(now));
    json_object_set_new(o, "cached", json_false());
    return o;
}

static void run_item(wk_t *w, store_enrich_t **db, CURL *curl, od_item_t *it)
{
    char err[512];
    if (am_now_us() > it->deadline_us) {
        answer_error(it, 503, "TIMEOUT", "the lookup waited past the request deadline");
        return;
    }
    eng_ioc_type_t t;
    if (eng_ioc_type_parse(&t, it->type, strlen(it->type)) != 0) {
        answer_error(it, 400, "INVALID_TYPE", "unknown indicator type");
        return;
    }
    if (*db == NULL) {
        char name[128], host[64] = "host";
        gethostname(host, sizeof(host) - 1);
        snprintf(name, sizeof(name), "%s:%ld:ondemand", host, (long)getpid());
        if (store_enrich_open(db, w->conninfo, name, err, sizeof(err)) != AM_OK)
            am_log(AM_LOG_WARN, "worker_database_unavailable", "serror", err, NULL);
    }
    wk_bundle_t *b = wk_bundle_acquire(w);
    od_part_t *parts = am_xcalloc(b->n ? b->n : 1, sizeof(*parts));
    store_enrich_key_t *keys = am_xcalloc(b->n ? b->n : 1, sizeof(*keys));
    store_enrich_cached_t *cached = am_xcalloc(b->n ? b->n : 1, sizeof(*cached));
    bool *found = am_xcalloc(b->n ? b->n : 1, sizeof(*found));
    store_enrich_result_t *puts = am_xcalloc(b->n ? b->n : 1, sizeof(*puts));
    char **texts = am_xcalloc(b->n ? b->n : 1, sizeof(*texts));
    size_t np = 0, nputs = 0;
    /* the providers asked for must exist and answer the type */
    for (size_t i = 0; i < it->nproviders; i++) {
        const eng_provider_t *p = eng_providers_find(b->set, it->providers[i]);
        if (p == NULL || !eng_provider_applies(p, t)) {
            char msg[200];
            snprintf(msg, sizeof(msg), "provider \"%.64s\" %s", it->providers[i],
                     p == NULL ? "is not configured" : "does not answer this indicator type");
            answer_error(it, 422, "UNKNOWN_PROVIDER", msg);
            goto done;
        }
    }
    for (size_t i = 0; i < b->n; i++) {
        const eng_provider_t *p = eng_providers_at(b->set, i);
        if (!eng_provider_applies(p, t))
            continue;
        eng_provider_info_t info;
        eng_provider_info(&info, p);
        bool wanted = it->nproviders == 0;
        for (size_t k = 0; k < it->nproviders && !wanted; k++)
            wanted = strcmp(it->providers[k], info.name) == 0;
        if (!wanted)
            continue;
        parts[np] = (od_part_t){.prov = i, .name = info.name, .kind = info.kind};
        keys[np] = (store_enrich_key_t){info.name, it->type, it->value};
        np++;
    }
    if (np > 0 && !it->refresh &&
        store_enrich_cache_get_many(*db, keys, np, cached, found, err, sizeof(err)) != AM_OK) {
        answer_error(it, 503, "DATABASE_UNAVAILABLE", "the result cache cannot be read");
        goto done;
    }
    for (size_t k = 0; k < np; k++) {
        od_part_t *p = &parts[k];
        const eng_provider_t *pr = eng_providers_at(b->set, p->prov);
        if (p->kind != ENG_PROV_HTTP) {
            store_enrich_cached_dispose(&cached[k]);
            eng_provider_lookup(&p->r, pr, t, it->value);
        } else if (!it->refresh && found[k]) {
            wk_metrics_cache(true);
            p->cached = true;
            p->c = cached[k];
            continue;
        } else {
            if (!it->refresh)
                wk_metrics_cache(false);
            int64_t left = it->deadline_us - am_now_us(), ra = -1, wait = 0;
            if (!wk_ask(w, b, p->prov, curl, t, it->value, left > 0 ? left : 0, &p->r, &ra,
                        &wait)) {
                p->failed_only = true;
                if (wait > 0)
                    snprintf(p->error, sizeof(p->error),
                             "rate limited: the provider's next request is due in %lld s",
                             (long long)((wait + 999999) / 1000000));
                else
                    snprintf(p->error, sizeof(p->error), "the worker is stopping");
                continue;
            }
            snprintf(p->error, sizeof(p->error), "%s", p->r.reason);
            if (p->r.outcome == ENG_OUT_RETRY)
                continue; /* transient: not recorded, the next lookup asks again */
        }
        bool ok = p->r.outcome == ENG_OUT_FOUND || p->r.outcome == ENG_OUT_NOT_FOUND;
        texts[nputs] = json_dumps(p->r.fields, JSON_COMPACT);
        puts[nputs] = (store_enrich_result_t){
            .provider = p->name,
            .type = it->type,
            .value = it->value,
            .outcome = !ok                             ? "failed"
                       : p->r.outcome == ENG_OUT_FOUND ? "found"
                                                       : "not_found",
            .verdict = p->r.outcome == ENG_OUT_FOUND && p->r.verdict != ENG_VERDICT_NONE
                           ? eng_verdict_name(p->r.verdict)
                           : NULL,
            .fields = texts[nputs] ? texts[nputs] : "{}",
            .error = ok ? NULL : p->error,
            .ttl_us = ok ? eng_provider_cache_ttl_us(pr, t) : 0,
        };
        nputs++;
    }
    if (nputs > 0 && store_enrich_cache_put_many(*db, puts, nputs, err, sizeof(err)) != AM_OK)
        am_log(AM_LOG_WARN, "enrichment_cache_write_failed", "serror", err, NULL);
    qsort(parts, np, sizeof(*parts), cmp_part);
    char now[32];
    am_format_time(now, am_now_us());
    eng_verdict_t v = ENG_VERDICT_NONE;
    json_t *list = json_array();
    for (size_t k = 0; k < np; k++) {
        const od_part_t *p = &parts[k];
        if (p->cached && p->c.verdict[0]) {
            int pv = eng_verdict_parse(p->c.verdict);
            if (pv > 0)
                v = eng_verdict_worst(v, (eng_verdict_t)pv);
        } else if (!p->cached && !p->failed_only && p->r.outcome == ENG_OUT_FOUND) {
            v = eng_verdict_worst(v, p->r.verdict);
        }
        json_array_append_new(list, part_json(p, now));
    }
    if (v == ENG_VERDICT_NONE)
        v = ENG_VERDICT_UNKNOWN;
    json_t *doc = json_pack("{s:{s:s,s:s,s:s,s:o}}", "data", "type", it->type, "value", it->value,
                            "verdict", eng_verdict_name(v), "enrichment", list);
    char *body = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    if (body == NULL)
        answer_error(it, 500, "INTERNAL", "the answer cannot be encoded");
    else
        answer(it, 200, NULL, body, 0);
done:
    for (size_t k = 0; k < np; k++) {
        json_decref(parts[k].r.fields);
        store_enrich_cached_dispose(&parts[k].c);
    }
    for (size_t k = 0; k < nputs; k++)
        free(texts[k]);
    free(texts);
    free(puts);
    free(found);
    free(cached);
    free(keys);
    free(parts);
    wk_bundle_release(w, b);
}

static void *od_main(void *arg)
{
    wk_t *w = arg;
    wk_ondemand_t *od = w->od;
    store_enrich_t *db = NULL;
    CURL *curl = curl_easy_init();
    pthread_mutex_lock(&od->mu);
    for (;;) {
        while (od->head == NULL && !od->stop)
            pthread_cond_wait(&od->cv, &od->mu);
        if (od->stop)
            break;
        od_item_t *it = od->head;
        od->head = it->next;
        if (od->head == NULL)
            od->tail = NULL;
        od->n--;
        pthread_mutex_unlock(&od->mu);
        run_item(w, &db, curl, it);
        item_free(it);
        pthread_mutex_lock(&od->mu);
    }
    pthread_mutex_unlock(&od->mu);
    curl_easy_cleanup(curl);
    store_enrich_close(db);
    return NULL;
}

int wk_ondemand_start(wk_t *w)
{
    wk_ondemand_t *od = am_xcalloc(1, sizeof(*od));
    pthread_mutex_init(&od->mu, NULL);
    pthread_cond_init(&od->cv, NULL);
    od->cap = w->opt.ondemand_queue ? w->opt.ondemand_queue : WK_DEFAULT_ONDEMAND_QUEUE;
    w->od = od;
    if (pthread_create(&od->thread, NULL, od_main, w) != 0) {
        pthread_mutex_destroy(&od->mu);
        pthread_cond_destroy(&od->cv);
        free(od);
        w->od = NULL;
        return AM_EIO;
    }
    od->running = true;
    return AM_OK;
}

void wk_ondemand_stop(wk_t *w)
{
    wk_ondemand_t *od = w->od;
    if (od == NULL)
        return;
    pthread_mutex_lock(&od->mu);
    od->stop = true;
    pthread_cond_broadcast(&od->cv);
    pthread_mutex_unlock(&od->mu);
    if (od->running)
        pthread_join(od->thread, NULL);
    /* what is still queued is answered, never dropped */
    while (od->head != NULL) {
        od_item_t *it = od->head;
        od->head = it->next;
        answer_error(it, 503, "STOPPING", "the server is stopping");
        item_free(it);
    }
    pthread_mutex_destroy(&od->mu);
    pthread_cond_destroy(&od->cv);
    free(od);
    w->od = NULL;
}

int wk_ondemand_submit(wk_t *w, const wk_ondemand_request_t *rq, wk_ondemand_cb done, void *ctx)
{
    if (w == NULL || w->od == NULL)
        return AM_EUNAVAIL;
    wk_ondemand_t *od = w->od;
    od_item_t *it = am_xcalloc(1, sizeof(*it));
    it->type = am_xstrdup(rq->type);
    it->value = am_xstrdup(rq->value);
    it->providers = am_xcalloc(rq->nproviders ? rq->nproviders : 1, sizeof(char *));
    for (size_t i = 0; i < rq->nproviders; i++)
        it->providers[it->nproviders++] = am_xstrdup(rq->providers[i]);
    it->refresh = rq->refresh;
    it->deadline_us = rq->deadline_us;
    it->done = done;
    it->ctx = ctx;
    int rc = AM_OK;
    pthread_mutex_lock(&od->mu);
    if (od->stop || atomic_load(&w->stop)) {
        rc = AM_EUNAVAIL;
    } else if (od->n >= od->cap) {
        rc = AM_ELIMIT;
    } else {
        if (od->tail != NULL)
            od->tail->next = it;
        else
            od->head = it;
        od->tail = it;
        od->n++;
        pthread_cond_signal(&od->cv);
    }
    pthread_mutex_unlock(&od->mu);
    if (rc != AM_OK) {
        wk_metrics_ondemand(503);
        item_free(it);
    }
    return rc;
}
