// e2e_floor: the "floor" target of bench/e2e/run.sh, the cheapest user-space forwarder this
// kernel allows. It is not a proxy: it parses no HTTP and rewrites nothing (no Host rewrite; the
// fake upstream accepts the loopback Host the clients send). Each accepted client connection is
// paired 1:1 for life with its own upstream connection and bytes are copied both ways
// unchanged, which is valid HTTP/1.1 keep-alive because the upstream only ever sees that one
// client. So its CPU per request and its added latency are a lower bound for any proxy (nginx,
// HAProxy, tokentap) on this machine: a target below the floor cannot be met here.
//
//   e2e_floor LISTEN_PORT UPSTREAM_PORT      (127.0.0.1 only; one thread)
//
// One level-triggered epoll loop, non-blocking sockets, TCP_NODELAY both sides. A small message
// costs epoll_wait + recv + send per direction: after a read we go back to epoll instead of
// reading again until EAGAIN, since level triggering reports what is left. A direction whose
// recv fills the whole 64 KiB buffer is a bulk transfer and switches to splice through its own
// pipe (1 MiB) for the rest of the connection, looping until a side would block (at most 4 MiB
// a turn). Backpressure: while a direction holds unsent bytes, its source is not read (EPOLLIN
// off) and its sink is watched for EPOLLOUT.
// Kernel: splice and F_SETPIPE_SZ (2.6.35); nothing newer.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

enum {
  pairs_max = 4096,          // client+upstream pairs; beyond it a client is closed at once
  buf_bytes = 64 << 10,      // per direction; a recv that fills it switches to splice
  pipe_bytes = 1 << 20,      // F_SETPIPE_SZ of a splice direction's pipe
  turn_bytes_max = 4 << 20,  // a splice direction yields to the others after this much
  fds_per_pair = 6,          // two sockets and up to two pipes
  fds_spare = 16,            // stdio, listener, epoll
  events_max = 256,
};
static const uint64_t listener_tag = UINT64_MAX;

struct Dir {  // one direction of a pair: bytes read from src, written to dst
  int src, dst;
  char* buf;                // buf_bytes, allocated with its slot once and reused
  size_t off, len;          // buf[off, len) is read and not yet sent
  int pipe_r, pipe_w;       // -1 until the direction switches to splice
  size_t piped;             // bytes sitting in the pipe
};

struct Pair {
  int fd[2];                // 0: client, 1: upstream; dir[s] reads fd[s] and writes fd[1 - s]
  uint32_t mask[2];         // the epoll interest currently set on fd[s]
  uint32_t gen;             // bumped when freed, so stale events of a batch are dropped
  struct Dir dir[2];
};

static struct Pair pairs[pairs_max];
static int free_slots[pairs_max], free_count, pairs_cap;
static int ep, listen_fd, upstream_port;

static void die(const char* what) {
  perror(what);
  exit(1);
}

static int would_block(void) { return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR; }
static int blocked(const struct Dir* d) { return d->off < d->len || d->piped > 0; }

static uint64_t tag(const struct Pair* p, int side) {
  return (uint64_t)p->gen << 32 | (uint64_t)(p - pairs) << 1 | (uint64_t)side;
}

// Splice from the socket needs a pipe; if it cannot be had, the direction stays on recv/send.
static void dir_open_pipe(struct Dir* d) {
  int fds[2];
  if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) < 0) return;
  (void)fcntl(fds[1], F_SETPIPE_SZ, pipe_bytes);  // the default 64 KiB still works if refused
  d->pipe_r = fds[0];
  d->pipe_w = fds[1];
}

