// Client (see client.h): connection state machine, sending, reading and checking answers.
#include "client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "../../include/tokentap/base/assert.h"

namespace tokentap::soak {
namespace {

std::uint64_t tag(std::uint32_t id, std::uint32_t gen) {
  return (static_cast<std::uint64_t>(gen) << 32) | id;
}

}  // namespace

Client::Client(std::uint16_t port, std::uint32_t capacity, const Catalog& catalog, Tally& tally)
    : port_(port), catalog_(catalog), tally_(tally), conns_(capacity) {
  free_.reserve(capacity);
  for (std::uint32_t i = capacity; i > 0; --i) free_.push_back(i - 1);  // lowest id first
  done_.reserve(capacity);
  recv_buf_.resize(recv_buffer_bytes);
}

Client::~Client() {
  for (Conn& c : conns_) {
    if (c.fd >= 0) ::close(c.fd);
  }
  if (epoll_fd_ >= 0) ::close(epoll_fd_);
}

bool Client::init(std::string* error) {
  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd_ < 0) {
    *error = fmt::format("epoll_create1: {}", std::strerror(errno));
    return false;
  }
  return true;
}

bool Client::in_flight(const Conn& c) { return c.state == State::busy || c.pending; }

// Every state change goes through here, so the counters cannot drift.
void Client::set_state(Conn& c, State s, bool pending) {
  const bool before = in_flight(c);
  if (c.state == State::connecting) --connecting_count_;
  c.state = s;
  c.pending = pending;
  if (s == State::connecting) ++connecting_count_;
  const bool after = in_flight(c);
  if (before && !after) --busy_count_;
  if (!before && after) ++busy_count_;
}

std::uint32_t Client::open(std::uint64_t now_ms) {
  if (free_.empty()) {
    tally_.unexpected(nullptr, "out of client connection slots", {});
    return conn_none;
  }
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    tally_.unexpected(nullptr, "socket() failed", std::strerror(errno));
    return conn_none;
  }
  const int one = 1;
  (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port_);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const int rc = connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr));
  if (rc != 0 && errno != EINPROGRESS) {
    tally_.unexpected(nullptr, "connect() failed", std::strerror(errno));
    ::close(fd);
    return conn_none;
  }
  const std::uint32_t id = free_.back();
  free_.pop_back();
  Conn& c = conns_[id];
  c.fd = fd;
  c.tpl = nullptr;
  c.deadline_ms = now_ms + connect_deadline_ms;
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
  ev.data.u64 = tag(id, c.gen);
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
    tally_.unexpected(nullptr, "epoll_ctl failed", std::strerror(errno));
    ::close(fd);
    c.fd = -1;
    free_.push_back(id);
    return conn_none;
  }
  ++open_count_;
  set_state(c, rc == 0 ? State::idle : State::connecting, false);
  return id;
}

void Client::start(std::uint32_t id, const Template& t, std::uint32_t variant, bool abort_early,
                   std::uint64_t now_ms) {
  Conn& c = conns_[id];
  TT_ASSERT(c.state == State::idle || (c.state == State::connecting && !c.pending));
  c.tpl = &t;
  c.variant = variant;
  c.abort_early = abort_early;
  c.sent = 0;
  c.ref_off = 0;
  c.mismatch = false;
  c.mismatch_at = 0;
  c.reader.reset();
  c.deadline_ms = now_ms + t.deadline_ms(variant);
  tally_.started(t);
  if (c.state == State::connecting) {
    set_state(c, State::connecting, true);  // sent by on_connected()
    return;
  }
  set_state(c, State::busy, false);
  (void)try_send(id);
}

