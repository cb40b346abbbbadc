// Markdown rendering of the soak's results (see report.h).
#include "report.h"

#include <algorithm>
#include <iterator>

#include <fmt/format.h>

#include "catalog.h"
#include "proc_sample.h"
#include "tally.h"

namespace tokentap::soak {
namespace {

using Out = std::back_insert_iterator<std::string>;

void config_section(Out out, const Results& r) {
  const Options& o = r.options;
  fmt::format_to(out, "## Configuration\n\n| | |\n|---|---|\n");
  fmt::format_to(out, "| started | {} |\n| host | {} |\n", r.started_utc, r.host);
  fmt::format_to(out, "| RLIMIT_NOFILE (hard, per process) | {} |\n", r.nofile_hard);
  fmt::format_to(out, "| tokentap | `{}` |\n", r.tokentap_command);
  fmt::format_to(out,
                 "| fake upstream | in a forked child of the soak, 1 worker thread, "
                 "127.0.0.1:{} |\n",
                 o.port_base + 2);
  fmt::format_to(out, "| client | 1 thread, epoll (edge-triggered), non-blocking sockets |\n");
  fmt::format_to(out,
                 "| flags | --burst {} --slow {} --fast {} --duration {} --warmup {} "
                 "--seed {}{} |\n",
                 o.burst, o.slow, o.fast, o.duration_s, o.warmup, o.seed,
                 o.upload_fresh_conn ? " --upload-fresh-conn" : "");
  fmt::format_to(out, "| wall time | {:.0f} s (phase 2: {:.0f} s) |\n\n", r.wall_seconds,
                 r.mixed_seconds);
}

void phase_section(Out out, const Results& r) {
  fmt::format_to(out,
                 "## Phases\n\n| phase | client conns | requests in flight | tokentap conns "
                 "| RSS MiB | fds | note |\n|---|--:|--:|--:|--:|--:|---|\n");
  for (const PhaseRow& p : r.phases) {
    fmt::format_to(out, "| {} | {} | {} | {:.0f} | {:.1f} | {} | {} |\n", p.phase, p.client_conns,
                   p.streams, p.tokentap_conns, mib(p.rss_kib), p.fds, p.note);
  }
  fmt::format_to(out, "\n");
  for (const std::string& n : r.notes) fmt::format_to(out, "- {}\n", n);
  if (!r.notes.empty()) fmt::format_to(out, "\n");
}

void check_section(Out out, const Results& r) {
  fmt::format_to(out, "## Checks\n\n| check | expected | measured | result |\n|---|---|---|---|\n");
  for (const Check& c : r.checks) {
    fmt::format_to(out, "| {} | {} | {} | {} |\n", c.name, c.expected, c.measured,
                   c.pass ? "pass" : "**FAIL**");
  }
  fmt::format_to(out, "\n**Result: {}**\n\n", all_passed(r) ? "PASS" : "FAIL");
}

void request_section(Out out, const Catalog& catalog, const Tally& tally) {
  fmt::format_to(out,
                 "## Requests by kind (client side, all phases)\n\n| kind | requests | completed "
                 "| upstream reset (expected) | client aborts | unexpected |\n"
                 "|---|--:|--:|--:|--:|--:|\n");
  for (const Template& t : catalog.all()) {
    const TallyRow& row = tally.row(t.index);
    if (row.started == 0) continue;
    fmt::format_to(out, "| {} | {} | {} | {} | {} | {} |\n", t.name, row.started, row.completed,
                   row.upstream_cut, row.client_aborted, row.unexpected);
  }
  const TallyRow& tot = tally.total();
  fmt::format_to(out, "| **total** | {} | {} | {} | {} | {} |\n\n", tot.started, tot.completed,
                 tot.upstream_cut, tot.client_aborted, tally.unexpected_total());
  if (!tally.reasons().empty()) {
    fmt::format_to(out, "Unexpected outcomes by reason:\n\n");
    for (const auto& [reason, n] : tally.reasons()) fmt::format_to(out, "- {} × {}\n", n, reason);
    fmt::format_to(out, "\nFirst examples:\n\n");
    for (const std::string& e : tally.examples()) fmt::format_to(out, "- {}\n", e);
    fmt::format_to(out, "\n");
  }
}

void metrics_section(Out out, const Results& r) {
  const MetricSums& m = r.metrics;
  fmt::format_to(out, "## Counters at the end\n\n| | tokentap /metrics | fake upstream |\n"
                      "|---|--:|--:|\n");
  fmt::format_to(out, "| prompt tokens | {:.0f} | {} |\n", m.prompt_tokens,
                 r.fake.prompt_tokens_sent);
  fmt::format_to(out, "| completion tokens | {:.0f} | {} |\n", m.completion_tokens,
                 r.fake.completion_tokens_sent);
  fmt::format_to(out, "| requests | {:.0f} | {} |\n", m.requests, r.fake.requests);
  fmt::format_to(out, "| upstream connections accepted | | {} |\n", r.fake.connections_accepted);
  fmt::format_to(out, "| connections accepted / rejected | {:.0f} / {:.0f} | |\n",
                 m.connections_total, m.connections_rejected);
  fmt::format_to(out, "| client aborts | {:.0f} | |\n| usage missing | {:.0f} | |\n",
                 m.client_aborts, m.usage_missing);
  std::string kinds;
  for (const auto& [kind, n] : m.upstream_errors_by_kind) {
    kinds += fmt::format("{}{}={:.0f}", kinds.empty() ? "" : ", ", kind, n);
  }
  fmt::format_to(out, "| upstream errors | {:.0f} ({}) | |\n", m.upstream_errors,
                 kinds.empty() ? "none" : kinds);
  std::string statuses;
  for (const auto& [status, n] : m.requests_by_status) {
    statuses += fmt::format("{}{}: {:.0f}", statuses.empty() ? "" : ", ", status, n);
  }
  fmt::format_to(out, "| requests by status | {} | |\n", statuses);
  fmt::format_to(out, "| exposition | {} samples, {} bytes | |\n\n", m.series, m.bytes);
}

void series_section(Out out, const Results& r) {
  if (r.series.empty()) return;
  fmt::format_to(out,
                 "## Phase 2 time series (every 10 s)\n\n| t s | client conns | in flight | "
                 "tokentap conns | RSS MiB | fds | upstream sockets | requests done | unexpected "
                 "|\n|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n");
  for (const SeriesRow& s : r.series) {
    fmt::format_to(out, "| {} | {} | {} | {:.0f} | {:.1f} | {} | {} | {} | {} |\n", s.t_s,
                   s.client_conns, s.streams, s.tokentap_conns, mib(s.rss_kib), s.fds,
                   s.upstream_sockets, s.requests, s.unexpected);
  }
  const auto [lo, hi] = std::minmax_element(
      r.series.begin(), r.series.end(),
      [](const SeriesRow& a, const SeriesRow& b) { return a.rss_kib < b.rss_kib; });
  const SeriesRow& first = r.series.size() > 1 ? r.series[1] : r.series.front();
  const SeriesRow& last = r.series.back();
  const double secs = static_cast<double>(last.t_s - r.series.front().t_s);
  fmt::format_to(out,
                 "\nRSS over phase 2: min {:.1f} MiB, max {:.1f} MiB; from t={} s to t={} s "
                 "{:+.1f} MiB. Client-side rate: {:.0f} requests/s.\n\n",
                 mib(lo->rss_kib), mib(hi->rss_kib), first.t_s, last.t_s,
                 (static_cast<double>(last.rss_kib) - static_cast<double>(first.rss_kib)) / 1024.0,
                 secs > 0 ? static_cast<double>(last.requests - r.series.front().requests) / secs
                          : 0.0);
}

}  // namespace

bool all_passed(const Results& r) {
  if (r.checks.empty()) return false;
  return std::all_of(r.checks.begin(), r.checks.end(), [](const Check& c) { return c.pass; });
}

std::string render_report(const Results& r, const Catalog& catalog, const Tally& tally) {
  std::string s;
  Out out(s);
  fmt::format_to(out, "# tokentap soak: {}\n\n", all_passed(r) ? "PASS" : "FAIL");
  fmt::format_to(out,
                 "Generated by `tools/soak/run.sh` (issue 5, \"Load and soak\"). Phases: 0 fresh "
                 "process and warm-up, 1 burst of concurrent slow streams, 2 mixed soak, 3 end "
                 "checks.\n\n");
  config_section(out, r);
  check_section(out, r);
  phase_section(out, r);
  metrics_section(out, r);
  request_section(out, catalog, tally);
  series_section(out, r);
  return s;
}

}  // namespace tokentap::soak
