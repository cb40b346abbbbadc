// TimerWheel: every connection timeout of one shard (head read, keep-alive idle, upstream connect,
// drain) in one intrusive, two-level hashed wheel, driven by the shard's loop turn.
//
// Why a wheel instead of per-op IORING_OP_LINK_TIMEOUT: a link timeout costs an SQE, a CQE and a
// cancellation round trip each time a timeout is re-armed (every request on a keep-alive
// connection). Here arm/re-arm/cancel are a few pointer writes, and the shard enters the kernel
// once per turn with io_uring_submit_and_wait_timeout(ms_until_next(...)). No kernel feature is
// used; the clock is CLOCK_MONOTONIC (tokentap/clock.h).
//
// Shape:
//  - Time is counted in ticks of timer_tick_ms. A deadline is rounded UP to a tick, so a
//    timer never fires before its deadline; it fires at the first advance(now_ms) whose tick
//    reaches that rounded deadline, i.e. at most one tick late when the shard calls advance()
//    promptly. A deadline at or before the wheel's current tick fires on the next tick.
//  - near level: timer_near_slots slots of one tick each. Slot i holds exactly the timers due at
//    the one tick t in (now, now + timer_near_slots] with t % timer_near_slots == i, so the first
//    non-empty slot after `now` gives the exact next expiry.
//  - far level: timer_far_slots slots of one near rotation each (group = due_tick / near_slots).
//    When the wheel reaches the first tick of a group, that group's far slot is cascaded: timers of
//    this group move to the near level, timers of a later group that alias to the same slot (due
//    more than timer_far_span_ms ahead) stay, as in a "remaining rounds" wheel. Any 64-bit deadline
//    is therefore correct; a timer moves at most once per far rotation (46.6 h).
//  - Each level keeps a two-level occupancy bitmap (64 words + 1 summary word), so "first
//    non-empty slot at or after i" is two count-trailing-zeros, and advance() jumps over empty
//    stretches instead of walking every tick.
//
// Invariants (checked with TT_ASSERT/TT_DASSERT where cheap):
//  - A node is armed ⇔ its pprev_ is non-null ⇔ its level_ is not idle; armed_count_ counts them.
//  - A near node has now_tick_ < due_tick ≤ now_tick_ + timer_near_slots (inside a callback,
//    nodes still waiting on the detached list have due_tick == now_tick_).
//  - A far node has due_tick / near_slots > now_tick_ / near_slots (its group was not reached yet).
//  - A slot's bitmap bit is set ⇔ its list head is non-null.
//  - The cached next event tick, when valid, is the first tick after now_tick_ at which advance()
//    has work: a non-empty near slot, or a cascade of a non-empty far slot. So
//    next_deadline_ms() is ≤ every armed expiry (exact unless a cascade comes first) and is always
//    in the future: waking at it never makes the shard spin.
//
// Callbacks: advance() detaches the due slot into a private list before calling on_expire(node) for
// each node, node already disarmed. A callback may arm, re-arm or cancel any timer, including the
// one that fired and ones due later in the same advance(); a timer armed from a callback for a tick
// that advance() still has to reach fires in that same call. advance() must not be re-entered.
//
// Ownership: the wheel is single-threaded (one per shard) and neither copyable nor movable, because
// armed nodes point into it. Destroying the wheel disarms every node; destroying an armed node is a
// bug (the wheel would keep a dangling pointer) and aborts.
#pragma once

#include <array>
#include <bit>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <optional>

#include "tokentap/base/assert.h"

