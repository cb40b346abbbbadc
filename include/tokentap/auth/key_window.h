// KeyWindow: each key's limit windows, shared by every shard, exact without a lock.
//
// Windows are fixed and UTC-aligned: requests_per_minute and tokens_per_minute count from second
// :00 of each wall-clock minute, tokens_per_day from 00:00 UTC. Unix time has no leap seconds, so
// `unix_s / 60` and `unix_s / 86400` are exactly those windows. Fixed windows are what a person
// reads off a clock ("60 a minute" resets at the minute) and what Retry-After can state exactly;
// the price is the classic boundary burst, up to twice a limit across the two seconds around a
// reset, which a sliding approximation would smooth but not make exact (docs/keys.md "Limits").
//
// Each window is one 64-bit atomic word `window id : count`, so reading the window and counting
// in it is one compare-and-swap: a CAS that admits the limit-th request of a window cannot be
// followed by another admission in the same window from any thread, however many race. A word
// of an earlier window counts as zero (the window rolled over); a word of a later window (the
// wall clock stepped back) is kept as the current one, so a clock step never resets a limit.
//
// Requests are counted on admission (try_admit). Tokens are known only when a response ends:
// a request is admitted while its token windows still have room, and charge() adds its prompt +
// completion tokens to the windows current when it ends, so the requests in flight when a window
// fills may take it past its limit by their own size. A key with no limit of a kind never writes
// that kind's word, so unlimited keys share no cache line traffic at all.
//
// Slots are allocated once at start (one per KeyId, at most key_slots_max), 64-byte aligned so
// two keys never share a cache line. The window rules are the pure constexpr functions below,
// tested without threads (STYLE §22c); the class only applies them with CAS.
#pragma once

#include <time.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>

#include "tokentap/auth/key_table.h"
#include "tokentap/base/config.h"

namespace tokentap::auth {

constexpr std::uint64_t seconds_per_minute = 60;
constexpr std::uint64_t seconds_per_day = 86'400;

// Seconds since the Unix epoch (UTC), the clock of every window. COARSE: the windows are whole
// seconds, and the coarse clock is a vDSO read with no TSC access.
[[nodiscard]] inline std::uint64_t wall_clock_s() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME_COARSE, &ts);
  return ts.tv_sec < 0 ? 0 : static_cast<std::uint64_t>(ts.tv_sec);
}

// The three windows. The `window` label of tokentap_key_tokens_remaining is window_label().
enum class Window : std::uint8_t { requests_minute, tokens_minute, tokens_day };

// How a window's word splits: the high id_bits hold the window id, the rest the count.
struct WordLayout {
  std::uint64_t period_s;
  unsigned id_bits;
  [[nodiscard]] constexpr unsigned count_bits() const { return 64 - id_bits; }
  [[nodiscard]] constexpr std::uint64_t count_max() const {
    return (std::uint64_t{1} << count_bits()) - 1;
  }
};

// Minute ids fit 28 bits until the year 2480, day ids 20 bits until 4840.
constexpr WordLayout minute_layout{seconds_per_minute, 28};
constexpr WordLayout day_layout{seconds_per_day, 20};
static_assert(minute_layout.count_max() >= key_requests_per_minute_max);
static_assert(minute_layout.count_max() >= key_tokens_per_minute_max);
static_assert(day_layout.count_max() >= key_tokens_per_day_max);

[[nodiscard]] constexpr WordLayout layout_of(Window w) {
  return w == Window::tokens_day ? day_layout : minute_layout;
}
[[nodiscard]] constexpr const char* window_label(Window w) {
  return w == Window::tokens_day ? "day" : "minute";
}

// --- Pure rules -------------------------------------------------------------------------------

