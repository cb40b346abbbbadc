// MetricsServer: a poll() loop over the listener, an eventfd and a fixed set of keep-alive
// connections, with a minimal HTTP/1.1 head parser (see metrics_server.h).
#include "tokentap/obs/metrics_server.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cstring>

#include "tokentap/base/assert.h"
#include "tokentap/base/route.h"
#include "tokentap/obs/prom_text.h"

namespace tokentap {
namespace {

constexpr std::size_t recv_chunk_bytes = 4096;
constexpr std::uint64_t stop_signal = 1;
constexpr std::string_view text_plain = "Content-Type: text/plain\r\n";

std::int64_t now_ms() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return std::int64_t{ts.tv_sec} * 1000 + ts.tv_nsec / 1'000'000;
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return (x | 0x20) == (y | 0x20);
         });
}

bool icontains(std::string_view haystack, std::string_view needle) {
  for (std::size_t i = 0; i + needle.size() <= haystack.size(); ++i) {
    if (iequals(haystack.substr(i, needle.size()), needle)) return true;
  }
  return false;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Compares in time that depends only on the expected token's length, never on where the
// presented one first differs.
bool constant_time_equals(std::string_view presented, std::string_view expected) {
  unsigned diff = presented.size() != expected.size() ? 1u : 0u;
  for (std::size_t i = 0; i < expected.size(); ++i) {
    const char p = i < presented.size() ? presented[i] : 0;
    diff |= static_cast<unsigned char>(p ^ expected[i]);
  }
  return diff == 0;
}

struct Request {
  std::string_view method;
  std::string_view path;  // target without its query string
  std::string_view authorization;
  bool keep_alive = true;
  bool has_body = false;
};

enum class Parse { incomplete, ok, bad, too_large };

bool parse_request_line(std::string_view line, Request* req) {
  const auto sp1 = line.find(' ');
  const auto sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || sp1 == 0 || sp2 == sp1 + 1) return false;
  req->method = line.substr(0, sp1);
  const std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  req->path = target_path(target);
  const std::string_view version = line.substr(sp2 + 1);
  if (version == "HTTP/1.1") return true;
  req->keep_alive = false;  // HTTP/1.0 closes unless asked otherwise
  return version == "HTTP/1.0";
}

bool parse_header(std::string_view line, Request* req) {
  const auto colon = line.find(':');
  if (colon == 0 || colon == std::string_view::npos) return false;
  const std::string_view name = line.substr(0, colon);
  if (name.find_first_of(" \t") != std::string_view::npos) return false;
  const std::string_view value = trim(line.substr(colon + 1));
  if (iequals(name, "authorization")) {
    req->authorization = value;
  } else if (iequals(name, "connection")) {
    if (icontains(value, "close")) req->keep_alive = false;
    if (icontains(value, "keep-alive")) req->keep_alive = true;
  } else if (iequals(name, "content-length")) {
    std::uint64_t length = 0;
    const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), length);
    if (ec != std::errc{} || end != value.data() + value.size()) return false;
    if (length != 0) req->has_body = true;
  } else if (iequals(name, "transfer-encoding")) {
    req->has_body = true;
  }
  return true;
}

Parse parse_head(std::string_view in, Request* req, std::size_t* head_bytes) {
  const auto end = in.find("\r\n\r\n");
  if (end == std::string_view::npos) {
    return in.size() > metrics_head_bytes_max ? Parse::too_large : Parse::incomplete;
  }
  if (end + 4 > metrics_head_bytes_max) return Parse::too_large;
  *head_bytes = end + 4;
  std::size_t line_end = in.find("\r\n");
  if (!parse_request_line(in.substr(0, line_end), req)) return Parse::bad;
  while (line_end < end) {
    const std::size_t start = line_end + 2;
    line_end = in.find("\r\n", start);
    if (!parse_header(in.substr(start, line_end - start), req)) return Parse::bad;
  }
  return Parse::ok;
}

