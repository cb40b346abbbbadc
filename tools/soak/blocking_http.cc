// Blocking control exchanges and the /metrics parser (see blocking_http.h).
#include "blocking_http.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include <fmt/format.h>

#include "response_reader.h"

namespace tokentap::soak {
namespace {

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

bool send_all(int fd, std::string_view data, std::string* error) {
  while (!data.empty()) {
    const ssize_t n = send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      *error = fmt::format("send: {}", std::strerror(errno));
      return false;
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

bool read_response(int fd, HttpResult* out, std::string* error) {
  ResponseReader reader;
  std::array<char, 64 * 1024> buf;
  for (;;) {
    const ssize_t n = recv(fd, buf.data(), buf.size(), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno != ECONNRESET) {
      *error = fmt::format("recv: {}", std::strerror(errno));
      return false;
    }
    if (n <= 0) {
      reader.on_eof();
      break;
    }
    const char* p = buf.data();
    std::size_t left = static_cast<std::size_t>(n);
    while (left > 0 && !reader.done() && !reader.failed()) {
      const ResponseReader::Step s = reader.step(p, left);
      if (s.body_len > 0) out->body.append(s.body, s.body_len);
      p += s.consumed;
      left -= s.consumed;
    }
    if (reader.done() || reader.failed()) break;
  }
  out->status = reader.status();
  out->complete = reader.done();
  out->has_fake_checksum = reader.has_fake_checksum();
  out->fake_checksum = reader.fake_checksum();
  out->fake_bytes = reader.fake_bytes();
  if (reader.failed() && !reader.head_done()) {
    *error = fmt::format("bad response: {}", reader.error());
    return false;
  }
  return true;
}

// The value after the last space of a sample line (no timestamps in tokentap's exposition).
double sample_value(std::string_view line) {
  const std::size_t sp = line.rfind(' ');
  if (sp == std::string_view::npos) return 0;
  const std::string text(line.substr(sp + 1));
  return std::strtod(text.c_str(), nullptr);
}

std::string label_value(std::string_view line, std::string_view label) {
  const std::string key = fmt::format("{}=\"", label);
  const std::size_t at = line.find(key);
  if (at == std::string_view::npos) return "?";
  const std::size_t start = at + key.size();
  const std::size_t end = line.find('"', start);
  return std::string(line.substr(start, end == std::string_view::npos ? 0 : end - start));
}

void add_sample(std::string_view line, MetricSums* m) {
  const std::size_t name_end = line.find_first_of("{ ");
  if (name_end == std::string_view::npos) return;
  const std::string_view name = line.substr(0, name_end);
  const double v = sample_value(line);
  ++m->series;
  if (name == "tokentap_requests_total") {
    m->requests += v;
    m->requests_by_status[label_value(line, "status")] += v;
  } else if (name == "tokentap_prompt_tokens_total") {
    m->prompt_tokens += v;
  } else if (name == "tokentap_completion_tokens_total") {
    m->completion_tokens += v;
  } else if (name == "tokentap_connections_open") {
    m->connections_open += v;
  } else if (name == "tokentap_connections_total") {
    m->connections_total += v;
  } else if (name == "tokentap_connections_rejected_total") {
    m->connections_rejected += v;
  } else if (name == "tokentap_active_requests") {
    m->active_requests += v;
  } else if (name == "tokentap_client_aborts_total") {
    m->client_aborts += v;
  } else if (name == "tokentap_usage_missing_total") {
    m->usage_missing += v;
  } else if (name == "tokentap_upstream_errors_total") {
    m->upstream_errors += v;
    m->upstream_errors_by_kind[label_value(line, "kind")] += v;
  }
}

}  // namespace

bool http_exchange(std::uint16_t port, std::string_view head, std::string_view body,
                   HttpResult* out, std::string* error, int timeout_ms) {
  *out = HttpResult{};
  Fd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) {
    *error = fmt::format("socket: {}", std::strerror(errno));
    return false;
  }
  timeval tv{.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
  (void)setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  (void)setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) {
    *error = fmt::format("connect 127.0.0.1:{}: {}", port, std::strerror(errno));
    return false;
  }
  if (!send_all(fd.get(), head, error) || !send_all(fd.get(), body, error)) return false;
  return read_response(fd.get(), out, error);
}

bool healthz_ok(std::uint16_t port) {
  HttpResult r;
  std::string error;
  const bool ok = http_exchange(
      port, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", {}, &r,
      &error, 1000);
  return ok && r.status == 200 && r.complete && r.body == "ok";
}

bool scrape_metrics(std::uint16_t port, MetricSums* out, std::string* error) {
  *out = MetricSums{};
  HttpResult r;
  if (!http_exchange(port, "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
                     {}, &r, error)) {
    return false;
  }
  if (r.status != 200 || !r.complete) {
    *error = fmt::format("/metrics answered {} (complete: {})", r.status, r.complete);
    return false;
  }
  out->bytes = r.body.size();
  std::string_view text = r.body;
  while (!text.empty()) {
    const std::size_t nl = text.find('\n');
    const std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    if (!line.empty() && line.front() != '#') add_sample(line, out);
  }
  return true;
}

}  // namespace tokentap::soak