// The id of the window holding `unix_s`.
[[nodiscard]] constexpr std::uint64_t window_id(WordLayout l, std::uint64_t unix_s) {
  return unix_s / l.period_s;
}
// Seconds from `unix_s` until its window ends (1..period).
[[nodiscard]] constexpr std::uint64_t seconds_to_reset(WordLayout l, std::uint64_t unix_s) {
  return l.period_s - unix_s % l.period_s;
}
[[nodiscard]] constexpr std::uint64_t word_id(WordLayout l, std::uint64_t word) {
  return word >> l.count_bits();
}
[[nodiscard]] constexpr std::uint64_t word_count(WordLayout l, std::uint64_t word) {
  return word & l.count_max();
}
[[nodiscard]] constexpr std::uint64_t make_word(WordLayout l, std::uint64_t id,
                                                std::uint64_t count) {
  return id << l.count_bits() | (count & l.count_max());
}
// The window the word counts in at `id`: the stored one when it is not older (clock steps).
[[nodiscard]] constexpr std::uint64_t current_id(WordLayout l, std::uint64_t word,
                                                 std::uint64_t id) {
  return word_id(l, word) > id ? word_id(l, word) : id;
}
// What has been counted in the current window: 0 when the word is of an earlier one.
[[nodiscard]] constexpr std::uint64_t count_now(WordLayout l, std::uint64_t word,
                                                std::uint64_t id) {
  return word_id(l, word) >= id ? word_count(l, word) : 0;
}
// The word after admitting one request, or nullopt when the window already holds `limit`.
[[nodiscard]] constexpr std::optional<std::uint64_t> admit_step(WordLayout l, std::uint64_t word,
                                                                std::uint64_t id,
                                                                std::uint64_t limit) {
  const std::uint64_t count = count_now(l, word, id);
  if (count >= limit) return std::nullopt;
  return make_word(l, current_id(l, word, id), count + 1);
}
// The word after adding `n` (saturating at the layout's count_max).
[[nodiscard]] constexpr std::uint64_t charge_step(WordLayout l, std::uint64_t word,
                                                  std::uint64_t id, std::uint64_t n) {
  const std::uint64_t count = count_now(l, word, id);
  const std::uint64_t sum = n > l.count_max() - count ? l.count_max() : count + n;
  return make_word(l, current_id(l, word, id), sum);
}
// Room left under `limit` (0 once it is reached or passed).
[[nodiscard]] constexpr std::uint64_t room(WordLayout l, std::uint64_t word, std::uint64_t id,
                                           std::uint64_t limit) {
  const std::uint64_t count = count_now(l, word, id);
  return count >= limit ? 0 : limit - count;
}

// --- Shared windows ---------------------------------------------------------------------------

// Why try_admit refused (tokentap_key_rejected_total{reason}): `rate` for requests_per_minute,
// `tokens` for a token window with no room.
enum class Refusal : std::uint8_t { none, rate, tokens };

class KeyWindow {
 public:
  // One slot per entry of `limits`, indexed by KeyId (KeyTable::slot_limits()).
  explicit KeyWindow(std::span<const KeyLimits> limits);

  // Counts the request in its key's requests_per_minute window when there is room there and in
  // both token windows; changes nothing when it refuses. Safe from any thread.
  [[nodiscard]] Refusal try_admit(KeyId key, std::uint64_t unix_s);
  // Adds a finished request's prompt + completion tokens to its key's token windows.
  void charge(KeyId key, std::uint64_t tokens, std::uint64_t unix_s);
  // At start: the day's tokens already in the ledger (they count against tokens_per_day).
  void seed_day(KeyId key, std::uint64_t tokens, std::uint64_t unix_s);

  // For a 429's Retry-After: seconds until every window that is full now has reset (at least 1).
  [[nodiscard]] std::uint64_t retry_after_s(KeyId key, std::uint64_t unix_s) const;
  // Room left in a window for tokentap_key_tokens_remaining (or requests); nullopt when the
  // key has no limit there.
  [[nodiscard]] std::optional<std::uint64_t> remaining(KeyId key, Window w,
                                                       std::uint64_t unix_s) const;

  [[nodiscard]] std::uint32_t size() const { return size_; }

 private:
  struct alignas(64) Slot {
    std::atomic<std::uint64_t> words[3] = {0, 0, 0};  // indexed by Window
    std::uint64_t limit[3] = {0, 0, 0};               // 0: unlimited
  };
  static_assert(sizeof(Slot) == 64, "one cache line per key");

  [[nodiscard]] Slot& slot(KeyId key);
  [[nodiscard]] const Slot& slot(KeyId key) const;
  void add(Slot& s, Window w, std::uint64_t tokens, std::uint64_t unix_s);

  std::unique_ptr<Slot[]> slots_;
  std::uint32_t size_ = 0;
};

}  // namespace tokentap::auth
