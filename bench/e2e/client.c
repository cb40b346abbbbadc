// e2e_client: the small HTTP/1.1 load client behind bench/e2e/run.sh, for the three workloads
// wrk cannot do (wrk has no pacing, no first-byte timer and no way to hold streams open).
//
//   e2e_client paced     PORT RATE CONNS SECS   open-loop: request k is due at t0 + k/RATE
//   e2e_client firstline PORT CONNS SECS        time from send to the first body line
//   e2e_client streams   PORT N HOLD_SECS       open N streams, say "ready", hold, close
//
// Request: POST $E2E_PATH (default /api/generate) with body $E2E_BODY and extra header lines
// $E2E_HEADERS ("Name: value" separated by '|'). Keep-alive throughout.
//
// Paced latency is measured from the moment a request was *due*, not from when a connection
// was free to send it, so a stall is charged to every request it delayed (no coordinated
// omission). Timers use epoll_pwait2 (Linux 5.11, glibc 2.35) for µs-resolution waits without
// spinning on a shared 2-core machine. Results go to stdout as one "key=value ..." line.
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
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { head_bytes_max = 16384, read_bytes = 65536, events_max = 256 };

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void die(const char *what) {
  perror(what);
  exit(1);
}

// ---- request ----------------------------------------------------------------------------

static char request[8192];
static size_t request_len;

static void request_build(int port) {
  const char *path = getenv("E2E_PATH") ? getenv("E2E_PATH") : "/api/generate";
  const char *body = getenv("E2E_BODY") ? getenv("E2E_BODY")
                                         : "{\"model\":\"llama3.2\",\"prompt\":\"hi\"}";
  const char *extra = getenv("E2E_HEADERS") ? getenv("E2E_HEADERS") : "";
  char headers[2048] = "";
  size_t hl = 0;
  for (const char *p = extra; *p;) {
    const char *bar = strchr(p, '|');
    size_t n = bar ? (size_t)(bar - p) : strlen(p);
    if (n > 0 && hl + n + 3 < sizeof headers) {
      memcpy(headers + hl, p, n);
      hl += n;
      memcpy(headers + hl, "\r\n", 3);
      hl += 2;
    }
    p += n + (bar ? 1 : 0);
  }
  int n = snprintf(request, sizeof request,
                   "POST %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/json\r\n"
                   "Content-Length: %zu\r\n%s\r\n%s",
                   path, port, strlen(body), headers, body);
  if (n <= 0 || (size_t)n >= sizeof request) die("request too large");
  request_len = (size_t)n;
}

// ---- response framing -------------------------------------------------------------------

enum Framing { f_head, f_length, f_chunk_size, f_chunk_data, f_chunk_crlf, f_trailer, f_eof };

struct Resp {
  enum Framing state;
  char head[head_bytes_max];
  size_t head_len;
  uint64_t remain;   // body bytes left (f_length) or chunk bytes left (f_chunk_data)
  uint64_t size;     // chunk size being parsed
  int line_len;      // bytes of the current trailer/size line
  int status;
  int saw_newline;   // first '\n' of the decoded body seen
};

static void resp_reset(struct Resp *r) {
  r->state = f_head;
  r->head_len = 0;
  r->remain = r->size = 0;
  r->line_len = 0;
  r->status = 0;
  r->saw_newline = 0;
}

static const char *header_find(const char *head, const char *name) {
  size_t n = strlen(name);
  for (const char *p = strchr(head, '\n'); p; p = strchr(p + 1, '\n'))
    if (strncasecmp(p + 1, name, n) == 0) return p + 1 + n;
  return NULL;
}

static int resp_head_done(struct Resp *r) {
  r->head[r->head_len] = 0;
  if (sscanf(r->head, "HTTP/1.%*d %d", &r->status) != 1) return -1;
  const char *te = header_find(r->head, "transfer-encoding:");
  const char *cl = header_find(r->head, "content-length:");
  if (te && strstr(te, "chunked") && strstr(te, "chunked") < strchr(te, '\n')) {
    r->state = f_chunk_size;
  } else if (cl) {
    r->remain = strtoull(cl, NULL, 10);
    r->state = r->remain ? f_length : f_head;
    return r->remain ? 0 : 1;
  } else {
    r->state = f_eof;
  }
  return 0;
}

static void body_bytes(struct Resp *r, const char *p, size_t n) {
  if (!r->saw_newline && memchr(p, '\n', n)) r->saw_newline = 1;
}