bool bearer_matches(std::string_view authorization, std::string_view token) {
  constexpr std::string_view scheme = "bearer";
  if (authorization.size() <= scheme.size() ||
      !iequals(authorization.substr(0, scheme.size()), scheme) ||
      authorization[scheme.size()] != ' ') {
    return false;
  }
  return constant_time_equals(trim(authorization.substr(scheme.size())), token);
}

}  // namespace

struct MetricsServer::Loop {
  // draining: the last response is sent and our side shut down; unread input is discarded
  // until the client closes, so closing never turns into a reset that destroys that response.
  enum class State { reading, writing, draining };
  struct Conn {
    int fd = -1;
    State state = State::reading;
    std::string in;
    std::string out;
    std::size_t out_sent = 0;
    bool close_after = false;
    std::int64_t deadline_ms = 0;
    std::int64_t idle_since_ms = 0;  // when it last became idle between requests
  };

  explicit Loop(const MetricsServer& server) : server(server) {
    for (Conn& c : conns) c.in.reserve(metrics_head_bytes_max + recv_chunk_bytes);
  }

  void run();
  void on_accept(std::int64_t now);
  void on_readable(Conn& c, std::int64_t now);
  void serve(Conn& c, std::int64_t now);
  [[nodiscard]] bool answer_buffered(Conn& c);
  [[nodiscard]] bool flush(Conn& c, std::int64_t now);
  void respond(Conn& c, const Request& req);
  void queue(Conn& c, int status, std::string_view reason, std::string_view extra_headers,
             std::string_view body, bool head_only);
  void close_conn(Conn& c);
  int poll_timeout_ms(std::int64_t now) const;

  const MetricsServer& server;
  std::array<Conn, metrics_connections_max> conns;
  std::array<pollfd, metrics_connections_max + 2> fds{};
  PromRenderer renderer;
  std::string body;
};

void MetricsServer::Loop::close_conn(Conn& c) {
  ::close(c.fd);
  c.fd = -1;
  c.in.clear();
  c.out.clear();  // capacity kept for the next connection in this slot
  c.out_sent = 0;
  c.close_after = false;
  c.state = State::reading;
}

