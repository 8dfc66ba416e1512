/*
 * worker/worker.c - enrichment worker threads (worker.h). Each thread owns
 * one database connection (store_enrich_t) and one libcurl handle, and
 * works in batches: one statement claims up to --worker-batch due jobs
 * (each with its own lease) together with their alerts' indicators and
 * facts; one query reads the cache for every (provider, type, value) the
 * batch needs; each key missing from the cache is asked once (rate limit,
 * concurrency, timeout); one statement writes the new answers to the
 * cache and one ends every job of the batch (verdicts, enrichment_status,
 * deliveries, or back in the queue for a retry). A job whose lease was
 * taken over is skipped on its own; the rest of its batch ends. A
 * transient failure (timeout, connection error, retry status such as 429
 * or 5xx) puts its job back in the queue with backoff and jitter (or the
 * Retry-After delay); answers already cached are not asked again.
 */
#include "wk_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define MAX_BACKOFF_US     ((int64_t)600 * 1000000)
#define WK_BATCH_GATHER_US ((int64_t)200 * 1000) /* after a batch that was not full */

static wk_bundle_t *bundle_load(const char *providers, const char *targets, char *err,
                                size_t errlen)
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
            snprintf(err, errlen,
                     "the providers in %s did not compile or their samples failed (%zu problem%s)",
                     providers, d.count, d.count == 1 ? "" : "s");
            am_diags_dispose(&d);
            eng_targets_free(ts);
            return NULL;
        }
        am_diags_dispose(&d);
    }
    wk_bundle_t *b = am_xcalloc(1, sizeof(*b));
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
        b->st[i].metric = wk_metrics_provider(info.name);
        if (info.kind == ENG_PROV_HTTP)
            b->any_http = true;
    }
    b->refs = 1;
    return b;
}

static void bundle_free(wk_bundle_t *b)
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

wk_bundle_t *wk_bundle_acquire(wk_t *w)
{
    pthread_mutex_lock(&w->mu);
    wk_bundle_t *b = w->cur;
    b->refs++;
    pthread_mutex_unlock(&w->mu);
    return b;
}

void wk_bundle_release(wk_t *w, wk_bundle_t *b)
{
    pthread_mutex_lock(&w->mu);
    bool last = --b->refs == 0;
    pthread_mutex_unlock(&w->mu);
    if (last)
        bundle_free(b);
}

void wk_nap(wk_t *w, int64_t us)
{
    while (us > 0 && !atomic_load(&w->stop)) {
        int64_t step = us > 100000 ? 100000 : us;
        struct timespec ts = {.tv_sec = step / 1000000, .tv_nsec = (long)(step % 1000000) * 1000};
        nanosleep(&ts, NULL);
        us -= step;
    }
}

/* ---- HTTP --------------------------------------------------------------------- */

static size_t on_body(char *p, size_t size, size_t n, void *ctx)
{
    wk_reply_t *r = ctx;
    size_t len = size * n;
    if (r->body.len + len > WK_MAX_REPLY_BYTES) {
        r->too_big = true;
        return 0;
    }
    am_buf_append(&r->body, p, len);
    return len;
}

static size_t on_header(char *p, size_t size, size_t n, void *ctx)
{
    wk_reply_t *r = ctx;
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

void wk_http_send(CURL *h, const eng_request_t *rq, int64_t timeout_us, wk_reply_t *rep,
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
        snprintf(reason, rlen, "reply larger than %zu bytes", WK_MAX_REPLY_BYTES);
    } else if (cc == CURLE_OPERATION_TIMEDOUT) {
        snprintf(reason, rlen, "timeout after %lld ms", (long long)(timeout_us / 1000));
    } else {
        snprintf(reason, rlen, "%s", curl_easy_strerror(cc));
    }
}

static wk_err_kind_t err_kind(int status, const char *reason, eng_outcome_t o)
{
    if (o == ENG_OUT_FOUND || o == ENG_OUT_NOT_FOUND)
        return WK_ERR_NONE;
    if (status == 0)
        return strncmp(reason, "timeout", 7) == 0 ? WK_ERR_TIMEOUT : WK_ERR_CONNECT;
    if (status < 0)
        return WK_ERR_MALFORMED;
    if (status == 429)
        return WK_ERR_429;
    if (status >= 500 && status <= 599)
        return WK_ERR_5XX;
    if (status >= 200 && status <= 299)
        return WK_ERR_MALFORMED;
    return WK_ERR_STATUS;
}

