// ProcessStats: the standard process_* metrics, read from /proc on each scrape (never on the
// data path). Names and units follow the Prometheus client libraries:
//   process_cpu_seconds_total      utime + stime from /proc/self/stat, in seconds
//   process_resident_memory_bytes  resident pages from /proc/self/statm times the page size
//   process_open_fds               entries of /proc/self/fd (minus the one used to list it)
//   process_start_time_seconds     /proc/stat btime + /proc/self/stat starttime, Unix seconds
// A value that cannot be read stays empty and its family is left out of the scrape.
// Requires Linux procfs (any kernel tokentap runs on).
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace tokentap {

struct ProcessStats {
  std::optional<double> cpu_seconds;
  std::optional<std::uint64_t> resident_bytes;
  std::optional<std::uint64_t> open_fds;
  std::optional<double> start_time_seconds;
};

[[nodiscard]] ProcessStats read_process_stats();

// Pure parsers, exposed for tests.
struct ProcStat {
  std::uint64_t utime_ticks = 0;
  std::uint64_t stime_ticks = 0;
  std::uint64_t starttime_ticks = 0;  // since boot
};
// Parses /proc/<pid>/stat text; the comm field may hold spaces and parentheses.
[[nodiscard]] std::optional<ProcStat> parse_proc_stat(std::string_view text);
// The `btime` line of /proc/stat: boot time in Unix seconds.
[[nodiscard]] std::optional<std::uint64_t> parse_boot_time(std::string_view proc_stat);
// The second field of /proc/<pid>/statm: resident pages.
[[nodiscard]] std::optional<std::uint64_t> parse_statm_resident_pages(std::string_view text);

}  // namespace tokentap
