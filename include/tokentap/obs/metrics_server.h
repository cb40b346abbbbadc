// MetricsServer: the `--metrics-listen` HTTP/1.1 endpoint, on one small dedicated thread.
//
// It serves `GET|HEAD /metrics` (the prom_text exposition of all shards, merged on each scrape)
// and `GET|HEAD /healthz` (200 "ok"); 404 for other paths, 405 for other methods, 400 for a
// malformed head, 431 for a head over metrics_head_bytes_max. With a token configured,
// /metrics requires `Authorization: Bearer <token>` (compared in constant time) and answers 401
// with `WWW-Authenticate: Bearer` otherwise; /healthz stays open for health checkers.
//
// It is off the data path: shards never wait for it, it only reads their relaxed atomics. It
// uses plain non-blocking sockets and poll(): connections are served round-robin, each one's
// write progresses independently, so a slow scraper never blocks the others, and every state has
// a deadline (head read, idle keep-alive, write progress). Keep-alive follows HTTP/1.1 (1.0 only
// with `Connection: keep-alive`); pipelined requests are answered in order. Request bodies are
// not read: a request that announces one is answered and the connection closed (after a short
// lingering drain of its input, so the response is not lost to a reset). With all
// connection slots busy, the longest-idle keep-alive connection is closed to make room; if none
// is idle, the new connection is closed at once. stop() wakes the thread through an eventfd and
// returns after it has closed every socket.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "tokentap/base/config.h"
#include "tokentap/obs/backend_source.h"
#include "tokentap/obs/metrics.h"
#include "tokentap/obs/model_table.h"

namespace tokentap {

constexpr std::size_t metrics_connections_max = 32;
constexpr std::size_t metrics_head_bytes_max = 8 * 1024;
constexpr int metrics_head_timeout_ms = 10'000;   // first byte of a request to end of its head
constexpr int metrics_idle_timeout_ms = 300'000;  // keep-alive between scrapes (Prometheus: 5 min)
constexpr int metrics_write_timeout_ms = 30'000;  // without any write progress
constexpr int metrics_linger_ms = 2'000;          // draining input after a closing response
constexpr int metrics_listen_backlog = 64;

struct MetricsServerOptions {
  Endpoint listen;
  std::string token;    // empty: no authentication
  std::string version;  // tokentap_build_info{version}
  // The backend fleet's gauges and counters, read on the server's thread once per scrape
  // (backend_source.h); empty with a single upstream: no fleet-wide backend families.
  BackendSource backends{};
};

class MetricsServer {
 public:
  // The shards and the model table must outlive the server.
  MetricsServer(std::vector<const MetricsShard*> shards, const ModelTable& models,
                MetricsServerOptions options);
  ~MetricsServer();  // stops
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  // Binds and listens on the caller's thread (so a bad address fails start-up with one line),
  // then starts the serving thread.
  [[nodiscard]] bool start(std::string* error);
  void stop();
  // The bound port (useful when listening on port 0); 0 before start().
  [[nodiscard]] std::uint16_t port() const { return port_; }

 private:
  struct Loop;

  std::vector<const MetricsShard*> shards_;
  const ModelTable& models_;
  MetricsServerOptions options_;
  std::uint16_t port_ = 0;
  int listen_fd_ = -1;
  int wake_fd_ = -1;
  std::unique_ptr<Loop> loop_;
  std::thread thread_;
};

}  // namespace tokentap
