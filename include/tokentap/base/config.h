// Config: the proxy's immutable settings, filled once at start-up by app/config_parse.h.
//
// It is the only process-wide state (STYLE §3): every shard reads it, none writes it. It sits in
// the base layer because every layer reads it; how it is parsed (flags, environment) is the app
// layer's business.
//
// Backends: `backends` lists every upstream (--upstream given several times, OLLAMA_UPSTREAM as a
// comma-separated list, or --config FILE's `upstream` and [[backend]] tables), at least one after
// parsing. `upstream` and `upstream_host` mirror backends[0], so code written for one upstream
// keeps working unchanged.
//
// Keys (issue 18, docs/keys.md): `keys` are the [[key]] tables of --config and --keys FILE, as
// plain data; the auth layer builds its lookup table and windows from them. With no key, auth is
// off and nothing changes.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

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
constexpr std::uint32_t backends_max = 64;               // --upstream / [[backend]] entries
constexpr std::size_t backend_name_bytes_max = 32;       // [A-Za-z0-9_.-]{1,32}
constexpr std::uint32_t backend_weight_max = 1000;
// A backend's max_parallel is its OLLAMA_NUM_PARALLEL; Ollama itself caps nothing, 1024 is ours.
constexpr std::uint32_t backend_max_parallel_max = 1024;
constexpr std::uint32_t health_interval_ms_default = 2000;  // active check period per backend
constexpr std::uint32_t health_interval_ms_min = 100;
constexpr std::uint32_t health_interval_ms_max = 3'600'000;
constexpr std::uint32_t retries_default = 2;  // other backends tried before the first byte
constexpr std::uint32_t retries_max = 8;
static_assert(retries_max < backends_max, "a retry goes to another backend");

// API keys. keys_max bounds the fixed arrays the auth layer sizes at start (one window slot per
// key, plus one for the anonymous clients); a deployment with more people than this wants an
// identity provider, not a TOML file.
constexpr std::uint32_t keys_max = 1024;
constexpr std::size_t key_name_bytes_max = 32;     // [A-Za-z0-9_.-]{1,32}, the `key` label
constexpr std::size_t key_sha256_bytes = 32;       // SHA-256 of the secret
constexpr std::uint32_t key_models_max = 64;       // `models` patterns per key
constexpr std::size_t key_model_bytes_max = 256;   // one pattern; Ollama's longest names fit
constexpr std::uint32_t anonymous_cidrs_max = 64;  // anonymous_from entries
// Limit ceilings: far above any real GPU's rate, low enough to fit the packed window counters
// of auth/key_window.h (static_asserted there).
constexpr std::uint64_t key_requests_per_minute_max = 1'000'000'000;
constexpr std::uint64_t key_tokens_per_minute_max = 10'000'000'000;
constexpr std::uint64_t key_tokens_per_day_max = 1'000'000'000'000;
// The name the anonymous clients are counted under (the `key` label); no [[key]] may take it.
inline constexpr std::string_view anonymous_key_name = "anonymous";

// A key's limits; 0 is unlimited. Windows are UTC-aligned (auth/key_window.h).
struct KeyLimits {
  std::uint64_t requests_per_minute = 0;
  std::uint64_t tokens_per_minute = 0;  // prompt + completion
  std::uint64_t tokens_per_day = 0;     // prompt + completion, UTC day
};

// One [[key]] table (or the [anonymous] table, with an all-zero sha256 and no secret).
struct KeyConfig {
  std::string name;                                     // the `key` label
  std::array<std::uint8_t, key_sha256_bytes> sha256{};  // of the secret; never the secret
  std::vector<std::string> models;  // allowed models, exact or `prefix*`; empty: any
  KeyLimits limits;
  std::string origin;  // "FILE:LINE" of its table, for messages
};

// One upstream server. Only `name`, `weight` and `max_parallel` are policy; the rest says where
// it is and how to address it.
struct BackendConfig {
  std::string name;                // the `backend` label; default "host:port"
  std::string url;                 // as written
  Endpoint endpoint;               // resolved
  std::string host_header;         // Host sent to it (host[:port] of its URL)
  std::uint32_t weight = 1;        // 1..backend_weight_max
  std::uint32_t max_parallel = 1;  // the instance's OLLAMA_NUM_PARALLEL (1..1024)
};

struct Config {
  Endpoint listen;                      // proxy listener, default :11435
  Endpoint upstream;                    // backends[0].endpoint: default 127.0.0.1:11434
  std::string upstream_host;            // backends[0].host_header: the URL's host[:port]
  std::vector<BackendConfig> backends;  // >= 1 after parsing, at most backends_max
  std::string config_file;              // --config FILE ("" when none); SIGHUP re-reads it
  bool backends_from_flags = false;     // --upstream named them: the file's are not reloaded
  std::uint32_t health_interval_ms = health_interval_ms_default;
  std::uint32_t retries = retries_default;
  Endpoint metrics_listen;  // metrics listener, default :9836
  // Where a shard sends `GET /metrics` received on the proxy port with --metrics-on-proxy: the
  // metrics listener as bound (loopback when it listens on a wildcard). Set by Server::start
  // before the shard threads run.
  Endpoint metrics_local;
  int threads = 0;  // shards; 0 before parsing means "online CPUs"
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
  // API keys (docs/keys.md). Auth is on when `keys` is not empty.
  std::vector<KeyConfig> keys;              // --config's and --keys FILE's [[key]] tables
  std::string keys_file;                    // --keys FILE ("" when none)
  std::vector<std::string> anonymous_from;  // CIDRs as written, checked by auth's Cidr::parse
  KeyConfig anonymous;                      // [anonymous]: models and limits of those clients
  std::string state_dir;                    // --state-dir DIR: the usage ledger ("" = none)
  bool forward_auth = false;                // --forward-auth: credentials reach the backends
};

}  // namespace tokentap