namespace tokentap {

// Resolution of every connection timeout. 10 ms is far below the shortest timeout we configure
// (connect, hundreds of ms) and keeps the near level's span at tens of seconds.
constexpr std::uint64_t timer_tick_ms = 10;
constexpr std::uint32_t timer_near_slots = 4096;
constexpr std::uint32_t timer_far_slots = 4096;
constexpr std::uint64_t timer_near_span_ms = timer_tick_ms * timer_near_slots;     // 40.96 s
constexpr std::uint64_t timer_far_span_ms = timer_near_span_ms * timer_far_slots;  // 46.6 h
// The longest timeout the proxy is expected to use; longer deadlines still work (far-level rounds)
// but are revisited once per far rotation.
constexpr std::uint64_t timer_timeout_expected_max_ms = 24ull * 3600 * 1000;

static_assert(timer_tick_ms >= 1);
static_assert(std::has_single_bit(timer_near_slots), "slot index is a mask of the tick");
static_assert(std::has_single_bit(timer_far_slots), "slot index is a mask of the group");
static_assert(timer_near_slots % 64 == 0 && timer_near_slots <= 64 * 64, "two-level bitmap");
static_assert(timer_far_slots % 64 == 0 && timer_far_slots <= 64 * 64, "two-level bitmap");
static_assert(timer_far_span_ms >= timer_timeout_expected_max_ms,
              "an expected timeout should cascade at most once");

namespace detail {

// Occupancy of a level's slots: one bit per slot plus one summary bit per 64-slot word.
template <std::uint32_t Slots>
class SlotBitmap {
 public:
  static constexpr std::uint32_t none = Slots;

  void set(std::uint32_t i) {
    words_[i >> 6] |= bit(i & 63);
    summary_ |= bit(i >> 6);
  }
  void clear(std::uint32_t i) {
    std::uint64_t& word = words_[i >> 6];
    word &= ~bit(i & 63);
    if (word == 0) summary_ &= ~bit(i >> 6);
  }
  [[nodiscard]] bool test(std::uint32_t i) const { return (words_[i >> 6] & bit(i & 63)) != 0; }
  void reset() {
    words_.fill(0);
    summary_ = 0;
  }

  // The first set slot at or after `start`, wrapping around; `none` when every slot is clear.
  [[nodiscard]] std::uint32_t find_from(std::uint32_t start) const {
    const std::uint32_t w = start >> 6;
    const std::uint64_t here = words_[w] & (~std::uint64_t{0} << (start & 63));
    if (here != 0) return (w << 6) | static_cast<std::uint32_t>(std::countr_zero(here));
    std::uint64_t later = w + 1 < 64 ? summary_ & (~std::uint64_t{0} << (w + 1)) : 0;
    // Wrapped: the lowest non-empty word, possibly word w itself below `start`.
    if (later == 0) later = summary_;
    if (later == 0) return none;
    const auto w2 = static_cast<std::uint32_t>(std::countr_zero(later));
    return (w2 << 6) | static_cast<std::uint32_t>(std::countr_zero(words_[w2]));
  }

 private:
  static_assert(Slots % 64 == 0 && Slots / 64 <= 64);
  static constexpr std::uint64_t bit(std::uint32_t i) { return std::uint64_t{1} << i; }

  std::array<std::uint64_t, Slots / 64> words_{};
  std::uint64_t summary_ = 0;
};

}  // namespace detail

// A timer, embedded in the object it times out (a connection). Not copyable: it is linked in place.
class TimerNode {
 public:
  TimerNode() = default;
  explicit TimerNode(std::uint64_t owner) : owner_(owner) {}
  TimerNode(const TimerNode&) = delete;
  TimerNode& operator=(const TimerNode&) = delete;
  ~TimerNode() { TT_ASSERT(!armed()); }

  [[nodiscard]] bool armed() const { return pprev_ != nullptr; }
  // Opaque to the wheel: e.g. a UserData-encoded slot|generation|op, so the shard's on_expire knows
  // which connection and which timeout this is without pointer arithmetic.
  [[nodiscard]] std::uint64_t owner() const { return owner_; }
  void set_owner(std::uint64_t owner) { owner_ = owner; }
  // The tick boundary at which an armed timer fires: its deadline rounded up to timer_tick_ms.
  [[nodiscard]] std::uint64_t expiry_ms() const {
    TT_DASSERT(armed());
    return due_tick_ * timer_tick_ms;
  }

 private:
  friend class TimerWheel;
  enum class Level : std::uint8_t { idle, near, far };

