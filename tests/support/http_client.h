// HttpClient: a blocking HTTP/1.1 test client for loopback servers (the fake upstream, the proxy).
//
// It keeps every byte: `raw` is exactly what arrived for one response, `chunks` the chunk sizes
// as framed, so tests can assert framing (Content-Length vs chunked, one line per chunk, the
// terminator) as well as content. Reads have a deadline: a hung server fails the test with
// error "timeout" instead of hanging it. Bytes that arrive past one response (pipelining) stay
// buffered for the next read_response(). Arrival times are recorded per recv(), so
// time-to-first-body-byte is exact even when several responses share one read.
#pragma once

#include <sys/socket.h>

#include <chrono>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tokentap::test {

struct Header {
  std::string name;
  std::string value;
};

enum class CloseKind : std::uint8_t { none, eof, reset };

struct Response {
  int status = 0;
  std::string reason;
  std::string head;                  // status line through the empty line, as received
  std::vector<Header> headers;       // in order, duplicates kept
  std::string body;                  // de-chunked
  std::string raw;                   // every byte of this response (interim 1xx heads included)
  std::vector<std::size_t> chunks;   // data chunk sizes as framed, without the final 0
  std::vector<std::string> interim;  // raw heads of 1xx responses skipped before this one
  bool chunked = false;
  std::int64_t content_length = -1;
  bool complete = false;              // the framing said where the body ends, and it arrived
  bool terminator_seen = false;       // chunked: the last chunk and the empty trailer arrived
  CloseKind close = CloseKind::none;  // set if the connection ended during this read
  std::string error;  // empty, or what went wrong ("timeout", "connection reset"…)
  // Since the last send() on this client; -1 if it did not happen.
  std::chrono::nanoseconds time_to_head{-1};
  std::chrono::nanoseconds time_to_first_body_byte{-1};
  std::chrono::nanoseconds time_to_complete{-1};
  std::vector<std::chrono::nanoseconds> chunk_arrivals;  // first byte of each chunk's size line

  [[nodiscard]] bool ok() const { return error.empty() && complete; }
  // First header with this name (case-insensitive).
  [[nodiscard]] std::optional<std::string_view> header(std::string_view name) const;
  [[nodiscard]] std::size_t header_count(std::string_view name) const;
  [[nodiscard]] std::vector<std::string> header_names() const;
};

struct ReadOptions {
  int timeout_ms = 5000;
  bool head_request = false;  // the request was HEAD: no body follows whatever the headers say
  bool skip_interim = true;   // 1xx heads go to Response::interim; false returns the 1xx itself
};

class HttpClient {
 public:
  HttpClient() = default;
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;
  HttpClient(HttpClient&& other) noexcept;
  HttpClient& operator=(HttpClient&& other) noexcept;

  // Connects to 127.0.0.1:port (blocking, with a timeout). Closes a previous connection.
  [[nodiscard]] bool connect(std::uint16_t port, int timeout_ms = 2000);
  // Connects to any stream socket address (TCP, or AF_UNIX such as an abstract socket).
  [[nodiscard]] bool connect_to(const sockaddr* addr, socklen_t addr_len, int timeout_ms = 2000);
  // Sends all of `bytes` (blocking); records the time for the time_to_* fields.
  [[nodiscard]] bool send(std::string_view bytes);
  [[nodiscard]] Response read_response(const ReadOptions& options = {});
  // Reads until the peer closes or the timeout passes; received bytes go to *data if given.
  [[nodiscard]] CloseKind wait_close(int timeout_ms = 2000, std::string* data = nullptr);
  void shutdown_write();
  void close();  // orderly: FIN
  void abort();  // SO_LINGER 0: RST
  [[nodiscard]] bool connected() const { return fd_ >= 0; }
  [[nodiscard]] int fd() const { return fd_; }
  [[nodiscard]] std::string_view buffered() const { return buf_; }

 private:
  using Clock = std::chrono::steady_clock;
  struct Arrival {
    std::uint64_t end;  // stream offset one past the last byte of this recv()
    Clock::time_point at;
  };

  // Receives once into buf_; false on timeout or close (closed_ says which).
  [[nodiscard]] bool fill(Clock::time_point deadline);
  [[nodiscard]] std::chrono::nanoseconds since_send(std::size_t buf_offset) const;
  void consume(std::size_t n, Response* into);
  [[nodiscard]] bool read_head(Response* r, Clock::time_point deadline, bool skip_interim);
  [[nodiscard]] bool read_chunked(Response* r, Clock::time_point deadline);
  [[nodiscard]] bool read_until_close(Response* r, Clock::time_point deadline);

  int fd_ = -1;
  std::string buf_;
  std::uint64_t consumed_ = 0;  // stream offset of buf_[0]
  std::deque<Arrival> arrivals_;
  CloseKind closed_ = CloseKind::none;
  Clock::time_point sent_at_{};
};

// A valid HTTP/1.1 request: Host: 127.0.0.1:<port>, Content-Length for a body (and for an
// empty POST/PUT/PATCH), then `extra_headers`. An extra Host, Content-Length or
// Transfer-Encoding header replaces the default one.
[[nodiscard]] std::string request(std::string_view method, std::string_view path,
                                  std::string_view body = {},
                                  const std::vector<Header>& extra_headers = {},
                                  std::uint16_t port = 0);

// One request on a fresh connection.
[[nodiscard]] Response roundtrip(std::uint16_t port, std::string_view raw_request,
                                 const ReadOptions& options = {});

}  // namespace tokentap::test
