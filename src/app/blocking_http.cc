// blocking_http: connect, send and response reading for the app layer's threads; see
// blocking_http.h.
#include "tokentap/app/blocking_http.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "tokentap/base/clock.h"

namespace tokentap {

bool wait_fd(int fd, short events, std::uint64_t deadline_ms) {
  for (;;) {
    const std::uint64_t now = monotonic_ms();
    if (now >= deadline_ms) return false;
    pollfd p{fd, events, 0};
    const int rc = ::poll(&p, 1, static_cast<int>(deadline_ms - now));
    if (rc > 0) return (p.revents & (events | POLLHUP | POLLERR)) != 0;
    if (rc == 0) return false;
    if (errno != EINTR) return false;
  }
}

int connect_start(const Endpoint& ep) {
  const int fd = socket(ep.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (connect(fd, reinterpret_cast<const sockaddr*>(&ep.addr), ep.addr_len) == 0) return fd;
  // AF_UNIX connects finish at once or fail (EAGAIN: the listener's backlog is full).
  if (errno == EINPROGRESS) return fd;
  close(fd);
  return -1;
}

bool connect_result(int fd) {
  int err = 0;
  socklen_t len = sizeof(err);
  return getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0;
}

int connect_before(const Endpoint& ep, std::uint64_t deadline_ms) {
  const int fd = connect_start(ep);
  if (fd < 0) return -1;
  if (wait_fd(fd, POLLOUT, deadline_ms) && connect_result(fd)) return fd;
  close(fd);
  return -1;
}

bool send_before(int fd, std::string_view data, std::uint64_t deadline_ms) {
  std::size_t off = 0;
  while (off < data.size()) {
    const ssize_t n = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n > 0) {
      off += static_cast<std::size_t>(n);
    } else if (n < 0 && errno == EAGAIN) {
      if (!wait_fd(fd, POLLOUT, deadline_ms)) return false;
    } else if (!(n < 0 && errno == EINTR)) {
      return false;
    }
  }
  return true;
}

void ResponseReader::start(BodySinkFn sink, void* ctx) {
  parser_.init_response();
  parser_.set_sink(sink, ctx);
  state_ = State::head;
  status_ = 0;
}

ResponseReader::State ResponseReader::on_readable(int fd) {
  if (state_ == State::done || state_ == State::failed) return state_;
  char buf[response_read_bytes];
  const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return state_;
  if (n <= 0) {  // EOF ends a close-delimited body; anything else ended too early
    const bool done = n == 0 && state_ == State::body &&
                      parser_.finish() == HttpParser::Stop::message_done;
    state_ = done ? State::done : State::failed;
    return state_;
  }
  feed(buf, static_cast<std::size_t>(n));
  return state_;
}

void ResponseReader::feed(const char* data, std::size_t n) {
  std::size_t off = 0;
  while (off < n && state_ != State::done && state_ != State::failed) {
    std::size_t used = 0;
    HttpParser::Stop stop = parser_.feed(data + off, n - off, &used);
    off += used;
    if (stop == HttpParser::Stop::head_done) {
      // llhttp reports a bodyless message's end (Content-Length: 0, 204, 1xx) only on its next
      // feed: an empty one tells at once.
      const int status = parser_.status();
      static const char nothing = 0;
      std::size_t unused = 0;
      stop = parser_.feed(&nothing, 0, &unused);
      if (status >= 200) {
        status_ = status;
        state_ = State::body;
      }
    }
    if (stop == HttpParser::Stop::error) {
      state_ = State::failed;
    } else if (stop == HttpParser::Stop::message_done && parser_.status() >= 200) {
      status_ = parser_.status();
      state_ = State::done;
    }
  }
}

namespace {

void collect_body(void* ctx, const char* data, std::size_t len) {
  auto* a = static_cast<ProbeAnswer*>(ctx);
  if (a->body.size() + len <= probe_body_bytes_max) a->body.append(data, len);
}

// Reads one response (framing: Content-Length, chunked or close-delimited).
void read_answer(int fd, std::uint64_t deadline_ms, ProbeAnswer* a) {
  ResponseReader reader;
  reader.start(&collect_body, a);
  for (;;) {
    if (!wait_fd(fd, POLLIN, deadline_ms)) {
      a->timed_out = monotonic_ms() >= deadline_ms;
      return;
    }
    const ResponseReader::State state = reader.on_readable(fd);
    if (state == ResponseReader::State::done) a->status = reader.status();
    if (state == ResponseReader::State::done || state == ResponseReader::State::failed) return;
  }
}

}  // namespace

ProbeAnswer probe_get(const Endpoint& ep, const std::string& host, const char* path,
                      std::uint32_t timeout_ms) {
  ProbeAnswer a;
  const std::uint64_t deadline = monotonic_ms() + timeout_ms;
  const int fd = connect_before(ep, deadline);
  if (fd < 0) {
    a.timed_out = monotonic_ms() >= deadline;
    return a;
  }
  const std::string req = std::string("GET ") + path + " HTTP/1.1\r\nHost: " + host +
                          "\r\nUser-Agent: tokentap-prober\r\nConnection: close\r\n\r\n";
  if (send_before(fd, req, deadline)) read_answer(fd, deadline, &a);
  close(fd);
  return a;
}

}  // namespace tokentap
