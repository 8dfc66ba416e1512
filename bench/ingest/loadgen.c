/* bench/ingest/loadgen.c - an open-loop HTTP/1.1 load generator with a fixed
 * send schedule, for latency at a chosen offered load.
 *
 *   loadgen --port P --rate R --duration S [--connections C] [--host ADDR]
 *           [--method POST|GET] [--path PATH | --paths FILE]
 *           [--body FILE] [--tag STR] [--header 'Name: value']...
 *           [--raw FILE] [--grace S]
 *
 * Request k is scheduled at start + k / R. When its time comes it goes out on
 * an idle keep-alive connection; when every connection is busy it waits in a
 * queue. Its latency is measured from the scheduled time, not from the moment
 * it was sent, so a server that stalls is charged for the requests that
 * could not be sent meanwhile (no coordinated omission).
 *
 * --body FILE is a template: every "__N__" becomes TAG-k and every "__IP__"
 * becomes k % 250 + 1, so every request is a different alert. --paths FILE
 * holds one path per line, used round robin (GET mode). SIGTERM or SIGINT
 * ends the schedule early (the requests in flight still finish).
 *
 * Prints one JSON object on stdout: counts by status class, errors, the
 * offered and achieved rate, and latency percentiles in microseconds.
 * --raw FILE writes one line per request: scheduled, sent and done time in
 * CLOCK_MONOTONIC nanoseconds, and the HTTP status (0 = transport error). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define MAX_HEADERS 16

typedef struct {
    uint64_t sched, sent, done;
    int status;
} rec_t;

typedef struct {
    int fd;
    int busy;       /* a request is on this connection */
    int connecting; /* non-blocking connect() in progress */
    size_t req;     /* index of its request in recs */
    char *out;      /* the request bytes */
    size_t out_len, out_off, out_cap;
    char *in; /* response bytes read so far */
    size_t in_len, in_cap;
} conn_t;

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void die(const char *msg)
{
    fprintf(stderr, "loadgen: %s\n", msg);
    exit(2);
}

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (q == NULL) {
        die("out of memory");
    }
    return q;
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "loadgen: cannot open %s: %s\n", path, strerror(errno));
        exit(2);
    }
    char *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n + 65536 > cap) {
            cap = cap ? cap * 2 : 65536;
            buf = xrealloc(buf, cap + 1);
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) {
            break;
        }
    }
    fclose(f);
    buf[n] = '\0';
    *len = n;
    return buf;
}

static void out_reserve(conn_t *c, size_t extra)
{
    if (c->out_len + extra > c->out_cap) {
        while (c->out_len + extra > c->out_cap) {
            c->out_cap = c->out_cap ? c->out_cap * 2 : 8192;
        }
        c->out = xrealloc(c->out, c->out_cap);
    }
}

static void out_add(conn_t *c, const char *s, size_t n)
{
    out_reserve(c, n);
    memcpy(c->out + c->out_len, s, n);
    c->out_len += n;
}

/* ---- configuration ------------------------------------------------------------ */

static const char *host = "127.0.0.1";
static int port;
static double rate;
static double duration;
static double grace = 10.0;
static int nconn = 16;
static const char *method = "POST";
static const char *path = "/";
static char **paths;
static size_t npaths;
static char *body;
static size_t body_len;
static const char *tag = "lg";
static const char *headers[MAX_HEADERS];
static int nheaders;
static const char *raw_path;

static void build_request(conn_t *c, size_t k)
{
    const char *p = npaths ? paths[k % npaths] : path;
    c->out_len = 0;
    c->out_off = 0;
    char line[512];
    int n = snprintf(line, sizeof line, "%s %s HTTP/1.1\r\nHost: %s:%d\r\n", method, p, host, port);
    out_add(c, line, (size_t)n);
    for (int i = 0; i < nheaders; i++) {
        out_add(c, headers[i], strlen(headers[i]));
        out_add(c, "\r\n", 2);
    }
    if (body == NULL) {
        out_add(c, "\r\n", 2);
        return;
    }
    /* body with the placeholders replaced; its length goes in front */
    char num[96], ip[16];
    int numlen = snprintf(num, sizeof num, "%s-%zu", tag, k);
    int iplen = snprintf(ip, sizeof ip, "%zu", k % 250 + 1);
    size_t head_len = c->out_len;
    out_add(c, "Content-Type: application/json\r\nContent-Length: 0000000000\r\n\r\n", 62);
    size_t start = c->out_len;
    const char *s = body, *end = body + body_len;
    while (s < end) {
        const char *u = memchr(s, '_', (size_t)(end - s));
        if (u == NULL) {
            out_add(c, s, (size_t)(end - s));
            break;
        }
        out_add(c, s, (size_t)(u - s));
        if ((size_t)(end - u) >= 5 && memcmp(u, "__N__", 5) == 0) {
            out_add(c, num, (size_t)numlen);
            s = u + 5;
        } else if ((size_t)(end - u) >= 6 && memcmp(u, "__IP__", 6) == 0) {
            out_add(c, ip, (size_t)iplen);
            s = u + 6;
        } else {
            out_add(c, u, 1);
            s = u + 1;
        }
    }
    char len[11];
    snprintf(len, sizeof len, "%010zu", c->out_len - start);
    memcpy(c->out + head_len + 48, len, 10);
}