bool wk_ask(wk_t *w, wk_bundle_t *b, size_t pi, CURL *curl, eng_ioc_type_t t, const char *value,
            int64_t max_wait_us, eng_presult_t *r, int64_t *retry_after_us, int64_t *wait_us)
{
    const eng_provider_t *p = eng_providers_at(b->set, pi);
    wk_pstate_t *st = &b->st[pi];
    eng_provider_info_t info;
    eng_provider_info(&info, p);
    memset(r, 0, sizeof(*r));
    *retry_after_us = -1;
    *wait_us = 0;
    /* rate limit: short waits here, long ones are the caller's */
    for (;;) {
        int64_t wait = eng_limiter_take(&st->limiter, am_now_us());
        if (wait == 0)
            break;
        if (wait > max_wait_us) {
            *wait_us = wait;
            return false;
        }
        wk_nap(w, wait);
        if (atomic_load(&w->stop))
            return false;
    }
    am_arena_t *a = am_arena_new(4096, SIZE_MAX);
    eng_request_t rq;
    eng_error_t e = {0};
    if (eng_provider_request(&rq, p, t, value, a, &e) != AM_OK) {
        r->outcome = ENG_OUT_FAILED;
        r->fields = json_object();
        snprintf(r->reason, sizeof(r->reason), "%.200s", e.message);
        am_arena_free(a);
        return true;
    }
    pthread_mutex_lock(&st->mu);
    while (st->inflight >= st->max)
        pthread_cond_wait(&st->cv, &st->mu);
    st->inflight++;
    pthread_mutex_unlock(&st->mu);

    wk_reply_t rep;
    memset(&rep, 0, sizeof(rep));
    am_buf_init(&rep.body, 0);
    int status = 0;
    char reason[256] = "";
    int64_t t0 = am_now_us();
    wk_http_send(curl, &rq, info.timeout_us, &rep, &status, reason, sizeof(reason));
    int64_t took = am_now_us() - t0;

    pthread_mutex_lock(&st->mu);
    st->inflight--;
    pthread_cond_signal(&st->cv);
    pthread_mutex_unlock(&st->mu);

    if (status > 0) {
        eng_header_t ra_hdr = {"Retry-After", rep.retry_after};
        eng_reply_t reply = {status, &ra_hdr, rep.retry_after[0] ? 1 : 0, rep.body.data,
                             rep.body.len};
        eng_provider_interpret(r, p, t, &reply, am_now_us());
    } else {
        r->retry_after_us = -1;
        r->fields = json_object();
        r->outcome = status < 0 ? ENG_OUT_FAILED : ENG_OUT_RETRY;
        snprintf(r->reason, sizeof(r->reason), "%s", reason);
    }
    if (r->outcome == ENG_OUT_RETRY) {
        int64_t ra = r->retry_after_us;
        if (ra >= 0)
            eng_limiter_pause(&st->limiter, am_now_us() + ra);
        *retry_after_us = ra;
    }
    wk_metrics_request(st->metric, took, err_kind(status, reason, r->outcome));
    am_log(AM_LOG_DEBUG, "provider_request", "sprovider", info.name, "stype", eng_ioc_type_name(t),
           "istatus", (int64_t)status, "soutcome", eng_outcome_name(r->outcome), "ims", took / 1000,
           NULL);
    am_buf_dispose(&rep.body);
    am_arena_free(a);
    return true;
}

/* ---- one batch of jobs ------------------------------------------------------------ */

/* One (provider, type, value) the batch needs, asked or looked up once. */
typedef struct slot {
    size_t prov;
    eng_ioc_type_t t;
    const char *type, *value; /* borrowed from the claimed jobs */
    bool http;
    bool cached; /* a fresh row was in the cache: c */
    store_enrich_cached_t c;
    bool resolved;
    bool deferred;    /* not asked: the rate limit (defer_us) or the worker stops */
    int64_t defer_us; /* with deferred */
    eng_presult_t r;  /* asked or looked up (r.fields NULL otherwise) */
    int64_t retry_after_us;
    char *put_error; /* a failure to record (the last attempt) */
    bool put;        /* write r to the cache */
} slot_t;

