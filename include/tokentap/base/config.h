// Config: the proxy's immutable settings, filled once at start-up by app/config_parse.h.
//
// It is the only process-wide state (STYLE §3): every shard reads it, none writes it. It sits in
// the base layer because every layer reads it; how it is parsed (flags, environment) is the app
// layer's business.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <string>

namespace tokentap {

// A resolved TCP endpoint plus the text it came from (for banners and the upstream Host header).
struct Endpoint {
  sockaddr_storage addr{};
  socklen_t addr_len = 0;
  std::string text;  // "host:port" as an operator would write it
};

constexpr std::uint64_t mib = 1024 * 1024;
constexpr int threads_max = 256;
constexpr std::uint64_t max_body_bytes_default = 256 * mib;
constexpr std::uint32_t max_models_default = 512;
constexpr std::uint32_t drain_timeout_ms_default = 30'000;
// A request head must be complete this long after its first byte (slowloris → 408).
constexpr std::uint32_t head_timeout_ms_default = 30'000;
// A keep-alive connection with no request in progress is closed after this long.
constexpr std::uint32_t idle_timeout_ms_default = 300'000;
constexpr std::uint32_t max_connections_default = 8192;  // client connections per shard

struct Config {
  Endpoint listen;            // proxy listener, default :11435
  Endpoint upstream;          // the Ollama (or compatible) server, default 127.0.0.1:11434
  std::string upstream_host;  // Host header value sent upstream: the URL's host[:port]
  Endpoint metrics_listen;    // metrics listener, default :9836
  // Where a shard sends `GET /metrics` received on the proxy port with --metrics-on-proxy: the
  // metrics listener as bound (loopback when it listens on a wildcard). Set by Server::start
  // before the shard threads run.
  Endpoint metrics_local;
  int threads = 0;            // shards; 0 before parsing means "online CPUs"
  bool preserve_host = false;
  bool metrics_on_proxy = false;
  std::uint32_t max_models = max_models_default;
  std::uint64_t max_body_bytes = max_body_bytes_default;
  std::uint32_t drain_timeout_ms = drain_timeout_ms_default;
  std::uint32_t head_timeout_ms = head_timeout_ms_default;
  std::uint32_t idle_timeout_ms = idle_timeout_ms_default;
  // Per-shard sizes; defaults are the named constants of buf_ring.h / ring.h. Small values
  // exist to force buffer exhaustion and a full submission queue in tests.
  std::uint32_t ring_buffers = 1024;  // provided buffers per shard, a power of two
  std::uint32_t sq_entries = 1024;    // io_uring submission queue entries per shard
  std::uint32_t max_connections = max_connections_default;  // per shard; more are refused
  std::string metrics_token;
  std::string access_log;  // empty: off; "-": stdout
};

}  // namespace tokentap
