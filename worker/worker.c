/*
 * worker/worker.c - enrichment worker threads (worker.h). Each thread owns
 * one database connection (store_enrich_t) and one libcurl handle. A job:
 * claim (lease) -> the alert's indicators -> for each indicator every
 * provider that answers its type: the cache, else the provider (rate
 * limit, concurrency, timeout) -> cache the answer -> verdicts -> finish.
 * A transient failure (timeout, connection error, retry status such as 429
 * or 5xx) puts the whole job back in the queue with backoff and jitter (or
 * the Retry-After delay); answers already cached are not asked again.
 */
#include "worker.h"

#include "provider.h"
#include "store.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_REPLY_BYTES ((size_t)4 << 20)
#define MAX_BACKOFF_US  ((int64_t)600 * 1000000)
#define MAX_INLINE_WAIT ((int64_t)20 * 1000000) /* rate-limit waits longer than this reschedule */

/* Run-time state of one provider: rate limiter and in-flight count. */
typedef struct pstate {
    eng_limiter_t limiter;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned inflight, max;
} pstate_t;

/* A provider set and its run-time state, reference-counted so that a reload
 * swaps it while jobs finish on the old one. */
typedef struct bundle {
    eng_providers_t *set;
    eng_targets_t *targets;
    pstate_t *st;
    size_t n;
    int refs; /* under wk.mu */
} bundle_t;

struct wk {
    wk_options_t opt;
    char *conninfo, *providers, *targets;
    pthread_mutex_t mu;
    bundle_t *cur;
    pthread_t *threads;
    unsigned nthreads;
    atomic_bool stop;
    bool started;
};

static bundle_t *bundle_load(const char *providers, const char *targets, char *err, size_t errlen)
{
    eng_providers_t *set = NULL;
    eng_targets_t *ts = NULL;
    if (targets != NULL) {
        am_diags_t d;
        am_diags_init(&d);
        const char *paths[] = {targets};
        eng_providers_options_t po = {.resolve_secrets = true};
        if (eng_targets_load(&ts, paths, 1, &po, &d) != AM_OK) {
            am_diags_sort(&d);
            am_diags_print(&d, stderr);
            fflush(stderr);
            snprintf(err, errlen, "the dispatch targets in %s did not compile (%zu problem%s)",
                     targets, d.count, d.count == 1 ? "" : "s");
            am_diags_dispose(&d);
            return NULL;
        }
        am_diags_dispose(&d);
    }
    if (providers != NULL) {
        am_diags_t d;
        am_diags_init(&d);
        const char *paths[] = {providers};
        eng_providers_options_t po = {.resolve_secrets = true, .check_samples = true};
        int rc = eng_providers_load(&set, paths, 1, &po, &d);
        if (rc != AM_OK) {
            am_diags_sort(&d);
            am_diags_print(&d, stderr);
            fflush(stderr);
            snprintf(err, errlen, "the providers in %s did not compile (%zu problem%s)", providers,
                     d.count, d.count == 1 ? "" : "s");
            am_diags_dispose(&d);
            eng_targets_free(ts);
            return NULL;
        }
        am_diags_dispose(&d);
    }
    bundle_t *b = am_xcalloc(1, sizeof(*b));
    b->set = set;
    b->targets = ts;
    b->n = eng_providers_count(set);
    b->st = am_xcalloc(b->n ? b->n : 1, sizeof(*b->st));
    int64_t now = am_now_us();
    for (size_t i = 0; i < b->n; i++) {
        const eng_provider_t *p = eng_providers_at(set, i);
        eng_provider_info_t info;
        eng_provider_info(&info, p);
        eng_limiter_init(&b->st[i].limiter, p, now);
        pthread_mutex_init(&b->st[i].mu, NULL);
        pthread_cond_init(&b->st[i].cv, NULL);
        b->st[i].max = info.concurrency ? info.concurrency : 1;
    }
    b->refs = 1;
    return b;
}

static void bundle_free(bundle_t *b)
{
    for (size_t i = 0; i < b->n; i++) {
        eng_limiter_dispose(&b->st[i].limiter);
        pthread_mutex_destroy(&b->st[i].mu);
        pthread_cond_destroy(&b->st[i].cv);
    }
    free(b->st);
    eng_providers_unref(b->set);
    eng_targets_free(b->targets);
    free(b);
}

