// The bench's light load generator: one thread, epoll, line framing, closed loop. On a 2-core
// machine the client's own CPU compresses every ratio; this one costs a few µs per request (the
// stress tool, in Node, costs tens), so target rows come from it (bench/light-client.ts builds and
// runs it; the stress tool stays for the shape). Verifies every reply byte for byte.
//
//   epoll-client --port P --conns C --pipeline N --duration S --warmup W
//                --line TEXT --expect REPLY [--line2 TEXT --expect2 REPLY --weights A:B] [--churn]
// Prints one JSON object: requests, seconds, and per kind { count, errors, latency percentiles }.
// --churn: each connection sends one line, reads its reply, closes, and reconnects (rps = conns/s).
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define RING 1024
#define MAXLINE 4096

typedef struct { const char *line; int len; const char *expect; int elen; double *lat; size_t n, cap; long errors; } kind_t;
typedef struct { int fd; double ts[RING]; unsigned char kind[RING]; unsigned head, tail; char buf[MAXLINE]; int have; unsigned seq; int connected; } conn_t;

static kind_t kinds[2];
static int nkinds = 1, weights[2] = {1, 0}, port, pipeline = 1, churn = 0;
static double start_t, end_t;
static long other_errors = 0;

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }
static int cmpd(const void *a, const void *b) { double x = *(const double *)a, y = *(const double *)b; return x < y ? -1 : x > y; }

/** The kind of a connection's request number `seq`: a fixed weighted order (A A A B, …). */
static int kind_of(unsigned seq) { int total = weights[0] + weights[1]; return (int)(seq % total) < weights[0] ? 0 : 1; }

static int open_conn(int ep, conn_t *c, unsigned id) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET; a.sin_port = htons(port); a.sin_addr.s_addr = htonl(0x7f000001);
  int one = 1; setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (connect(fd, (void *)&a, sizeof a) < 0 && errno != EINPROGRESS) { close(fd); return -1; }
  c->fd = fd; c->head = c->tail = 0; c->have = 0; c->connected = 0;
  struct epoll_event e = {.events = EPOLLIN | EPOLLOUT, .data.u32 = id};
  epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e);
  return 0;
}

static void send_requests(conn_t *c, int count) {
  char out[MAXLINE * 8]; int k = 0; double t = now();
  for (int i = 0; i < count; i++) {
    int kd = kind_of(c->seq++);
    if (k + kinds[kd].len + 1 > (int)sizeof out) { if (write(c->fd, out, k) < 0) other_errors++; k = 0; }
    memcpy(out + k, kinds[kd].line, kinds[kd].len); k += kinds[kd].len; out[k++] = '\n';
    c->ts[c->tail % RING] = t; c->kind[c->tail % RING] = (unsigned char)kd; c->tail++;
  }
  if (k && write(c->fd, out, k) < 0) other_errors++;
}

static void record(int kd, double latency, int ok, double t) {
  if (t < start_t || t >= end_t) return;
  kind_t *k = &kinds[kd];
  if (!ok) { k->errors++; return; }
  if (k->n == k->cap) { k->cap = k->cap ? k->cap * 2 : 1 << 16; k->lat = realloc(k->lat, k->cap * sizeof(double)); }
  k->lat[k->n++] = latency;
}

static void print_kind(kind_t *k, const char *sep) {
  qsort(k->lat, k->n, sizeof(double), cmpd);
  double sum = 0; for (size_t i = 0; i < k->n; i++) sum += k->lat[i];
#define P(q) (k->n ? k->lat[(size_t)((k->n - 1) * (q))] * 1e3 : 0)
  printf("{\"count\":%zu,\"errors\":%ld,\"min\":%.4f,\"mean\":%.4f,\"p50\":%.4f,\"p90\":%.4f,\"p99\":%.4f,\"p999\":%.4f,\"max\":%.4f}%s",
         k->n, k->errors, P(0), k->n ? sum / k->n * 1e3 : 0, P(0.5), P(0.9), P(0.99), P(0.999), P(1), sep);
}

