// FakeUpstream: an in-process HTTP/1.1 server that imitates Ollama (native, OpenAI-compatible and
// Anthropic-compatible routes) byte for byte as docs/wire-format.md describes, for
// GoogleTest integration tests and wrk benchmarks of the tokentap proxy.
//
// Threads: `threads` workers, each with its own SO_REUSEPORT listener and epoll loop; a
// connection lives on the worker that accepted it. start() binds every listener before it
// returns, so a test can connect to port() at once. stop() wakes the loops through an eventfd,
// joins them and closes every socket.
//
// Requests steer the answer with headers the proxy forwards unchanged (see README.md):
// X-Fake-Tokens, X-Fake-Prompt-Tokens, X-Fake-Delay-Ms, X-Fake-Error, X-Fake-Abort-After,
// X-Fake-Close, X-Fake-Close-After-Response, X-Fake-Status, X-Fake-Think, X-Fake-Tools.
//
// Per instance (Options, and setters that take effect at once on every worker, for fleet tests
// that run several instances in one process): installed and resident models, 503-busy mode,
// /api/version health (ok, 500, slow), an abrupt close (RST) of every inference answer, and a
// failing or slow /api/pull. Pull, delete and copy change the instance's installed models.
// stop() then start() takes the instance down (connection refused) and back on the same port.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tokentap::fake {

// GET /api/version: answered at once, 500 {"error":"fake health check failure"}, or normally but
// only after Options::health_slow_ms (1.5 s: longer than a 1 s health-check timeout).
enum class Health : std::uint8_t { ok, fail, slow };

// An abrupt close (RST, SO_LINGER 0) of the answer: before any byte; after the response head
// (no body byte); mid-body (streams: the head and the first chunk; single answers: the head and
// half the framed body). Same values as the X-Fake-Close request header.
enum class CloseMode : std::uint8_t { none, before_head, after_head, mid_body };

// The seven models /api/tags lists when Options::models is not set.
[[nodiscard]] std::vector<std::string> default_models();

// "ok" "fail" "slow" / "before-head" "after-head" "mid-body" ("none" too); false if unknown.
[[nodiscard]] bool parse_health(std::string_view text, Health* out);
[[nodiscard]] bool parse_close_mode(std::string_view text, CloseMode* out);

struct Options {
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;  // 0: ephemeral, read it back with port()
  int threads = 1;
  // Fixed Date header, created_at, created and ids, so identical requests get identical bytes.
  bool deterministic = true;

  // Installed models: /api/tags and /v1/models list exactly these (in this order), and an
  // inference request for any other model gets Ollama's 404. A name without a tag gets
  // ":latest"; names compare case-insensitively. nullopt: the default seven are listed and every
  // model name is accepted (the fake as it always was). An empty list: nothing installed.
  std::optional<std::vector<std::string>> models;
  // Models GET /api/ps reports as loaded (normally a subset of `models`); empty: {"models":[]}.
  std::vector<std::string> resident;
  // Every inference request gets Ollama's 503 "server busy" (after the 400/404 checks).
  bool busy = false;
  Health health = Health::ok;
  std::uint32_t health_slow_ms = 1500;
  // Applied to every inference answer unless the request has its own X-Fake-Close.
  CloseMode close = CloseMode::none;
  // POST /api/pull sends a few progress lines, then {"error":"pull model manifest: file does
  // not exist"} (stream:false: that error as a 500); the model is not installed.
  bool pull_fail = false;
  // POST /api/pull waits this long before every progress line (a pull that takes a while, so a
  // test can cut it); 0: all at once.
  std::uint32_t pull_delay_ms = 0;
};

// Counters summed over the workers. Each worker writes its own block; reads are relaxed.
struct Stats {
  std::uint64_t requests = 0;  // complete request heads parsed
  std::uint64_t connections_accepted = 0;
  std::uint64_t connections_closed_by_peer = 0;  // EOF or RST seen from a client
  std::uint64_t last_peer_close_ns = 0;          // CLOCK_MONOTONIC of the latest such EOF/RST
  std::uint64_t prompt_tokens_sent = 0;          // sum of prompt counts the fake reported
  std::uint64_t completion_tokens_sent = 0;      // sum of completion counts the fake reported
  std::uint64_t blob_bytes_received = 0;         // body bytes of POST /api/blobs/...
  std::uint64_t blob_checksum_last = 0;          // FNV-1a 64 of the last complete upload
  std::uint64_t bytes_sent = 0;                  // every byte written to client sockets
  std::uint64_t inference_requests = 0;          // complete inference requests (any route)
  std::uint64_t busy_answers = 0;                // 503 server busy sent
  std::uint64_t model_not_found_answers = 0;     // 404 model not found sent
  std::uint64_t health_checks = 0;               // GET/HEAD /api/version answered or held
  std::uint64_t pull_requests = 0;               // complete POST /api/pull requests
  std::uint64_t delete_requests = 0;             // complete DELETE /api/delete requests
  std::uint64_t copy_requests = 0;               // complete POST /api/copy requests
  std::int64_t inference_in_flight = 0;          // inference answers in progress now (a gauge)
};

class FakeUpstream {
 public:
  explicit FakeUpstream(Options options);
  ~FakeUpstream();
  FakeUpstream(const FakeUpstream&) = delete;
  FakeUpstream& operator=(const FakeUpstream&) = delete;

  // Binds the listeners and starts the workers. False (with *error set) if anything failed.
  // After a stop(), start() binds the port the instance had before (Options::port 0 included),
  // and the counters carry on.
  [[nodiscard]] bool start(std::string* error);
  [[nodiscard]] std::uint16_t port() const;
  [[nodiscard]] bool running() const;
  // Idempotent. Joins the workers and closes every socket they own: new connections are refused
  // until start() again.
  void stop();

  // Run-time controls: any thread, at any time; the next request sees the new value.
  void set_busy(bool busy);
  void set_health(Health health);
  void set_close(CloseMode mode);
  void set_models(std::optional<std::vector<std::string>> models);
  void set_resident(std::vector<std::string> resident);
  void set_pull_fail(bool fail);
  void set_pull_delay_ms(std::uint32_t ms);
  // The installed models now (lower case, with a tag: "llama3.2:latest"), as /api/tags lists
  // them; pull, delete and copy change them.
  [[nodiscard]] std::vector<std::string> installed_models() const;
  [[nodiscard]] bool busy() const;
  [[nodiscard]] Health health() const;
  [[nodiscard]] CloseMode close_mode() const;

  [[nodiscard]] Stats stats() const;
  // Request heads received on this route's path, whatever the method or the answer (a request
  // reset before its head was answered counts too). "/api/blobs/..." paths share one counter,
  // and so do all unknown paths.
  [[nodiscard]] std::uint64_t requests_for(std::string_view path) const;
  void reset_stats();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tokentap::fake
