// TestProxy: a real tokentap Server (all shards, real rings) on 127.0.0.1 ephemeral ports, in
// front of a test upstream, plus helpers to read its /metrics.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tokentap/app/server.h"

namespace tokentap::test {

class TestProxy {
 public:
  // upstream_port 0: no --upstream flag (the backends come from extra_args, e.g. --config).
  explicit TestProxy(std::uint16_t upstream_port, int threads = 2,
                     std::vector<std::string> extra_args = {});
  // False when the server could not start (io_uring missing or disabled): tests GTEST_SKIP.
  [[nodiscard]] bool started() const { return started_; }
  [[nodiscard]] const std::string& error() const { return error_; }
  [[nodiscard]] std::uint16_t port() const { return server_->port(); }
  // GET /metrics from the metrics listener.
  [[nodiscard]] std::string scrape() const;
  void stop(std::uint32_t drain_ms) { server_->stop(drain_ms); }
  void reopen_access_log() { server_->reopen_access_log(); }
  // What SIGHUP does: re-read --config FILE's backends; *message is the log line.
  bool reload(std::string* message) { return server_->reload(message); }

 private:
  std::unique_ptr<Server> server_;
  bool started_ = false;
  std::string error_;
};

// The value of the sample whose name and labels are exactly `series`, or -1 when absent.
[[nodiscard]] double metric(const std::string& exposition, const std::string& series);
// The sum of a family's samples whose label text contains `filter` ("" for all of them).
[[nodiscard]] double metric_sum(const std::string& exposition, const std::string& family,
                                const std::string& filter = "");

}  // namespace tokentap::test

#define TT_START_PROXY(name, ...)                                 \
  ::tokentap::test::TestProxy name(__VA_ARGS__);                  \
  if (!name.started()) GTEST_SKIP() << "proxy did not start (io_uring unavailable?): " \
                                    << name.error()