typedef struct job_state {
    store_enrich_claimed_t *c;
    am_buf_t failures; /* "provider type value: reason; ..." */
    bool retry;        /* a transient failure with attempts left */
    bool retry_counts; /* false when only a rate limit deferred the job */
    int64_t retry_us;
    bool lost; /* the lease was taken over */
    store_enrich_ioc_verdict_t *iv;
    eng_verdict_t verdict;
    const char **targets;
    size_t ntargets;
} job_state_t;

typedef struct batch {
    wk_t *w;
    store_enrich_t *db;
    CURL *curl;
    wk_bundle_t *b;
    job_state_t *jobs;
    size_t njobs;
    slot_t *slots;
    size_t nslots, capslots;
    int64_t last_beat_us;
    bool db_down;
    bool asked; /* a provider request was made */
} batch_t;

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

static void note_failure(job_state_t *j, const char *prov, const char *type, const char *value,
                         const char *reason)
{
    if (j->failures.len > 0)
        am_buf_puts(&j->failures, "; ");
    am_buf_printf(&j->failures, "%s %s %s: %s", prov, type, value, reason);
}

static void want_retry(job_state_t *j, int64_t delay_us, bool counts)
{
    j->retry = true;
    if (counts)
        j->retry_counts = true;
    if (delay_us > j->retry_us)
        j->retry_us = delay_us;
}

static slot_t *slot_find(batch_t *bt, size_t prov, const char *type, const char *value)
{
    for (size_t i = 0; i < bt->nslots; i++) {
        slot_t *s = &bt->slots[i];
        if (s->prov == prov && strcmp(s->type, type) == 0 && strcmp(s->value, value) == 0)
            return s;
    }
    return NULL;
}

static void slot_add(batch_t *bt, size_t prov, eng_ioc_type_t t, const char *type,
                     const char *value, bool http)
{
    if (slot_find(bt, prov, type, value) != NULL)
        return;
    if (bt->nslots == bt->capslots) {
        bt->capslots = bt->capslots ? bt->capslots * 2 : 16;
        bt->slots = am_xrealloc(bt->slots, bt->capslots * sizeof(*bt->slots));
    }
    slot_t *s = &bt->slots[bt->nslots++];
    memset(s, 0, sizeof(*s));
    s->prov = prov;
    s->t = t;
    s->type = type;
    s->value = value;
    s->http = http;
    s->retry_after_us = -1;
}

/* Extends the leases of the batch's jobs when a quarter of the lease has
 * passed since the last time; marks the lost ones. */
static void heartbeat(batch_t *bt)
{
    int64_t now = am_now_us();
    if (now - bt->last_beat_us < bt->w->opt.lease_us / 4)
        return;
    int64_t *ids = am_xcalloc(bt->njobs, sizeof(*ids));
    bool *held = am_xcalloc(bt->njobs, sizeof(*held));
    size_t n = 0;
    for (size_t i = 0; i < bt->njobs; i++)
        if (!bt->jobs[i].lost)
            ids[n++] = bt->jobs[i].c->job.id;
    char err[256];
    if (store_enrich_heartbeat_many(bt->db, ids, n, bt->w->opt.lease_us, held, err, sizeof(err)) !=
        AM_OK) {
        bt->db_down = true;
    } else {
        size_t k = 0;
        for (size_t i = 0; i < bt->njobs; i++) {
            if (bt->jobs[i].lost)
                continue;
            if (!held[k])
                bt->jobs[i].lost = true;
            k++;
        }
        bt->last_beat_us = now;
    }
    free(ids);
    free(held);
}

/* Whether the cached row says what r says (a list answer that changed is written again). */
static bool same_as_cached(const slot_t *s)
{
    if (!s->cached)
        return false;
    const char *o = s->r.outcome == ENG_OUT_FOUND ? "found" : "not_found";
    const char *v = s->r.outcome == ENG_OUT_FOUND && s->r.verdict != ENG_VERDICT_NONE
                        ? eng_verdict_name(s->r.verdict)
                        : "";
    if (strcmp(s->c.outcome, o) != 0 || strcmp(s->c.verdict, v) != 0)
        return false;
    json_t *f = json_loads(s->c.fields ? s->c.fields : "{}", 0, NULL);
    bool same = f != NULL && json_equal(f, s->r.fields);
    json_decref(f);
    return same;
}