// Sends what the direction holds: 0 when nothing is left, 1 when the sink is full, -1 to close.
static int dir_flush(struct Dir* d) {
  if (d->off < d->len) {
    ssize_t n = send(d->dst, d->buf + d->off, d->len - d->off, MSG_NOSIGNAL);
    if (n < 0) return would_block() ? 1 : -1;
    d->off += (size_t)n;
    if (d->off < d->len) return 1;
    d->off = d->len = 0;
  }
  if (d->piped > 0) {
    ssize_t n = splice(d->pipe_r, NULL, d->dst, NULL, d->piped,
                       SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
    if (n < 0) return would_block() ? 1 : -1;
    if (n == 0) return -1;  // cannot happen with bytes in the pipe; never spin on it
    d->piped -= (size_t)n;
    if (d->piped > 0) return 1;
  }
  return 0;
}

// Reads once from the source (only called with nothing held): the bytes read, 0 when none yet,
// -1 on EOF or error.
static ssize_t dir_fill(struct Dir* d) {
  ssize_t n;
  if (d->pipe_r >= 0) {
    n = splice(d->src, NULL, d->pipe_w, NULL, pipe_bytes, SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
    if (n > 0) d->piped = (size_t)n;
  } else {
    n = recv(d->src, d->buf, buf_bytes, 0);
    if (n > 0) d->len = (size_t)n;
    if (n == buf_bytes) dir_open_pipe(d);  // this buffer is sent first, then splice takes over
  }
  if (n < 0 && would_block()) return 0;
  return n > 0 ? n : -1;
}

// Moves bytes from src to dst: 0 to carry on, -1 to close the pair. A buffered direction reads
// once per wakeup, so a small message costs one recv and no EAGAIN. A splice direction carries
// on until a side would block or turn_bytes_max have moved, as a bulk transfer rarely waits.
static int dir_pump(struct Dir* d) {
  size_t moved = 0;
  do {
    int rc = dir_flush(d);
    if (rc != 0) return rc < 0 ? -1 : 0;
    ssize_t n = dir_fill(d);
    if (n <= 0) return (int)n;
    moved += (size_t)n;
  } while (d->pipe_r >= 0 && moved < turn_bytes_max);
  return dir_flush(d) < 0 ? -1 : 0;
}

static void pair_arm(struct Pair* p) {
  for (int s = 0; s < 2; s++) {
    uint32_t want = (blocked(&p->dir[s]) ? 0 : EPOLLIN) | (blocked(&p->dir[1 - s]) ? EPOLLOUT : 0);
    if (want == p->mask[s]) continue;
    struct epoll_event ev = {.events = want, .data.u64 = tag(p, s)};
    if (epoll_ctl(ep, EPOLL_CTL_MOD, p->fd[s], &ev) < 0) die("epoll_ctl mod");
    p->mask[s] = want;
  }
}

static void pair_close(struct Pair* p) {
  for (int s = 0; s < 2; s++) {
    close(p->fd[s]);  // also removes it from the epoll set
    struct Dir* d = &p->dir[s];
    if (d->pipe_r >= 0) {  // closed rather than reused: it may still hold a dead stream's bytes
      close(d->pipe_r);
      close(d->pipe_w);
    }
    d->pipe_r = d->pipe_w = -1;
    d->off = d->len = d->piped = 0;
  }
  p->gen++;
  free_slots[free_count++] = (int)(p - pairs);
}

static int upstream_connect(void) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)upstream_port),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  // Blocking connect: on loopback it completes within the call, and it keeps the loop simple.
  if (connect(fd, (struct sockaddr*)&a, sizeof a) < 0 || fcntl(fd, F_SETFL, O_NONBLOCK) < 0) {
    close(fd);
    return -1;
  }
  return fd;
}

static void on_accept(int client) {
  int one = 1, upstream = -1;
  if (free_count == 0 || (upstream = upstream_connect()) < 0) {
    close(client);  // refused: the pair limit is reached or the upstream is down
    return;
  }
  struct Pair* p = &pairs[free_slots[--free_count]];
  if (!p->dir[0].buf && !(p->dir[0].buf = malloc(2 * buf_bytes))) die("malloc");
  p->dir[1].buf = p->dir[0].buf + buf_bytes;
  p->fd[0] = client;
  p->fd[1] = upstream;
  for (int s = 0; s < 2; s++) {
    p->dir[s].src = p->fd[s];
    p->dir[s].dst = p->fd[1 - s];
    p->mask[s] = EPOLLIN;
    setsockopt(p->fd[s], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = tag(p, s)};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, p->fd[s], &ev) < 0) die("epoll_ctl add");
  }
}

