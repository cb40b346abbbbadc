// wake_latency: one-way latency of a loopback TCP message to a reader that slept idle for
// GAP_MS, the cost each proxy hop adds to a first streamed line (BENCHMARKS.md, "What limits
// the remaining targets"). The reader waits the way each proxy of the comparison does, so the
// waits can be compared on one machine:
//   read     blocking read(2)
//   epoll    epoll_wait then read (nginx, HAProxy, the floor)
//   uring    io_uring (SINGLE_ISSUER | DEFER_TASKRUN | COOP_TASKRUN), one recv per message
//   multishot  the same ring, one multishot recv into a provided buffer ring (tokentap)
// Build: cc -O2 bench/e2e/wake_latency.c -o /tmp/wake_latency -luring
// Run:   /tmp/wake_latency [SAMPLES=200] [GAP_MS=20] [read|epoll|uring|multishot]
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { ring_entries = 64, buf_count = 16, buf_bytes = 64, buf_group = 1, page_bytes = 4096 };

static long long now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1000000000LL + t.tv_nsec;
}

static int cmp(const void *a, const void *b) {
  long long x = *(const long long *)a, y = *(const long long *)b;
  return x < y ? -1 : x > y;
}

static void die(const char *what) {
  perror(what);
  exit(1);
}

// The writer: one 8-byte timestamp every gap_ms, after a sleep long enough for the reader's
// CPU to go idle.
static void writer(const struct sockaddr_in *a, int n, int gap_ms) {
  int one = 1, c = socket(AF_INET, SOCK_STREAM, 0);
  if (connect(c, (const struct sockaddr *)a, sizeof *a) != 0) die("connect");
  setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  for (int i = 0; i < n; i++) {
    usleep((useconds_t)gap_ms * 1000);
    long long t = now_ns();
    if (write(c, &t, sizeof t) != sizeof t) die("write");
  }
  _exit(0);
}

static struct io_uring ring;
static char bufs[buf_count][buf_bytes];
static struct io_uring_buf_ring *br;

static void ring_init(int multishot, int s) {
  struct io_uring_params p;
  memset(&p, 0, sizeof p);
  p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_COOP_TASKRUN;
  if (io_uring_queue_init_params(ring_entries, &ring, &p) != 0) die("io_uring_queue_init");
  if (!multishot) return;
  br = aligned_alloc(page_bytes, page_bytes);  // liburing 2.3 has no io_uring_setup_buf_ring
  io_uring_buf_ring_init(br);
  struct io_uring_buf_reg reg = {
      .ring_addr = (unsigned long)br, .ring_entries = buf_count, .bgid = buf_group};
  if (io_uring_register_buf_ring(&ring, &reg, 0) != 0) die("io_uring_register_buf_ring");
  for (int i = 0; i < buf_count; i++)
    io_uring_buf_ring_add(br, bufs[i], buf_bytes, i, io_uring_buf_ring_mask(buf_count), i);
  io_uring_buf_ring_advance(br, buf_count);
  struct io_uring_sqe *q = io_uring_get_sqe(&ring);
  io_uring_prep_recv_multishot(q, s, NULL, 0, 0);
  q->flags |= IOSQE_BUFFER_SELECT;
  q->buf_group = buf_group;
}

// One message through the ring: the timestamp it carried.
static long long ring_read(int multishot, int s) {
  long long t;
  if (!multishot) io_uring_prep_recv(io_uring_get_sqe(&ring), s, &t, sizeof t, 0);
  struct io_uring_cqe *c;
  if (io_uring_submit_and_wait(&ring, 1) < 0 || io_uring_peek_cqe(&ring, &c) != 0) die("wait");
  if (c->res != (int)sizeof t) {
    fprintf(stderr, "recv returned %d\n", c->res);
    exit(1);
  }
  if (multishot) {
    int b = (int)(c->flags >> IORING_CQE_BUFFER_SHIFT);
    memcpy(&t, bufs[b], sizeof t);
    io_uring_buf_ring_add(br, bufs[b], buf_bytes, b, io_uring_buf_ring_mask(buf_count), 0);
    io_uring_buf_ring_advance(br, 1);
  }
  io_uring_cqe_seen(&ring, c);
  return t;
}

int main(int argc, char **argv) {
  int n = argc > 1 ? atoi(argv[1]) : 200;
  int gap_ms = argc > 2 ? atoi(argv[2]) : 20;
  const char *mode = argc > 3 ? argv[3] : "read";
  int m = !strcmp(mode, "read") ? 0 : !strcmp(mode, "epoll") ? 1 : !strcmp(mode, "uring") ? 2
          : !strcmp(mode, "multishot") ? 3 : -1;
  if (n < 1 || gap_ms < 0 || m < 0) {
    fprintf(stderr, "usage: %s [SAMPLES] [GAP_MS] [read|epoll|uring|multishot]\n", argv[0]);
    return 2;
  }
  int one = 1, l = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t al = sizeof a;
  setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(l, (struct sockaddr *)&a, sizeof a) != 0 || listen(l, 1) != 0 ||
      getsockname(l, (struct sockaddr *)&a, &al) != 0) {
    die("listen");
  }
  if (fork() == 0) writer(&a, n, gap_ms);
  int s = accept(l, NULL, NULL);
  if (s < 0) die("accept");
  int ep = -1;
  if (m == 1) {
    struct epoll_event e = {.events = EPOLLIN};
    if ((ep = epoll_create1(0)) < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, s, &e) != 0) die("epoll");
  }
  if (m >= 2) ring_init(m == 3, s);
  long long *d = malloc((size_t)n * sizeof *d);
  for (int i = 0; i < n; i++) {
    long long t;
    if (m == 1) {
      struct epoll_event e;
      if (epoll_wait(ep, &e, 1, -1) != 1) die("epoll_wait");
    }
    if (m <= 1) {
      if (read(s, &t, sizeof t) != sizeof t) die("read");
    } else {
      t = ring_read(m == 3, s);
    }
    d[i] = now_ns() - t;
  }
  qsort(d, (size_t)n, sizeof *d, cmp);
  printf("%s: one-way wake latency after %d ms idle: p50 %.1f us p90 %.1f us p99 %.1f us\n", mode,
         gap_ms, d[n / 2] / 1e3, d[n * 9 / 10] / 1e3, d[n * 99 / 100] / 1e3);
  return 0;
}
