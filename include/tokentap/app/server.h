// Server: starts one Shard per configured thread, each on its own thread with its own
// SO_REUSEPORT listener and its own MetricsShard, plus the metrics listener that merges the
// shards on each scrape, and stops them all. The listeners are opened here, on the caller's thread,
// so a bad address fails start() synchronously and port 0 (tests) resolves to one port that
// every shard shares.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "tokentap/base/config.h"

namespace tokentap {

class Shard;
class MetricsShard;
class MetricsServer;
class ModelTable;
class AccessLog;
class Fleet;
class Prober;
class Catalog;
class FanOutService;
struct BackendCounters;
struct BackendGauge;

constexpr int listen_backlog = 4096;

class Server {
 public:
  explicit Server(Config config);
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;
  ~Server();

  // Opens the listeners and starts every shard; returns once all are accepting or one failed.
  [[nodiscard]] bool start(std::string* error);
  // Asks every shard to stop and joins their threads. With drain_ms > 0, requests in progress
  // get that long to finish first (SIGTERM); new connections are refused at once.
  void stop(std::uint32_t drain_ms = 0);
  std::uint16_t port() const { return port_; }
  std::uint16_t metrics_port() const;
  // SIGUSR1: reopen the access log file (logrotate moved it).
  void reopen_access_log();
  // SIGHUP: re-reads --config FILE's backends and applies them to the running fleet (added,
  // removed, changed; nothing in flight is cut). A file that would not start tokentap is
  // refused and the running configuration stays. *message is the one log line to write.
  bool reload(std::string* message);
  const Config& config() const { return config_; }
  int shard_count() const { return static_cast<int>(shards_.size()); }
  const char* features() const;

 private:
  [[nodiscard]] int open_listener(const Endpoint& ep, std::string* error);
  void build_fleet();
  [[nodiscard]] bool start_fan_out(std::string* error);
  [[nodiscard]] bool start_shards(std::string* error);
  [[nodiscard]] std::size_t backend_gauges(BackendGauge* out, const BackendCounters** counters,
                                           std::size_t max) const;

  Config config_;
  std::uint16_t port_ = 0;
  std::vector<int> listen_fds_;
  std::unique_ptr<ModelTable> models_;
  // The backends (issue 16): shared by every shard, watched by the prober when there are
  // several; counters the prober and the shards add to, read by the metrics thread.
  std::unique_ptr<Fleet> fleet_;
  std::unique_ptr<std::array<BackendCounters, backends_max>> backend_counters_;
  std::unique_ptr<Catalog> catalog_;  // the fleet's union model lists (prober → shards)
  std::unique_ptr<Prober> prober_;
  std::unique_ptr<FanOutService> fan_out_;  // pull, delete, copy to every backend
  std::unique_ptr<AccessLog> access_log_;
  std::vector<std::unique_ptr<MetricsShard>> metrics_;
  std::unique_ptr<MetricsServer> metrics_server_;
  std::vector<std::unique_ptr<Shard>> shards_;
  std::vector<std::thread> threads_;
  std::string features_;
};

// Raises RLIMIT_NOFILE's soft limit to its hard limit: every connection costs two descriptors.
void raise_fd_limit();

}  // namespace tokentap