static bundle_t *acquire(wk_t *w)
{
    pthread_mutex_lock(&w->mu);
    bundle_t *b = w->cur;
    b->refs++;
    pthread_mutex_unlock(&w->mu);
    return b;
}

static void release(wk_t *w, bundle_t *b)
{
    pthread_mutex_lock(&w->mu);
    bool last = --b->refs == 0;
    pthread_mutex_unlock(&w->mu);
    if (last)
        bundle_free(b);
}

/* Sleeps up to us, waking early when the worker stops. */
static void nap(wk_t *w, int64_t us)
{
    while (us > 0 && !atomic_load(&w->stop)) {
        int64_t step = us > 100000 ? 100000 : us;
        struct timespec ts = {.tv_sec = step / 1000000, .tv_nsec = (long)(step % 1000000) * 1000};
        nanosleep(&ts, NULL);
        us -= step;
    }
}

/* ---- HTTP --------------------------------------------------------------------- */

typedef struct reply {
    am_buf_t body;
    char retry_after[64];
    bool too_big;
} reply_t;

static size_t on_body(char *p, size_t size, size_t n, void *ctx)
{
    reply_t *r = ctx;
    size_t len = size * n;
    if (r->body.len + len > MAX_REPLY_BYTES) {
        r->too_big = true;
        return 0;
    }
    am_buf_append(&r->body, p, len);
    return len;
}

static size_t on_header(char *p, size_t size, size_t n, void *ctx)
{
    reply_t *r = ctx;
    size_t len = size * n;
    static const char name[] = "retry-after:";
    if (len > sizeof(name) - 1 && strncasecmp(p, name, sizeof(name) - 1) == 0) {
        size_t v = sizeof(name) - 1, e = len;
        while (v < e && (p[v] == ' ' || p[v] == '\t'))
            v++;
        while (e > v && (p[e - 1] == '\r' || p[e - 1] == '\n' || p[e - 1] == ' '))
            e--;
        snprintf(r->retry_after, sizeof(r->retry_after), "%.*s", (int)(e - v), p + v);
    }
    return len;
}

/* Sends one request; *status is 0 after a transport failure (reason set). */
static void http_send(CURL *h, const eng_request_t *rq, int64_t timeout_us, reply_t *rep,
                      int *status, char *reason, size_t rlen)
{
    struct curl_slist *hdrs = NULL;
    curl_easy_reset(h);
    for (size_t i = 0; i < rq->nheaders; i++) {
        char line[8192];
        snprintf(line, sizeof(line), "%s: %s", rq->headers[i].name, rq->headers[i].value);
        hdrs = curl_slist_append(hdrs, line);
    }
    hdrs = curl_slist_append(hdrs, "Expect:");
    curl_easy_setopt(h, CURLOPT_URL, rq->url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)(timeout_us / 1000));
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "alertmap-enrichment");
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, rep);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, rep);
    if (strcmp(rq->method, "POST") == 0) {
        curl_easy_setopt(h, CURLOPT_POST, 1L);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, rq->body ? rq->body : "");
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)rq->body_len);
    }
    CURLcode cc = curl_easy_perform(h);
    long code = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    curl_slist_free_all(hdrs);
    *status = 0;
    if (cc == CURLE_OK) {
        *status = (int)code;
    } else if (cc == CURLE_WRITE_ERROR && rep->too_big) {
        *status = -1;
        snprintf(reason, rlen, "reply larger than %zu bytes", MAX_REPLY_BYTES);
    } else if (cc == CURLE_OPERATION_TIMEDOUT) {
        snprintf(reason, rlen, "timeout after %lld ms", (long long)(timeout_us / 1000));
    } else {
        snprintf(reason, rlen, "%s", curl_easy_strerror(cc));
    }
}

/* ---- one job ------------------------------------------------------------------ */

typedef struct job_ctx {
    wk_t *w;
    store_enrich_t *db;
    CURL *curl;
    store_enrich_job_t job;
    am_buf_t failures; /* "provider type value: reason; ..." */
    bool retry;        /* a transient failure with attempts left */
    bool retry_counts; /* false when only a rate limit deferred the job */
    int64_t retry_us;
    bool lost; /* the lease was taken over */
    bool db_down;
} job_ctx_t;