int main(int argc, char **argv) {
  int conns = 1; double duration = 5, warmup = 1;
  for (int i = 1; i + 1 < argc || (i < argc && !strcmp(argv[i], "--churn")); i += 2) {
    const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : "";
    if (!strcmp(o, "--churn")) { churn = 1; i--; continue; }
    if (!strcmp(o, "--port")) port = atoi(v);
    else if (!strcmp(o, "--conns")) conns = atoi(v);
    else if (!strcmp(o, "--pipeline")) pipeline = atoi(v);
    else if (!strcmp(o, "--duration")) duration = atof(v);
    else if (!strcmp(o, "--warmup")) warmup = atof(v);
    else if (!strcmp(o, "--line")) { kinds[0].line = v; kinds[0].len = strlen(v); }
    else if (!strcmp(o, "--expect")) { kinds[0].expect = v; kinds[0].elen = strlen(v); }
    else if (!strcmp(o, "--line2")) { kinds[1].line = v; kinds[1].len = strlen(v); nkinds = 2; }
    else if (!strcmp(o, "--expect2")) { kinds[1].expect = v; kinds[1].elen = strlen(v); }
    else if (!strcmp(o, "--weights")) sscanf(v, "%d:%d", &weights[0], &weights[1]);
    else { fprintf(stderr, "unknown option %s\n", o); return 2; }
  }
  if (!port || !kinds[0].line || !kinds[0].expect || pipeline < 1 || pipeline > RING) { fprintf(stderr, "usage: see the top of epoll-client.c\n"); return 2; }
  if (nkinds == 1) weights[1] = 0;
  int ep = epoll_create1(0);
  conn_t *c = calloc(conns, sizeof(conn_t));
  for (int i = 0; i < conns; i++) if (open_conn(ep, &c[i], i) < 0) { fprintf(stderr, "connect failed\n"); return 1; }
  double t0 = now(); start_t = t0 + warmup; end_t = start_t + duration;
  struct epoll_event ev[512];
  char buf[65536];
  for (;;) {
    double t = now();
    if (t >= end_t) break;
    int m = epoll_wait(ep, ev, 512, 50);
    for (int j = 0; j < m; j++) {
      conn_t *cc = &c[ev[j].data.u32];
      if (!cc->connected) {
        if (ev[j].events & (EPOLLERR | EPOLLHUP)) { other_errors++; close(cc->fd); open_conn(ep, cc, ev[j].data.u32); continue; }
        if (!(ev[j].events & EPOLLOUT)) continue;
        cc->connected = 1;
        struct epoll_event e = {.events = EPOLLIN, .data.u32 = ev[j].data.u32};
        epoll_ctl(ep, EPOLL_CTL_MOD, cc->fd, &e);
        send_requests(cc, churn ? 1 : pipeline);
        continue;
      }
      ssize_t r = read(cc->fd, buf, sizeof buf);
      if (r <= 0) {
        if (r < 0 && errno == EAGAIN) continue;
        other_errors++; close(cc->fd); open_conn(ep, cc, ev[j].data.u32); continue;
      }
      double tn = now(); int answered = 0;
      for (ssize_t q = 0; q < r; q++) {
        char ch = buf[q];
        if (ch != '\n') { if (cc->have < MAXLINE) cc->buf[cc->have] = ch; cc->have++; continue; }
        if (cc->head == cc->tail) { other_errors++; cc->have = 0; continue; }
        int kd = cc->kind[cc->head % RING]; double ts = cc->ts[cc->head % RING]; cc->head++;
        int ok = cc->have == kinds[kd].elen && !memcmp(cc->buf, kinds[kd].expect, kinds[kd].elen);
        record(kd, tn - ts, ok, tn);
        cc->have = 0; answered++;
      }
      if (churn && answered) { close(cc->fd); open_conn(ep, cc, ev[j].data.u32); }
      else if (answered) send_requests(cc, answered);
    }
  }
  long total = 0; for (int k = 0; k < nkinds; k++) total += kinds[k].n;
  struct rusage ru; getrusage(RUSAGE_SELF, &ru);
  double cpu = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
  printf("{\"requests\":%ld,\"seconds\":%.3f,\"cpuSec\":%.3f,\"otherErrors\":%ld,\"kinds\":[", total, duration, cpu, other_errors);
  for (int k = 0; k < nkinds; k++) print_kind(&kinds[k], k + 1 < nkinds ? "," : "");
  printf("]}\n");
  return 0;
}
