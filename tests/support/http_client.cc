// HttpClient (see http_client.h): a strict HTTP/1.1 response reader over a blocking socket with
// poll()-based deadlines.
#include "support/http_client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstring>

namespace tokentap::test {
namespace {

constexpr std::size_t recv_bytes = 256 * 1024;

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const char x = (a[i] >= 'A' && a[i] <= 'Z') ? static_cast<char>(a[i] + 32) : a[i];
    const char y = (b[i] >= 'A' && b[i] <= 'Z') ? static_cast<char>(b[i] + 32) : b[i];
    if (x != y) return false;
  }
  return true;
}

int remaining_ms(std::chrono::steady_clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - std::chrono::steady_clock::now());
  return left.count() < 0 ? 0 : static_cast<int>(left.count()) + 1;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Parses "HTTP/1.x NNN reason" and the header lines of `head` into r.
bool parse_head(std::string_view head, Response* r) {
  const std::size_t eol = head.find("\r\n");
  const std::string_view line = head.substr(0, eol);
  if (line.size() < 12 || line.substr(0, 7) != "HTTP/1." || line[8] != ' ') return false;
  int status = 0;
  const auto [end, ec] = std::from_chars(line.data() + 9, line.data() + 12, status);
  if (ec != std::errc{} || end != line.data() + 12) return false;
  r->status = status;
  r->reason = line.size() > 13 ? std::string(line.substr(13)) : std::string();
  r->headers.clear();
  std::string_view rest = head.substr(eol + 2);
  while (!rest.empty()) {
    const std::size_t e = rest.find("\r\n");
    const std::string_view h = rest.substr(0, e);
    rest.remove_prefix(e == std::string_view::npos ? rest.size() : e + 2);
    if (h.empty()) break;
    const std::size_t colon = h.find(':');
    if (colon == std::string_view::npos) return false;
    r->headers.push_back({std::string(h.substr(0, colon)), std::string(trim(h.substr(colon + 1)))});
  }
  return true;
}

}  // namespace

std::optional<std::string_view> Response::header(std::string_view name) const {
  for (const Header& h : headers) {
    if (iequals(h.name, name)) return std::string_view(h.value);
  }
  return std::nullopt;
}

std::size_t Response::header_count(std::string_view name) const {
  std::size_t n = 0;
  for (const Header& h : headers) n += iequals(h.name, name) ? 1 : 0;
  return n;
}

std::vector<std::string> Response::header_names() const {
  std::vector<std::string> names;
  for (const Header& h : headers) names.push_back(h.name);
  return names;
}

HttpClient::~HttpClient() { close(); }

HttpClient::HttpClient(HttpClient&& other) noexcept { *this = std::move(other); }

HttpClient& HttpClient::operator=(HttpClient&& other) noexcept {
  if (this != &other) {
    close();
    fd_ = other.fd_;
    buf_ = std::move(other.buf_);
    consumed_ = other.consumed_;
    arrivals_ = std::move(other.arrivals_);
    closed_ = other.closed_;
    sent_at_ = other.sent_at_;
    other.fd_ = -1;
  }
  return *this;
}

bool HttpClient::connect(std::uint16_t port, int timeout_ms) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return connect_to(reinterpret_cast<const sockaddr*>(&addr), sizeof(addr), timeout_ms);
}

bool HttpClient::connect_to(const sockaddr* addr, socklen_t addr_len, int timeout_ms) {
  close();
  buf_.clear();
  arrivals_.clear();
  consumed_ = 0;
  closed_ = CloseKind::none;
  fd_ = socket(addr->sa_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd_ < 0) return false;
  int rc = ::connect(fd_, addr, addr_len);
  if (rc != 0 && errno == EINPROGRESS) {
    pollfd p{fd_, POLLOUT, 0};
    int err = 0;
    socklen_t len = sizeof(err);
    rc = (poll(&p, 1, timeout_ms) == 1 && getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &len) == 0 &&
          err == 0)
             ? 0
             : -1;
  }
  if (rc != 0) {
    close();
    return false;
  }
  if (addr->sa_family != AF_UNIX) {
    const int one = 1;
    setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  }
  return true;
}