static int64_t backoff_us(const wk_t *w, int attempts)
{
    int64_t d = w->opt.backoff_us;
    for (int i = 1; i < attempts && d < MAX_BACKOFF_US; i++)
        d *= 2;
    if (d > MAX_BACKOFF_US)
        d = MAX_BACKOFF_US;
    /* jitter: 50 % to 100 % of the delay, so that retries of many jobs spread out */
    unsigned seed = (unsigned)(am_now_us() ^ (int64_t)pthread_self());
    return d / 2 + (int64_t)(rand_r(&seed) % (unsigned)(d / 2 + 1));
}

static void note_failure(job_ctx_t *j, const char *prov, const char *type, const char *value,
                         const char *reason)
{
    if (j->failures.len > 0)
        am_buf_puts(&j->failures, "; ");
    am_buf_printf(&j->failures, "%s %s %s: %s", prov, type, value, reason);
}

static void want_retry(job_ctx_t *j, int64_t delay_us, bool counts)
{
    j->retry = true;
    if (counts)
        j->retry_counts = true;
    if (delay_us > j->retry_us)
        j->retry_us = delay_us;
}

static void put_result(job_ctx_t *j, const char *prov, const char *type, const char *value,
                       const eng_presult_t *r, const char *error, int64_t ttl_us)
{
    char *fields = json_dumps(r->fields, JSON_COMPACT);
    char err[256];
    store_enrich_result_t res = {
        .provider = prov,
        .type = type,
        .value = value,
        .outcome = r->outcome == ENG_OUT_FOUND       ? "found"
                   : r->outcome == ENG_OUT_NOT_FOUND ? "not_found"
                                                     : "failed",
        .verdict = r->outcome == ENG_OUT_FOUND && r->verdict != ENG_VERDICT_NONE
                       ? eng_verdict_name(r->verdict)
                       : NULL,
        .fields = fields ? fields : "{}",
        .error = error,
        .ttl_us = ttl_us,
    };
    if (store_enrich_cache_put(j->db, &res, err, sizeof(err)) != AM_OK) {
        am_log(AM_LOG_WARN, "enrichment_cache_write_failed", "sprovider", prov, "serror", err,
               NULL);
        j->db_down = true;
    }
    free(fields);
}

