// Soak (see soak.h): set-up, phase 0 (baseline and warm-up), phase 3 (end checks), plumbing.
#include "soak.h"

#include <sys/resource.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <thread>

#include <fmt/format.h>

namespace tokentap::soak {
namespace {

constexpr int healthy_timeout_ms = 10'000;
constexpr int terminate_timeout_ms = 40'000;  // tokentap's drain is 30 s; nothing is in flight
constexpr std::uint64_t warm_timeout_ms = 180'000;
constexpr std::uint64_t quiet_poll_ms = 250;
constexpr std::uint32_t stable_fd_reads = 3;

std::string utc_now() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S UTC", &tm);
  return buf;
}

std::string host_text() {
  utsname u{};
  (void)uname(&u);
  return fmt::format("Linux {} {}, {} online CPUs", u.release, u.machine,
                     sysconf(_SC_NPROCESSORS_ONLN));
}

std::uint32_t capacity_for(const Options& o) {
  return std::max({o.burst, o.slow + o.fast, warm_fast_conns_max + 8}) + 1024;
}

}  // namespace

Soak::Soak(const Options& options)
    : options_(options),
      tally_(catalog_.all().size()),
      client_(options.port_base, capacity_for(options), catalog_, tally_),
      rng_(options.seed),
      roles_(capacity_for(options), Role::none),
      proxy_port_(options.port_base),
      metrics_port_(static_cast<std::uint16_t>(options.port_base + 1)),
      fake_port_(static_cast<std::uint16_t>(options.port_base + 2)) {}

int Soak::run() {
  const std::uint64_t t0 = monotonic_ms();
  results_.options = options_;
  results_.started_utc = utc_now();
  results_.host = host_text();
  const bool ran = setup() && warm_up() && burst() && mixed();
  if (!ran) check("every phase ran", "yes", "no (see the failed check above)", false);
  finish_checks();
  results_.wall_seconds = static_cast<double>(monotonic_ms() - t0) / 1000.0;
  const std::string md = render_report(results_, catalog_, tally_);
  std::fputs(md.c_str(), stdout);
  std::fflush(stdout);
  if (!options_.report.empty()) {
    if (FILE* f = std::fopen(options_.report.c_str(), "we")) {
      std::fputs(md.c_str(), f);
      std::fclose(f);
    } else {
      std::fprintf(stderr, "soak: cannot write %s\n", options_.report.c_str());
    }
  }
  return ran && all_passed(results_) ? 0 : 1;
}

bool Soak::setup() {
  rlimit lim{};
  (void)getrlimit(RLIMIT_NOFILE, &lim);
  lim.rlim_cur = lim.rlim_max;  // the hard limit is all we may have (no CAP_SYS_RESOURCE)
  (void)setrlimit(RLIMIT_NOFILE, &lim);
  results_.nofile_hard = lim.rlim_max;
  std::string error;
  // The fork comes first, while this process has no other thread.
  if (!fake_.start(fake_port_, &error)) {
    check("fake upstream starts", "listening", error, false);
    return false;
  }
  if (!catalog_.fetch_references(fake_port_, &error) || !fake_.stats(&reference_stats_)) {
    check("reference answers from the fake", "fetched and consistent", error, false);
    return false;
  }
  if (!client_.init(&error)) {
    check("client starts", "epoll", error, false);
    return false;
  }
  const std::uint32_t per_shard = options_.burst + options_.slow + options_.fast + 1024;
  const std::vector<std::string> args = {
      "--listen",          fmt::format("127.0.0.1:{}", proxy_port_),
      "--metrics-listen",  fmt::format("127.0.0.1:{}", metrics_port_),
      "--upstream",        fmt::format("http://127.0.0.1:{}", fake_port_),
      "--threads",         std::to_string(options_.threads),
      "--max-connections", std::to_string(per_shard)};
  results_.tokentap_command = options_.tokentap;
  for (const std::string& a : args) results_.tokentap_command += " " + a;
  if (!tokentap_.start(options_.tokentap, args, options_.tokentap_log, &error) ||
      !tokentap_.wait_healthy(metrics_port_, healthy_timeout_ms)) {
    check("tokentap starts", "/healthz ok", error.empty() ? "no /healthz" : error, false);
    return false;
  }
  // The fresh baseline: no traffic yet. Read until stable (the /healthz connection closing).
  Sample s;
  std::uint32_t same = 0;
  std::uint32_t last = 0;
  const bool stable = wait_for(recovery_timeout_ms, [&] {
    if (!take_sample(&s)) return false;
    same = s.proc.fds == last ? same + 1 : 0;
    last = s.proc.fds;
    std::this_thread::sleep_for(std::chrono::milliseconds(quiet_poll_ms));
    return same + 1 >= stable_fd_reads;
  });
  fresh_fds_ = s.proc.fds;
  add_phase("0 fresh process", s, "no traffic yet: the fd baseline");
  if (!stable) check("fresh fds stable", "3 equal reads", "unstable", false);
  return stable;
}

