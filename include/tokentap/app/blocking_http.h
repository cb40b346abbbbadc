// blocking_http: the small HTTP/1.1 client the app layer's background threads share (the
// prober's health checks and /api/tags polls, the fan-out service's requests to every backend).
// Never used by a shard: every call here may block its thread up to its deadline.
//
// Sockets are non-blocking stream sockets of the endpoint's family, so a TCP endpoint and an
// AF_UNIX one (the fan-out service's abstract socket) work the same. Deadlines are
// CLOCK_MONOTONIC milliseconds (base/clock.h monotonic_ms). connect_start + connect_result let a
// caller run many connects at once under its own poll(); connect_before is both for one.
//
// ResponseReader reads one response incrementally with the project's HttpParser (llhttp), so the
// framing rules are the proxy's own (Content-Length, chunked, close-delimited, 1xx skipped);
// de-chunked body bytes go to a sink as they arrive.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "tokentap/base/config.h"
#include "tokentap/http/http1.h"

namespace tokentap {

constexpr std::size_t probe_body_bytes_max = 4 * 1024 * 1024;  // a bigger /api/tags is refused
constexpr std::size_t response_read_bytes = 16 * 1024;         // one recv() of a response

// Waits until fd is ready for `events` (or hung up) or the deadline passes; false on timeout
// or error.
[[nodiscard]] bool wait_fd(int fd, short events, std::uint64_t deadline_ms);

// A non-blocking socket whose connect to ep has started (or finished); -1 on failure. The
// caller waits for POLLOUT, then asks connect_result.
[[nodiscard]] int connect_start(const Endpoint& ep);
// After POLLOUT on a connect_start socket: true when connected.
[[nodiscard]] bool connect_result(int fd);
// A socket connected to ep before the deadline, or -1.
[[nodiscard]] int connect_before(const Endpoint& ep, std::uint64_t deadline_ms);
// Sends all of data (MSG_NOSIGNAL); false on error or when the deadline passes.
[[nodiscard]] bool send_before(int fd, std::string_view data, std::uint64_t deadline_ms);

// One response, read as its bytes arrive. start() once, then on_readable() each time the socket
// polls readable: it recv()s once and parses. A 1xx head is skipped.
class ResponseReader {
 public:
  enum class State : std::uint8_t {
    head,    // no final head yet
    body,    // the final head arrived: status() is set
    done,    // the whole response arrived
    failed,  // the peer closed or reset early, or the bytes are not HTTP
  };

  void start(BodySinkFn sink, void* ctx);
  [[nodiscard]] State on_readable(int fd);
  [[nodiscard]] State state() const { return state_; }
  [[nodiscard]] int status() const { return status_; }

 private:
  void feed(const char* data, std::size_t n);

  HttpParser parser_;
  State state_ = State::head;
  int status_ = 0;
};

// One GET's outcome. status 0: no answer (refused, reset, timed out, malformed).
struct ProbeAnswer {
  int status = 0;
  bool timed_out = false;
  std::string body;  // de-chunked, at most probe_body_bytes_max
};

// A blocking `GET path` to `ep` with `Host: host` and `Connection: close`, bounded by
// timeout_ms from the first byte of the connect to the last byte of the answer.
[[nodiscard]] ProbeAnswer probe_get(const Endpoint& ep, const std::string& host,
                                    const char* path, std::uint32_t timeout_ms);

}  // namespace tokentap