/* Resolves slot s for job j (the job's attempts decide about a retry). */
static void resolve(batch_t *bt, job_state_t *j, slot_t *s)
{
    if (s->resolved)
        return;
    const eng_provider_t *p = eng_providers_at(bt->b->set, s->prov);
    if (!s->http) {
        eng_provider_lookup(&s->r, p, s->t, s->value);
        s->put = !same_as_cached(s);
        s->resolved = true;
        return;
    }
    wk_metrics_cache(s->cached);
    if (s->cached) {
        s->resolved = true;
        return;
    }
    if (atomic_load(&bt->w->stop)) {
        s->deferred = true;
        s->resolved = true;
        return;
    }
    heartbeat(bt);
    if (bt->db_down || j->lost)
        return; /* not resolved: another job of the batch may still need it */
    int64_t wait = 0;
    bt->asked = true;
    if (!wk_ask(bt->w, bt->b, s->prov, bt->curl, s->t, s->value, WK_MAX_INLINE_WAIT, &s->r,
                &s->retry_after_us, &wait)) {
        s->deferred = true;
        s->defer_us = wait;
        s->resolved = true;
        return;
    }
    s->resolved = true;
    if (s->r.outcome == ENG_OUT_FOUND || s->r.outcome == ENG_OUT_NOT_FOUND ||
        s->r.outcome == ENG_OUT_FAILED)
        s->put = true;
}

/* What slot s means for job j: its verdict (ENG_VERDICT_NONE: none), a
 * failure or a retry noted on j. */
static eng_verdict_t apply(batch_t *bt, job_state_t *j, slot_t *s)
{
    eng_provider_info_t info;
    eng_provider_info(&info, eng_providers_at(bt->b->set, s->prov));
    if (s->http && s->cached) {
        int v = s->c.verdict[0] ? eng_verdict_parse(s->c.verdict) : -1;
        return v > 0 ? (eng_verdict_t)v : ENG_VERDICT_NONE;
    }
    if (s->deferred) {
        want_retry(j, s->defer_us, false);
        return ENG_VERDICT_NONE;
    }
    switch (s->r.outcome) {
    case ENG_OUT_FOUND:
        return s->r.verdict;
    case ENG_OUT_NOT_FOUND:
        return ENG_VERDICT_NONE;
    case ENG_OUT_RETRY:
        if ((unsigned)j->c->job.attempts < info.max_attempts) {
            int64_t d = backoff_us(bt->w, j->c->job.attempts);
            want_retry(j, s->retry_after_us >= 0 ? s->retry_after_us : d, true);
            am_log(AM_LOG_INFO, "provider_retry", "sprovider", info.name, "sreason", s->r.reason,
                   "iattempt", (int64_t)j->c->job.attempts, NULL);
        } else {
            char why[320];
            snprintf(why, sizeof(why), "%s (after %d attempts)", s->r.reason, j->c->job.attempts);
            note_failure(j, info.name, s->type, s->value, why);
            if (s->put_error == NULL) {
                s->put_error = am_xstrdup(why);
                s->put = true;
            }
        }
        return ENG_VERDICT_NONE;
    case ENG_OUT_FAILED:
        note_failure(j, info.name, s->type, s->value, s->r.reason);
        if (s->put_error == NULL)
            s->put_error = am_xstrdup(s->r.reason);
        am_log(AM_LOG_WARN, "provider_failed", "sprovider", info.name, "sreason", s->r.reason,
               NULL);
        return ENG_VERDICT_NONE;
    }
    return ENG_VERDICT_NONE;
}