std::uint32_t Soak::open_as(Role role) {
  const std::uint32_t id = client_.open(monotonic_ms());
  if (id != conn_none) roles_[id] = role;
  return id;
}

// Every fast template many times and a client abort on each slow stream dialect, so every
// metrics series, model name and provided buffer tokentap will use exists before the baseline.
bool Soak::warm_up() {
  warm_left_ = options_.warmup;
  warm_big_left_ = warm_big_requests;
  const std::uint32_t conns = std::min(options_.fast, warm_fast_conns_max);
  for (std::uint32_t i = 0; i < conns && warm_left_ > 0; ++i) {
    const std::uint32_t id = open_as(Role::warm_fast);
    if (id == conn_none) continue;
    start_warm(id);
  }
  for (const Template* t : catalog_.slow()) {
    if (t->tokens != catalog_.slow().front()->tokens) continue;  // one per dialect
    const std::uint32_t id = open_as(Role::warm_slow);
    if (id != conn_none) client_.start(id, *t, 0, true, monotonic_ms());
  }
  const bool drained = wait_for(warm_timeout_ms, [&] { return client_.open_count() == 0; });
  if (!drained) {
    client_.close_all();
    check("warm-up finishes", "all requests answered", "timed out", false);
    return false;
  }
  Sample s;
  const bool quiet = wait_quiet(&s);
  std::this_thread::sleep_for(std::chrono::milliseconds(settle_ms));
  if (!take_sample(&s)) return false;
  warm_rss_kib_ = s.proc.rss_kib;
  add_phase("0 warm baseline", s,
            fmt::format("after {} warm-up requests; {} pooled upstream connections",
                        tally_.total().started, s.upstream_sockets));
  check("warm-up: connections closed, fds = fresh + pooled upstream", "true",
        quiet ? "true" : "false", quiet);
  return true;
}

void Soak::on_warm_done(const Done& d) {
  if (roles_[d.id] == Role::warm_slow) {
    if (d.open) client_.close_idle(d.id);
    return;
  }
  if (warm_left_ == 0) {
    if (d.open) client_.close_idle(d.id);
    return;
  }
  std::uint32_t id = d.id;
  if (!d.open) id = open_as(Role::warm_fast);
  if (id != conn_none) start_warm(id);
}

// The big-body requests first (they touch every buffer page), then the fast mix.
void Soak::start_warm(std::uint32_t id) {
  if (warm_big_left_ > 0) {
    --warm_big_left_;
    client_.start(id, catalog_.warm_big(), 0, false, monotonic_ms());
    return;
  }
  --warm_left_;
  start_fast(id, Role::warm_fast);
}

void Soak::pump(int timeout_ms) {
  client_.poll(timeout_ms, monotonic_ms());
  const std::uint64_t now = monotonic_ms();
  if (now >= next_expire_ms_) {
    client_.expire(now);
    next_expire_ms_ = now + 1000;
  }
  std::vector<Done>& done = client_.done();
  for (std::size_t i = 0; i < done.size(); ++i) {
    const Done d = done[i];  // handlers may append (a start that fails at once)
    on_done(d);
  }
  done.clear();
  run_timers(now);
}

void Soak::on_done(const Done& d) {
  switch (roles_[d.id]) {
    case Role::warm_fast:
    case Role::warm_slow:
      on_warm_done(d);
      return;
    case Role::burst:
      on_burst_done(d);
      return;
    case Role::slow:
      on_slow_done(d);
      return;
    case Role::fast:
      on_fast_done(d);
      return;
    case Role::none:
      return;
  }
}

bool Soak::take_sample(Sample* s) {
  // fds first: the scrape's own connection must not be in the count.
  if (!sample_process(tokentap_.pid(), &s->proc)) return false;
  s->upstream_sockets = count_sockets_to(fake_port_);
  std::string error;
  if (!scrape_metrics(metrics_port_, &s->metrics, &error)) {
    std::fprintf(stderr, "soak: scrape failed: %s\n", error.c_str());
    return false;
  }
  return true;
}

bool Soak::wait_for(std::uint64_t timeout_ms, const std::function<bool()>& ready) {
  const std::uint64_t deadline = monotonic_ms() + timeout_ms;
  while (!ready()) {
    if (monotonic_ms() > deadline) return false;
    pump(20);
  }
  return true;
}

