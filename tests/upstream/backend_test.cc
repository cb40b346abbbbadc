// Fleet and ModelSet: slots, the in-flight counter under concurrency, the installed-model set,
// and the health policy applied to the shared atomics.
#include "tokentap/upstream/backend.h"

#include <gtest/gtest.h>

#include <array>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace tokentap {
namespace {

constexpr std::uint64_t t0_ms = 1'000'000;

std::unique_ptr<Fleet> fleet_of(std::uint32_t n) {
  auto f = std::make_unique<Fleet>();
  for (std::uint32_t i = 0; i < n; ++i) EXPECT_EQ(f->add("b" + std::to_string(i), 1, 1), i);
  return f;
}

TEST(Fleet, SlotsKeepTheirNamesWeightsAndParallelism) {
  Fleet f;
  EXPECT_EQ(f.add("gpu0", 3, 4), 0u);
  EXPECT_EQ(f.add("gpu1", 0, 0), 1u);
  EXPECT_EQ(f.add("gpu2", fleet_weight_max + 1, 2), 2u);
  BackendConfig cfg;
  cfg.name = "gpu3";
  cfg.weight = 2;
  cfg.max_parallel = backend_max_parallel_max + 1;
  EXPECT_EQ(f.add(cfg), 3u);
  EXPECT_EQ(f.add("gpu0", 1, 1), no_backend);  // names are unique
  EXPECT_EQ(f.add("", 1, 1), no_backend);
  EXPECT_EQ(f.size(), 4u);
  EXPECT_EQ(f.weight(3), 2u);
  EXPECT_EQ(f.max_parallel(3), backend_max_parallel_max);
  EXPECT_EQ(f.name(0), "gpu0");
  EXPECT_EQ(f.weight(0), 3u);
  EXPECT_EQ(f.max_parallel(0), 4u);
  EXPECT_EQ(f.weight(1), 1u);
  EXPECT_EQ(f.max_parallel(1), 1u);
  EXPECT_EQ(f.weight(2), fleet_weight_max);
  EXPECT_EQ(f.find("gpu1"), 1u);
  EXPECT_EQ(f.find("gpu9"), no_backend);
}

TEST(Fleet, HoldsAtMostBackendsMax) {
  const auto f = fleet_of(fleet_backends_max);
  EXPECT_EQ(f->add("one-more", 1, 1), no_backend);
  EXPECT_EQ(f->size(), fleet_backends_max);
}

TEST(Fleet, BackendStatesAreAlignedAndApart) {
  const auto f = fleet_of(2);
  const auto a = reinterpret_cast<std::uintptr_t>(&f->at(0));
  const auto b = reinterpret_cast<std::uintptr_t>(&f->at(1));
  EXPECT_EQ(a % backend_line_bytes, 0u);
  EXPECT_EQ(b - a, sizeof(BackendState));
  const auto in_flight = reinterpret_cast<std::uintptr_t>(&f->at(0).in_flight);
  const auto up = reinterpret_cast<std::uintptr_t>(&f->at(0).up);
  EXPECT_GE(up - in_flight, backend_line_bytes);
}

TEST(Fleet, AcquireAndReleaseCountInFlight) {
  const auto f = fleet_of(2);
  f->acquire(1);
  f->acquire(1);
  f->acquire(0);
  EXPECT_EQ(f->in_flight(0), 1u);
  EXPECT_EQ(f->in_flight(1), 2u);
  f->release(1);
  EXPECT_EQ(f->in_flight(1), 1u);
}

TEST(Fleet, FourThreadsOfAcquireReleaseEndAtZero) {
  const auto f = fleet_of(4);
  constexpr int per_thread = 100'000;
  std::vector<std::thread> threads;
  for (std::uint32_t t = 0; t < 4; ++t) {
    threads.emplace_back([&f, t] {
      for (int k = 0; k < per_thread; ++k) {
        const std::uint32_t i = (t + static_cast<std::uint32_t>(k)) % 4;
        f->acquire(i);
        f->acquire(0);  // every thread on one shared counter as well
        f->release(i);
        f->release(0);
      }
    });
  }
  for (std::thread& t : threads) t.join();
  for (std::uint32_t i = 0; i < 4; ++i) EXPECT_EQ(f->in_flight(i), 0u);
}

TEST(ModelSet, ReplacingTheWholeSet) {
  ModelSet s;
  const ModelId a = model_first_named, b = model_first_named + 63, c = model_first_named + 700;
  EXPECT_FALSE(s.has(a));
  const std::array<ModelId, 2> ab = {a, b};
  s.assign(ab);
  EXPECT_TRUE(s.has(a) && s.has(b));
  EXPECT_FALSE(s.has(c));
  const std::array<ModelId, 2> bc = {b, c};
  s.assign(bc);
  EXPECT_FALSE(s.has(a));
  EXPECT_TRUE(s.has(b) && s.has(c));
  EXPECT_EQ(s.count(), 2u);
  s.assign({});
  EXPECT_EQ(s.count(), 0u);
}

TEST(ModelSet, ReservedAndUntrackedIdsCountAsPresent) {
  ModelSet s;
  EXPECT_TRUE(s.has(model_unknown));
  EXPECT_TRUE(s.has(model_overflow));
  EXPECT_TRUE(s.has(models_tracked_max));
  EXPECT_TRUE(s.has(0xFFFF'FFFFu));
  EXPECT_FALSE(s.has(models_tracked_max - 1));
  const std::array<ModelId, 3> odd = {model_unknown, models_tracked_max, models_tracked_max + 1};
  s.assign(odd);  // ignored, not out of bounds
  EXPECT_EQ(s.count(), 0u);
}

TEST(ModelSet, AddAndRemoveOne) {
  ModelSet s;
  s.add(model_first_named + 1);
  s.add(models_tracked_max + 5);  // ignored
  EXPECT_TRUE(s.has(model_first_named + 1));
  EXPECT_EQ(s.count(), 1u);
  s.remove(model_first_named + 1);
  EXPECT_FALSE(s.has(model_first_named + 1));
}

TEST(FleetHealth, ChecksDownAfterThreeUpAfterTwoWithSlowStart) {
  const auto f = fleet_of(2);
  EXPECT_EQ(f->report_check(0, false, t0_ms).change, HealthChange::none);
  EXPECT_EQ(f->report_check(0, false, t0_ms).change, HealthChange::none);
  EXPECT_TRUE(f->healthy(0, t0_ms));
  const HealthEvent down = f->report_check(0, false, t0_ms);
  EXPECT_EQ(down.change, HealthChange::went_down);
  EXPECT_EQ(down.reason, HealthReason::check);
  EXPECT_FALSE(f->healthy(0, t0_ms));
  EXPECT_EQ(f->report_check(0, true, t0_ms + 2'000).change, HealthChange::none);
  EXPECT_EQ(f->report_check(0, true, t0_ms + 4'000).change, HealthChange::went_up);
  EXPECT_TRUE(f->healthy(0, t0_ms + 4'000));
  EXPECT_EQ(f->at(0).in_rotation_since_ms(), t0_ms + 4'000);
}

TEST(FleetHealth, ActiveChecksMayTakeDownTheLastHealthy) {
  const auto f = fleet_of(1);
  for (std::uint32_t k = 0; k < health_fails_down; ++k) (void)f->report_check(0, false, t0_ms);
  EXPECT_FALSE(f->healthy(0, t0_ms));
}

TEST(FleetHealth, ConnectRefusedIsDownAtOnceAndNeedsTwoPassesBack) {
  const auto f = fleet_of(3);
  const HealthEvent ev = f->report_connect_failure(1, ConnectFailure::refused, t0_ms);
  EXPECT_EQ(ev.change, HealthChange::went_down);
  EXPECT_EQ(ev.reason, HealthReason::connect_refused);
  EXPECT_FALSE(f->healthy(1, t0_ms));
  // Seen again by another shard: no second event.
  EXPECT_EQ(f->report_connect_failure(1, ConnectFailure::timeout, t0_ms).change,
            HealthChange::none);
  EXPECT_EQ(f->report_connect_failure(2, ConnectFailure::other, t0_ms).change,
            HealthChange::none);
  EXPECT_EQ(f->report_connect_failure(2, ConnectFailure::timeout, t0_ms).reason,
            HealthReason::connect_timeout);
  EXPECT_EQ(f->report_check(1, true, t0_ms).change, HealthChange::none);
  EXPECT_EQ(f->report_check(1, true, t0_ms).change, HealthChange::went_up);
}

HealthEvent answer_5xx(Fleet& f, std::uint32_t i, int times, std::uint64_t now_ms) {
  HealthEvent last{};
  for (int k = 0; k < times; ++k) {
    const HealthEvent ev = f.report_response(i, 500, false, now_ms);
    if (ev.change != HealthChange::none) last = ev;
  }
  return last;
}

TEST(FleetHealth, FiveConsecutive5xxEjectForThirtySecondsTimesTheCount) {
  const auto f = fleet_of(2);
  EXPECT_EQ(answer_5xx(*f, 0, 4, t0_ms).change, HealthChange::none);
  const HealthEvent first = answer_5xx(*f, 0, 1, t0_ms);
  EXPECT_EQ(first.change, HealthChange::ejected);
  EXPECT_EQ(first.reason, HealthReason::errors_5xx);
  EXPECT_EQ(first.until_ms, t0_ms + 30'000);
  EXPECT_FALSE(f->healthy(0, t0_ms + 29'999));
  EXPECT_TRUE(f->healthy(0, t0_ms + 30'000));
  EXPECT_EQ(f->at(0).in_rotation_since_ms(), t0_ms + 30'000);  // slow start from there
  const std::uint64_t t1 = t0_ms + 40'000;
  EXPECT_EQ(answer_5xx(*f, 0, 5, t1).until_ms, t1 + 60'000);
  const std::uint64_t t2 = t1 + 70'000;
  EXPECT_EQ(answer_5xx(*f, 0, 5, t2).until_ms, t2 + 90'000);
  EXPECT_EQ(f->at(0).ejections.load(), 3u);
}

TEST(FleetHealth, ASuccessEndsTheRun) {
  const auto f = fleet_of(2);
  for (int round = 0; round < 10; ++round) {
    EXPECT_EQ(answer_5xx(*f, 0, 4, t0_ms).change, HealthChange::none);
    EXPECT_EQ(f->report_response(0, 200, false, t0_ms).change, HealthChange::none);
  }
  EXPECT_EQ(f->at(0).consecutive_5xx.load(), 0u);
}

TEST(FleetHealth, Busy503IsNotCounted) {
  const auto f = fleet_of(2);
  EXPECT_EQ(answer_5xx(*f, 0, 4, t0_ms).change, HealthChange::none);
  for (int k = 0; k < 100; ++k) {
    EXPECT_EQ(f->report_response(0, 503, true, t0_ms).change, HealthChange::none);
  }
  EXPECT_TRUE(f->healthy(0, t0_ms));
  EXPECT_EQ(answer_5xx(*f, 0, 1, t0_ms).change, HealthChange::ejected);  // the run survived
}

TEST(FleetHealth, TheLastHealthyIsNeverEjectedNorMarkedDownPassively) {
  const auto f = fleet_of(3);
  EXPECT_EQ(f->report_connect_failure(0, ConnectFailure::refused, t0_ms).change,
            HealthChange::went_down);
  EXPECT_EQ(answer_5xx(*f, 1, 5, t0_ms).change, HealthChange::ejected);
  EXPECT_EQ(answer_5xx(*f, 2, 50, t0_ms).change, HealthChange::none);
  EXPECT_EQ(f->report_connect_failure(2, ConnectFailure::refused, t0_ms).change,
            HealthChange::none);
  EXPECT_TRUE(f->healthy(2, t0_ms));
  EXPECT_EQ(f->healthy_count(t0_ms), 1u);
  // Once another is back, the run that kept going ejects at the next 5xx.
  const std::uint64_t later = t0_ms + 30'000;
  EXPECT_TRUE(f->healthy(1, later));
  EXPECT_EQ(answer_5xx(*f, 2, 1, later).change, HealthChange::ejected);
}

// Two shards hammering 5xx on the only two backends at once: one may go, never both.
TEST(FleetHealth, ConcurrentEjectionsNeverEmptyTheFleet) {
  for (int round = 0; round < 50; ++round) {
    const auto f = fleet_of(2);
    std::vector<std::thread> threads;
    for (std::uint32_t t = 0; t < 2; ++t) {
      threads.emplace_back([&f, t] { (void)answer_5xx(*f, t, 2'000, t0_ms); });
    }
    for (std::thread& t : threads) t.join();
    EXPECT_EQ(f->healthy_count(t0_ms), 1u);
  }
}

TEST(FleetMetrics, GaugesShowRotationLoadAndSlots) {
  Fleet f;
  ASSERT_EQ(f.add("gpu0", 1, 2), 0u);
  ASSERT_EQ(f.add("gpu1", 1, 4), 1u);
  ASSERT_EQ(f.add("gpu2", 1, 1), 2u);
  f.acquire(0);
  f.at(1).ejected_until_ms.store(t0_ms + 1);
  std::array<BackendGauge, backend_slots_max> g{};
  ASSERT_EQ(fill_backend_gauges(f, t0_ms, g.data(), g.size()), 3u);
  EXPECT_EQ(g[0].name, "gpu0");
  EXPECT_TRUE(g[0].up);
  EXPECT_EQ(g[0].in_flight, 1u);
  EXPECT_EQ(g[0].slots, 2u);
  EXPECT_FALSE(g[1].up);  // ejected: out of rotation
  EXPECT_EQ(g[1].slots, 4u);
  EXPECT_EQ(fill_backend_gauges(f, t0_ms, g.data(), 2), 2u);
}

TEST(FleetMetrics, ReasonsMapToTheMetricLabels) {
  EXPECT_EQ(ejection_reason_of(HealthReason::check), EjectionReason::health_check);
  EXPECT_EQ(ejection_reason_of(HealthReason::connect_refused), EjectionReason::connect_refused);
  EXPECT_EQ(ejection_reason_of(HealthReason::connect_timeout), EjectionReason::connect_timeout);
  EXPECT_EQ(ejection_reason_of(HealthReason::errors_5xx), EjectionReason::errors_5xx);
  EXPECT_EQ(metrics_retry_reason(FailoverReason::connect), RetryReason::connect);
  EXPECT_EQ(metrics_retry_reason(FailoverReason::reset), RetryReason::reset);
  EXPECT_EQ(metrics_retry_reason(FailoverReason::busy), RetryReason::busy);
}

}  // namespace
}  // namespace tokentap