/* The cache rows to write, in one statement. */
static void write_cache(batch_t *bt)
{
    store_enrich_result_t *res = am_xcalloc(bt->nslots ? bt->nslots : 1, sizeof(*res));
    char **texts = am_xcalloc(bt->nslots ? bt->nslots : 1, sizeof(*texts));
    size_t n = 0;
    for (size_t i = 0; i < bt->nslots; i++) {
        slot_t *s = &bt->slots[i];
        if (!s->resolved || !s->put || s->r.fields == NULL)
            continue;
        const eng_provider_t *p = eng_providers_at(bt->b->set, s->prov);
        eng_provider_info_t info;
        eng_provider_info(&info, p);
        bool ok = s->r.outcome == ENG_OUT_FOUND || s->r.outcome == ENG_OUT_NOT_FOUND;
        if (!ok && s->put_error == NULL)
            continue; /* a retry with attempts left: nothing to record */
        texts[n] = json_dumps(s->r.fields, JSON_COMPACT);
        res[n] = (store_enrich_result_t){
            .provider = info.name,
            .type = s->type,
            .value = s->value,
            .outcome = s->r.outcome == ENG_OUT_FOUND       ? "found"
                       : s->r.outcome == ENG_OUT_NOT_FOUND ? "not_found"
                                                           : "failed",
            .verdict = s->r.outcome == ENG_OUT_FOUND && s->r.verdict != ENG_VERDICT_NONE
                           ? eng_verdict_name(s->r.verdict)
                           : NULL,
            .fields = texts[n] ? texts[n] : "{}",
            .error = ok ? NULL : s->put_error,
            .ttl_us = ok ? eng_provider_cache_ttl_us(p, s->t) : 0,
        };
        n++;
    }
    char err[512];
    if (n > 0 && store_enrich_cache_put_many(bt->db, res, n, err, sizeof(err)) != AM_OK) {
        am_log(AM_LOG_WARN, "enrichment_cache_write_failed", "serror", err, NULL);
        bt->db_down = true;
    }
    for (size_t i = 0; i < n; i++)
        free(texts[i]);
    free(texts);
    free(res);
}

/* The targets of b that take alert c at this point (when: ingested or enriched). */
static void match_targets(const wk_bundle_t *b, const store_enrich_claimed_t *c,
                          eng_send_when_t when, const char *verdict, const char **out, size_t *n)
{
    *n = 0;
    if (!c->alert_found)
        return;
    for (size_t k = 0; k < eng_targets_count(b->targets); k++) {
        const eng_target_t *t = eng_targets_at(b->targets, k);
        if (t->when == when &&
            eng_target_matches(t, c->facts.source, c->facts.severity, verdict,
                               (const char *const *)c->facts.tags, c->facts.ntags))
            out[(*n)++] = t->name;
    }
}