/* Asks one http provider; returns the verdict it contributes. */
static eng_verdict_t ask_http(job_ctx_t *j, bundle_t *b, size_t pi, eng_ioc_type_t t,
                              const char *type, const char *value)
{
    const eng_provider_t *p = eng_providers_at(b->set, pi);
    pstate_t *st = &b->st[pi];
    eng_provider_info_t info;
    eng_provider_info(&info, p);
    char err[256];

    store_enrich_cached_t c;
    int rc = store_enrich_cache_get(j->db, info.name, type, value, &c, err, sizeof(err));
    if (rc == AM_OK) {
        int v = c.verdict[0] ? eng_verdict_parse(c.verdict) : -1;
        free(c.fields);
        return v > 0 ? (eng_verdict_t)v : ENG_VERDICT_NONE;
    }
    if (rc != AM_ENOTFOUND) {
        j->db_down = true;
        return ENG_VERDICT_NONE;
    }

    am_arena_t *a = am_arena_new(4096, SIZE_MAX);
    eng_request_t rq;
    eng_error_t e = {0};
    eng_verdict_t verdict = ENG_VERDICT_NONE;
    if (eng_provider_request(&rq, p, t, value, a, &e) != AM_OK) {
        note_failure(j, info.name, type, value, e.message);
        goto done;
    }
    /* rate limit: short waits here, long ones put the job back */
    for (;;) {
        int64_t wait = eng_limiter_take(&st->limiter, am_now_us());
        if (wait == 0)
            break;
        if (wait > MAX_INLINE_WAIT) {
            want_retry(j, wait, false);
            goto done;
        }
        nap(j->w, wait);
        if (atomic_load(&j->w->stop)) {
            want_retry(j, 0, false);
            goto done;
        }
    }
    if (store_enrich_heartbeat(j->db, j->job.id, j->w->opt.lease_us, err, sizeof(err)) ==
        AM_ENOTFOUND) {
        j->lost = true;
        goto done;
    }
    pthread_mutex_lock(&st->mu);
    while (st->inflight >= st->max)
        pthread_cond_wait(&st->cv, &st->mu);
    st->inflight++;
    pthread_mutex_unlock(&st->mu);

    reply_t rep;
    memset(&rep, 0, sizeof(rep));
    am_buf_init(&rep.body, 0);
    int status = 0;
    char reason[256] = "";
    int64_t t0 = am_now_us();
    http_send(j->curl, &rq, info.timeout_us, &rep, &status, reason, sizeof(reason));
    int64_t took = am_now_us() - t0;

    pthread_mutex_lock(&st->mu);
    st->inflight--;
    pthread_cond_signal(&st->cv);
    pthread_mutex_unlock(&st->mu);

    eng_presult_t r;
    if (status > 0) {
        eng_header_t ra_hdr = {"Retry-After", rep.retry_after};
        eng_reply_t reply = {status, &ra_hdr, rep.retry_after[0] ? 1 : 0, rep.body.data,
                             rep.body.len};
        eng_provider_interpret(&r, p, t, &reply, am_now_us());
    } else {
        memset(&r, 0, sizeof(r));
        r.retry_after_us = -1;
        r.fields = json_object();
        r.outcome = status < 0 ? ENG_OUT_FAILED : ENG_OUT_RETRY;
        snprintf(r.reason, sizeof(r.reason), "%s", reason);
    }
    am_log(AM_LOG_DEBUG, "provider_request", "sprovider", info.name, "stype", type, "istatus",
           (int64_t)status, "soutcome", eng_outcome_name(r.outcome), "ims", took / 1000, NULL);
    switch (r.outcome) {
    case ENG_OUT_FOUND:
    case ENG_OUT_NOT_FOUND:
        put_result(j, info.name, type, value, &r, NULL, eng_provider_cache_ttl_us(p, t));
        if (r.outcome == ENG_OUT_FOUND)
            verdict = r.verdict;
        break;
    case ENG_OUT_RETRY: {
        int64_t ra = r.retry_after_us;
        if (ra >= 0)
            eng_limiter_pause(&st->limiter, am_now_us() + ra);
        if ((unsigned)j->job.attempts < info.max_attempts) {
            int64_t d = backoff_us(j->w, j->job.attempts);
            want_retry(j, ra >= 0 ? ra : d, true);
        } else {
            char why[320];
            snprintf(why, sizeof(why), "%s (after %d attempts)", r.reason, j->job.attempts);
            note_failure(j, info.name, type, value, why);
            put_result(j, info.name, type, value, &r, why, 0);
        }
        am_log(AM_LOG_INFO, "provider_retry", "sprovider", info.name, "sreason", r.reason,
               "iattempt", (int64_t)j->job.attempts, NULL);
        break;
    }
    case ENG_OUT_FAILED:
        note_failure(j, info.name, type, value, r.reason);
        put_result(j, info.name, type, value, &r, r.reason, 0);
        am_log(AM_LOG_WARN, "provider_failed", "sprovider", info.name, "sreason", r.reason, NULL);
        break;
    }
    json_decref(r.fields);
    am_buf_dispose(&rep.body);
done:
    am_arena_free(a);
    return verdict;
}