// Sends until the request is out or the socket is full. False if the connection was closed.
bool Client::try_send(std::uint32_t id) {
  Conn& c = conns_[id];
  const std::string& head = c.tpl->requests[c.variant];
  const std::string_view body = c.tpl->upload ? catalog_.upload_body() : std::string_view{};
  const std::size_t total = head.size() + body.size();
  while (c.sent < total) {
    iovec iov[2];
    int n_iov = 0;
    if (c.sent < head.size()) {
      iov[n_iov++] = {const_cast<char*>(head.data() + c.sent), head.size() - c.sent};
      if (!body.empty()) iov[n_iov++] = {const_cast<char*>(body.data()), body.size()};
    } else {
      const std::size_t off = c.sent - head.size();
      iov[n_iov++] = {const_cast<char*>(body.data() + off), body.size() - off};
    }
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = static_cast<std::size_t>(n_iov);
    const ssize_t n = sendmsg(c.fd, &msg, MSG_NOSIGNAL);
    if (n > 0) {
      c.sent += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
    on_peer_closed(id, n < 0 ? errno : 0);
    return false;
  }
  return true;
}

void Client::poll(int timeout_ms, std::uint64_t now_ms) {
  std::array<epoll_event, events_per_poll> events;
  const int n = epoll_wait(epoll_fd_, events.data(), events_per_poll, timeout_ms);
  for (int i = 0; i < n; ++i) {
    const std::uint32_t id = static_cast<std::uint32_t>(events[i].data.u64 & 0xffffffffu);
    const std::uint32_t gen = static_cast<std::uint32_t>(events[i].data.u64 >> 32);
    if (id >= conns_.size() || conns_[id].gen != gen || conns_[id].state == State::free) continue;
    on_event(id, events[i].events);
  }
  (void)now_ms;
}

void Client::on_event(std::uint32_t id, std::uint32_t events) {
  Conn& c = conns_[id];
  const std::uint32_t gen = c.gen;
  if (c.state == State::connecting) {
    if ((events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) == 0) return;
    int err = 0;
    socklen_t len = sizeof(err);
    (void)getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) {
      fail(id, "connect failed", std::strerror(err));
      return;
    }
    on_connected(id);
  } else if (c.state == State::busy && (events & EPOLLOUT) != 0) {
    (void)try_send(id);
  }
  if (c.gen != gen || c.state == State::free) return;
  if ((events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0) on_readable(id);
}

void Client::on_connected(std::uint32_t id) {
  Conn& c = conns_[id];
  if (!c.pending) {
    set_state(c, State::idle, false);
    return;
  }
  set_state(c, State::busy, false);
  (void)try_send(id);
}

void Client::on_readable(std::uint32_t id) {
  const std::uint32_t gen = conns_[id].gen;
  for (;;) {
    Conn& c = conns_[id];
    if (c.gen != gen || c.state == State::free) return;
    const ssize_t n = recv(c.fd, recv_buf_.data(), recv_buf_.size(), 0);
    if (n > 0) {
      if (!feed(id, recv_buf_.data(), static_cast<std::size_t>(n))) return;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    on_peer_closed(id, n < 0 ? errno : 0);
    return;
  }
}

// Parses received bytes. False when the connection was closed here.
bool Client::feed(std::uint32_t id, const char* p, std::size_t n) {
  Conn& c = conns_[id];
  if (c.state != State::busy) {
    fail(id, "bytes on a connection without a request", fmt::format("{} bytes", n));
    return false;
  }
  while (n > 0) {
    const ResponseReader::Step s = c.reader.step(p, n);
    if (s.body_len > 0) on_body(c, s.body, s.body_len);
    p += s.consumed;
    n -= s.consumed;
    if (c.reader.failed()) {
      fail(id, "malformed response", c.reader.error());
      return false;
    }
    if (c.reader.done()) {
      on_response_done(id, n);
      return conns_[id].state != State::free;
    }
    if (c.abort_early && c.reader.body_bytes() > 0) {
      finish(id, Outcome::client_aborted, false);
      return false;
    }
  }
  return true;
}

void Client::on_body(Conn& c, const char* p, std::size_t n) {
  if (c.mismatch) return;
  const std::string& ref = c.tpl->reference_body;
  if (c.ref_off + n > ref.size() || std::memcmp(ref.data() + c.ref_off, p, n) != 0) {
    c.mismatch = true;
    std::size_t i = 0;
    while (c.ref_off + i < ref.size() && i < n && ref[c.ref_off + i] == p[i]) ++i;
    c.mismatch_at = c.ref_off + i;
    return;
  }
  c.ref_off += n;
}

std::string Client::verify(const Conn& c) const {
  const Template& t = *c.tpl;
  if (t.expect == Expect::upstream_cut) return "a stream the upstream resets ended normally";
  if (c.reader.status() != t.status) {
    return fmt::format("status {} (want {})", c.reader.status(), t.status);
  }
  if (c.mismatch) return fmt::format("body differs from the reference at byte {}", c.mismatch_at);
  if (c.ref_off != t.reference_body.size()) {
    return fmt::format("body has {} bytes (want {})", c.ref_off, t.reference_body.size());
  }
  if (t.upload && (!c.reader.has_fake_checksum() || c.reader.fake_bytes() != blob_bytes ||
                   c.reader.fake_checksum() != catalog_.upload_checksum())) {
    return "upload arrived with another byte count or checksum";
  }
  return {};
}

void Client::on_response_done(std::uint32_t id, std::size_t extra) {
  Conn& c = conns_[id];
  if (c.sent < c.tpl->requests[c.variant].size()) {
    fail(id, "answer before the request was sent", {});
    return;
  }
  std::string problem = verify(c);
  if (problem.empty() && extra > 0) problem = fmt::format("{} bytes after the answer", extra);
  if (!problem.empty()) {
    fail(id, "wrong answer", std::move(problem));
    return;
  }
  finish(id, Outcome::completed, !c.reader.closes());
}

void Client::on_peer_closed(std::uint32_t id, int err) {
  Conn& c = conns_[id];
  const std::string how = err == 0 ? "EOF" : std::strerror(err);
  if (c.state != State::busy) {
    fail(id, "connection closed without a request in flight", how);
    return;
  }
  const Template& t = *c.tpl;
  if (c.reader.phase() == ResponseReader::Phase::body_close) {
    c.reader.on_eof();
    on_response_done(id, 0);
    return;
  }
  if (t.expect == Expect::upstream_cut && c.reader.head_done() &&
      c.reader.status() == t.status && !c.mismatch && c.ref_off < t.reference_body.size()) {
    finish(id, Outcome::upstream_cut, false);
    return;
  }
  const char* reason = c.reader.head_done() ? "connection closed mid-response"
                                            : "connection closed before the response head";
  fail(id, reason, fmt::format("{}, {} body bytes", how, c.reader.body_bytes()));
}

void Client::finish(std::uint32_t id, Outcome o, bool keep_open) {
  Conn& c = conns_[id];
  tally_.finished(*c.tpl, o);
  done_.push_back(Done{id, o, keep_open, c.tpl});
  if (keep_open) {
    set_state(c, State::idle, false);
  } else {
    release(id);
  }
}

void Client::fail(std::uint32_t id, std::string_view reason, std::string detail) {
  Conn& c = conns_[id];
  const Template* t = c.state == State::busy || c.pending ? c.tpl : nullptr;
  tally_.unexpected(t, reason, std::move(detail));
  done_.push_back(Done{id, Outcome::unexpected, false, t});
  release(id);
}

void Client::release(std::uint32_t id) {
  Conn& c = conns_[id];
  if (c.fd >= 0) ::close(c.fd);  // closing removes it from the epoll set
  c.fd = -1;
  set_state(c, State::free, false);
  ++c.gen;
  --open_count_;
  free_.push_back(id);
}

void Client::close_idle(std::uint32_t id) {
  Conn& c = conns_[id];
  TT_ASSERT(c.state == State::idle || (c.state == State::connecting && !c.pending));
  release(id);
}

void Client::close_all() {
  for (std::uint32_t id = 0; id < conns_.size(); ++id) {
    Conn& c = conns_[id];
    if (c.state == State::free) continue;
    if (c.state == State::busy || c.pending) {
      fail(id, "request still in flight when the phase ended", {});
    } else {
      release(id);
    }
  }
}

void Client::expire(std::uint64_t now_ms) {
  for (std::uint32_t id = 0; id < conns_.size(); ++id) {
    Conn& c = conns_[id];
    const bool timed = c.state == State::busy || c.state == State::connecting;
    if (!timed || c.deadline_ms > now_ms) continue;
    if (c.state == State::connecting && !c.pending) {
      fail(id, "connect timed out", {});
    } else {
      fail(id, "request timed out",
           fmt::format("{} body bytes after {} ms", c.reader.body_bytes(),
                       c.tpl->deadline_ms(c.variant)));
    }
  }
}

bool Client::busy(std::uint32_t id) const {
  const Conn& c = conns_[id];
  return c.state == State::busy || c.pending;
}

bool Client::connected(std::uint32_t id) const {
  const Conn& c = conns_[id];
  return c.state == State::idle || c.state == State::busy;
}

}  // namespace tokentap::soak