/* Returns whether a provider request was made. */
static bool run_batch(wk_t *w, store_enrich_t *db, CURL *curl, store_enrich_claimed_t *cl, size_t n)
{
    char err[512];
    batch_t bt = {.w = w, .db = db, .curl = curl, .njobs = n, .last_beat_us = am_now_us()};
    bt.b = wk_bundle_acquire(w);
    size_t ntargets = eng_targets_count(bt.b->targets);
    bt.jobs = am_xcalloc(n, sizeof(*bt.jobs));

    /* targets that want the alert at once, for the whole batch */
    int64_t *now_alerts = am_xcalloc(n * ntargets + 1, sizeof(*now_alerts));
    const char **now_names = am_xcalloc(n * ntargets + 1, sizeof(*now_names));
    size_t nnow = 0;
    for (size_t i = 0; i < n; i++) {
        job_state_t *j = &bt.jobs[i];
        j->c = &cl[i];
        am_buf_init(&j->failures, 0);
        j->iv = am_xcalloc(cl[i].niocs ? cl[i].niocs : 1, sizeof(*j->iv));
        j->targets = am_xcalloc(ntargets + 1, sizeof(*j->targets));
        size_t k = 0;
        match_targets(bt.b, &cl[i], ENG_SEND_INGESTED, NULL, now_names + nnow, &k);
        for (size_t x = 0; x < k; x++)
            now_alerts[nnow + x] = cl[i].job.alert_id;
        nnow += k;
        for (size_t x = 0; x < cl[i].niocs; x++) {
            eng_ioc_type_t t;
            const store_enrich_ioc_t *ioc = &cl[i].iocs[x];
            if (eng_ioc_type_parse(&t, ioc->type, strlen(ioc->type)) != 0)
                continue;
            for (size_t p = 0; p < bt.b->n; p++) {
                const eng_provider_t *pr = eng_providers_at(bt.b->set, p);
                if (!eng_provider_applies(pr, t))
                    continue;
                eng_provider_info_t info;
                eng_provider_info(&info, pr);
                slot_add(&bt, p, t, ioc->type, ioc->value, info.kind == ENG_PROV_HTTP);
            }
        }
    }
    if (nnow > 0 && store_enrich_deliveries_add_many(db, now_alerts, now_names, nnow, err,
                                                     sizeof(err)) != AM_OK)
        bt.db_down = true;
    free(now_alerts);
    free(now_names);

    /* the cache, for every key at once */
    if (!bt.db_down && bt.nslots > 0) {
        store_enrich_key_t *keys = am_xcalloc(bt.nslots, sizeof(*keys));
        store_enrich_cached_t *cached = am_xcalloc(bt.nslots, sizeof(*cached));
        bool *found = am_xcalloc(bt.nslots, sizeof(*found));
        for (size_t i = 0; i < bt.nslots; i++) {
            eng_provider_info_t info;
            eng_provider_info(&info, eng_providers_at(bt.b->set, bt.slots[i].prov));
            keys[i] = (store_enrich_key_t){info.name, bt.slots[i].type, bt.slots[i].value};
        }
        if (store_enrich_cache_get_many(db, keys, bt.nslots, cached, found, err, sizeof(err)) !=
            AM_OK)
            bt.db_down = true;
        for (size_t i = 0; i < bt.nslots; i++) {
            bt.slots[i].cached = found[i];
            bt.slots[i].c = cached[i];
        }
        free(keys);
        free(cached);
        free(found);
    }

    /* every job, in claim order: the answers it needs, then its verdicts */
    for (size_t i = 0; i < n && !bt.db_down; i++) {
        job_state_t *j = &bt.jobs[i];
        j->verdict = ENG_VERDICT_UNKNOWN;
        for (size_t x = 0; x < j->c->niocs && !j->lost && !bt.db_down; x++) {
            const store_enrich_ioc_t *ioc = &j->c->iocs[x];
            eng_ioc_type_t t;
            eng_verdict_t v = ENG_VERDICT_NONE;
            if (eng_ioc_type_parse(&t, ioc->type, strlen(ioc->type)) == 0) {
                for (size_t p = 0; p < bt.b->n && !j->lost && !bt.db_down; p++) {
                    if (!eng_provider_applies(eng_providers_at(bt.b->set, p), t))
                        continue;
                    slot_t *s = slot_find(&bt, p, ioc->type, ioc->value);
                    resolve(&bt, j, s);
                    if (s->resolved)
                        v = eng_verdict_worst(v, apply(&bt, j, s));
                }
            }
            if (v == ENG_VERDICT_NONE)
                v = ENG_VERDICT_UNKNOWN;
            j->iv[x] = (store_enrich_ioc_verdict_t){ioc->type, ioc->value, eng_verdict_name(v)};
            j->verdict = eng_verdict_worst(j->verdict, v);
        }
    }
    if (!bt.db_down)
        write_cache(&bt);

    /* every job that is still ours ends in one statement */
    if (!bt.db_down) {
        store_enrich_outcome_t *o = am_xcalloc(n, sizeof(*o));
        size_t *index = am_xcalloc(n, sizeof(*index));
        bool *ended = am_xcalloc(n, sizeof(*ended));
        size_t no = 0;
        for (size_t i = 0; i < n; i++) {
            job_state_t *j = &bt.jobs[i];
            if (j->lost)
                continue;
            bool failed = j->failures.len > 0;
            const char *verdict = eng_verdict_name(j->verdict);
            if (!j->retry)
                match_targets(bt.b, j->c, ENG_SEND_ENRICHED, verdict, j->targets, &j->ntargets);
            o[no] = (store_enrich_outcome_t){
                .job_id = j->c->job.id,
                .alert_id = j->c->job.alert_id,
                .failed = failed,
                .verdict = verdict,
                .error = j->retry ? (failed ? j->failures.data : "retrying")
                                  : (failed ? j->failures.data : NULL),
                .iocs = j->iv,
                .niocs = j->c->niocs,
                .targets = j->targets,
                .ntargets = j->ntargets,
                .retry = j->retry,
                .uncount = j->retry && !j->retry_counts,
                .retry_us = j->retry_us,
            };
            index[no++] = i;
        }
        int rc = store_enrich_finish_batch(db, o, no, ended, err, sizeof(err));
        if (rc != AM_OK)
            am_log(AM_LOG_WARN, "enrichment_finish_failed", "ijobs", (int64_t)no, "serror", err,
                   NULL);
        for (size_t k = 0; rc == AM_OK && k < no; k++) {
            job_state_t *j = &bt.jobs[index[k]];
            if (!ended[k]) {
                am_log(AM_LOG_WARN, "enrichment_lease_lost", "ijob", j->c->job.id, NULL);
                continue;
            }
            if (o[k].retry) {
                wk_metrics_job(WK_JOB_RETRIED);
                am_log(AM_LOG_INFO, "enrichment_retry", "ijob", j->c->job.id, "idelay_ms",
                       o[k].retry_us / 1000, "iattempt", (int64_t)j->c->job.attempts, NULL);
            } else {
                wk_metrics_job(o[k].failed ? WK_JOB_FAILED : WK_JOB_ENRICHED);
                am_log(AM_LOG_DEBUG, "enriched", "ijob", j->c->job.id, "ialert", j->c->job.alert_id,
                       "sstatus", o[k].failed ? "Failed" : "Enriched", "sverdict", o[k].verdict,
                       NULL);
            }
        }
        free(o);
        free(index);
        free(ended);
    }
    /* nothing written for a lost job or when the database went away: the
     * lease holder (or the next claim once the lease expires) ends it */
    for (size_t i = 0; i < bt.nslots; i++) {
        json_decref(bt.slots[i].r.fields);
        store_enrich_cached_dispose(&bt.slots[i].c);
        free(bt.slots[i].put_error);
    }
    free(bt.slots);
    for (size_t i = 0; i < n; i++) {
        am_buf_dispose(&bt.jobs[i].failures);
        free(bt.jobs[i].iv);
        free(bt.jobs[i].targets);
    }
    free(bt.jobs);
    bool asked = bt.asked;
    wk_bundle_release(w, bt.b);
    return asked;
}

