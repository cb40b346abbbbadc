// FakeUpstream: an in-process HTTP/1.1 server that imitates Ollama (native, OpenAI-compatible and
// Anthropic-compatible routes) byte for byte as /work/shared/spec/wire-format.md describes, for
// GoogleTest integration tests and wrk benchmarks of the tokentap proxy.
//
// Threads: `threads` workers, each with its own SO_REUSEPORT listener and epoll loop; a
// connection lives on the worker that accepted it. start() binds every listener before it
// returns, so a test can connect to port() at once. stop() wakes the loops through an eventfd,
// joins them and closes every socket.
//
// Requests steer the answer with headers the proxy forwards unchanged (see README.md):
// X-Fake-Tokens, X-Fake-Prompt-Tokens, X-Fake-Delay-Ms, X-Fake-Error, X-Fake-Abort-After,
// X-Fake-Close-After-Response, X-Fake-Status, X-Fake-Think, X-Fake-Tools.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

namespace tokentap::fake {

struct Options {
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;  // 0: ephemeral, read it back with port()
  int threads = 1;
  // Fixed Date header, created_at, created and ids, so identical requests get identical bytes.
  bool deterministic = true;
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
};

class FakeUpstream {
 public:
  explicit FakeUpstream(Options options);
  ~FakeUpstream();
  FakeUpstream(const FakeUpstream&) = delete;
  FakeUpstream& operator=(const FakeUpstream&) = delete;

  // Binds the listeners and starts the workers. False (with *error set) if anything failed.
  [[nodiscard]] bool start(std::string* error);
  [[nodiscard]] std::uint16_t port() const;
  // Idempotent. Joins the workers and closes every socket they own.
  void stop();

  [[nodiscard]] Stats stats() const;
  void reset_stats();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tokentap::fake