// No client connection at tokentap and its fds equal the fresh baseline plus its upstream
// sockets (pooled keep-alive connections; none once the fake is stopped).
bool Soak::wait_quiet(Sample* s) {
  return wait_for(recovery_timeout_ms, [&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(quiet_poll_ms));
    if (!take_sample(s)) return false;
    return s->metrics.connections_open == 0 && s->proc.fds == fresh_fds_ + s->upstream_sockets;
  });
}

void Soak::add_phase(std::string name, const Sample& s, std::string note) {
  results_.phases.push_back(PhaseRow{std::move(name), client_.open_count(), client_.busy_count(),
                                     s.metrics.connections_open, s.proc.rss_kib, s.proc.fds,
                                     std::move(note)});
}

void Soak::check(std::string name, std::string expected, std::string measured, bool pass) {
  std::fprintf(stderr, "soak: check %s: %s (expected %s, measured %s)\n", pass ? "ok" : "FAILED",
               name.c_str(), expected.c_str(), measured.c_str());
  results_.checks.push_back(
      Check{std::move(name), std::move(expected), std::move(measured), pass});
}

// Phase 3: exactness and return to baseline, then a clean SIGTERM.
void Soak::finish_checks() {
  if (!tokentap_.alive()) {
    check("tokentap alive at the end", "running", tokentap_.how_ended(), false);
    std::string error;
    (void)fake_.stop(&error);
    return;
  }
  Sample s;
  const bool quiet = wait_quiet(&s);
  check("end: no client connection at tokentap", "0",
        fmt::format("{}", s.metrics.connections_open), s.metrics.connections_open == 0);
  fake::Stats fs{};
  const bool have_stats = fake_.stats(&fs);
  fs.prompt_tokens_sent -= reference_stats_.prompt_tokens_sent;
  fs.completion_tokens_sent -= reference_stats_.completion_tokens_sent;
  fs.requests -= reference_stats_.requests;
  fs.connections_accepted -= reference_stats_.connections_accepted;
  results_.fake = fs;
  results_.metrics = s.metrics;
  const auto as_u64 = [](double v) { return static_cast<std::uint64_t>(v); };
  check("prompt tokens on /metrics = sent by the upstream",
        fmt::format("{}", fs.prompt_tokens_sent),
        fmt::format("{}", as_u64(s.metrics.prompt_tokens)),
        have_stats && as_u64(s.metrics.prompt_tokens) == fs.prompt_tokens_sent);
  check("completion tokens on /metrics = sent by the upstream",
        fmt::format("{}", fs.completion_tokens_sent),
        fmt::format("{}", as_u64(s.metrics.completion_tokens)),
        have_stats && as_u64(s.metrics.completion_tokens) == fs.completion_tokens_sent);
  const std::uint64_t finished = tally_.total().finished();
  check("tokentap_requests_total = requests the client finished or aborted",
        fmt::format("{}", finished), fmt::format("{}", as_u64(s.metrics.requests)),
        as_u64(s.metrics.requests) == finished);
  check("unexpected outcomes (all phases)", "0", fmt::format("{}", tally_.unexpected_total()),
        tally_.unexpected_total() == 0);
  check("connections refused by tokentap", "0", fmt::format("{}", s.metrics.connections_rejected),
        s.metrics.connections_rejected == 0);
  add_phase("3 end, traffic closed", s,
            fmt::format("{} pooled upstream connections; quiet: {}", s.upstream_sockets, quiet));

  std::string error;
  const bool stopped = fake_.stop(&error);
  if (!stopped) check("fake upstream stops", "exit 0", error, false);
  const bool fds_back = wait_for(recovery_timeout_ms, [&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(quiet_poll_ms));
    return take_sample(&s) && s.proc.fds == fresh_fds_;
  });
  check("end: fds with the upstream gone = fresh process", fmt::format("{}", fresh_fds_),
        fmt::format("{}", s.proc.fds), fds_back);
  std::this_thread::sleep_for(std::chrono::milliseconds(settle_ms));
  if (take_sample(&s)) {
    const std::int64_t delta = static_cast<std::int64_t>(s.proc.rss_kib) -
                               static_cast<std::int64_t>(warm_rss_kib_);
    check("end: RSS - warm baseline", fmt::format("<= {} KiB", rss_tolerance_kib),
          fmt::format("{:+} KiB ({:.1f} -> {:.1f} MiB)", delta, mib(warm_rss_kib_),
                      mib(s.proc.rss_kib)),
          delta <= static_cast<std::int64_t>(rss_tolerance_kib));
    add_phase("3 end, upstream stopped", s, "fds must equal the fresh process");
  }
  results_.tokentap_exit = tokentap_.terminate(terminate_timeout_ms);
  check("tokentap exits 0 on SIGTERM", "0", fmt::format("{}", results_.tokentap_exit),
        results_.tokentap_exit == 0);
}

}  // namespace tokentap::soak