static void run_job(job_ctx_t *j)
{
    char err[512];
    bundle_t *b = acquire(j->w);
    store_enrich_ioc_t *iocs = NULL;
    size_t n = 0;
    am_buf_init(&j->failures, 0);
    if (store_enrich_indicators(j->db, j->job.alert_id, &iocs, &n, err, sizeof(err)) != AM_OK) {
        j->db_down = true;
        goto done;
    }
    store_enrich_facts_t facts;
    if (store_enrich_alert_facts(j->db, j->job.alert_id, &facts, err, sizeof(err)) != AM_OK) {
        j->db_down = true;
        goto done;
    }
    const char **now_targets = am_xcalloc(eng_targets_count(b->targets) + 1, sizeof(char *));
    size_t nnow = 0;
    for (size_t k = 0; k < eng_targets_count(b->targets); k++) {
        const eng_target_t *t = eng_targets_at(b->targets, k);
        if (t->when == ENG_SEND_INGESTED &&
            eng_target_matches(t, facts.source, facts.severity, NULL,
                               (const char *const *)facts.tags, facts.ntags))
            now_targets[nnow++] = t->name;
    }
    if (nnow > 0 && store_enrich_deliveries_add(j->db, j->job.alert_id, now_targets, nnow, err,
                                                sizeof(err)) != AM_OK)
        j->db_down = true;
    free(now_targets);
    store_enrich_ioc_verdict_t *iv = am_xcalloc(n ? n : 1, sizeof(*iv));
    eng_verdict_t alert_v = ENG_VERDICT_UNKNOWN;
    for (size_t i = 0; i < n && !j->lost && !j->db_down; i++) {
        eng_ioc_type_t t;
        eng_verdict_t v = ENG_VERDICT_NONE;
        if (eng_ioc_type_parse(&t, iocs[i].type, strlen(iocs[i].type)) == 0) {
            for (size_t k = 0; k < b->n && !j->lost && !j->db_down; k++) {
                const eng_provider_t *p = eng_providers_at(b->set, k);
                if (!eng_provider_applies(p, t))
                    continue;
                eng_provider_info_t info;
                eng_provider_info(&info, p);
                if (info.kind == ENG_PROV_HTTP) {
                    v = eng_verdict_worst(v, ask_http(j, b, k, t, iocs[i].type, iocs[i].value));
                } else {
                    eng_presult_t r;
                    eng_provider_lookup(&r, p, t, iocs[i].value);
                    put_result(j, info.name, iocs[i].type, iocs[i].value, &r, NULL,
                               eng_provider_cache_ttl_us(p, t));
                    if (r.outcome == ENG_OUT_FOUND)
                        v = eng_verdict_worst(v, r.verdict);
                    json_decref(r.fields);
                }
            }
        }
        if (v == ENG_VERDICT_NONE)
            v = ENG_VERDICT_UNKNOWN;
        iv[i].type = iocs[i].type;
        iv[i].value = iocs[i].value;
        iv[i].verdict = eng_verdict_name(v);
        alert_v = eng_verdict_worst(alert_v, v);
    }
    if (j->lost || j->db_down) {
        /* nothing to write: the lease holder (or the next claim) finishes it */
    } else if (j->retry) {
        if (store_enrich_reschedule(j->db, j->job.id, j->retry_us,
                                    j->failures.len ? j->failures.data : "retrying",
                                    !j->retry_counts, err, sizeof(err)) == AM_OK)
            am_log(AM_LOG_INFO, "enrichment_retry", "ijob", j->job.id, "idelay_ms",
                   j->retry_us / 1000, "iattempt", (int64_t)j->job.attempts, NULL);
    } else {
        bool failed = j->failures.len > 0;
        const char **tnames = am_xcalloc(eng_targets_count(b->targets) + 1, sizeof(char *));
        size_t nt = 0;
        for (size_t k = 0; k < eng_targets_count(b->targets); k++) {
            const eng_target_t *t = eng_targets_at(b->targets, k);
            if (t->when == ENG_SEND_ENRICHED &&
                eng_target_matches(t, facts.source, facts.severity, eng_verdict_name(alert_v),
                                   (const char *const *)facts.tags, facts.ntags))
                tnames[nt++] = t->name;
        }
        store_enrich_outcome_t o = {.targets = tnames,
                                    .ntargets = nt,
                                    .job_id = j->job.id,
                                    .alert_id = j->job.alert_id,
                                    .failed = failed,
                                    .verdict = eng_verdict_name(alert_v),
                                    .error = failed ? j->failures.data : NULL,
                                    .iocs = iv,
                                    .niocs = n};
        int rc = store_enrich_finish(j->db, &o, err, sizeof(err));
        if (rc == AM_OK)
            am_log(AM_LOG_INFO, "enriched", "ijob", j->job.id, "ialert", j->job.alert_id, "sstatus",
                   failed ? "Failed" : "Enriched", "sverdict", o.verdict, NULL);
        else
            am_log(AM_LOG_WARN, "enrichment_finish_failed", "ijob", j->job.id, "serror", err, NULL);
        free(tnames);
    }
    free(iv);
    store_enrich_facts_dispose(&facts);
done:
    store_enrich_iocs_free(iocs, n);
    am_buf_dispose(&j->failures);
    release(j->w, b);
}