// Feeds bytes; returns 1 when a whole response ended (consumed set), 0 for more, -1 on error.
static int resp_feed(struct Resp *r, const char *p, size_t n, size_t *consumed) {
  size_t i = 0;
  while (i < n) {
    char c = p[i];
    switch (r->state) {
      case f_head:
        if (r->head_len + 1 >= head_bytes_max) return -1;
        r->head[r->head_len++] = c;
        i++;
        if (r->head_len >= 4 && memcmp(r->head + r->head_len - 4, "\r\n\r\n", 4) == 0) {
          int rc = resp_head_done(r);
          if (rc != 0) {
            *consumed = i;
            return rc;
          }
        }
        break;
      case f_length: {
        size_t take = n - i < r->remain ? n - i : (size_t)r->remain;
        body_bytes(r, p + i, take);
        i += take;
        r->remain -= take;
        if (r->remain == 0) {
          *consumed = i;
          return 1;
        }
        break;
      }
      case f_chunk_size:
        i++;
        if (c == '\n') {
          r->remain = r->size;
          r->size = 0;
          r->line_len = 0;
          r->state = r->remain ? f_chunk_data : f_trailer;
        } else if (r->line_len >= 0) {
          int d = (c >= '0' && c <= '9') ? c - '0'
                  : (c >= 'a' && c <= 'f') ? c - 'a' + 10
                  : (c >= 'A' && c <= 'F') ? c - 'A' + 10 : -1;
          if (d < 0) r->line_len = -1;  // extension or CR: ignore the rest of the line
          else r->size = r->size * 16 + (uint64_t)d;
        }
        break;
      case f_chunk_data: {
        size_t take = n - i < r->remain ? n - i : (size_t)r->remain;
        body_bytes(r, p + i, take);
        i += take;
        r->remain -= take;
        if (r->remain == 0) r->state = f_chunk_crlf;
        break;
      }
      case f_chunk_crlf:
        i++;
        if (c == '\n') r->state = f_chunk_size;
        break;
      case f_trailer:
        i++;
        if (c == '\n') {
          if (r->line_len == 0) {
            *consumed = i;
            return 1;
          }
          r->line_len = 0;
        } else if (c != '\r') {
          r->line_len++;
        }
        break;
      case f_eof:
        body_bytes(r, p + i, n - i);
        i = n;
        break;
    }
  }
  *consumed = i;
  return 0;
}

// ---- connections ------------------------------------------------------------------------

struct Conn {
  int fd;
  int busy;           // a request is outstanding
  int connecting;     // non-blocking connect not finished
  double due;         // paced: when the request was due; others: when it was sent
  int first_seen;     // streams: a first body line arrived
  struct Resp resp;
};

static int epfd;
static struct sockaddr_in target;

// blocking = 1 connects synchronously (loopback: immediate) so the caller may send at once;
// the streams ramp uses 0 and finishes the connect on EPOLLOUT.
static int conn_open(struct Conn *c, int blocking) {
  c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (c->fd < 0) return -1;
  int one = 1;
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (!blocking) fcntl(c->fd, F_SETFL, O_NONBLOCK);
  int rc = connect(c->fd, (struct sockaddr *)&target, sizeof target);
  c->connecting = rc != 0 && errno == EINPROGRESS;
  if (rc != 0 && !c->connecting) {
    close(c->fd);
    c->fd = -1;
    return -1;
  }
  if (blocking) fcntl(c->fd, F_SETFL, O_NONBLOCK);
  c->busy = 0;
  c->first_seen = 0;
  resp_reset(&c->resp);
  struct epoll_event ev = {.events = EPOLLIN | (c->connecting ? EPOLLOUT : 0), .data.ptr = c};
  if (epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev) != 0) die("epoll_ctl");
  return 0;
}

static void conn_close(struct Conn *c) {
  if (c->fd >= 0) close(c->fd);
  c->fd = -1;
  c->busy = 0;
}

static int conn_send(struct Conn *c, double due) {
  ssize_t n = send(c->fd, request, request_len, MSG_NOSIGNAL);
  if (n != (ssize_t)request_len) return -1;
  c->busy = 1;
  c->due = due;
  resp_reset(&c->resp);
  return 0;
}

static int connect_finished(struct Conn *c) {
  int err = 0;
  socklen_t len = sizeof err;
  getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
  c->connecting = 0;
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
  epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
  return err == 0 ? 0 : -1;
}

// Reads what is there; on_event(c, 0) at the first body line, on_event(c, 1) per complete
// response. Returns -1 on error or EOF (the caller closes), else 0.
typedef void (*OnEvent)(struct Conn *c, int complete);