/* ---- one delivery --------------------------------------------------------------- */

static void run_delivery(wk_t *w, store_enrich_t *db, CURL *curl, const store_enrich_delivery_t *d)
{
    char err[512];
    wk_bundle_t *b = wk_bundle_acquire(w);
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
    wk_reply_t rep;
    memset(&rep, 0, sizeof(rep));
    am_buf_init(&rep.body, 0);
    int status = 0;
    char reason[256] = "";
    wk_http_send(curl, &rq, t->timeout_us, &rep, &status, reason, sizeof(reason));
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
    wk_bundle_release(w, b);
}

/* The indicator types some provider of b answers, by name; their count. */
static size_t work_types(const wk_bundle_t *b, const char *types[ENG_IOC__COUNT])
{
    size_t n = 0;
    for (int t = 0; t < ENG_IOC__COUNT; t++) {
        bool any = false;
        for (size_t p = 0; p < b->n && !any; p++)
            any = eng_provider_applies(eng_providers_at(b->set, p), (eng_ioc_type_t)t);
        if (any)
            types[n++] = eng_ioc_type_name((eng_ioc_type_t)t);
    }
    return n;
}

/* The announcement of what this process's workers can do: once at start,
 * before wk_start() returns (so that the listener, opened after it, never
 * sees an ingest the writers judge without it), then from a thread of its
 * own within a quarter of a second of a reload and every WK_BEAT_US; the
 * row goes when the workers stop (009_enrichment_nodes.sql). */
#define WK_BEAT_US ((int64_t)15 * 1000000)
static int announce(wk_t *w, char *err, size_t errlen)
{
    wk_bundle_t *b = wk_bundle_acquire(w);
    const char *types[ENG_IOC__COUNT];
    size_t nt = work_types(b, types);
    bool targets = eng_targets_count(b->targets) > 0;
    int rc = store_node_announce(w->node, types, nt, targets, err, errlen);
    wk_bundle_release(w, b);
    return rc;
}

static store_node_t *node_new(const char *conninfo)
{
    char host[64] = "host", node[160];
    gethostname(host, sizeof(host) - 1);
    unsigned char rnd[4] = {0};
    if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
        memset(rnd, 0, sizeof(rnd));
    snprintf(node, sizeof(node), "%s:%ld:%lld:%02x%02x%02x%02x", host, (long)getpid(),
             (long long)(am_now_us() / 1000000), rnd[0], rnd[1], rnd[2], rnd[3]);
    return store_node_new(conninfo, node);
}