bool HttpClient::send(std::string_view bytes) {
  if (fd_ < 0) return false;
  sent_at_ = Clock::now();
  while (!bytes.empty()) {
    const ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n > 0) {
      bytes.remove_prefix(static_cast<std::size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      pollfd p{fd_, POLLOUT, 0};
      if (poll(&p, 1, 10'000) != 1) return false;
      continue;
    }
    return false;
  }
  return true;
}

bool HttpClient::fill(Clock::time_point deadline) {
  if (fd_ < 0 || closed_ != CloseKind::none) return false;
  // One scratch buffer per thread: thousands of idle clients must not each hold one.
  thread_local std::string scratch(recv_bytes, '\0');
  for (;;) {
    const ssize_t n = ::recv(fd_, scratch.data(), recv_bytes, 0);
    if (n > 0) {
      buf_.append(scratch, 0, static_cast<std::size_t>(n));
      arrivals_.push_back({consumed_ + buf_.size(), Clock::now()});
      return true;
    }
    if (n == 0) {
      closed_ = CloseKind::eof;
    } else if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
      pollfd p{fd_, POLLIN, 0};
      const int ms = remaining_ms(deadline);
      if (ms > 0 && poll(&p, 1, ms) >= 0 && Clock::now() < deadline) continue;
    } else {
      closed_ = CloseKind::reset;  // ECONNRESET (or another fatal error)
    }
    return false;
  }
}

std::chrono::nanoseconds HttpClient::since_send(std::size_t buf_offset) const {
  const std::uint64_t offset = consumed_ + buf_offset;
  for (const Arrival& a : arrivals_) {
    if (a.end > offset)
      return std::chrono::duration_cast<std::chrono::nanoseconds>(a.at - sent_at_);
  }
  return std::chrono::nanoseconds(-1);
}

void HttpClient::consume(std::size_t n, Response* into) {
  if (into != nullptr) into->raw.append(buf_, 0, n);
  buf_.erase(0, n);
  consumed_ += n;
  while (!arrivals_.empty() && arrivals_.front().end <= consumed_) arrivals_.pop_front();
}

// Reads heads until a final (non-1xx) one, or a 1xx when skip_interim is off.
bool HttpClient::read_head(Response* r, Clock::time_point deadline, bool skip_interim) {
  for (;;) {
    std::size_t end = buf_.find("\r\n\r\n");
    while (end == std::string::npos) {
      if (!fill(deadline)) return false;
      end = buf_.find("\r\n\r\n");
    }
    end += 4;
    r->time_to_head = since_send(end - 1);
    r->head = buf_.substr(0, end);
    consume(end, r);
    if (!parse_head(r->head, r)) {
      r->error = "malformed response head";
      return false;
    }
    if (r->status >= 200 || r->status == 101 || !skip_interim) return true;
    r->interim.push_back(r->head);
  }
}

Response HttpClient::read_response(const ReadOptions& options) {
  Response r;
  const Clock::time_point deadline = Clock::now() + std::chrono::milliseconds(options.timeout_ms);
  const auto fail = [&](Response& out, std::string_view what) -> Response& {
    if (out.error.empty()) {
      out.error = closed_ == CloseKind::reset ? "connection reset"
                  : closed_ == CloseKind::eof ? std::string(what)
                                              : "timeout";
    }
    out.close = closed_;
    return out;
  };
  if (!read_head(&r, deadline, options.skip_interim)) {
    return fail(r, "connection closed before the response head");
  }
  if (r.status < 200) {  // an interim response returned on request: it has no body
    r.complete = true;
    return r;
  }
  const auto te = r.header("Transfer-Encoding");
  const auto cl = r.header("Content-Length");
  r.chunked = te.has_value() && iequals(*te, "chunked");
  if (cl.has_value()) {
    std::int64_t n = -1;
    std::from_chars(cl->data(), cl->data() + cl->size(), n);
    r.content_length = n;
  }
  const bool no_body = options.head_request || r.status == 204 || r.status == 304;
  bool done = true;
  if (no_body) {
    // nothing follows
  } else if (r.chunked) {
    done = read_chunked(&r, deadline);
  } else if (r.content_length >= 0) {
    const auto want = static_cast<std::size_t>(r.content_length);
    while (buf_.size() < want && fill(deadline)) {
    }
    if (want > 0 && !buf_.empty()) r.time_to_first_body_byte = since_send(0);
    const std::size_t take = std::min(want, buf_.size());
    r.body = buf_.substr(0, take);
    consume(take, &r);
    done = take == want;
  } else {
    done = read_until_close(&r, deadline);
  }
  if (!done) return fail(r, "connection closed before the body ended");
  r.complete = true;
  r.close = closed_;
  r.time_to_complete =
      std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - sent_at_);
  return r;
}

