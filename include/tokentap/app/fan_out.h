// FanOutService: the fleet endpoints of issue 16. `POST /api/pull`, `DELETE /api/delete` and
// `POST /api/copy` must reach every healthy backend so the fleet stays uniform; the proxy's data
// path stays as it is and treats this service as one more upstream: it connects to endpoint()
// (an abstract AF_UNIX stream socket) and sends the client's request there.
//
// Who may connect: every accepted connection is checked with SO_PEERCRED and served only when
// the peer is this process, so nothing outside it can start fleet-wide pulls through the socket
// (an abstract name is visible to the whole network namespace). Others are closed at once.
//
// One request per connection, answered with `Connection: close`. The request is read with the
// project's HttpParser (head and body within fan_out_request_timeout_ms; a body over
// fan_out_body_bytes_max: 413). It is sent to every target the callback lists at that moment
// (method, path and query, the body, its Content-Type, `Host:` the target's host_header,
// `Connection: close`), all at once: connect and response head within
// fan_out_head_timeout_ms, the body then unbounded in time (a pull runs for minutes). When the
// proxy side closes (its client gave up) or stop() is called, every backend socket is shut
// down, so the backends see the abort.
//
// Merge rules (first = first in the callback's order; every error body is Ollama's
// {"error":"…"}, application/json; charset=utf-8; a backend's failure is named:
// {"error":"<backend name>: <its message>"}, its message being its own `error` or, when it
// gave none, "tokentap: backend unreachable", "tokentap: backend timed out",
// "tokentap: backend closed the connection early", "tokentap: backend answered <status>" or
// "tokentap: pull ended without success"):
//  - POST /api/pull, streaming (`stream` absent or true): once every backend's head is in, a
//    non-2xx head answers the first such backend's status with its named error, and the other
//    backends are cut; no head at all (every backend unreachable): the first one's error, 502.
//    Otherwise 200 `application/x-ndjson`, chunked: the progress lines of the lead (the first
//    backend with a 2xx head) are forwarded whole, each as its own chunk as soon as it is
//    complete; no backend's `{"status":"success"}` or `{"error":…}` line is forwarded. When every
//    backend has ended, the last line is `{"status":"success"}` if every one ended with a success
//    line, else one `{"error":"<name>: <message>"}` for the first that did not. While the lead is
//    done and others still run, nothing is sent.
//  - POST /api/pull with `stream:false`: 200 {"status":"success"} when every backend answered
//    2xx without an `error`; else the first failure: its status (502 unreachable or closed, 504
//    timed out) and named error.
//  - DELETE /api/delete: every backend 200: an empty 200. A 404 (model not there) counts as
//    success when another backend answered 200: the model is gone everywhere. All 404: the
//    first 404 as the backend sent it. Any other failure: its status and named error.
//  - POST /api/copy: every backend 2xx: an empty 200; else the first failure, named.
//  - No target: 502 {"error":"tokentap: no healthy backend"}.
//  - Any other method or path: 404 {"error":"tokentap: not a fan-out route"} (the proxy sends
//    only these three); more than fan_out_jobs_max at once: 503.
//
// Threads: one acceptor, and one thread per accepted connection (at most fan_out_jobs_max),
// which serves that request with poll() over the proxy's socket and every backend's. One thread
// per request rather than per backend: the merge needs every backend's state in one place
// (all heads in, which line is the lead's, who ended how), and in one thread that needs no
// locks; poll() also watches the proxy's socket, so a client that gives up is seen at once.
// This is an admin path: threads, a mutex and std::function are fine here, never in a shard.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <list>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "tokentap/base/config.h"

namespace tokentap {

constexpr std::uint32_t fan_out_jobs_max = 16;                     // requests at once; more: 503
constexpr std::size_t fan_out_body_bytes_max = 64 * 1024;          // request body; more: 413
constexpr std::uint32_t fan_out_request_timeout_ms = 10'000;       // request head + body: 408
constexpr std::uint32_t fan_out_head_timeout_ms = 10'000;          // backend connect + head
constexpr std::uint32_t fan_out_client_send_timeout_ms = 30'000;   // one write to the proxy
constexpr std::size_t fan_out_answer_bytes_max = 64 * 1024;        // a backend's body kept
constexpr std::size_t fan_out_line_bytes_max = 64 * 1024;          // one NDJSON progress line
static_assert(fan_out_jobs_max >= 1);
static_assert(fan_out_line_bytes_max <= fan_out_answer_bytes_max);

// A backend as the service addresses it.
struct FanOutTarget {
  std::string name;         // the `backend` label; names it in error messages
  Endpoint endpoint;        // TCP or AF_UNIX
  std::string host_header;  // the Host sent to it
};

class FanOutService {
 public:
  // targets() is called once per request, from that request's thread: the healthy backends
  // now, in the order the merge rules call "first".
  explicit FanOutService(std::function<std::vector<FanOutTarget>()> targets);
  ~FanOutService();
  FanOutService(const FanOutService&) = delete;
  FanOutService& operator=(const FanOutService&) = delete;

  // Binds a fresh abstract socket ("\0tokentap-fanout-<pid>-<n>") and starts the acceptor.
  [[nodiscard]] bool start(std::string* error);
  // Idempotent. Stops accepting, cuts every request in flight (its sockets shut down) and joins
  // every thread.
  void stop();
  // Where the proxy connects: AF_UNIX, text "@tokentap-fanout-<pid>-<n>". Valid after start().
  [[nodiscard]] const Endpoint& endpoint() const { return endpoint_; }

 private:
  struct Job {
    std::thread thread;
    int client_fd = -1;  // closed by the job under mu_, so stop() never shuts a reused fd
    bool done = false;
  };

  void accept_loop();
  void on_accept(int fd);
  void serve(Job* job);
  void finish(Job* job);
  void reap();  // joins the threads of finished jobs

  std::function<std::vector<FanOutTarget>()> targets_;
  Endpoint endpoint_;
  int listen_fd_ = -1;
  int wake_fd_ = -1;  // eventfd: stop() wakes the acceptor
  std::thread acceptor_;
  std::mutex mu_;         // jobs_ and stopping_; never held while a request blocks
  std::list<Job> jobs_;   // a list: a Job's address stays valid for its thread
  bool stopping_ = false;
};

}  // namespace tokentap
