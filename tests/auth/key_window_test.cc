// KeyWindow: the pure window rules (ids, resets, roll-over, clock steps back, saturation), then
// the shared windows — admission and charges with Retry-After and remaining — and exactness
// with 16 real threads racing for one window.
#include "tokentap/auth/key_window.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

namespace tokentap::auth {
namespace {

// 2024-05-01T12:34:56Z
constexpr std::uint64_t t0 = 1'714'566'896;
constexpr std::uint64_t day_start = 1'714'521'600;  // 2024-05-01T00:00:00Z

TEST(WindowRules, IdsAndResetsAreUtcAligned) {
  EXPECT_EQ(window_id(day_layout, t0), day_start / seconds_per_day);
  EXPECT_EQ(window_id(day_layout, day_start - 1) + 1, window_id(day_layout, day_start));
  EXPECT_EQ(seconds_to_reset(minute_layout, t0), 4u);  // :56 → :00
  EXPECT_EQ(seconds_to_reset(minute_layout, t0 - 56), 60u);
  EXPECT_EQ(seconds_to_reset(day_layout, day_start), seconds_per_day);
  EXPECT_EQ(seconds_to_reset(day_layout, day_start + seconds_per_day - 1), 1u);
}

TEST(WindowRules, AdmitCountsToTheLimitThenRefuses) {
  const std::uint64_t id = window_id(minute_layout, t0);
  std::uint64_t word = 0;
  for (int i = 0; i < 3; ++i) {
    const auto next = admit_step(minute_layout, word, id, 3);
    ASSERT_TRUE(next);
    word = *next;
  }
  EXPECT_EQ(word_count(minute_layout, word), 3u);
  EXPECT_EQ(word_id(minute_layout, word), id);
  EXPECT_FALSE(admit_step(minute_layout, word, id, 3));
  // The next minute starts from zero.
  const auto next = admit_step(minute_layout, word, id + 1, 3);
  ASSERT_TRUE(next);
  EXPECT_EQ(word_count(minute_layout, *next), 1u);
  EXPECT_EQ(word_id(minute_layout, *next), id + 1);
}

TEST(WindowRules, AClockStepBackKeepsTheLaterWindow) {
  const std::uint64_t id = window_id(minute_layout, t0);
  const std::uint64_t word = make_word(minute_layout, id, 5);
  EXPECT_EQ(count_now(minute_layout, word, id - 1), 5u);
  EXPECT_FALSE(admit_step(minute_layout, word, id - 1, 5));
  const std::uint64_t charged = charge_step(minute_layout, word, id - 1, 2);
  EXPECT_EQ(word_id(minute_layout, charged), id);
  EXPECT_EQ(word_count(minute_layout, charged), 7u);
}

TEST(WindowRules, ChargeRollsOverAndSaturates) {
  const std::uint64_t id = window_id(day_layout, t0);
  std::uint64_t word = charge_step(day_layout, 0, id, 100);
  word = charge_step(day_layout, word, id, 50);
  EXPECT_EQ(word_count(day_layout, word), 150u);
  EXPECT_EQ(room(day_layout, word, id, 200), 50u);
  EXPECT_EQ(room(day_layout, word, id, 150), 0u);
  EXPECT_EQ(room(day_layout, word, id, 100), 0u);  // over the limit: still no room
  EXPECT_EQ(room(day_layout, word, id + 1, 100), 100u);
  EXPECT_EQ(word_count(day_layout, charge_step(day_layout, word, id + 1, 7)), 7u);
  const std::uint64_t full = charge_step(day_layout, word, id, ~std::uint64_t{0});
  EXPECT_EQ(word_count(day_layout, full), day_layout.count_max());
  EXPECT_EQ(word_id(day_layout, full), id);  // saturating never spills into the id
}

KeyWindow window_for(KeyLimits limits, int keys = 2) {
  std::vector<KeyLimits> all(static_cast<std::size_t>(keys));
  all[0] = limits;
  return KeyWindow(all);
}

TEST(KeyWindow, RequestsPerMinute) {
  KeyWindow w = window_for(KeyLimits{2, 0, 0});
  EXPECT_EQ(w.try_admit(0, t0), Refusal::none);
  EXPECT_EQ(w.try_admit(0, t0), Refusal::none);
  EXPECT_EQ(w.try_admit(0, t0), Refusal::rate);
  EXPECT_EQ(w.retry_after_s(0, t0), 4u);
  EXPECT_EQ(w.remaining(0, Window::requests_minute, t0), 0u);
  EXPECT_EQ(w.try_admit(0, t0 + 4), Refusal::none);  // the next minute
  EXPECT_EQ(w.remaining(0, Window::requests_minute, t0 + 4), 1u);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(w.try_admit(1, t0), Refusal::none);  // unlimited key
  EXPECT_FALSE(w.remaining(1, Window::requests_minute, t0));
}

TEST(KeyWindow, TokensAdmitWhileRoomThenChargeAtTheEnd) {
  KeyWindow w = window_for(KeyLimits{0, 100, 1000});
  EXPECT_EQ(w.try_admit(0, t0), Refusal::none);
  EXPECT_EQ(w.try_admit(0, t0), Refusal::none);  // both in flight: room is checked, not spent
  w.charge(0, 80, t0);
  EXPECT_EQ(w.remaining(0, Window::tokens_minute, t0), 20u);
  EXPECT_EQ(w.try_admit(0, t0), Refusal::none);
  w.charge(0, 80, t0);  // the second request takes the minute past its limit
  EXPECT_EQ(w.remaining(0, Window::tokens_minute, t0), 0u);
  EXPECT_EQ(w.remaining(0, Window::tokens_day, t0), 840u);
  EXPECT_EQ(w.try_admit(0, t0), Refusal::tokens);
  EXPECT_EQ(w.retry_after_s(0, t0), 4u);
  EXPECT_EQ(w.try_admit(0, t0 + 4), Refusal::none);
  EXPECT_EQ(w.remaining(0, Window::tokens_minute, t0 + 4), 100u);
}

TEST(KeyWindow, TheDayWindowSeedsAndResetsAtUtcMidnight) {
  KeyWindow w = window_for(KeyLimits{0, 0, 1000});
  w.seed_day(0, 1000, t0);  // what the ledger says the key used today before a restart
  EXPECT_EQ(w.try_admit(0, t0), Refusal::tokens);
  const std::uint64_t midnight = day_start + seconds_per_day;
  EXPECT_EQ(w.retry_after_s(0, t0), midnight - t0);
  EXPECT_EQ(w.try_admit(0, midnight), Refusal::none);
  EXPECT_EQ(w.remaining(0, Window::tokens_day, midnight), 1000u);
  EXPECT_FALSE(w.remaining(0, Window::tokens_minute, t0));
}

TEST(KeyWindow, RetryAfterWaitsForEveryFullWindow) {
  KeyWindow w = window_for(KeyLimits{1, 10, 10});
  EXPECT_EQ(w.try_admit(0, t0), Refusal::none);
  EXPECT_EQ(w.retry_after_s(0, t0), 4u);  // only the request window is full
  w.charge(0, 10, t0);
  EXPECT_EQ(w.retry_after_s(0, t0), day_start + seconds_per_day - t0);
  KeyWindow fresh = window_for(KeyLimits{1, 0, 0});
  EXPECT_EQ(fresh.retry_after_s(0, t0), 1u);  // nothing full: at least one second
}

TEST(KeyWindow, SixteenThreadsNeverAdmitMoreThanTheLimit) {
  constexpr int threads = 16;
  constexpr int attempts = 5000;
  constexpr std::uint64_t limit = 12'345;
  KeyWindow w = window_for(KeyLimits{limit, 0, 0});
  std::atomic<std::uint64_t> admitted{0};
  std::atomic<bool> go{false};
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&] {
      while (!go.load()) {
      }
      std::uint64_t mine = 0;
      for (int i = 0; i < attempts; ++i) mine += w.try_admit(0, t0) == Refusal::none;
      admitted += mine;
    });
  }
  go = true;
  for (auto& th : pool) th.join();
  static_assert(threads * attempts > limit, "the race must overrun the limit");
  EXPECT_EQ(admitted.load(), limit);
  EXPECT_EQ(w.try_admit(0, t0 + 60), Refusal::none);
}

TEST(KeyWindow, ConcurrentChargesLoseNothing) {
  constexpr int threads = 16;
  constexpr int charges = 10'000;
  KeyWindow w = window_for(KeyLimits{0, 1'000'000'000, 1'000'000'000});
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&] {
      for (int i = 0; i < charges; ++i) w.charge(0, 3, t0);
    });
  }
  for (auto& th : pool) th.join();
  EXPECT_EQ(w.remaining(0, Window::tokens_day, t0), 1'000'000'000u - 3u * threads * charges);
  EXPECT_EQ(w.remaining(0, Window::tokens_minute, t0), 1'000'000'000u - 3u * threads * charges);
}

}  // namespace
}  // namespace tokentap::auth