void MetricsServer::Loop::on_accept(std::int64_t now) {
  for (;;) {
    const int fd = ::accept4(server.listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;  // EAGAIN, or a transient error (ECONNABORTED, EMFILE): retry on poll
    // Pipelined responses are separate sends; without this, Nagle holds the second one back
    // until the client's delayed ACK of the first.
    const int on = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
    Conn* slot = nullptr;
    Conn* idlest = nullptr;
    for (Conn& c : conns) {
      if (c.fd < 0) {
        slot = &c;
        break;
      }
      const bool idle = c.state == State::reading && c.in.empty();
      if (idle && (idlest == nullptr || c.idle_since_ms < idlest->idle_since_ms)) idlest = &c;
    }
    if (slot == nullptr && idlest != nullptr) {
      close_conn(*idlest);  // a keep-alive connection waiting for its next scrape yields
      slot = idlest;
    }
    if (slot == nullptr) {
      ::close(fd);  // every slot is mid-request: the client retries later
      continue;
    }
    slot->fd = fd;
    slot->idle_since_ms = now;
    slot->deadline_ms = now + metrics_idle_timeout_ms;
  }
}

void MetricsServer::Loop::queue(Conn& c, int status, std::string_view reason,
                                std::string_view extra_headers, std::string_view content,
                                bool head_only) {
  c.out.clear();
  c.out_sent = 0;
  fmt::format_to(std::back_inserter(c.out), "HTTP/1.1 {} {}\r\nContent-Length: {}\r\n{}{}\r\n",
                 status, reason, content.size(), extra_headers,
                 c.close_after ? "Connection: close\r\n" : "");
  if (!head_only) c.out += content;
  c.state = State::writing;
}

void MetricsServer::Loop::respond(Conn& c, const Request& req) {
  const bool head_only = req.method == "HEAD";
  if (!head_only && req.method != "GET") {
    queue(c, 405, "Method Not Allowed", "Allow: GET, HEAD\r\nContent-Type: text/plain\r\n",
          "method not allowed\n", false);
  } else if (req.path == "/healthz") {
    queue(c, 200, "OK", text_plain, "ok", head_only);
  } else if (req.path != "/metrics") {
    queue(c, 404, "Not Found", text_plain, "not found\n", head_only);
  } else if (!server.options_.token.empty() &&
             !bearer_matches(req.authorization, server.options_.token)) {
    queue(c, 401, "Unauthorized", "WWW-Authenticate: Bearer\r\nContent-Type: text/plain\r\n",
          "unauthorized\n", head_only);
  } else {
    renderer.render(server.shards_, server.models_, read_process_stats(), server.options_.version,
                    server.options_.backends, body);
    static const std::string content_type = fmt::format("Content-Type: {}\r\n", prom_content_type);
    queue(c, 200, "OK", content_type, body, head_only);
  }
}

// Parses one buffered request and queues its response; false while no complete head is buffered.
bool MetricsServer::Loop::answer_buffered(Conn& c) {
  if (c.in.empty()) return false;
  Request req;
  std::size_t head_bytes = 0;
  switch (parse_head(c.in, &req, &head_bytes)) {
    case Parse::incomplete:
      return false;
    case Parse::bad:
      c.close_after = true;
      queue(c, 400, "Bad Request", text_plain, "bad request\n", false);
      return true;
    case Parse::too_large:
      c.close_after = true;
      queue(c, 431, "Request Header Fields Too Large", text_plain, "header too large\n", false);
      return true;
    case Parse::ok:
      // A body is never read, so the connection cannot be reused after one.
      c.close_after = !req.keep_alive || req.has_body;
      respond(c, req);
      c.in.erase(0, head_bytes);
      return true;
  }
  return false;
}

// Writes what is queued. True when it is all sent and the connection waits for its next
// request; false when the socket is full (poll for POLLOUT) or the connection was closed.
bool MetricsServer::Loop::flush(Conn& c, std::int64_t now) {
  while (c.out_sent < c.out.size()) {
    const ssize_t n = ::send(c.fd, c.out.data() + c.out_sent, c.out.size() - c.out_sent,
                             MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) return false;
      close_conn(c);
      return false;
    }
    c.out_sent += static_cast<std::size_t>(n);
    c.deadline_ms = now + metrics_write_timeout_ms;
  }
  if (c.close_after) {
    ::shutdown(c.fd, SHUT_WR);
    c.state = State::draining;
    c.in.clear();
    c.deadline_ms = now + metrics_linger_ms;
    return false;
  }
  c.state = State::reading;
  c.idle_since_ms = now;
  c.deadline_ms = now + (c.in.empty() ? metrics_idle_timeout_ms : metrics_head_timeout_ms);
  return true;
}

// Alternates answering and writing until the output blocks or no complete request is left, so
// pipelined requests are answered in order without recursion.
void MetricsServer::Loop::serve(Conn& c, std::int64_t now) {
  while (c.fd >= 0) {
    if (c.state == State::writing) {
      if (!flush(c, now)) return;
    } else if (answer_buffered(c)) {
      c.deadline_ms = now + metrics_write_timeout_ms;
    } else {
      return;
    }
  }
}

void MetricsServer::Loop::on_readable(Conn& c, std::int64_t now) {
  const bool was_idle = c.in.empty();
  char chunk[recv_chunk_bytes];
  if (c.state == State::draining) {
    const ssize_t n = ::recv(c.fd, chunk, sizeof chunk, 0);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) close_conn(c);
    return;
  }
  // Read no further than one byte past the head limit: enough to know it is too large.
  const std::size_t room =
      metrics_head_bytes_max + 1 - std::min(c.in.size(), metrics_head_bytes_max + 1);
  const ssize_t n = ::recv(c.fd, chunk, std::min(room, sizeof chunk), 0);
  if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
    close_conn(c);
    return;
  }
  if (n > 0) {
    c.in.append(chunk, static_cast<std::size_t>(n));
    if (was_idle) c.deadline_ms = now + metrics_head_timeout_ms;
  }
  serve(c, now);
}