  TimerNode* next_ = nullptr;
  TimerNode** pprev_ = nullptr;  // the pointer that points at this node: a head or a prev's next_
  std::uint64_t due_tick_ = 0;
  std::uint64_t owner_ = 0;
  Level level_ = Level::idle;
};

static_assert(sizeof(TimerNode) <= 40, "embedded in every connection: keep it small");

class TimerWheel {
 public:
  // `now_ms` is the current monotonic_ms(); timers are measured from the tick it falls in.
  explicit TimerWheel(std::uint64_t now_ms);
  ~TimerWheel();
  TimerWheel(const TimerWheel&) = delete;
  TimerWheel& operator=(const TimerWheel&) = delete;

  // Arms `node` to fire at `deadline_ms` (monotonic ms, rounded up to a tick). Re-arming an armed
  // node moves it. O(1), never allocates.
  void arm(TimerNode& node, std::uint64_t deadline_ms);
  // Disarms `node`; a no-op when it is not armed. O(1).
  void cancel(TimerNode& node);

  // Expires every timer whose rounded deadline is ≤ now_ms, in deadline-tick order (ties in no
  // particular order), calling on_expire(TimerNode&) for each after disarming it. Returns how many
  // fired. A now_ms at or before the wheel's current tick does nothing.
  template <std::invocable<TimerNode&> OnExpire>
  std::size_t advance(std::uint64_t now_ms, OnExpire&& on_expire);

  // The earliest expiry, or an earlier cascade boundary when a far slot must be visited first
  // (a lower bound: a timer beyond the near span costs one wakeup at its cascade, plus one per far
  // rotation it waits), or nullopt when no timer is armed.
  // Cached: O(1) between changes, two bitmap searches after one.
  [[nodiscard]] std::optional<std::uint64_t> next_deadline_ms() const;
  // How long the shard may sleep: 0 when a timer is due, cap_ms when none is armed or it is later.
  [[nodiscard]] std::uint64_t ms_until_next(std::uint64_t now_ms, std::uint64_t cap_ms) const;

  [[nodiscard]] std::size_t armed_count() const { return armed_count_; }
  // The tick boundary the wheel has reached; inside on_expire, the tick being expired.
  [[nodiscard]] std::uint64_t now_ms() const { return now_tick_ * timer_tick_ms; }

  // Disarms every node (shard teardown). O(slots + armed).
  void clear();

 private:
  static constexpr std::uint64_t tick_none = ~std::uint64_t{0};
  static constexpr std::uint32_t near_shift = std::countr_zero(timer_near_slots);
  static constexpr std::uint64_t near_mask = timer_near_slots - 1;
  static constexpr std::uint64_t far_mask = timer_far_slots - 1;

  [[nodiscard]] static std::uint32_t near_slot(std::uint64_t due_tick) {
    return static_cast<std::uint32_t>(due_tick & near_mask);
  }
  [[nodiscard]] static std::uint32_t far_slot(std::uint64_t due_tick) {
    return static_cast<std::uint32_t>((due_tick >> near_shift) & far_mask);
  }
  [[nodiscard]] std::uint64_t far_event_tick(std::uint32_t slot) const;
  [[nodiscard]] std::uint64_t next_event_tick() const;

  void link_near(TimerNode& node);
  void link_far(TimerNode& node);
  void unlink(TimerNode& node);
  void advance_step(std::uint64_t tick);
  void cascade(std::uint64_t group);