static void *beat_main(void *arg)
{
    wk_t *w = arg;
    char err[256];
    unsigned seen = w->announced_gen;
    int64_t next = w->announced ? am_now_us() + WK_BEAT_US : 0;
    bool warned = !w->announced;
    while (!atomic_load(&w->stop)) {
        unsigned gen = atomic_load(&w->gen);
        if (gen != seen || am_now_us() >= next) {
            if (announce(w, err, sizeof(err)) == AM_OK) {
                seen = gen;
                next = am_now_us() + WK_BEAT_US;
                warned = false;
            } else {
                next = am_now_us() + 1000000; /* the database is away: try each second */
                if (!warned)
                    am_log(AM_LOG_WARN, "worker_announce_failed", "serror", err, NULL);
                warned = true;
            }
        }
        wk_nap(w, 250000);
    }
    return NULL;
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
    size_t cap = w->opt.batch;
    store_enrich_claimed_t *cl = am_xcalloc(cap, sizeof(*cl));
    bool asked = false;
    while (!atomic_load(&w->stop)) {
        /* a batch that asked providers is followed by a single job: requests
         * take long, and the other threads should share the queue */
        size_t want = asked ? 1 : cap, n = 0, ended = 0;
        /* without targets, jobs no provider has work for end in the claim */
        wk_bundle_t *b = wk_bundle_acquire(w);
        bool fast = eng_targets_count(b->targets) == 0;
        const char *types[ENG_IOC__COUNT];
        size_t ntypes = fast ? work_types(b, types) : 0;
        int rc = store_enrich_claim_batch(db, w->opt.lease_us, want, fast ? types : NULL, ntypes,
                                          cl, &n, &ended, err, sizeof(err));
        wk_bundle_release(w, b);
        for (size_t i = 0; i < ended; i++)
            wk_metrics_job(WK_JOB_ENRICHED);
        if (rc == AM_ENOTFOUND) {
            asked = false;
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
            wk_nap(w, 1000000);
            continue;
        }
        asked = n > 0 && run_batch(w, db, curl, cl, n);
        for (size_t i = 0; i < n; i++)
            store_enrich_claimed_dispose(&cl[i]);
        /* a batch that was not full: let the queue fill a little before
         * the next claim, so that under load jobs come in full batches
         * (a claim and an end per batch, not per job) */
        if (n + ended < want && !asked)
            wk_nap(w, WK_BATCH_GATHER_US);
    }
    free(cl);
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
    if (w->opt.batch == 0)
        w->opt.batch = WK_DEFAULT_BATCH;
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
    if (w->opt.ondemand && wk_ondemand_start(w) != AM_OK)
        return AM_EIO;
    w->threads = am_xcalloc(w->opt.threads ? w->opt.threads : 1, sizeof(*w->threads));
    for (unsigned i = 0; i < w->opt.threads; i++) {
        if (pthread_create(&w->threads[i], NULL, thread_main, w) != 0) {
            wk_stop(w);
            return AM_EIO;
        }
        w->nthreads++;
    }
    /* only a process that claims jobs tells the writers what it can do */
    if (w->opt.threads > 0) {
        char err[256];
        w->node = node_new(w->conninfo);
        w->announced_gen = atomic_load(&w->gen);
        w->announced = announce(w, err, sizeof(err)) == AM_OK;
        if (!w->announced)
            am_log(AM_LOG_WARN, "worker_announce_failed", "serror", err, NULL);
        if (pthread_create(&w->beat, NULL, beat_main, w) != 0) {
            wk_stop(w);
            return AM_EIO;
        }
        w->beating = true;
    }
    w->started = true;
    am_log(AM_LOG_INFO, "worker_started", "ithreads", (int64_t)w->nthreads, "iproviders",
           (int64_t)w->cur->n, "ibatch", (int64_t)w->opt.batch, "son_demand",
           w->opt.ondemand ? "on" : "off", NULL);
    return AM_OK;
}

int wk_reload(wk_t *w)
{
    char err[512];
    wk_bundle_t *b = bundle_load(w->providers, w->targets, err, sizeof(err));
    if (b == NULL) {
        am_log(AM_LOG_ERROR, "providers_reload_failed", "smessage", err, NULL);
        return AM_EINVAL;
    }
    pthread_mutex_lock(&w->mu);
    wk_bundle_t *old = w->cur;
    w->cur = b;
    pthread_mutex_unlock(&w->mu);
    wk_bundle_release(w, old);
    atomic_fetch_add(&w->gen, 1);
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
    if (w->beating)
        pthread_join(w->beat, NULL);
    w->beating = false;
    store_node_free(w->node); /* deletes the row */
    w->node = NULL;
    wk_ondemand_stop(w);
}

void wk_free(wk_t *w)
{
    if (w == NULL)
        return;
    wk_stop(w);
    if (w->cur != NULL)
        wk_bundle_release(w, w->cur);
    free(w->threads);
    free(w->conninfo);
    free(w->providers);
    free(w->targets);
    pthread_mutex_destroy(&w->mu);
    free(w);
}