/* ---- one delivery --------------------------------------------------------------- */

static void run_delivery(wk_t *w, store_enrich_t *db, CURL *curl, const store_enrich_delivery_t *d)
{
    char err[512];
    bundle_t *b = acquire(w);
    const eng_target_t *t = eng_targets_find(b->targets, d->target);
    char *body = NULL;
    if (t == NULL) {
        store_enrich_delivery_result(db, d->id, STORE_DISPATCH_FAILED, 0,
                                     "the target is no longer configured", 0, err, sizeof(err));
        goto done;
    }
    if (store_enrich_alert_json(db, d->alert_id, &body, err, sizeof(err)) != AM_OK)
        goto done; /* the lease expires and the delivery is claimed again */
    char sig[160], id[48];
    eng_target_sign(sig, t->secret ? t->secret : "", am_now_us() / 1000000, body, strlen(body));
    snprintf(id, sizeof(id), "%lld", (long long)d->id);
    eng_header_t hdrs[] = {{"Content-Type", "application/json"},
                           {"X-Alertmap-Signature", sig},
                           {"X-Alertmap-Delivery", id},
                           {"X-Alertmap-Target", t->name}};
    eng_request_t rq = {.method = "POST",
                        .url = t->url,
                        .headers = hdrs,
                        .nheaders = AM_ARRAY_LEN(hdrs),
                        .body = body,
                        .body_len = strlen(body)};
    reply_t rep;
    memset(&rep, 0, sizeof(rep));
    am_buf_init(&rep.body, 0);
    int status = 0;
    char reason[256] = "";
    http_send(curl, &rq, t->timeout_us, &rep, &status, reason, sizeof(reason));
    am_buf_dispose(&rep.body);
    if (status >= 200 && status < 300) {
        store_enrich_delivery_result(db, d->id, STORE_DISPATCH_DELIVERED, status, NULL, 0, err,
                                     sizeof(err));
        am_log(AM_LOG_INFO, "delivered", "starget", t->name, "idelivery", d->id, "iattempt",
               (int64_t)d->attempts, NULL);
        goto done;
    }
    if (status > 0)
        snprintf(reason, sizeof(reason), "HTTP %d", status);
    if ((unsigned)d->attempts >= t->max_attempts) {
        store_enrich_delivery_result(db, d->id, STORE_DISPATCH_FAILED, status, reason, 0, err,
                                     sizeof(err));
        am_log(AM_LOG_WARN, "delivery_failed", "starget", t->name, "idelivery", d->id, "sreason",
               reason, "iattempts", (int64_t)d->attempts, NULL);
        goto done;
    }
    int64_t delay = t->backoff_us;
    for (int i = 1; i < d->attempts && delay < 3600 * (int64_t)1000000; i++)
        delay *= 2;
    if (delay > 3600 * (int64_t)1000000)
        delay = 3600 * (int64_t)1000000;
    unsigned seed = (unsigned)(am_now_us() ^ d->id);
    delay = delay / 2 + (int64_t)(rand_r(&seed) % (unsigned)(delay / 2 + 1));
    store_enrich_delivery_result(db, d->id, STORE_DISPATCH_RETRY, status, reason, delay, err,
                                 sizeof(err));
done:
    free(body);
    release(w, b);
}