int MetricsServer::Loop::poll_timeout_ms(std::int64_t now) const {
  std::int64_t earliest = now + metrics_idle_timeout_ms;
  for (const Conn& c : conns) {
    if (c.fd >= 0) earliest = std::min(earliest, c.deadline_ms);
  }
  return static_cast<int>(std::max<std::int64_t>(earliest - now, 0));
}

void MetricsServer::Loop::run() {
  for (;;) {
    fds[0] = {server.wake_fd_, POLLIN, 0};
    fds[1] = {server.listen_fd_, POLLIN, 0};
    for (std::size_t i = 0; i < conns.size(); ++i) {
      const Conn& c = conns[i];
      const short events = c.state == State::writing ? POLLOUT : POLLIN;
      fds[i + 2] = {c.fd, c.fd >= 0 ? events : short{0}, 0};  // fd -1 is ignored by poll
    }
    const int ready = ::poll(fds.data(), fds.size(), poll_timeout_ms(now_ms()));
    if (ready < 0 && errno != EINTR) break;
    if (fds[0].revents != 0) break;  // stop()
    const std::int64_t now = now_ms();
    for (std::size_t i = 0; i < conns.size(); ++i) {
      Conn& c = conns[i];
      const short revents = fds[i + 2].revents;
      if (c.fd < 0 || revents == 0) continue;
      if (c.state == State::writing) {
        serve(c, now);  // POLLOUT; POLLERR/POLLHUP surface as a failed send
      } else {
        on_readable(c, now);  // POLLHUP/POLLERR surface as a failed or empty recv
      }
    }
    if (fds[1].revents != 0) on_accept(now);
    for (Conn& c : conns) {
      if (c.fd >= 0 && now >= c.deadline_ms) close_conn(c);
    }
  }
  for (Conn& c : conns) {
    if (c.fd >= 0) close_conn(c);
  }
}

MetricsServer::MetricsServer(std::vector<const MetricsShard*> shards, const ModelTable& models,
                             MetricsServerOptions options)
    : shards_(std::move(shards)), models_(models), options_(std::move(options)) {}

MetricsServer::~MetricsServer() { stop(); }

bool MetricsServer::start(std::string* error) {
  TT_ASSERT(!thread_.joinable());
  const auto fail = [&](const char* what) {
    *error = fmt::format("metrics listener {}: {}: {}", options_.listen.text, what,
                         std::strerror(errno));
    if (listen_fd_ >= 0) ::close(listen_fd_);
    if (wake_fd_ >= 0) ::close(wake_fd_);
    listen_fd_ = wake_fd_ = -1;
    return false;
  };
  const auto& addr = options_.listen.addr;
  listen_fd_ = ::socket(addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) return fail("socket");
  const int on = 1;
  if (::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) != 0) {
    return fail("SO_REUSEADDR");
  }
  if (::bind(listen_fd_, reinterpret_cast<const sockaddr*>(&addr), options_.listen.addr_len) != 0) {
    return fail("bind");
  }
  if (::listen(listen_fd_, metrics_listen_backlog) != 0) return fail("listen");
  sockaddr_storage bound{};
  socklen_t bound_len = sizeof bound;
  if (::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&bound), &bound_len) != 0) {
    return fail("getsockname");
  }
  port_ = ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6&>(bound).sin6_port
                                            : reinterpret_cast<sockaddr_in&>(bound).sin_port);
  wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd_ < 0) return fail("eventfd");
  loop_ = std::make_unique<Loop>(*this);
  thread_ = std::thread([this] { loop_->run(); });
  return true;
}

void MetricsServer::stop() {
  if (thread_.joinable()) {
    const std::uint64_t one = stop_signal;
    [[maybe_unused]] const ssize_t n = ::write(wake_fd_, &one, sizeof one);
    thread_.join();
  }
  loop_.reset();
  if (listen_fd_ >= 0) ::close(listen_fd_);
  if (wake_fd_ >= 0) ::close(wake_fd_);
  listen_fd_ = wake_fd_ = -1;
}

}  // namespace tokentap
