// Balancer: the selection rules of issue 16 over plain Candidates, and the Fleet snapshot.
#include "tokentap/upstream/balancer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <memory>
#include <string>
#include <vector>

namespace tokentap {
namespace {

constexpr std::uint64_t t0_ms = 1'000'000;  // a monotonic "now" well past boot

Candidate with_model(bool has) {
  Candidate c;
  c.has_model = has;
  return c;
}

std::uint32_t choose(const std::vector<Candidate>& c, std::uint32_t rr) {
  return choose_backend(std::span<const Candidate>(c.data(), c.size()), rr);
}

TEST(Balancer, ModelOnlyOnBGoesToB) {
  std::vector<Candidate> c = {with_model(false), with_model(true), with_model(false)};
  for (std::uint32_t rr = 0; rr < 10; ++rr) EXPECT_EQ(choose(c, rr), 1u);
  // Even when B is far busier than the others: having the model comes first.
  c[1].in_flight = 50;
  EXPECT_EQ(choose(c, 0), 1u);
}

TEST(Balancer, AmongThoseWithTheModelTheLeastLoaded) {
  std::vector<Candidate> c = {with_model(true), with_model(false), with_model(true)};
  c[0].in_flight = 3;
  c[1].in_flight = 0;
  c[2].in_flight = 2;
  EXPECT_EQ(choose(c, 0), 2u);
}

TEST(Balancer, NobodyHasTheModelEveryHealthyBackendIsACandidate) {
  std::vector<Candidate> c(3, with_model(false));
  c[0].in_flight = 2;
  c[1].in_flight = 1;
  c[2].in_flight = 4;
  EXPECT_EQ(choose(c, 0), 1u);
}

TEST(Balancer, TheOnlyOneWithTheModelDownOrTriedFallsBackToTheOthers) {
  std::vector<Candidate> c = {with_model(false), with_model(true), with_model(false)};
  c[0].in_flight = 5;
  c[1].healthy = false;
  EXPECT_EQ(choose(c, 0), 2u);
  c[1].healthy = true;
  c[1].excluded = true;
  EXPECT_EQ(choose(c, 0), 2u);
}

TEST(Balancer, TiesGoRoundRobinFromRr) {
  const std::vector<Candidate> c(5);
  for (std::uint32_t rr = 0; rr < 20; ++rr) EXPECT_EQ(choose(c, rr), rr % 5);
  EXPECT_EQ(choose(c, 0xFFFF'FFFFu), 0xFFFF'FFFFu % 5);
}

TEST(Balancer, TiesSkipUnhealthyAndExcludedToTheNextInOrder) {
  std::vector<Candidate> c(4);
  c[1].healthy = false;
  c[2].excluded = true;
  EXPECT_EQ(choose(c, 1), 3u);
  EXPECT_EQ(choose(c, 2), 3u);
  EXPECT_EQ(choose(c, 3), 3u);
  EXPECT_EQ(choose(c, 0), 0u);
}

TEST(Balancer, OnlyTheTiedLeastLoadedShareTheRoundRobin) {
  std::vector<Candidate> c(4);
  c[0].in_flight = 1;
  c[2].in_flight = 1;
  std::array<int, 4> picks{};
  for (std::uint32_t rr = 0; rr < 100; ++rr) ++picks[choose(c, rr)];
  EXPECT_EQ(picks[0], 0);
  EXPECT_EQ(picks[2], 0);
  EXPECT_EQ(picks[1], 50);
  EXPECT_EQ(picks[3], 50);
}

TEST(Balancer, ExcludedBackendsAreSkipped) {
  std::vector<Candidate> c(3);
  c[0].excluded = true;
  c[1].in_flight = 7;
  c[2].excluded = true;
  for (std::uint32_t rr = 0; rr < 6; ++rr) EXPECT_EQ(choose(c, rr), 1u);
}

TEST(Balancer, NoHealthyUntriedBackendIsNoBackend) {
  EXPECT_EQ(choose({}, 0), no_backend);
  std::vector<Candidate> c(3);
  for (Candidate& x : c) x.healthy = false;
  EXPECT_EQ(choose(c, 0), no_backend);
  for (Candidate& x : c) x = Candidate{.excluded = true};
  EXPECT_EQ(choose(c, 0), no_backend);
  c[1].excluded = false;
  EXPECT_EQ(choose(c, 0), 1u);
}

// Picks one backend per request and counts it in flight, never releasing.
std::vector<std::uint32_t> fill(std::vector<Candidate> c, int requests) {
  std::vector<std::uint32_t> picks(c.size());
  for (int r = 0; r < requests; ++r) {
    const std::uint32_t i = choose(c, static_cast<std::uint32_t>(r));
    ++c[i].in_flight;
    ++picks[i];
  }
  return picks;
}

TEST(Balancer, WeightsScaleTheShare) {
  std::vector<Candidate> c(3);
  c[0].weight = 1;
  c[1].weight = 3;
  c[2].weight = 0;  // counts as 1
  const std::vector<std::uint32_t> picks = fill(c, 50);
  EXPECT_EQ(picks[0], 10u);
  EXPECT_EQ(picks[1], 30u);
  EXPECT_EQ(picks[2], 10u);
}

TEST(Balancer, SlowStartRampGrowsOverTenSecondsFromAFloor) {
  EXPECT_EQ(slow_start_ramp(t0_ms, 0), 1.0);  // up from the start
  EXPECT_EQ(slow_start_ramp(t0_ms, t0_ms), slow_start_ramp_min);
  EXPECT_EQ(slow_start_ramp(t0_ms - 1, t0_ms), slow_start_ramp_min);  // clocks across threads
  EXPECT_EQ(slow_start_ramp(t0_ms + 500, t0_ms), slow_start_ramp_min);  // 0.05 → floor
  EXPECT_DOUBLE_EQ(slow_start_ramp(t0_ms + 2'500, t0_ms), 0.25);
  EXPECT_DOUBLE_EQ(slow_start_ramp(t0_ms + 5'000, t0_ms), 0.5);
  EXPECT_EQ(slow_start_ramp(t0_ms + slow_start_ms, t0_ms), 1.0);
  EXPECT_EQ(slow_start_ramp(t0_ms + 10 * slow_start_ms, t0_ms), 1.0);
}

TEST(Balancer, ARampingBackendTakesItsShareOfTheLoad) {
  std::vector<Candidate> c(2);
  c[1].ramp = 0.5;
  std::vector<std::uint32_t> picks = fill(c, 30);
  EXPECT_EQ(picks[0], 20u);
  EXPECT_EQ(picks[1], 10u);
  c[1].ramp = 0.0;  // below the floor: still some traffic
  picks = fill(c, 110);
  EXPECT_EQ(picks[0], 100u);
  EXPECT_EQ(picks[1], 10u);
  // Idle fleet: a returning backend still gets its turn (0 in flight ties with 0).
  EXPECT_EQ(choose(c, 1), 1u);
}

std::unique_ptr<Fleet> fleet_of(std::uint32_t n) {
  auto f = std::make_unique<Fleet>();
  for (std::uint32_t i = 0; i < n; ++i) {
    EXPECT_EQ(f->add("b" + std::to_string(i), 1, 1), i);
  }
  return f;
}

TEST(Balancer, EightBackends64AcquisitionsSpreadWithinOne) {
  const auto fleet = fleet_of(8);
  for (std::uint32_t r = 0; r < 64; ++r) {
    const std::uint32_t i = select_backend(*fleet, model_unknown, t0_ms, 0, r * 7);
    ASSERT_NE(i, no_backend);
    fleet->acquire(i);
    std::uint32_t lo = ~0u, hi = 0;
    for (std::uint32_t b = 0; b < 8; ++b) {
      lo = std::min(lo, fleet->in_flight(b));
      hi = std::max(hi, fleet->in_flight(b));
    }
    EXPECT_LE(hi - lo, 1u) << "after " << r + 1;
  }
  for (std::uint32_t b = 0; b < 8; ++b) EXPECT_EQ(fleet->in_flight(b), 8u);
}

TEST(Balancer, SnapshotReadsHealthModelsLoadAndExclusion) {
  const auto fleet = fleet_of(4);
  const ModelId m = model_first_named + 5;
  const std::array<ModelId, 1> just_m = {m};
  fleet->at(1).set_models(just_m);
  fleet->at(2).up.store(false);
  fleet->at(3).ejected_until_ms.store(t0_ms + 1);
  fleet->acquire(0);
  fleet->acquire(0);
  std::array<Candidate, fleet_backends_max> c{};
  ASSERT_EQ(snapshot_candidates(*fleet, m, t0_ms, 0b0001, c.data()), 4u);
  EXPECT_TRUE(c[0].healthy && c[1].healthy);
  EXPECT_FALSE(c[2].healthy || c[3].healthy);
  EXPECT_FALSE(c[0].has_model);
  EXPECT_TRUE(c[1].has_model);
  EXPECT_TRUE(c[0].excluded);
  EXPECT_FALSE(c[1].excluded);
  EXPECT_EQ(c[0].in_flight, 2u);
  EXPECT_EQ(c[0].ramp, 1.0);
  EXPECT_EQ(select_backend(*fleet, m, t0_ms, 0, 0), 1u);
  EXPECT_EQ(select_backend(*fleet, m, t0_ms, 0b0010, 0), 0u);  // B tried: fall back
}

TEST(Balancer, SnapshotRampsABackendBackFromEjection) {
  const auto fleet = fleet_of(2);
  fleet->at(1).ejected_until_ms.store(t0_ms);
  std::array<Candidate, fleet_backends_max> c{};
  snapshot_candidates(*fleet, model_unknown, t0_ms + 5'000, 0, c.data());
  EXPECT_EQ(c[0].ramp, 1.0);
  EXPECT_DOUBLE_EQ(c[1].ramp, 0.5);
  snapshot_candidates(*fleet, model_unknown, t0_ms + 10'000, 0, c.data());
  EXPECT_EQ(c[1].ramp, 1.0);
}

TEST(Balancer, UnknownAndUntrackedModelsGoToTheLeastLoaded) {
  const auto fleet = fleet_of(2);
  const std::array<ModelId, 1> some = {model_first_named};
  fleet->at(0).set_models(some);
  fleet->acquire(0);
  EXPECT_EQ(select_backend(*fleet, model_unknown, t0_ms, 0, 0), 1u);
  EXPECT_EQ(select_backend(*fleet, model_overflow, t0_ms, 0, 0), 1u);
  EXPECT_EQ(select_backend(*fleet, models_tracked_max + 9, t0_ms, 0, 0), 1u);
  EXPECT_EQ(select_backend(*fleet, model_first_named, t0_ms, 0, 0), 0u);
}

}  // namespace
}  // namespace tokentap