static void on_listener(void) {
  int fd;
  while ((fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) on_accept(fd);
  if (errno != EAGAIN && errno != EWOULDBLOCK && errno != ECONNABORTED) perror("accept4");
}

// EPOLLOUT on fd[side] serves the direction writing to it; EPOLLIN the one reading it.
static void on_pair_event(struct Pair* p, int side, uint32_t events) {
  int rc = (events & (EPOLLERR | EPOLLHUP)) ? -1 : 0;
  if (rc == 0 && (events & EPOLLOUT)) rc = dir_pump(&p->dir[1 - side]);
  if (rc == 0 && (events & EPOLLIN)) rc = dir_pump(&p->dir[side]);
  if (rc < 0) pair_close(p);
  else pair_arm(p);
}

// The pair limit never exceeds what RLIMIT_NOFILE allows, so accept4 cannot fail with EMFILE
// and leave the level-triggered listener firing forever.
static void limits_init(void) {
  struct rlimit r;
  if (getrlimit(RLIMIT_NOFILE, &r) == 0 && r.rlim_cur < r.rlim_max) {
    r.rlim_cur = r.rlim_max;
    (void)setrlimit(RLIMIT_NOFILE, &r);
  }
  long fit = getrlimit(RLIMIT_NOFILE, &r) == 0 ? ((long)r.rlim_cur - fds_spare) / fds_per_pair : 0;
  pairs_cap = fit < pairs_max ? (int)fit : pairs_max;
  if (pairs_cap < 1) die("RLIMIT_NOFILE too small");
  for (int i = pairs_cap - 1; i >= 0; i--) {
    free_slots[free_count++] = i;
    for (int s = 0; s < 2; s++) pairs[i].dir[s].pipe_r = pairs[i].dir[s].pipe_w = -1;
  }
}

static void listener_init(int port) {
  int one = 1;
  listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (listen_fd < 0) die("socket");
  setsockopt(listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (bind(listen_fd, (struct sockaddr*)&a, sizeof a) < 0) die("bind");
  if (listen(listen_fd, SOMAXCONN) < 0) die("listen");
  struct epoll_event ev = {.events = EPOLLIN, .data.u64 = listener_tag};
  if (epoll_ctl(ep, EPOLL_CTL_ADD, listen_fd, &ev) < 0) die("epoll_ctl listener");
}

int main(int argc, char** argv) {
  int port = argc == 3 ? atoi(argv[1]) : 0;
  upstream_port = argc == 3 ? atoi(argv[2]) : 0;
  if (port <= 0 || port > 65535 || upstream_port <= 0 || upstream_port > 65535) {
    fprintf(stderr, "usage: %s LISTEN_PORT UPSTREAM_PORT\n", argv[0]);
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);  // belt and braces: send has MSG_NOSIGNAL, splice has no such flag
  limits_init();
  if ((ep = epoll_create1(EPOLL_CLOEXEC)) < 0) die("epoll_create1");
  listener_init(port);
  fprintf(stderr, "e2e_floor: 127.0.0.1:%d -> 127.0.0.1:%d, epoll LT, recv/send %d KiB, "
          "splice pipe %d KiB, %d pairs max\n", port, upstream_port, buf_bytes >> 10,
          pipe_bytes >> 10, pairs_cap);
  struct epoll_event events[events_max];
  for (;;) {
    int n = epoll_wait(ep, events, events_max, -1);
    if (n < 0 && errno != EINTR) die("epoll_wait");
    for (int i = 0; i < n; i++) {
      uint64_t t = events[i].data.u64;
      if (t == listener_tag) {
        on_listener();
        continue;
      }
      struct Pair* p = &pairs[(uint32_t)t >> 1];
      if ((uint32_t)(t >> 32) == p->gen) on_pair_event(p, (int)(t & 1), events[i].events);
    }
  }
}
