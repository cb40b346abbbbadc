// Soak: the phase driver. It owns the fake upstream (a forked child), the tokentap child, the
// epoll client and the results, and runs the phases of issue 5's soak in order:
//
//   0 baseline  fds of the fresh process; a warm-up of mixed requests (every template, every
//               metrics series, all provided buffers touched); the RSS baseline.
//   1 burst     N client connections opened at burst_open_per_s, each with one slow NDJSON
//               stream, all open at once; peak RSS/fds; every stream must complete; then all
//               closed and fds/RSS must return (fds = fresh + pooled upstream connections).
//   2 mixed     --duration seconds of slow streams churning on keep-alive connections (some
//               reconnecting, some aborted by the client after their first chunk) plus --fast
//               connections doing back-to-back mixed requests; a sample every 10 s.
//   3 end       traffic drained and closed; token counters on /metrics equal what the fake
//               reported; requests_total equals what the client finished; with the fake stopped
//               the fds equal the fresh baseline exactly; RSS within tolerance of the baseline;
//               SIGTERM exits 0.
//
// Connection roles tell the Done handler which phase logic owns a connection. Timers (a
// min-heap) start slow streams after a pause and reopen connections.
#pragma once

#include <cstdint>
#include <functional>
#include <queue>
#include <string>
#include <vector>

#include "blocking_http.h"
#include "catalog.h"
#include "client.h"
#include "clock.h"
#include "fake_process.h"
#include "options.h"
#include "proc_sample.h"
#include "report.h"
#include "tally.h"
#include "tokentap_process.h"

namespace tokentap::soak {

// Limits and tolerances (units last). Why these values: README.md, "Checks".
constexpr std::uint64_t rss_tolerance_kib = 2 * 1024;    // final and post-burst RSS vs warm
constexpr std::uint64_t recovery_timeout_ms = 15'000;    // fds/RSS back after a phase
constexpr std::uint64_t settle_ms = 2'500;               // > 2 slab-trim ticks (1 s each)
constexpr std::uint32_t burst_open_per_s = 2'500;
constexpr std::uint32_t slow_open_per_s = 2'000;
constexpr std::uint32_t fd_margin = 64;                  // tokentap descriptors kept spare
constexpr std::uint64_t sample_interval_ms = 10'000;     // phase-2 time series
constexpr std::uint64_t drain_timeout_ms = 90'000;       // in-flight streams at phase end
constexpr std::uint32_t slow_pause_ms_max = 1'000;       // between two streams on a connection
constexpr std::uint32_t slow_reconnect_per_mille = 100;  // a slow connection closes after a stream
constexpr std::uint32_t slow_abort_per_mille = 30;       // the client aborts after the 1st chunk
constexpr std::uint32_t warm_fast_conns_max = 32;
// 256 KiB bodies in the warm-up: 96 MiB, three times both shards' 2 × 16 MiB of buffers.
constexpr std::uint32_t warm_big_requests = 384;

enum class Role : std::uint8_t { none, warm_fast, warm_slow, burst, slow, fast };

struct Sample {
  ProcSample proc;
  MetricSums metrics;
  std::uint32_t upstream_sockets = 0;
};

class Soak {
 public:
  explicit Soak(const Options& options);
  // Runs every phase; the process exit status (0 only if every check passed).
  int run();

 private:
  struct Timer {
    std::uint64_t due_ms;
    std::uint32_t id;   // conn_none: open a new slow connection
    std::uint32_t gen;
    bool operator>(const Timer& o) const { return due_ms > o.due_ms; }
  };

  // soak.cc: set-up, warm-up, end checks, plumbing.
  [[nodiscard]] bool setup();
  [[nodiscard]] bool warm_up();
  void finish_checks();
  void pump(int timeout_ms);
  void on_done(const Done& d);
  [[nodiscard]] bool take_sample(Sample* s);
  [[nodiscard]] bool wait_for(std::uint64_t timeout_ms, const std::function<bool()>& ready);
  [[nodiscard]] bool wait_quiet(Sample* s);
  void add_phase(std::string name, const Sample& s, std::string note);
  void check(std::string name, std::string expected, std::string measured, bool pass);
  void on_warm_done(const Done& d);
  void start_warm(std::uint32_t id);
  [[nodiscard]] std::uint32_t open_as(Role role);

  // soak_load.cc: phases 1 and 2.
  [[nodiscard]] bool burst();
  void on_burst_done(const Done& d);
  void burst_sample_peak();
  [[nodiscard]] bool mixed();
  void on_slow_done(const Done& d);
  void on_fast_done(const Done& d);
  void start_slow(std::uint32_t id);
  void start_fast(std::uint32_t id, Role role);
  void run_timers(std::uint64_t now_ms);
  void mixed_sample(std::uint64_t t0_ms);

  Options options_;
  Catalog catalog_;
  Tally tally_;
  Client client_;
  FakeProcess fake_;
  TokentapProcess tokentap_;
  Rng rng_;
  Results results_;
  std::vector<Role> roles_;
  std::priority_queue<Timer, std::vector<Timer>, std::greater<>> timers_;
  std::uint16_t proxy_port_;
  std::uint16_t metrics_port_;
  std::uint16_t fake_port_;
  fake::Stats reference_stats_;  // the fake's counters after the reference fetches
  std::uint32_t fresh_fds_ = 0;
  std::uint64_t warm_rss_kib_ = 0;
  std::uint64_t next_expire_ms_ = 0;
  bool stopping_ = false;

  // Warm-up state.
  std::uint32_t warm_left_ = 0;      // fast requests still to start
  std::uint32_t warm_big_left_ = 0;  // 256 KiB-body requests still to start (first)

  // Burst state.
  std::vector<std::uint32_t> burst_held_;  // open connections whose stream waits (fd budget)
  std::uint32_t burst_finished_ = 0;
  std::uint64_t burst_peak_rss_kib_ = 0;
  std::uint32_t burst_peak_fds_ = 0;

  // Mixed state.
  std::uint32_t slow_open_ = 0;  // slow connections open or scheduled to reopen
};

}  // namespace tokentap::soak
