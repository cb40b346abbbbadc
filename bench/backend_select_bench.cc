// Backend selection micro benchmarks (issue 16: < 1 µs per decision for 64 backends).
//
// One decision is what the data path does per attempt: snapshot_candidates() over the shared
// Fleet (relaxed loads of each backend's in-flight, health and model word) and choose_backend()
// over the result. The fleet is set up as a busy one looks: half the backends have the model,
// uneven load, one ejected, one down, one ramping up after coming back. Separate rows time the
// snapshot and the choice alone, and the full per-request cost with acquire/release.
#include <benchmark/benchmark.h>
#include <sys/utsname.h>

#include <array>
#include <cstdint>
#include <memory>
#include <string>

#include "tokentap/upstream/balancer.h"

namespace tokentap {
namespace {

constexpr std::uint64_t now_ms = 10'000'000;
constexpr ModelId model = model_first_named + 3;

// STYLE §22: every bench records its environment.
const bool context_recorded = [] {
  utsname u{};
  if (uname(&u) == 0) benchmark::AddCustomContext("kernel", std::string(u.release));
  benchmark::AddCustomContext("fleet_backends_max", std::to_string(fleet_backends_max));
  benchmark::AddCustomContext("models_tracked_max", std::to_string(models_tracked_max));
  benchmark::AddCustomContext("sizeof(BackendState)", std::to_string(sizeof(BackendState)));
  benchmark::AddCustomContext("sizeof(Candidate)", std::to_string(sizeof(Candidate)));
  return true;
}();

std::unique_ptr<Fleet> busy_fleet(std::uint32_t n) {
  auto f = std::make_unique<Fleet>();
  const std::array<ModelId, 3> with = {model_first_named, model, model_first_named + 9};
  const std::array<ModelId, 2> without = {model_first_named, model_first_named + 9};
  for (std::uint32_t i = 0; i < n; ++i) {
    const std::uint32_t slot = f->add("gpu" + std::to_string(i), 1 + i % 2, 2);
    BackendState& b = f->at(slot);
    b.set_models(i % 2 == 0 ? std::span<const ModelId>(with) : std::span<const ModelId>(without));
    b.in_flight.store((i * 7) % 5);
  }
  f->at(1).ejected_until_ms.store(now_ms + 20'000);
  f->at(2).up.store(false);
  f->at(n - 1).up_since_ms.store(now_ms - 4'000);  // slow start at 0.4
  return f;
}

void BM_Decision(benchmark::State& state) {
  const auto n = static_cast<std::uint32_t>(state.range(0));
  const auto fleet = busy_fleet(n);
  std::array<Candidate, fleet_backends_max> c{};
  std::uint32_t rr = 0;
  for (auto _ : state) {
    const std::uint32_t k = snapshot_candidates(*fleet, model, now_ms, 0b1000, c.data());
    const std::uint32_t i = choose_backend(std::span<const Candidate>(c.data(), k), rr++);
    benchmark::DoNotOptimize(i);
  }
}
BENCHMARK(BM_Decision)->Arg(8)->Arg(64);

void BM_Snapshot(benchmark::State& state) {
  const auto n = static_cast<std::uint32_t>(state.range(0));
  const auto fleet = busy_fleet(n);
  std::array<Candidate, fleet_backends_max> c{};
  for (auto _ : state) {
    benchmark::DoNotOptimize(snapshot_candidates(*fleet, model, now_ms, 0, c.data()));
    benchmark::ClobberMemory();
  }
}
BENCHMARK(BM_Snapshot)->Arg(8)->Arg(64);

void BM_Choose(benchmark::State& state) {
  const auto n = static_cast<std::uint32_t>(state.range(0));
  const auto fleet = busy_fleet(n);
  std::array<Candidate, fleet_backends_max> c{};
  const std::uint32_t k = snapshot_candidates(*fleet, model, now_ms, 0, c.data());
  std::uint32_t rr = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(c);
    benchmark::DoNotOptimize(choose_backend(std::span<const Candidate>(c.data(), k), rr++));
  }
}
BENCHMARK(BM_Choose)->Arg(8)->Arg(64);

// What one request costs the data path: the decision plus its two atomic touches.
void BM_DecisionAcquireRelease(benchmark::State& state) {
  const auto n = static_cast<std::uint32_t>(state.range(0));
  const auto fleet = busy_fleet(n);
  std::uint32_t rr = 0;
  for (auto _ : state) {
    const std::uint32_t i = select_backend(*fleet, model, now_ms, 0, rr++);
    fleet->acquire(i);
    fleet->release(i);
  }
}
BENCHMARK(BM_DecisionAcquireRelease)->Arg(8)->Arg(64);

}  // namespace
}  // namespace tokentap
