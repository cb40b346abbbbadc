// TimerWheel: firing time at and around tick, slot, rotation and cascade boundaries; long
// timeouts; re-arm/cancel from callbacks; next-deadline bookkeeping; and a randomized comparison
// against a std::multimap reference model. Also the monotonic clock helpers.
#include "tokentap/loop/timer_wheel.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <utility>
#include <vector>

#include "tokentap/base/clock.h"

namespace tokentap {
namespace {

constexpr std::uint64_t hour_ms = 3600 * 1000;
constexpr std::uint64_t day_ms = 24 * hour_ms;

// The documented firing time: the deadline rounded up to a tick boundary.
std::uint64_t round_up_to_tick(std::uint64_t deadline_ms) {
  return (deadline_ms + timer_tick_ms - 1) / timer_tick_ms * timer_tick_ms;
}

struct Fired {
  std::uint64_t owner;
  std::uint64_t at_ms;  // wheel.now_ms() inside the callback
};

// Nodes are declared before the wheel so the wheel (destroyed first) disarms them.
struct Harness {
  explicit Harness(std::size_t nodes, std::uint64_t now_ms)
      : node(std::make_unique<TimerNode[]>(nodes)), wheel(std::make_unique<TimerWheel>(now_ms)) {
    for (std::size_t i = 0; i < nodes; ++i) node[i].set_owner(i);
  }
  std::size_t advance(std::uint64_t now_ms) {
    return wheel->advance(now_ms, [this](TimerNode& n) {
      EXPECT_FALSE(n.armed());
      fired.push_back({n.owner(), wheel->now_ms()});
    });
  }
  std::unique_ptr<TimerNode[]> node;
  std::unique_ptr<TimerWheel> wheel;
  std::vector<Fired> fired;
};

TEST(TimerWheel, ZeroTimersHaveNoDeadline) {
  Harness h(1, 5'000);
  EXPECT_EQ(h.wheel->next_deadline_ms(), std::nullopt);
  EXPECT_EQ(h.wheel->ms_until_next(5'000, 250), 250u);
  EXPECT_EQ(h.wheel->armed_count(), 0u);
  h.wheel->arm(h.node[0], 6'000);
  EXPECT_EQ(h.wheel->next_deadline_ms(), 6'000u);
  h.wheel->cancel(h.node[0]);
  EXPECT_EQ(h.wheel->next_deadline_ms(), std::nullopt);
  h.wheel->arm(h.node[0], 6'000);
  EXPECT_EQ(h.advance(6'000), 1u);
  EXPECT_EQ(h.wheel->next_deadline_ms(), std::nullopt);
  EXPECT_EQ(h.wheel->armed_count(), 0u);
  EXPECT_EQ(h.advance(100 * day_ms), 0u);
}

TEST(TimerWheel, FiresAtTickBoundaryNeverEarly) {
  Harness h(3, 1'000);
  h.wheel->arm(h.node[0], 1'100);  // on a boundary
  h.wheel->arm(h.node[1], 1'101);  // just past one: rounds up to 1'110
  h.wheel->arm(h.node[2], 1'109);
  EXPECT_EQ(h.node[1].expiry_ms(), 1'110u);
  EXPECT_EQ(h.advance(1'099), 0u);
  EXPECT_EQ(h.advance(1'100), 1u);
  EXPECT_EQ(h.fired.back().owner, 0u);
  EXPECT_EQ(h.wheel->next_deadline_ms(), 1'110u);
  for (std::uint64_t now = 1'101; now < 1'110; ++now) EXPECT_EQ(h.advance(now), 0u) << now;
  EXPECT_EQ(h.advance(1'110), 2u);
  EXPECT_EQ(h.wheel->armed_count(), 0u);
}

TEST(TimerWheel, PastDeadlineFiresOnNextTick) {
  Harness h(2, 10'005);
  h.wheel->arm(h.node[0], 0);
  h.wheel->arm(h.node[1], 10'000);
  EXPECT_EQ(h.wheel->next_deadline_ms(), 10'010u);
  EXPECT_EQ(h.wheel->ms_until_next(10'005, 1'000), 5u);
  EXPECT_EQ(h.wheel->ms_until_next(10'010, 1'000), 0u);
  EXPECT_EQ(h.advance(10'009), 0u);
  EXPECT_EQ(h.advance(10'010), 2u);
}

TEST(TimerWheel, OneAdvanceFiresInDeadlineOrder) {
  Harness h(6, 0);
  const std::uint64_t deadlines[] = {90 * hour_ms, 50, 40'000, 41'000, 7 * hour_ms, 20};
  for (std::size_t i = 0; i < 6; ++i) h.wheel->arm(h.node[i], deadlines[i]);
  EXPECT_EQ(h.advance(100 * hour_ms), 6u);
  ASSERT_EQ(h.fired.size(), 6u);
  const std::uint64_t order[] = {5, 1, 2, 3, 4, 0};
  for (std::size_t i = 0; i < 6; ++i) {
    EXPECT_EQ(h.fired[i].owner, order[i]);
    EXPECT_EQ(h.fired[i].at_ms, round_up_to_tick(deadlines[order[i]]));
  }
}

// For each start time (tick-aligned, mid-tick, on a near-rotation boundary, large), arm one timer
// per offset that sits on or next to a tick, slot, near-span, cascade or far-span boundary; then
// check each fires neither 1 ms before its rounded deadline nor later than it.
TEST(TimerWheel, FiresExactlyAroundSlotAndLevelBoundaries) {
  const std::uint64_t starts[] = {0,
                                  7,
                                  timer_near_span_ms - timer_tick_ms,
                                  timer_near_span_ms,
                                  123'456'789,
                                  timer_far_span_ms - 3};
  const std::uint64_t span = timer_near_span_ms;
  const std::uint64_t far = timer_far_span_ms;
  const std::uint64_t offsets[] = {1,
                                   9,
                                   10,
                                   11,
                                   span - 11,
                                   span - 10,
                                   span - 1,
                                   span,
                                   span + 1,
                                   span + 9,
                                   span + 10,
                                   span + 11,
                                   2 * span - 10,
                                   2 * span,
                                   2 * span + 10,
                                   far - span,
                                   far - 10,
                                   far - 1,
                                   far,
                                   far + 1,
                                   far + 10,
                                   far + span,
                                   2 * far,
                                   2 * far + 10,
                                   day_ms,
                                   3 * day_ms + 1};
  constexpr std::size_t n = std::size(offsets);
  for (const std::uint64_t start : starts) {
    SCOPED_TRACE(start);
    Harness h(n, start);
    std::multimap<std::uint64_t, std::size_t> expect;  // fire ms -> owner
    for (std::size_t i = 0; i < n; ++i) {
      h.wheel->arm(h.node[i], start + offsets[i]);
      expect.emplace(round_up_to_tick(start + offsets[i]), i);
    }
    for (auto it = expect.begin(); it != expect.end(); it = expect.upper_bound(it->first)) {
      const std::uint64_t at_ms = it->first;
      const auto [first, last] = expect.equal_range(at_ms);
      ASSERT_LE(*h.wheel->next_deadline_ms(), at_ms);
      h.advance(at_ms - 1);
      for (auto e = first; e != last; ++e) {
        ASSERT_TRUE(h.node[e->second].armed()) << "fired early: offset " << offsets[e->second];
      }
      h.advance(at_ms);
      for (auto e = first; e != last; ++e) {
        ASSERT_FALSE(h.node[e->second].armed()) << "fired late: offset " << offsets[e->second];
      }
    }
    ASSERT_EQ(h.fired.size(), n);
    for (const Fired& f : h.fired) EXPECT_EQ(f.at_ms, round_up_to_tick(start + offsets[f.owner]));
  }
}

// Tick-by-tick through two near rotations, across the cascade boundaries, with timers armed from
// before the wheel started so they sit in the far level until their group is reached.
TEST(TimerWheel, TickByTickAcrossCascades) {
  constexpr std::size_t n = 64;
  Harness h(n, 0);
  std::mt19937_64 rng(7);
  std::vector<std::uint64_t> deadline(n);
  for (std::size_t i = 0; i < n; ++i) {
    deadline[i] = timer_near_span_ms + rng() % (2 * timer_near_span_ms);
    if (i % 8 == 0) deadline[i] = (i / 8 % 3 + 1) * timer_near_span_ms;  // exactly on a boundary
    h.wheel->arm(h.node[i], deadline[i]);
  }
  for (std::uint64_t now = 0; now <= 3 * timer_near_span_ms; now += timer_tick_ms) {
    const std::size_t before = h.fired.size();
    h.advance(now);
    for (std::size_t k = before; k < h.fired.size(); ++k) {
      ASSERT_EQ(round_up_to_tick(deadline[h.fired[k].owner]), now);
    }
  }
  EXPECT_EQ(h.fired.size(), n);
}

TEST(TimerWheel, LongTimeoutsAcrossManyRotations) {
  const std::uint64_t start = 987'654'321;
  const std::uint64_t timeouts[] = {day_ms,
                                    day_ms + 1,
                                    46 * hour_ms,
                                    47 * hour_ms,
                                    7 * day_ms,
                                    100 * day_ms,
                                    3 * timer_far_span_ms + 5};
  constexpr std::size_t n = std::size(timeouts);
  Harness h(n, start);
  for (std::size_t i = 0; i < n; ++i) h.wheel->arm(h.node[i], start + timeouts[i]);
  // Step the way a shard does: sleep until the reported next deadline (capped at 10 s), advance.
  std::uint64_t now = start;
  std::size_t steps = 0;
  while (h.wheel->armed_count() > 0) {
    now += std::max<std::uint64_t>(1, h.wheel->ms_until_next(now, 60'000));
    h.advance(now);
    ASSERT_LT(++steps, 2'000'000u);
  }
  ASSERT_EQ(h.fired.size(), n);
  for (const Fired& f : h.fired) EXPECT_EQ(f.at_ms, round_up_to_tick(start + timeouts[f.owner]));
  // The same timers, reached in one jump.
  Harness jump(n, start);
  for (std::size_t i = 0; i < n; ++i) jump.wheel->arm(jump.node[i], start + timeouts[i]);
  EXPECT_EQ(jump.advance(start + 99 * day_ms), n - 1);
  EXPECT_EQ(jump.advance(start + 101 * day_ms), 1u);
}

TEST(TimerWheel, RearmMovesAndCancelOfUnarmedIsNoop) {
  Harness h(2, 0);
  h.wheel->cancel(h.node[0]);  // never armed
  EXPECT_EQ(h.wheel->armed_count(), 0u);
  h.wheel->arm(h.node[0], 100);
  h.wheel->arm(h.node[0], 500);  // later
  EXPECT_EQ(h.wheel->armed_count(), 1u);
  EXPECT_EQ(h.wheel->next_deadline_ms(), 500u);
  EXPECT_EQ(h.advance(499), 0u);
  h.wheel->arm(h.node[0], 2 * day_ms);  // near -> far
  h.wheel->arm(h.node[0], 600);         // far -> near, earlier
  EXPECT_EQ(h.wheel->next_deadline_ms(), 600u);
  EXPECT_EQ(h.advance(600), 1u);
  h.wheel->cancel(h.node[0]);  // already fired
  h.wheel->cancel(h.node[0]);
  EXPECT_EQ(h.wheel->armed_count(), 0u);
  h.wheel->arm(h.node[1], 5 * day_ms);
  h.wheel->cancel(h.node[1]);
  EXPECT_EQ(h.advance(10 * day_ms), 0u);
}

TEST(TimerWheel, CallbackRearmsTheFiredTimer) {
  Harness h(1, 0);
  std::vector<std::uint64_t> at;
  h.wheel->arm(h.node[0], 100);
  const auto periodic = [&](TimerNode& n) {
    at.push_back(h.wheel->now_ms());
    if (at.size() < 5) h.wheel->arm(n, h.wheel->now_ms() + 100);
  };
  EXPECT_EQ(h.wheel->advance(350, periodic), 3u);  // one advance spans three periods
  EXPECT_EQ(at, (std::vector<std::uint64_t>{100, 200, 300}));
  EXPECT_EQ(h.wheel->next_deadline_ms(), 400u);
  EXPECT_EQ(h.wheel->advance(10'000, periodic), 2u);
  EXPECT_EQ(at.back(), 500u);
  EXPECT_FALSE(h.node[0].armed());
}

TEST(TimerWheel, CallbackCancelsTimersDueInTheSameAdvance) {
  Harness h(4, 0);
  for (std::size_t i = 0; i < 3; ++i) h.wheel->arm(h.node[i], 100);  // same tick
  h.wheel->arm(h.node[3], 200);                                      // later tick, same advance
  std::vector<std::uint64_t> fired;
  const std::size_t count = h.wheel->advance(1'000, [&](TimerNode& n) {
    fired.push_back(n.owner());
    for (std::size_t i = 0; i < 4; ++i) h.wheel->cancel(h.node[i]);  // all the others
  });
  EXPECT_EQ(count, 1u);
  EXPECT_EQ(fired.size(), 1u);
  EXPECT_EQ(h.wheel->armed_count(), 0u);
  EXPECT_EQ(h.wheel->next_deadline_ms(), std::nullopt);
}

TEST(TimerWheel, CallbackMovesATimerOfTheSameTickLater) {
  Harness h(2, 0);
  h.wheel->arm(h.node[0], 100);
  h.wheel->arm(h.node[1], 100);
  std::vector<Fired> fired;
  const auto on_expire = [&](TimerNode& n) {
    fired.push_back({n.owner(), h.wheel->now_ms()});
    TimerNode& other = h.node[1 - n.owner()];
    if (fired.size() == 1) h.wheel->arm(other, 250);  // was due now, still pending
  };
  EXPECT_EQ(h.wheel->advance(200, on_expire), 1u);
  EXPECT_EQ(h.wheel->advance(250, on_expire), 1u);
  ASSERT_EQ(fired.size(), 2u);
  EXPECT_EQ(fired[1].at_ms, 250u);
  EXPECT_NE(fired[0].owner, fired[1].owner);
}

TEST(TimerWheel, CallbackArmsTimersForLaterTicksOfTheSameAdvance) {
  Harness h(3, 0);
  h.wheel->arm(h.node[0], 100);
  std::vector<Fired> fired;
  const auto on_expire = [&](TimerNode& n) {
    fired.push_back({n.owner(), h.wheel->now_ms()});
    if (n.owner() == 0) {
      h.wheel->arm(h.node[1], 50);  // already past: next tick
      h.wheel->arm(h.node[2], 300);
    }
  };
  EXPECT_EQ(h.wheel->advance(300, on_expire), 3u);
  ASSERT_EQ(fired.size(), 3u);
  EXPECT_EQ(fired[1].owner, 1u);
  EXPECT_EQ(fired[1].at_ms, 110u);
  EXPECT_EQ(fired[2].owner, 2u);
  EXPECT_EQ(fired[2].at_ms, 300u);
}

// A timer armed one near span ahead from a callback hashes to the slot being expired; it must wait
// a full rotation rather than fire with the slot's current contents.
TEST(TimerWheel, CallbackArmsIntoTheSlotBeingExpired) {
  Harness h(2, 0);
  h.wheel->arm(h.node[0], 1'000);
  std::uint64_t b_at = 0;
  EXPECT_EQ(h.wheel->advance(1'000,
                             [&](TimerNode&) {
                               h.wheel->arm(h.node[1], h.wheel->now_ms() + timer_near_span_ms);
                             }),
            1u);
  EXPECT_TRUE(h.node[1].armed());
  EXPECT_EQ(h.wheel->next_deadline_ms(), 1'000 + timer_near_span_ms);
  const auto record = [&](TimerNode&) { b_at = h.wheel->now_ms(); };
  EXPECT_EQ(h.wheel->advance(1'000 + timer_near_span_ms - 1, record), 0u);
  EXPECT_EQ(h.wheel->advance(1'000 + timer_near_span_ms, record), 1u);
  EXPECT_EQ(b_at, 1'000 + timer_near_span_ms);
}

TEST(TimerWheel, NextDeadlineIsExactNearAndALowerBoundFar) {
  Harness h(3, 0);
  h.wheel->arm(h.node[0], 30 * hour_ms);
  const std::uint64_t far_bound = *h.wheel->next_deadline_ms();
  EXPECT_LE(far_bound, 30 * hour_ms);
  EXPECT_GT(far_bound, 0u);
  h.wheel->arm(h.node[1], 5'000);
  h.wheel->arm(h.node[2], 2'000);
  EXPECT_EQ(h.wheel->next_deadline_ms(), 2'000u);
  h.wheel->cancel(h.node[2]);  // the earliest: the cache must not keep it
  EXPECT_EQ(h.wheel->next_deadline_ms(), 5'000u);
  h.wheel->arm(h.node[1], 7'000);  // moved later
  EXPECT_EQ(h.wheel->next_deadline_ms(), 7'000u);
  EXPECT_EQ(h.wheel->ms_until_next(6'000, 100), 100u);
  EXPECT_EQ(h.wheel->ms_until_next(6'950, 100), 50u);
  h.wheel->cancel(h.node[1]);
  EXPECT_EQ(h.wheel->next_deadline_ms(), far_bound);
  // A shard sleeping until each reported deadline wakes for the near timer, once for the far
  // timer's cascade, and once for the far timer itself: no spinning, and a slot emptied by expiry
  // leaves no stale wakeup behind.
  h.wheel->arm(h.node[2], 1'000);
  std::uint64_t now = 0;
  std::size_t wakeups = 0;
  while (h.wheel->armed_count() > 0) {
    const std::uint64_t next = *h.wheel->next_deadline_ms();
    ASSERT_GT(next, now);
    now = next;
    h.advance(now);
    ASSERT_LT(++wakeups, 100u);
  }
  EXPECT_EQ(now, 30 * hour_ms);
  EXPECT_EQ(wakeups, 3u);
}

TEST(TimerWheel, DestroyingTheWheelDisarmsNodes) {
  TimerNode a;
  TimerNode b;
  {
    TimerWheel wheel(0);
    wheel.arm(a, 100);
    wheel.arm(b, 3 * day_ms);
    EXPECT_TRUE(a.armed());
  }
  EXPECT_FALSE(a.armed());
  EXPECT_FALSE(b.armed());
}

TEST(TimerWheelDeathTest, DestroyingAnArmedNodeAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        auto wheel = std::make_unique<TimerWheel>(0);
        auto node = std::make_unique<TimerNode>();
        wheel->arm(*node, 100);
        node.reset();
      },
      "assertion failed: !armed\\(\\)");
}

// The reference model: std::multimap from expected firing tick to node id. The wheel's contract
// in model terms: a node armed for deadline D while the current tick is `now` fires at tick
// max(ceil(D / tick), now + 1), where `now` is, inside a callback, the tick being expired.
class Model {
 public:
  explicit Model(std::size_t nodes) : pos_(nodes) {}
  void arm(std::size_t id, std::uint64_t deadline_ms, std::uint64_t now_tick) {
    cancel(id);
    const std::uint64_t tick =
        std::max(round_up_to_tick(deadline_ms) / timer_tick_ms, now_tick + 1);
    pos_[id] = by_tick_.emplace(tick, id);
  }
  void cancel(std::size_t id) {
    if (pos_[id].has_value()) by_tick_.erase(*pos_[id]);
    pos_[id].reset();
  }
  [[nodiscard]] std::optional<std::uint64_t> tick_of(std::size_t id) const {
    if (!pos_[id].has_value()) return std::nullopt;
    return (*pos_[id])->first;
  }
  [[nodiscard]] std::optional<std::uint64_t> earliest_tick() const {
    if (by_tick_.empty()) return std::nullopt;
    return by_tick_.begin()->first;
  }
  [[nodiscard]] std::size_t size() const { return by_tick_.size(); }

 private:
  std::multimap<std::uint64_t, std::size_t> by_tick_;
  std::vector<std::optional<std::multimap<std::uint64_t, std::size_t>::iterator>> pos_;
};

std::uint64_t random_timeout_ms(std::mt19937_64& rng) {
  const std::uint64_t pick = rng() % 100;
  if (pick < 30) return rng() % 200;                       // around a few ticks
  if (pick < 60) return rng() % (2 * timer_near_span_ms);  // within / just past the near span
  if (pick < 80) return rng() % (2 * hour_ms);
  if (pick < 92) return rng() % (2 * timer_far_span_ms);  // across the far span
  return rng() % (200 * day_ms);                          // many far rotations
}

std::uint64_t random_step_ms(std::mt19937_64& rng) {
  const std::uint64_t pick = rng() % 100;
  if (pick < 60) return rng() % 30;
  if (pick < 85) return rng() % 5'000;
  if (pick < 95) return rng() % (2 * timer_near_span_ms);
  if (pick < 99) return rng() % (3 * hour_ms);
  return rng() % (60 * day_ms);
}

TEST(TimerWheel, RandomizedAgainstMultimapModel) {
  constexpr std::size_t nodes = 512;
  constexpr int operations = 100'000;
  const std::uint64_t start = 1'000'003;
  std::mt19937_64 rng(20240611);
  Harness h(nodes, start);
  Model model(nodes);
  std::uint64_t now_ms = start;
  std::uint64_t now_tick = start / timer_tick_ms;  // the model's current tick
  std::size_t total_fired = 0;

  const auto on_expire = [&](TimerNode& n) {
    const std::size_t id = n.owner();
    const std::optional<std::uint64_t> expected = model.tick_of(id);
    ASSERT_TRUE(expected.has_value()) << "fired a cancelled timer " << id;
    ASSERT_EQ(*expected * timer_tick_ms, h.wheel->now_ms()) << "fired at the wrong time";
    ASSERT_GE(*expected, now_tick) << "fired out of order";
    ASSERT_FALSE(n.armed());
    now_tick = *expected;
    model.cancel(id);
    ++total_fired;
    const std::uint64_t act = rng() % 10;
    if (act < 2) {  // re-arm itself, sometimes for a tick this advance still reaches
      const std::uint64_t deadline = now_tick * timer_tick_ms + rng() % 300;
      h.wheel->arm(n, deadline);
      model.arm(id, deadline, now_tick);
    } else if (act < 3) {  // cancel another, possibly one due in this same tick
      const std::size_t other = rng() % nodes;
      h.wheel->cancel(h.node[other]);
      model.cancel(other);
    } else if (act < 4) {
      const std::size_t other = rng() % nodes;
      const std::uint64_t deadline = now_tick * timer_tick_ms + random_timeout_ms(rng);
      h.wheel->arm(h.node[other], deadline);
      model.arm(other, deadline, now_tick);
    }
  };

  for (int op = 0; op < operations; ++op) {
    const std::uint64_t pick = rng() % 100;
    const std::size_t id = rng() % nodes;
    if (pick < 45) {
      // Mostly future deadlines; some already in the past.
      const std::uint64_t deadline = rng() % 20 == 0 ? now_ms - std::min(now_ms, rng() % 1'000)
                                                     : now_ms + random_timeout_ms(rng);
      h.wheel->arm(h.node[id], deadline);
      model.arm(id, deadline, now_tick);
    } else if (pick < 70) {
      h.wheel->cancel(h.node[id]);
      model.cancel(id);
    } else {
      now_ms += random_step_ms(rng);
      const std::uint64_t target_tick = now_ms / timer_tick_ms;
      const std::size_t before = total_fired;
      const std::size_t fired = h.wheel->advance(now_ms, on_expire);
      ASSERT_FALSE(testing::Test::HasFatalFailure()) << "op " << op;
      ASSERT_EQ(fired, total_fired - before);
      now_tick = std::max(now_tick, target_tick);
      ASSERT_EQ(h.wheel->now_ms(), now_tick * timer_tick_ms);
      const std::optional<std::uint64_t> earliest = model.earliest_tick();
      ASSERT_TRUE(!earliest.has_value() || *earliest > target_tick)
          << "missed a due timer, op " << op;
    }
    ASSERT_EQ(h.wheel->armed_count(), model.size()) << "op " << op;
    ASSERT_EQ(h.node[id].armed(), model.tick_of(id).has_value()) << "op " << op;
    const std::optional<std::uint64_t> next = h.wheel->next_deadline_ms();
    const std::optional<std::uint64_t> earliest = model.earliest_tick();
    ASSERT_EQ(next.has_value(), earliest.has_value()) << "op " << op;
    if (next.has_value()) {
      ASSERT_LE(*next, *earliest * timer_tick_ms) << "next deadline too late, op " << op;
      ASSERT_GT(*next, now_tick * timer_tick_ms) << "next deadline in the past, op " << op;
      if (*earliest - now_tick <= timer_near_slots / 2) {
        // Within half a near span at most one cascade boundary precedes the earliest timer, so
        // the bound is either exact or that boundary.
        const std::uint64_t boundary = (now_tick / timer_near_slots + 1) * timer_near_slots;
        ASSERT_TRUE(*next == *earliest * timer_tick_ms || *next == boundary * timer_tick_ms)
            << "op " << op;
      }
    }
  }
  EXPECT_GT(total_fired, 10'000u);  // the mix must actually exercise expiry
}

TEST(Clock, MonotonicAndConsistentUnits) {
  const std::uint64_t ns0 = monotonic_ns();
  const std::uint64_t ms0 = monotonic_ms();
  std::uint64_t prev = ns0;
  for (int i = 0; i < 1000; ++i) {
    const std::uint64_t ns = monotonic_ns();
    ASSERT_GE(ns, prev);
    prev = ns;
  }
  const std::uint64_t ms1 = monotonic_ms();
  EXPECT_GE(ms0, ns0 / ns_per_ms);
  EXPECT_LE(ms0, ms1);
  EXPECT_LE(ms1, monotonic_ns() / ns_per_ms);
  EXPECT_GT(ns0, 0u);
}

}  // namespace
}  // namespace tokentap