/* ---- connections -------------------------------------------------------------- */

static int epfd;
static struct sockaddr_in addr;

static void conn_open(conn_t *c)
{
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        die("socket() failed");
    }
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->connecting = 1;
    if (connect(c->fd, (struct sockaddr *)&addr, sizeof addr) == 0) {
        c->connecting = 0;
    } else if (errno != EINPROGRESS) {
        fprintf(stderr, "loadgen: connect: %s\n", strerror(errno));
        exit(1);
    }
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLET, .data.ptr = c};
    epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev);
    c->in_len = 0;
}

static void conn_close(conn_t *c)
{
    epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
}

/* Flushes what is left of the request; returns -1 on a broken connection. */
static int conn_flush(conn_t *c)
{
    while (c->busy && !c->connecting && c->out_off < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (n > 0) {
            c->out_off += (size_t)n;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return 0;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else {
            return -1;
        }
    }
    return 0;
}

/* Looks for one complete response in c->in. Returns its total length and
 * sets *status, 0 when more bytes are needed, -1 when it cannot be parsed. */
static long parse_response(conn_t *c, int *status, int *close_after)
{
    c->in[c->in_len] = '\0';
    char *hend = strstr(c->in, "\r\n\r\n");
    if (hend == NULL) {
        return c->in_len > 65536 ? -1 : 0;
    }
    if (strncmp(c->in, "HTTP/1.", 7) != 0 || c->in_len < 12) {
        return -1;
    }
    *status = atoi(c->in + 9);
    size_t hlen = (size_t)(hend - c->in) + 4;
    long clen = -1;
    int chunked = 0;
    *close_after = 0;
    for (char *l = strstr(c->in, "\r\n") + 2; l < hend; l = strstr(l, "\r\n") + 2) {
        if (strncasecmp(l, "content-length:", 15) == 0) {
            clen = atol(l + 15);
        } else if (strncasecmp(l, "transfer-encoding:", 18) == 0 && strstr(l, "chunked") != NULL &&
                   strstr(l, "chunked") < strstr(l, "\r\n")) {
            chunked = 1;
        } else if (strncasecmp(l, "connection:", 11) == 0 && strcasestr(l, "close") != NULL &&
                   strcasestr(l, "close") < strstr(l, "\r\n")) {
            *close_after = 1;
        }
    }
    if (chunked) {
        size_t off = hlen;
        for (;;) {
            char *e = strstr(c->in + off, "\r\n");
            if (e == NULL) {
                return 0;
            }
            size_t sz = strtoul(c->in + off, NULL, 16);
            off = (size_t)(e - c->in) + 2;
            if (sz == 0) {
                char *t = strstr(c->in + off - 2, "\r\n\r\n");
                return t == NULL ? 0 : (long)(t - c->in) + 4;
            }
            if (off + sz + 2 > c->in_len) {
                return 0;
            }
            off += sz + 2;
        }
    }
    if (clen < 0) {
        clen = 0;
    }
    if (hlen + (size_t)clen > c->in_len) {
        return 0;
    }
    return (long)(hlen + (size_t)clen);
}

/* ---- main --------------------------------------------------------------------- */

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static double pct(const uint64_t *v, size_t n, double p)
{
    if (n == 0) {
        return 0;
    }
    size_t i = (size_t)(p / 100.0 * (double)n);
    if (i >= n) {
        i = n - 1;
    }
    return (double)v[i] / 1e6;
}

static void usage(void)
{
    fprintf(stderr, "usage: loadgen --port P --rate R --duration S [--connections C] "
                    "[--host ADDR] [--method M] [--path P | --paths FILE] [--body FILE] "
                    "[--tag STR] [--header H]... [--raw FILE] [--grace S]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *paths_file = NULL, *body_file = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (v == NULL) {
            usage();
        }
        i++;
        if (strcmp(a, "--host") == 0) {
            host = v;
        } else if (strcmp(a, "--port") == 0) {
            port = atoi(v);
        } else if (strcmp(a, "--rate") == 0) {
            rate = atof(v);
        } else if (strcmp(a, "--duration") == 0) {
            duration = atof(v);
        } else if (strcmp(a, "--grace") == 0) {
            grace = atof(v);
        } else if (strcmp(a, "--connections") == 0) {
            nconn = atoi(v);
        } else if (strcmp(a, "--method") == 0) {
            method = v;
        } else if (strcmp(a, "--path") == 0) {
            path = v;
        } else if (strcmp(a, "--paths") == 0) {
            paths_file = v;
        } else if (strcmp(a, "--body") == 0) {
            body_file = v;
        } else if (strcmp(a, "--tag") == 0) {
            tag = v;
        } else if (strcmp(a, "--header") == 0) {
            if (nheaders == MAX_HEADERS) {
                die("too many --header");
            }
            headers[nheaders++] = v;
        } else if (strcmp(a, "--raw") == 0) {
            raw_path = v;
        } else {
            usage();
        }
    }
    if (port <= 0 || rate <= 0 || duration <= 0 || nconn <= 0) {
        usage();
    }
    if (body_file != NULL) {
        body = read_file(body_file, &body_len);
    }
    if (paths_file != NULL) {
        size_t n;
        char *all = read_file(paths_file, &n);
        for (char *l = strtok(all, "\n"); l != NULL; l = strtok(NULL, "\n")) {
            paths = xrealloc(paths, (npaths + 1) * sizeof *paths);
            paths[npaths++] = l;
        }
        if (npaths == 0) {
            die("--paths file is empty");
        }
    }
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
        die("--host must be an IPv4 address");
    }
    signal(SIGPIPE, SIG_IGN);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);

    size_t total = (size_t)(rate * duration);
    if (total == 0) {
        total = 1;
    }
    rec_t *recs = calloc(total, sizeof *recs);
    conn_t *conns = calloc((size_t)nconn, sizeof *conns);
    if (recs == NULL || conns == NULL) {
        die("out of memory");
    }
    epfd = epoll_create1(EPOLL_CLOEXEC);
    int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    struct epoll_event tev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(epfd, EPOLL_CTL_ADD, tfd, &tev);
    for (int i = 0; i < nconn; i++) {
        conns[i].in_cap = 16384;
        conns[i].in = xrealloc(NULL, conns[i].in_cap + 1);
        conn_open(&conns[i]);
    }

    uint64_t interval = (uint64_t)(1e9 / rate);
    uint64_t start = now_ns() + 50000000u; /* let the connections open first */
    size_t scheduled = 0, dispatched = 0, finished = 0, inflight = 0;
    size_t errors = 0, reconnects = 0;
    uint64_t deadline = 0;
    struct epoll_event evs[64];

    for (;;) {
        uint64_t t = now_ns();
        if (stop_flag && deadline == 0) {
            total = scheduled; /* no more scheduling */
        }
        while (scheduled < total && start + scheduled * interval <= t) {
            recs[scheduled].sched = start + scheduled * interval;
            scheduled++;
        }
        if (scheduled == total && deadline == 0) {
            deadline = t + (uint64_t)(grace * 1e9);
        }
        /* hand waiting requests to idle connections, oldest first */
        for (int i = 0; i < nconn && dispatched < scheduled; i++) {
            conn_t *c = &conns[i];
            if (c->busy || c->fd < 0) {
                continue;
            }
            c->busy = 1;
            c->req = dispatched++;
            build_request(c, c->req);
            recs[c->req].sent = now_ns();
            inflight++;
            if (conn_flush(c) < 0) {
                recs[c->req].done = now_ns();
                errors++;
                finished++;
                inflight--;
                c->busy = 0;
                conn_close(c);
                conn_open(c);
                reconnects++;
            }
        }
        if (finished == total || (deadline != 0 && t > deadline)) {
            break;
        }
        if (scheduled < total) {
            struct itimerspec its = {0};
            uint64_t next = start + scheduled * interval;
            its.it_value.tv_sec = (time_t)(next / 1000000000u);
            its.it_value.tv_nsec = (long)(next % 1000000000u);
            timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL);
        }
        int n = epoll_wait(epfd, evs, 64, 100);
        for (int e = 0; e < n; e++) {
            conn_t *c = evs[e].data.ptr;
            if (c == NULL) {
                uint64_t x;
                ssize_t r = read(tfd, &x, sizeof x);
                (void)r;
                continue;
            }
            if (c->fd < 0) {
                continue;
            }
            int broken = (evs[e].events & (EPOLLERR | EPOLLHUP)) != 0;
            if (c->connecting && !broken && (evs[e].events & EPOLLOUT)) {
                int err = 0;
                socklen_t len = sizeof err;
                getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
                if (err != 0) {
                    fprintf(stderr, "loadgen: connect: %s\n", strerror(err));
                    exit(1);
                }
                c->connecting = 0;
            }
            if (!broken && (evs[e].events & EPOLLOUT) && conn_flush(c) < 0) {
                broken = 1;
            }
            while (!broken && (evs[e].events & EPOLLIN)) {
                if (c->in_len + 16384 > c->in_cap) {
                    c->in_cap *= 2;
                    c->in = xrealloc(c->in, c->in_cap + 1);
                }
                ssize_t r = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
                if (r > 0) {
                    c->in_len += (size_t)r;
                    continue;
                }
                if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                    break;
                }
                if (r < 0 && errno == EINTR) {
                    continue;
                }
                broken = 1; /* closed or failed */
            }
            while (c->busy && c->in_len > 0) {
                int status = 0, close_after = 0;
                long used = parse_response(c, &status, &close_after);
                if (used == 0) {
                    break;
                }
                if (used < 0) {
                    broken = 1;
                    break;
                }
                recs[c->req].done = now_ns();
                recs[c->req].status = status;
                finished++;
                inflight--;
                c->busy = 0;
                memmove(c->in, c->in + used, c->in_len - (size_t)used);
                c->in_len -= (size_t)used;
                if (close_after) {
                    broken = 1;
                }
            }
            if (broken) {
                if (c->busy) {
                    recs[c->req].done = now_ns();
                    errors++;
                    finished++;
                    inflight--;
                    c->busy = 0;
                }
                conn_close(c);
                if (deadline == 0 || t < deadline) {
                    conn_open(c);
                    reconnects++;
                }
            }
        }
    }
    uint64_t end = now_ns();

    /* ---- report ---- */
    uint64_t *lat = malloc((finished + 1) * sizeof *lat);
    uint64_t *svc = malloc((finished + 1) * sizeof *svc);
    size_t nlat = 0, ok = 0, non2xx = 0, unfinished = 0;
    uint64_t first = 0, last = 0;
    FILE *raw = raw_path != NULL ? fopen(raw_path, "w") : NULL;
    for (size_t k = 0; k < scheduled; k++) {
        rec_t *r = &recs[k];
        if (raw != NULL) {
            fprintf(raw, "%llu %llu %llu %d\n", (unsigned long long)r->sched,
                    (unsigned long long)r->sent, (unsigned long long)r->done, r->status);
        }
        if (r->done == 0) {
            unfinished++;
            continue;
        }
        if (r->status == 0) {
            continue;
        }
        if (r->status >= 200 && r->status < 300) {
            ok++;
        } else {
            non2xx++;
        }
        lat[nlat] = r->done - r->sched;
        svc[nlat] = r->done - r->sent;
        nlat++;
        if (first == 0 || r->done < first) {
            first = r->done;
        }
        if (r->done > last) {
            last = r->done;
        }
    }
    if (raw != NULL) {
        fclose(raw);
    }
    qsort(lat, nlat, sizeof *lat, cmp_u64);
    qsort(svc, nlat, sizeof *svc, cmp_u64);
    double span = (double)(end - start) / 1e9;
    double sched_span = scheduled ? (double)(scheduled * interval) / 1e9 : 0;
    printf("{\"offered_rate\":%.1f,\"connections\":%d,\"scheduled\":%zu,\"responses\":%zu,"
           "\"ok\":%zu,\"non2xx\":%zu,\"errors\":%zu,\"unfinished\":%zu,\"reconnects\":%zu,"
           "\"schedule_s\":%.3f,\"wall_s\":%.3f,\"achieved_rate\":%.1f,"
           "\"latency_ms\":{\"p50\":%.3f,\"p90\":%.3f,\"p99\":%.3f,\"p999\":%.3f,\"max\":%.3f},"
           "\"service_ms\":{\"p50\":%.3f,\"p99\":%.3f,\"max\":%.3f}}\n",
           rate, nconn, scheduled, nlat, ok, non2xx, errors, unfinished, reconnects, sched_span,
           span, sched_span > 0 ? (double)ok / sched_span : 0, pct(lat, nlat, 50),
           pct(lat, nlat, 90), pct(lat, nlat, 99), pct(lat, nlat, 99.9),
           nlat ? (double)lat[nlat - 1] / 1e6 : 0, pct(svc, nlat, 50), pct(svc, nlat, 99),
           nlat ? (double)svc[nlat - 1] / 1e6 : 0);
    (void)first;
    (void)last;
    return 0;
}