static int conn_read(struct Conn *c, OnEvent on_event) {
  static char buf[read_bytes];
  for (;;) {
    ssize_t n = recv(c->fd, buf, sizeof buf, 0);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return 0;
    if (n <= 0) {
      if (n == 0 && c->resp.state == f_eof && c->busy) {
        c->busy = 0;
        on_event(c, 1);
      }
      return -1;
    }
    size_t off = 0;
    while (off < (size_t)n) {
      if (!c->busy) return -1;  // bytes nobody asked for
      size_t used = 0;
      int had_line = c->resp.saw_newline;
      int rc = resp_feed(&c->resp, buf + off, (size_t)n - off, &used);
      off += used;
      if (rc < 0) return -1;
      if (!had_line && c->resp.saw_newline) on_event(c, 0);
      if (rc == 1) {
        c->busy = 0;
        on_event(c, 1);
      }
    }
  }
}

static void wait_events(struct epoll_event *evs, int *n, double timeout_s) {
  if (timeout_s < 0) timeout_s = 0;
  struct timespec ts = {(time_t)timeout_s, (long)((timeout_s - (time_t)timeout_s) * 1e9)};
  *n = epoll_pwait2(epfd, evs, events_max, &ts, NULL);
  if (*n < 0 && errno == EINTR) *n = 0;
  if (*n < 0) die("epoll_pwait2");
}

// ---- statistics -------------------------------------------------------------------------

static double *samples;
static size_t samples_len, samples_cap;
static long errors, bad_status;

