// TimerWheel micro benchmarks: the per-request costs (arm+cancel, re-arm of an armed timer) and the
// per-loop-turn costs (advance with nothing due, advance with a steady stream of expiries, the
// next-deadline query) with a background population of 10k armed timers, as a busy shard has.
#include <benchmark/benchmark.h>
#include <sys/utsname.h>

#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "tokentap/loop/timer_wheel.h"

namespace tokentap {
namespace {

constexpr std::size_t population = 10'000;
constexpr std::uint64_t start_ms = 1'000'000;
constexpr std::size_t deadline_table_size = 4096;  // precomputed, so the RNG is not measured
static_assert(std::has_single_bit(deadline_table_size));

// STYLE §22: every bench records its environment.
const bool context_recorded = [] {
  utsname u{};
  if (uname(&u) == 0) benchmark::AddCustomContext("kernel", std::string(u.release));
  benchmark::AddCustomContext("timer_tick_ms", std::to_string(timer_tick_ms));
  benchmark::AddCustomContext("timer_near_slots", std::to_string(timer_near_slots));
  benchmark::AddCustomContext("timer_far_slots", std::to_string(timer_far_slots));
  benchmark::AddCustomContext("sizeof(TimerWheel)", std::to_string(sizeof(TimerWheel)));
  benchmark::AddCustomContext("sizeof(TimerNode)", std::to_string(sizeof(TimerNode)));
  return true;
}();

// A shard's worth of armed timers. Nodes are declared before the wheel so the wheel, destroyed
// first, disarms them.
struct Population {
  // Timeouts uniform in [min_ms, max_ms).
  Population(std::uint64_t min_ms, std::uint64_t max_ms)
      : nodes(std::make_unique<TimerNode[]>(population + 1)),
        wheel(std::make_unique<TimerWheel>(start_ms)),
        timeouts(deadline_table_size) {
    std::mt19937_64 rng(42);
    for (std::uint64_t& t : timeouts) t = min_ms + rng() % (max_ms - min_ms);
    for (std::size_t i = 0; i < population; ++i) {
      nodes[i].set_owner(i);
      wheel->arm(nodes[i], start_ms + timeouts[i % deadline_table_size]);
    }
  }
  [[nodiscard]] std::uint64_t timeout(std::size_t i) const {
    return timeouts[i & (deadline_table_size - 1)];
  }
  std::unique_ptr<TimerNode[]> nodes;  // nodes[population] is the one the benchmark moves
  std::unique_ptr<TimerWheel> wheel;
  std::vector<std::uint64_t> timeouts;
};

// A connection that arms its head-read timeout and cancels it when the head arrives.
void BM_ArmCancel(benchmark::State& state) {
  Population p(1'000, 60'000);
  TimerNode& node = p.nodes[population];
  std::size_t i = 0;
  for (auto _ : state) {
    p.wheel->arm(node, start_ms + p.timeout(i++));
    p.wheel->cancel(node);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}
BENCHMARK(BM_ArmCancel);

// Keep-alive refresh: moving an already armed timer, near (5 s) or far (5 min) from now.
void BM_Rearm(benchmark::State& state) {
  const auto timeout_ms = static_cast<std::uint64_t>(state.range(0));
  Population p(timeout_ms / 2, timeout_ms * 2);
  std::size_t i = 0;
  for (auto _ : state) {
    TimerNode& node = p.nodes[i % population];
    p.wheel->arm(node, start_ms + p.timeout(i));
    ++i;
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}
BENCHMARK(BM_Rearm)->Arg(5'000)->Arg(300'000);

// The loop turn when nothing is due: advance within the current tick, then ask how long to wait.
void BM_AdvanceIdleTurn(benchmark::State& state) {
  Population p(60'000, 120'000);
  std::uint64_t now = start_ms;
  std::size_t fired = 0;
  for (auto _ : state) {
    now += 1;  // 1 ms per turn: a tick boundary every 10 turns
    fired += p.wheel->advance(now, [](TimerNode&) {});
    benchmark::DoNotOptimize(p.wheel->ms_until_next(now, 1'000));
    if (now >= start_ms + 50'000) {
      state.PauseTiming();
      now = start_ms;
      p.wheel = nullptr;  // disarms
      p.wheel = std::make_unique<TimerWheel>(start_ms);
      for (std::size_t k = 0; k < population; ++k) p.wheel->arm(p.nodes[k], start_ms + 60'000 + k);
      state.ResumeTiming();
    }
  }
  if (fired != 0) state.SkipWithError("a timer fired in the idle benchmark");
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}
BENCHMARK(BM_AdvanceIdleTurn);

// Steady churn: every fired timer is re-armed for one period later, so with 10k timers and a
// period of range(0) ms about 10k * tick / period expire per tick. Items are expired timers;
// each iteration is one tick's advance including the callbacks' re-arms. A 60 s period puts the
// re-armed timers in the far level, so the cost of cascading is included.
void BM_AdvanceSteady(benchmark::State& state) {
  const auto period_ms = static_cast<std::uint64_t>(state.range(0));
  Population p(1, period_ms);
  std::uint64_t now = start_ms;
  std::size_t fired = 0;
  TimerWheel& wheel = *p.wheel;
  for (auto _ : state) {
    now += timer_tick_ms;
    fired += wheel.advance(now, [&](TimerNode& n) { wheel.arm(n, wheel.now_ms() + period_ms); });
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(fired));
  state.counters["expired_per_tick"] =
      benchmark::Counter(static_cast<double>(fired) / static_cast<double>(state.iterations()));
  state.counters["armed"] = static_cast<double>(wheel.armed_count());
}
BENCHMARK(BM_AdvanceSteady)->Arg(1'000)->Arg(10'000)->Arg(60'000);

void BM_NextDeadline(benchmark::State& state) {
  Population p(1'000, 60'000);
  TimerNode& node = p.nodes[population];
  std::size_t i = 0;
  for (auto _ : state) {
    // Arm and cancel the earliest timer each time, so the cache is invalidated and recomputed.
    p.wheel->arm(node, start_ms + 1 + (i++ & 511));
    p.wheel->cancel(node);
    benchmark::DoNotOptimize(p.wheel->next_deadline_ms());
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}
BENCHMARK(BM_NextDeadline);

}  // namespace
}  // namespace tokentap