  std::array<TimerNode*, timer_near_slots> near_{};
  std::array<TimerNode*, timer_far_slots> far_{};
  detail::SlotBitmap<timer_near_slots> near_bits_;
  detail::SlotBitmap<timer_far_slots> far_bits_;
  // The slot being expired, detached so that callbacks may re-arm into its slot.
  TimerNode* pending_ = nullptr;
  std::uint64_t now_tick_ = 0;
  std::size_t armed_count_ = 0;
  mutable std::uint64_t next_tick_cache_ = tick_none;
  mutable bool next_tick_valid_ = false;
  bool advancing_ = false;
};

inline void TimerWheel::link_near(TimerNode& node) {
  const std::uint32_t slot = near_slot(node.due_tick_);
  TimerNode*& head = near_[slot];
  node.next_ = head;
  if (head != nullptr) head->pprev_ = &node.next_;
  head = &node;
  node.pprev_ = &head;
  node.level_ = TimerNode::Level::near;
  near_bits_.set(slot);
}

inline void TimerWheel::link_far(TimerNode& node) {
  const std::uint32_t slot = far_slot(node.due_tick_);
  TimerNode*& head = far_[slot];
  node.next_ = head;
  if (head != nullptr) head->pprev_ = &node.next_;
  head = &node;
  node.pprev_ = &head;
  node.level_ = TimerNode::Level::far;
  far_bits_.set(slot);
}

// Takes an armed node off its list (a slot or pending_) without touching armed_count_.
inline void TimerWheel::unlink(TimerNode& node) {
  TT_DASSERT(node.armed());
  *node.pprev_ = node.next_;
  if (node.next_ != nullptr) node.next_->pprev_ = node.pprev_;
  // A node on pending_ finds its slot's bit already clear (or set by newer nodes): no-op below.
  if (node.level_ == TimerNode::Level::near) {
    const std::uint32_t slot = near_slot(node.due_tick_);
    if (near_[slot] == nullptr && near_bits_.test(slot)) {
      near_bits_.clear(slot);
      next_tick_valid_ = false;
    }
  } else {
    const std::uint32_t slot = far_slot(node.due_tick_);
    if (far_[slot] == nullptr && far_bits_.test(slot)) {
      far_bits_.clear(slot);
      next_tick_valid_ = false;
    }
  }
  node.next_ = nullptr;
  node.pprev_ = nullptr;
  node.level_ = TimerNode::Level::idle;
}

inline void TimerWheel::arm(TimerNode& node, std::uint64_t deadline_ms) {
  if (node.armed()) {
    unlink(node);
  } else {
    ++armed_count_;
  }
  std::uint64_t due = deadline_ms / timer_tick_ms + (deadline_ms % timer_tick_ms != 0 ? 1 : 0);
  if (due <= now_tick_) due = now_tick_ + 1;
  node.due_tick_ = due;
  std::uint64_t event_tick = due;
  if (due - now_tick_ <= timer_near_slots) {
    link_near(node);
  } else {
    link_far(node);
    event_tick = far_event_tick(far_slot(due));
  }
  if (next_tick_valid_ && event_tick < next_tick_cache_) next_tick_cache_ = event_tick;
}

inline void TimerWheel::cancel(TimerNode& node) {
  if (!node.armed()) return;
  unlink(node);
  TT_DASSERT(armed_count_ > 0);
  --armed_count_;
}

template <std::invocable<TimerNode&> OnExpire>
std::size_t TimerWheel::advance(std::uint64_t now_ms, OnExpire&& on_expire) {
  TT_ASSERT(!advancing_);  // on_expire must not call advance()
  const std::uint64_t target_tick = now_ms / timer_tick_ms;
  if (target_tick <= now_tick_) return 0;
  advancing_ = true;
  std::size_t fired = 0;
  while (armed_count_ > 0) {
    const std::uint64_t tick = next_event_tick();
    if (tick > target_tick) break;
    advance_step(tick);  // now_tick_ = tick; cascade; the due slot moves to pending_
    while (pending_ != nullptr) {
      TimerNode& node = *pending_;
      TT_DASSERT(node.due_tick_ == now_tick_);
      unlink(node);
      --armed_count_;
      ++fired;
      on_expire(node);
    }
  }
  // Every slot and cascade boundary up to target_tick is empty now, so jumping keeps the
  // near/far invariants, and a valid cached next event (> target_tick) stays the next event: an
  // idle loop turn costs no bitmap scan.
  now_tick_ = target_tick;
  advancing_ = false;
  return fired;
}

}  // namespace tokentap