static void sample_add(double us) {
  if (samples_len == samples_cap) {
    samples_cap = samples_cap ? samples_cap * 2 : 65536;
    samples = realloc(samples, samples_cap * sizeof *samples);
    if (!samples) die("realloc");
  }
  samples[samples_len++] = us;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double pct(double p) {
  if (samples_len == 0) return 0;
  size_t i = (size_t)(p / 100.0 * (double)(samples_len - 1) + 0.5);
  return samples[i];
}

static void print_stats(const char *mode, double secs) {
  qsort(samples, samples_len, sizeof *samples, cmp_double);
  printf("mode=%s count=%zu rate=%.1f p50_us=%.1f p90_us=%.1f p99_us=%.1f p999_us=%.1f "
         "max_us=%.1f errors=%ld bad_status=%ld\n",
         mode, samples_len, (double)samples_len / secs, pct(50), pct(90), pct(99), pct(99.9),
         samples_len ? samples[samples_len - 1] : 0.0, errors, bad_status);
}

static void count_status(struct Conn *c) {
  if (c->resp.status < 200 || c->resp.status >= 300) bad_status++;
}

// ---- paced ------------------------------------------------------------------------------

static void paced_event(struct Conn *c, int complete) {
  if (!complete) return;
  count_status(c);
  sample_add((now_s() - c->due) * 1e6);
}

static void run_paced(double rate, int conns, double secs) {
  struct Conn *cs = calloc((size_t)conns, sizeof *cs);
  for (int i = 0; i < conns; i++)
    if (conn_open(&cs[i], 1) != 0) die("connect");
  size_t queue_cap = (size_t)(rate * secs) + 16, head = 0, tail = 0;
  double *queue = malloc(queue_cap * sizeof *queue);  // due times not yet sent
  double t0 = now_s() + 0.05, end = t0 + secs;
  size_t k = 0;
  struct epoll_event evs[events_max];
  for (;;) {
    double now = now_s();
    while (k < queue_cap - 16 && t0 + (double)k / rate <= now && t0 + (double)k / rate < end)
      queue[tail++] = t0 + (double)k++ / rate;
    for (int i = 0; i < conns && head < tail; i++) {
      struct Conn *c = &cs[i];
      if (c->fd < 0 && conn_open(c, 1) != 0) continue;
      if (c->busy || c->connecting) continue;
      if (conn_send(c, queue[head]) != 0) {
        errors++;
        conn_close(c);
        continue;
      }
      head++;
    }
    int outstanding = 0;
    for (int i = 0; i < conns; i++) outstanding += cs[i].busy;
    if (now >= end && head == tail && (outstanding == 0 || now >= end + 5)) break;
    double next = t0 + (double)k / rate;
    double timeout = head < tail ? 0.001 : (now < end ? next - now : 0.05);
    int n;
    wait_events(evs, &n, timeout);
    for (int e = 0; e < n; e++) {
      struct Conn *c = evs[e].data.ptr;
      if (c->connecting && connect_finished(c) != 0) {
        errors++;
        conn_close(c);
        continue;
      }
      if ((evs[e].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) && conn_read(c, paced_event) < 0) {
        if (c->busy) errors++;
        conn_close(c);
      }
    }
  }
  print_stats("paced", secs);
}

// ---- firstline --------------------------------------------------------------------------

static double firstline_end;
static long firstline_done;

static void firstline_event(struct Conn *c, int complete) {
  if (!complete) {
    sample_add((now_s() - c->due) * 1e6);
    return;
  }
  count_status(c);
  firstline_done++;
  if (now_s() < firstline_end && conn_send(c, now_s()) != 0) errors++;
}

static void run_firstline(int conns, double secs) {
  struct Conn *cs = calloc((size_t)conns, sizeof *cs);
  firstline_end = now_s() + secs;
  for (int i = 0; i < conns; i++)
    if (conn_open(&cs[i], 1) != 0 || conn_send(&cs[i], now_s()) != 0) die("connect/send");
  struct epoll_event evs[events_max];
  for (;;) {
    int outstanding = 0;
    for (int i = 0; i < conns; i++) outstanding += cs[i].busy;
    double now = now_s();
    if (outstanding == 0 || now >= firstline_end + 10) break;
    int n;
    wait_events(evs, &n, 0.05);
    for (int e = 0; e < n; e++) {
      struct Conn *c = evs[e].data.ptr;
      if ((evs[e].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) && conn_read(c, firstline_event) < 0) {
        if (c->busy) errors++;
        conn_close(c);
        if (now_s() < firstline_end && (conn_open(c, 1) != 0 || conn_send(c, now_s()) != 0))
          errors++;
      }
    }
  }
  print_stats("firstline", secs);
}

// ---- streams ----------------------------------------------------------------------------

static long streams_ready, streams_ended;

static void streams_event(struct Conn *c, int complete) {
  if (complete) {
    count_status(c);
    streams_ended++;
  } else if (!c->first_seen) {
    c->first_seen = 1;
    streams_ready++;
  }
}

static void streams_step(struct Conn *c, uint32_t events) {
  if (c->connecting) {
    if (connect_finished(c) != 0 || conn_send(c, now_s()) != 0) {
      errors++;
      conn_close(c);
    }
    return;
  }
  if ((events & (EPOLLIN | EPOLLHUP | EPOLLERR)) && conn_read(c, streams_event) < 0) {
    errors++;
    conn_close(c);
  }
}

static void run_streams(int total, double hold) {
  enum { batch = 100 };
  const double batch_gap_s = 0.01, ready_timeout_s = 20;
  struct Conn *cs = calloc((size_t)total, sizeof *cs);
  double t0 = now_s(), last_batch = 0, ready_at = 0;
  int opened = 0;
  struct epoll_event evs[events_max];
  for (;;) {
    double now = now_s();
    if (opened < total && now - last_batch >= batch_gap_s) {
      for (int i = 0; i < batch && opened < total; i++, opened++) {
        struct Conn *c = &cs[opened];
        if (conn_open(c, 0) != 0) {
          errors++;
          continue;
        }
        if (!c->connecting && conn_send(c, now) != 0) {
          errors++;
          conn_close(c);
        }
      }
      last_batch = now;
    }
    if (ready_at == 0 && opened == total &&
        (streams_ready + errors >= total || now - t0 > ready_timeout_s)) {
      ready_at = now;
      printf("ready open=%ld failed=%ld ramp_ms=%.0f\n", streams_ready, errors, (now - t0) * 1e3);
      fflush(stdout);
    }
    if (ready_at != 0 && now - ready_at >= hold) break;
    int n;
    wait_events(evs, &n, 0.01);
    for (int e = 0; e < n; e++) streams_step(evs[e].data.ptr, evs[e].events);
  }
  printf("done open=%ld failed=%ld ended_early=%ld bad_status=%ld\n", streams_ready, errors,
         streams_ended, bad_status);
}

// ---- main -------------------------------------------------------------------------------

int main(int argc, char **argv) {
  if (argc < 5) {
    fprintf(stderr,
            "usage: e2e_client paced PORT RATE CONNS SECS | firstline PORT CONNS SECS |"
            " streams PORT N HOLD_SECS\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  int port = atoi(argv[2]);
  target.sin_family = AF_INET;
  target.sin_port = htons((uint16_t)port);
  target.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  request_build(port);
  epfd = epoll_create1(EPOLL_CLOEXEC);
  if (epfd < 0) die("epoll_create1");
  if (strcmp(argv[1], "paced") == 0 && argc >= 6)
    run_paced(atof(argv[3]), atoi(argv[4]), atof(argv[5]));
  else if (strcmp(argv[1], "firstline") == 0)
    run_firstline(atoi(argv[3]), atof(argv[4]));
  else if (strcmp(argv[1], "streams") == 0)
    run_streams(atoi(argv[3]), atof(argv[4]));
  else
    return 2;
  return 0;
}
