// Soak (see soak.h): phase 1 (the burst of concurrent slow streams) and phase 2 (mixed traffic).
#include <algorithm>
#include <thread>

#include <fmt/format.h>

#include "soak.h"

namespace tokentap::soak {
namespace {

constexpr std::uint64_t burst_timeout_ms = 180'000;  // open + the longest stream + slack
constexpr std::uint64_t burst_sample_ms = 1'000;
constexpr std::uint64_t peak_wait_ms = 10'000;       // tokentap accepting the last connections
constexpr std::uint32_t slow_first_start_ms_max = 2'000;  // spread of the first slow streams

}  // namespace

// Phase 1. Each connection carries one slow stream; all connections are open at once. Streams
// beyond the descriptor budget (tokentap needs one fd per client and one per upstream
// connection, under RLIMIT_NOFILE) wait on their open connection and start as others finish.
bool Soak::burst() {
  Sample s;
  if (!take_sample(&s)) return false;
  const std::uint64_t used = std::uint64_t{s.proc.fds} + options_.burst + fd_margin;
  const std::uint64_t budget = results_.nofile_hard > used ? results_.nofile_hard - used : 0;
  const std::uint32_t streams =
      static_cast<std::uint32_t>(std::min<std::uint64_t>(options_.burst, budget));
  results_.burst_streams = streams;
  if (streams < options_.burst) {
    results_.notes.push_back(fmt::format(
        "Burst: {} connections open at once, {} streams at once: tokentap needs one fd per client "
        "connection and one per upstream connection, and RLIMIT_NOFILE's hard limit here is {} "
        "(no CAP_SYS_RESOURCE to raise it). The other {} connections stay open and idle until "
        "streams finish, then each carries its own stream.",
        options_.burst, streams, results_.nofile_hard, options_.burst - streams));
  }
  const Template& t = catalog_.burst();
  const auto variants = static_cast<std::uint32_t>(t.requests.size());
  const std::uint64_t t0 = monotonic_ms();
  std::uint32_t opened = 0;
  while (opened < options_.burst) {
    const std::uint64_t due = (monotonic_ms() - t0) * burst_open_per_s / 1000 + 1;
    while (opened < std::min<std::uint64_t>(due, options_.burst)) {
      const std::uint32_t id = open_as(Role::burst);
      if (id == conn_none) {
        ++burst_finished_;  // counted as unexpected by the client
      } else if (opened < streams) {
        client_.start(id, t, opened % variants, false, monotonic_ms());
      } else {
        burst_held_.push_back(id);
      }
      ++opened;
    }
    pump(5);
  }
  const double open_s = static_cast<double>(monotonic_ms() - t0) / 1000.0;
  (void)wait_for(peak_wait_ms, [&] { return client_.connecting_count() == 0; });
  burst_sample_peak();
  std::uint64_t next_sample = monotonic_ms() + burst_sample_ms;
  const bool finished = wait_for(burst_timeout_ms, [&] {
    if (monotonic_ms() >= next_sample && take_sample(&s)) {
      burst_peak_rss_kib_ = std::max(burst_peak_rss_kib_, s.proc.rss_kib);
      burst_peak_fds_ = std::max(burst_peak_fds_, s.proc.fds);
      next_sample = monotonic_ms() + burst_sample_ms;
    }
    return burst_finished_ >= options_.burst;
  });
  const TallyRow& row = tally_.row(t.index);
  check("burst: every stream complete and byte-exact", fmt::format("{}", options_.burst),
        fmt::format("{} (unexpected {})", row.completed, row.unexpected),
        finished && row.completed == options_.burst);
  results_.burst_kib_per_stream =
      static_cast<double>(burst_peak_rss_kib_ - std::min(burst_peak_rss_kib_, warm_rss_kib_)) /
      std::max<std::uint32_t>(streams, 1);
  results_.notes.push_back(fmt::format(
      "Burst: {} connections opened in {:.1f} s; peak over the phase: RSS {:.1f} MiB, {} fds; "
      "{:.1f} KiB of RSS per concurrent stream (client + upstream connection) above the warm "
      "baseline.",
      options_.burst, open_s, mib(burst_peak_rss_kib_), burst_peak_fds_,
      results_.burst_kib_per_stream));

  client_.close_all();
  const std::uint64_t closed_at = monotonic_ms();
  const bool quiet = wait_quiet(&s);
  const bool rss_back = wait_for(recovery_timeout_ms, [&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
    return take_sample(&s) && s.proc.rss_kib <= warm_rss_kib_ + rss_tolerance_kib;
  });
  results_.burst_recovery_ms = monotonic_ms() - closed_at;
  add_phase("1 burst closed", s,
            fmt::format("back after {} ms; {} pooled upstream connections",
                        results_.burst_recovery_ms, s.upstream_sockets));
  check("burst: after close, fds = fresh + pooled upstream",
        fmt::format("{} + {}", fresh_fds_, s.upstream_sockets), fmt::format("{}", s.proc.fds),
        quiet);
  check("burst: after close, RSS - warm baseline", fmt::format("<= {} KiB", rss_tolerance_kib),
        fmt::format("{:+} KiB", static_cast<std::int64_t>(s.proc.rss_kib) -
                                    static_cast<std::int64_t>(warm_rss_kib_)),
        rss_back);
  return tokentap_.alive();
}

// All connections are open: wait until tokentap has accepted them all, then sample.
void Soak::burst_sample_peak() {
  Sample s;
  (void)wait_for(peak_wait_ms, [&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    return take_sample(&s) && s.metrics.connections_open >= client_.open_count();
  });
  burst_peak_rss_kib_ = std::max(burst_peak_rss_kib_, s.proc.rss_kib);
  burst_peak_fds_ = std::max(burst_peak_fds_, s.proc.fds);
  add_phase("1 burst, all open", s,
            fmt::format("{} streams in flight at tokentap (active_requests), {} upstream sockets",
                        s.metrics.active_requests, s.upstream_sockets));
  check("burst: tokentap holds every connection at once", fmt::format("{}", options_.burst),
        fmt::format("{}", s.metrics.connections_open),
        s.metrics.connections_open == options_.burst);
}

void Soak::on_burst_done(const Done& d) {
  ++burst_finished_;
  while (!burst_held_.empty()) {
    const std::uint32_t id = burst_held_.back();
    burst_held_.pop_back();
    if (!client_.connected(id) || client_.busy(id) || roles_[id] != Role::burst) continue;
    const Template& t = catalog_.burst();
    client_.start(id, t, id % static_cast<std::uint32_t>(t.requests.size()), false,
                  monotonic_ms());
    return;
  }
  (void)d;
}

// Phase 2: slow streams churning plus fast mixed requests for --duration seconds.
bool Soak::mixed() {
  stopping_ = false;
  const std::uint64_t t0 = monotonic_ms();
  for (std::uint32_t i = 0; i < options_.fast; ++i) {
    const std::uint32_t id = open_as(Role::fast);
    if (id != conn_none) start_fast(id, Role::fast);
  }
  std::uint32_t opened = 0;
  std::uint64_t next_sample = t0;
  const std::uint64_t end = t0 + std::uint64_t{options_.duration_s} * 1000;
  while (monotonic_ms() < end) {
    const std::uint64_t now = monotonic_ms();
    const std::uint64_t due = std::min<std::uint64_t>(
        options_.slow, (now - t0) * slow_open_per_s / 1000 + 1);
    while (opened < due) {
      ++opened;
      const std::uint32_t id = open_as(Role::slow);
      if (id == conn_none) continue;
      timers_.push(Timer{now + rng_.below(slow_first_start_ms_max), id, client_.generation(id)});
    }
    if (now >= next_sample) {
      mixed_sample(t0);
      next_sample += sample_interval_ms;
      if (!tokentap_.alive()) {
        check("tokentap alive during the soak", "running", tokentap_.how_ended(), false);
        return false;
      }
    }
    pump(10);
  }
  stopping_ = true;
  mixed_sample(t0);
  const bool drained = wait_for(drain_timeout_ms, [&] { return client_.busy_count() == 0; });
  results_.mixed_seconds = static_cast<double>(monotonic_ms() - t0) / 1000.0;
  check("soak: in-flight streams finish after traffic stops", "all",
        drained ? "all" : fmt::format("{} left", client_.busy_count()), drained);
  client_.close_all();
  while (!timers_.empty()) timers_.pop();
  return tokentap_.alive();
}

void Soak::start_slow(std::uint32_t id) {
  const Template& t = catalog_.pick_slow(rng_);
  const std::uint32_t variant = rng_.below(static_cast<std::uint32_t>(t.requests.size()));
  client_.start(id, t, variant, rng_.chance(slow_abort_per_mille), monotonic_ms());
}

void Soak::start_fast(std::uint32_t id, Role role) {
  const Template& t = catalog_.pick_fast(rng_);
  if (t.upload && options_.upload_fresh_conn && client_.connected(id)) {
    // Work-around flag for the tokentap crash described in README.md ("Findings").
    client_.close_idle(id);
    id = open_as(role);
    if (id == conn_none) return;
  }
  client_.start(id, t, 0, false, monotonic_ms());
}

void Soak::on_slow_done(const Done& d) {
  const std::uint64_t now = monotonic_ms();
  const std::uint64_t pause = rng_.below(slow_pause_ms_max);
  if (stopping_) {
    if (d.open) client_.close_idle(d.id);
    return;
  }
  if (!d.open || rng_.chance(slow_reconnect_per_mille)) {
    if (d.open) client_.close_idle(d.id);
    timers_.push(Timer{now + pause, conn_none, 0});  // reopen
    return;
  }
  timers_.push(Timer{now + pause, d.id, client_.generation(d.id)});
}

void Soak::on_fast_done(const Done& d) {
  if (stopping_) {
    if (d.open) client_.close_idle(d.id);
    return;
  }
  std::uint32_t id = d.id;
  if (!d.open) id = open_as(Role::fast);
  if (id != conn_none) start_fast(id, Role::fast);
}

void Soak::run_timers(std::uint64_t now_ms) {
  while (!timers_.empty() && timers_.top().due_ms <= now_ms) {
    const Timer t = timers_.top();
    timers_.pop();
    if (t.id == conn_none) {
      if (stopping_) continue;
      const std::uint32_t id = open_as(Role::slow);
      if (id != conn_none) start_slow(id);
      continue;
    }
    if (client_.generation(t.id) != t.gen || roles_[t.id] != Role::slow) continue;
    if (client_.busy(t.id)) continue;
    if (stopping_) {
      client_.close_idle(t.id);
    } else {
      start_slow(t.id);
    }
  }
}

void Soak::mixed_sample(std::uint64_t t0_ms) {
  Sample s;
  if (!take_sample(&s)) return;
  results_.series.push_back(SeriesRow{(monotonic_ms() - t0_ms + 500) / 1000, client_.open_count(),
                                      client_.busy_count(), s.metrics.connections_open,
                                      s.proc.rss_kib, s.proc.fds, s.upstream_sockets,
                                      tally_.total().finished(), tally_.unexpected_total()});
}

}  // namespace tokentap::soak
