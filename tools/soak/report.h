// Report: the soak's figures as markdown (written to stdout and, with --report, to a file).
// Everything here is plain data filled by the phase driver; rendering has no side effects.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "blocking_http.h"
#include "fake_upstream.h"
#include "options.h"

namespace tokentap::soak {

class Catalog;
class Tally;

// One row of the per-phase table.
struct PhaseRow {
  std::string phase;
  std::uint32_t client_conns = 0;   // open on the client side
  std::uint32_t streams = 0;        // requests in flight
  double tokentap_conns = 0;        // tokentap_connections_open
  std::uint64_t rss_kib = 0;
  std::uint32_t fds = 0;
  std::string note;
};

// One sample of the phase-2 time series.
struct SeriesRow {
  std::uint64_t t_s = 0;
  std::uint32_t client_conns = 0;
  std::uint32_t streams = 0;
  double tokentap_conns = 0;
  std::uint64_t rss_kib = 0;
  std::uint32_t fds = 0;
  std::uint32_t upstream_sockets = 0;
  std::uint64_t requests = 0;  // client side, finished so far
  std::uint64_t unexpected = 0;
};

struct Check {
  std::string name;
  std::string expected;
  std::string measured;
  bool pass = false;
};

struct Results {
  Options options;
  std::string started_utc;
  std::string host;  // kernel, CPUs
  std::uint64_t nofile_hard = 0;
  std::string tokentap_command;
  std::uint32_t burst_streams = 0;  // concurrent streams in phase 1 (≤ burst, fd budget)
  std::uint64_t burst_recovery_ms = 0;
  double burst_kib_per_stream = 0;
  double mixed_seconds = 0;
  std::vector<PhaseRow> phases;
  std::vector<SeriesRow> series;
  std::vector<Check> checks;
  std::vector<std::string> notes;
  fake::Stats fake;        // tokens the fake reported through tokentap (references subtracted)
  MetricSums metrics;      // final scrape
  int tokentap_exit = -1;
  double wall_seconds = 0;
};

[[nodiscard]] bool all_passed(const Results& r);
[[nodiscard]] std::string render_report(const Results& r, const Catalog& catalog,
                                        const Tally& tally);

}  // namespace tokentap::soak