static void *thread_main(void *arg)
{
    wk_t *w = arg;
    char name[128], host[64] = "host", err[512];
    gethostname(host, sizeof(host) - 1);
    static atomic_uint seq;
    snprintf(name, sizeof(name), "%s:%ld:%u", host, (long)getpid(), atomic_fetch_add(&seq, 1));
    store_enrich_t *db = NULL;
    if (store_enrich_open(&db, w->conninfo, name, err, sizeof(err)) != AM_OK)
        am_log(AM_LOG_WARN, "worker_database_unavailable", "serror", err, NULL);
    CURL *curl = curl_easy_init();
    while (!atomic_load(&w->stop)) {
        job_ctx_t j;
        memset(&j, 0, sizeof(j));
        j.w = w;
        j.db = db;
        j.curl = curl;
        int rc = store_enrich_claim(db, w->opt.lease_us, &j.job, err, sizeof(err));
        if (rc == AM_ENOTFOUND) {
            store_enrich_delivery_t d;
            rc = store_enrich_delivery_claim(db, w->opt.lease_us, &d, err, sizeof(err));
            if (rc == AM_OK)
                run_delivery(w, db, curl, &d);
            else if (rc == AM_ENOTFOUND)
                store_enrich_wait(db, w->opt.poll_us < 1000000 ? w->opt.poll_us : 1000000);
            continue;
        }
        if (rc != AM_OK) {
            am_log(AM_LOG_WARN, "worker_database_unavailable", "serror", err, NULL);
            nap(w, 1000000);
            continue;
        }
        run_job(&j);
    }
    curl_easy_cleanup(curl);
    store_enrich_close(db);
    return NULL;
}

/* ---- lifecycle ---------------------------------------------------------------- */

int wk_new(wk_t **out, const wk_options_t *opt, char *err, size_t errlen)
{
    *out = NULL;
    static atomic_bool curl_ready;
    if (!atomic_exchange(&curl_ready, true))
        curl_global_init(CURL_GLOBAL_DEFAULT);
    wk_t *w = am_xcalloc(1, sizeof(*w));
    w->opt = *opt;
    w->conninfo = am_xstrdup(opt->conninfo);
    w->providers = opt->providers ? am_xstrdup(opt->providers) : NULL;
    w->opt.conninfo = w->conninfo;
    w->opt.providers = w->providers;
    w->targets = opt->targets ? am_xstrdup(opt->targets) : NULL;
    w->opt.targets = w->targets;
    if (w->opt.threads == 0)
        w->opt.threads = 1;
    if (w->opt.poll_us <= 0)
        w->opt.poll_us = 5 * (int64_t)1000000;
    if (w->opt.lease_us <= 0)
        w->opt.lease_us = 60 * (int64_t)1000000;
    if (w->opt.backoff_us <= 0)
        w->opt.backoff_us = 2 * (int64_t)1000000;
    pthread_mutex_init(&w->mu, NULL);
    w->cur = bundle_load(w->providers, w->targets, err, errlen);
    if (w->cur == NULL) {
        wk_free(w);
        return AM_EINVAL;
    }
    *out = w;
    return AM_OK;
}

int wk_start(wk_t *w)
{
    w->threads = am_xcalloc(w->opt.threads, sizeof(*w->threads));
    for (unsigned i = 0; i < w->opt.threads; i++) {
        if (pthread_create(&w->threads[i], NULL, thread_main, w) != 0) {
            wk_stop(w);
            return AM_EIO;
        }
        w->nthreads++;
    }
    w->started = true;
    am_log(AM_LOG_INFO, "worker_started", "ithreads", (int64_t)w->nthreads, "iproviders",
           (int64_t)w->cur->n, NULL);
    return AM_OK;
}

int wk_reload(wk_t *w)
{
    char err[512];
    bundle_t *b = bundle_load(w->providers, w->targets, err, sizeof(err));
    if (b == NULL) {
        am_log(AM_LOG_ERROR, "providers_reload_failed", "smessage", err, NULL);
        return AM_EINVAL;
    }
    pthread_mutex_lock(&w->mu);
    bundle_t *old = w->cur;
    w->cur = b;
    pthread_mutex_unlock(&w->mu);
    release(w, old);
    am_log(AM_LOG_INFO, "providers_reloaded", "iproviders", (int64_t)b->n, NULL);
    return AM_OK;
}

void wk_stop(wk_t *w)
{
    if (w == NULL)
        return;
    atomic_store(&w->stop, true);
    for (unsigned i = 0; i < w->nthreads; i++)
        pthread_join(w->threads[i], NULL);
    w->nthreads = 0;
}

void wk_free(wk_t *w)
{
    if (w == NULL)
        return;
    wk_stop(w);
    if (w->cur != NULL)
        release(w, w->cur);
    free(w->threads);
    free(w->conninfo);
    free(w->providers);
    free(w->targets);
    pthread_mutex_destroy(&w->mu);
    free(w);
}
