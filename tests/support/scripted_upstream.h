// ScriptedUpstream and raw-socket helpers: a loopback upstream whose bytes each test scripts
// exactly (broken ones included), and the blocking fd-level reads and writes the tests use to
// talk to it and to the proxy.
//
// These work on raw bytes on purpose: a test that checks what the proxy forwards, truncates or
// refuses must see the stream as sent, not as an HTTP client would parse it. HttpClient
// (http_client.h) is the framing-aware alternative when a test asserts on a parsed Response.
// Every read has a deadline, so a hung peer fails the test instead of hanging it.
#pragma once

#include <atomic>
#include <chrono>
#include <climits>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace tokentap::test {

// A listener on 127.0.0.1, ephemeral port (written to *port); -1 on failure.
[[nodiscard]] int listen_loopback(std::uint16_t* port);
// A connected TCP_NODELAY socket to 127.0.0.1:port; -1 when the connect fails.
[[nodiscard]] int connect_loopback(std::uint16_t port);
// Sends all of `s` (MSG_NOSIGNAL); stops quietly when the peer is gone.
void send_all(int fd, std::string_view s);

// Reads until `done(data)` says so, the peer closes (*closed = true), or the deadline passes.
std::string read_until(int fd, const std::function<bool(const std::string&)>& done,
                       std::chrono::milliseconds deadline = std::chrono::milliseconds(5000),
                       bool* closed = nullptr);
// Everything the peer sends until it closes (or the deadline passes).
std::string read_to_close(int fd,
                          std::chrono::milliseconds deadline = std::chrono::milliseconds(5000),
                          bool* closed = nullptr);
// A `done` predicate for read_until: a whole head ("\r\n\r\n") has arrived.
[[nodiscard]] bool has_head(const std::string& data);

// The canned 200 most scripts answer with, and a read of exactly that many bytes.
inline constexpr const char* ok_body =
    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello";
std::string read_ok(int fd);

// `data` framed as one HTTP/1.1 chunk; and the de-chunked body of a chunked message (the
// framing is not part of what a client reads).
[[nodiscard]] std::string chunk(const std::string& data);
[[nodiscard]] std::string dechunk(const std::string& message);

// The status code of the response at the start of `raw`, or 0.
[[nodiscard]] int status_of(std::string_view raw);

// What a request sent on a fresh connection got before the proxy closed it (or 3 s passed).
struct Outcome {
  std::string response;
  bool closed = false;
};
[[nodiscard]] Outcome send_and_read_to_close(std::uint16_t port, std::string_view request);

// A one-thread upstream that hands each accepted connection to the test's script on a thread
// of its own, and closes the connection when the script returns.
class ScriptedUpstream {
 public:
  using Script = std::function<void(int fd, ScriptedUpstream& self)>;
  explicit ScriptedUpstream(Script script);
  ~ScriptedUpstream();
  ScriptedUpstream(const ScriptedUpstream&) = delete;
  ScriptedUpstream& operator=(const ScriptedUpstream&) = delete;

  // Reads one request head (and a Content-Length body) from fd and records it.
  std::string read_request(int fd);
  // Every request read_request() has seen, in order.
  [[nodiscard]] std::vector<std::string> requests();
  // The same without the empty read read_request() records when a connection ends at EOF.
  [[nodiscard]] std::vector<std::string> nonempty_requests();
  [[nodiscard]] std::uint16_t port() const { return port_; }
  // A script answering up to `times` requests on each connection with the same bytes.
  [[nodiscard]] static Script answer_each(std::string response, int times = INT32_MAX);

  std::atomic<int> accepted{0};

 private:
  void accept_loop();

  Script script_;
  int fd_ = -1;
  std::uint16_t port_ = 0;
  std::thread thread_;
  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::vector<std::string> requests_;
};

}  // namespace tokentap::test