bool HttpClient::read_chunked(Response* r, Clock::time_point deadline) {
  for (;;) {
    std::size_t eol = buf_.find("\r\n");
    while (eol == std::string::npos) {
      if (!fill(deadline)) return false;
      eol = buf_.find("\r\n");
    }
    std::uint64_t size = 0;
    const auto [end, ec] = std::from_chars(buf_.data(), buf_.data() + eol, size, 16);
    if (ec != std::errc{} || end == buf_.data()) {
      r->error = "malformed chunk size";
      return false;
    }
    if (size == 0) {  // last chunk: then trailer lines up to an empty line
      std::size_t trailer_end = buf_.find("\r\n\r\n", eol);
      while (trailer_end == std::string::npos) {
        if (!fill(deadline)) return false;
        trailer_end = buf_.find("\r\n\r\n", eol);
      }
      consume(trailer_end + 4, r);
      r->terminator_seen = true;
      return true;
    }
    r->chunk_arrivals.push_back(since_send(0));
    const std::size_t total = eol + 2 + size + 2;
    while (buf_.size() < total) {
      if (!fill(deadline)) {  // keep the partial chunk for the caller to inspect
        if (r->time_to_first_body_byte.count() < 0 && buf_.size() > eol + 2) {
          r->time_to_first_body_byte = since_send(eol + 2);
        }
        r->body.append(buf_, eol + 2 > buf_.size() ? buf_.size() : eol + 2, std::string::npos);
        consume(buf_.size(), r);
        return false;
      }
    }
    if (buf_.compare(eol + 2 + size, 2, "\r\n") != 0) {
      r->error = "chunk data not followed by CRLF";
      return false;
    }
    if (r->time_to_first_body_byte.count() < 0) r->time_to_first_body_byte = since_send(eol + 2);
    r->chunks.push_back(size);
    r->body.append(buf_, eol + 2, size);
    consume(total, r);
  }
}

bool HttpClient::read_until_close(Response* r, Clock::time_point deadline) {
  for (;;) {
    if (!buf_.empty()) {
      if (r->time_to_first_body_byte.count() < 0) r->time_to_first_body_byte = since_send(0);
      r->body += buf_;
      consume(buf_.size(), r);
    }
    if (!fill(deadline)) return closed_ == CloseKind::eof;
  }
}

CloseKind HttpClient::wait_close(int timeout_ms, std::string* data) {
  const Clock::time_point deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  while (fill(deadline)) {
  }
  if (data != nullptr) *data = buf_;
  consume(buf_.size(), nullptr);
  return closed_;
}

void HttpClient::shutdown_write() {
  if (fd_ >= 0) ::shutdown(fd_, SHUT_WR);
}

void HttpClient::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

void HttpClient::abort() {
  if (fd_ < 0) return;
  const linger lg{1, 0};
  setsockopt(fd_, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
  close();
}

std::string request(std::string_view method, std::string_view path, std::string_view body,
                    const std::vector<Header>& extra_headers, std::uint16_t port) {
  bool has_host = false;
  bool has_length = false;
  for (const Header& h : extra_headers) {
    has_host |= iequals(h.name, "Host");
    has_length |= iequals(h.name, "Content-Length") || iequals(h.name, "Transfer-Encoding");
  }
  std::string out;
  out.reserve(128 + body.size());
  out.append(method).append(" ").append(path).append(" HTTP/1.1\r\n");
  if (!has_host) out.append("Host: 127.0.0.1:").append(std::to_string(port)).append("\r\n");
  const bool wants_length =
      !body.empty() || method == "POST" || method == "PUT" || method == "PATCH";
  if (!has_length && wants_length) {
    out.append("Content-Length: ").append(std::to_string(body.size())).append("\r\n");
  }
  for (const Header& h : extra_headers)
    out.append(h.name).append(": ").append(h.value).append("\r\n");
  out.append("\r\n");
  out.append(body);
  return out;
}

Response roundtrip(std::uint16_t port, std::string_view raw_request, const ReadOptions& options) {
  HttpClient client;
  Response r;
  if (!client.connect(port)) {
    r.error = "connect failed";
    return r;
  }
  if (!client.send(raw_request)) {
    r.error = "send failed";
    return r;
  }
  return client.read_response(options);
}

}  // namespace tokentap::test
