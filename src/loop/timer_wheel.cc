// TimerWheel: the out-of-line parts (construction, teardown, cascading and the next-event search).
// The per-timer operations (arm, cancel, the expiry loop) are inline in timer_wheel.h because they
// run once or more per request; see the header for the design and its invariants.
#include "tokentap/loop/timer_wheel.h"

#include <algorithm>

namespace tokentap {

TimerWheel::TimerWheel(std::uint64_t now_ms) : now_tick_(now_ms / timer_tick_ms) {}

TimerWheel::~TimerWheel() { clear(); }

void TimerWheel::clear() {
  TT_ASSERT(!advancing_);
  const auto disarm_list = [](TimerNode* node) {
    while (node != nullptr) {
      TimerNode* next = node->next_;
      node->next_ = nullptr;
      node->pprev_ = nullptr;
      node->level_ = TimerNode::Level::idle;
      node = next;
    }
  };
  for (TimerNode*& head : near_) {
    disarm_list(head);
    head = nullptr;
  }
  for (TimerNode*& head : far_) {
    disarm_list(head);
    head = nullptr;
  }
  near_bits_.reset();
  far_bits_.reset();
  armed_count_ = 0;
  next_tick_valid_ = false;
}

// The first cascade boundary after now_tick_ at which far slot `slot` is visited. Far groups up to
// the current one were cascaded already, so the candidates are groups G+1 .. G+far_slots.
std::uint64_t TimerWheel::far_event_tick(std::uint32_t slot) const {
  const std::uint64_t next_group = (now_tick_ >> near_shift) + 1;
  const std::uint64_t distance = (slot - next_group) & far_mask;
  return (next_group + distance) << near_shift;
}

std::uint64_t TimerWheel::next_event_tick() const {
  if (next_tick_valid_) return next_tick_cache_;
  std::uint64_t best = tick_none;
  const auto near_start = static_cast<std::uint32_t>((now_tick_ + 1) & near_mask);
  const std::uint32_t near_hit = near_bits_.find_from(near_start);
  if (near_hit != near_bits_.none) {
    // Slot i holds the single tick in (now, now + near_slots] congruent to i.
    best = now_tick_ + 1 + ((near_hit - near_start) & near_mask);
  }
  const auto far_start = static_cast<std::uint32_t>(((now_tick_ >> near_shift) + 1) & far_mask);
  const std::uint32_t far_hit = far_bits_.find_from(far_start);
  if (far_hit != far_bits_.none) best = std::min(best, far_event_tick(far_hit));
  next_tick_cache_ = best;
  next_tick_valid_ = true;
  return best;
}

// Moves the wheel to `tick` (an event tick, so nothing between was due), cascades the far slot when
// `tick` starts a new near rotation, and detaches the due near slot onto pending_.
void TimerWheel::advance_step(std::uint64_t tick) {
  TT_DASSERT(tick > now_tick_);
  TT_DASSERT(pending_ == nullptr);
  now_tick_ = tick;
  next_tick_valid_ = false;
  if ((tick & near_mask) == 0) cascade(tick >> near_shift);
  const std::uint32_t slot = near_slot(tick);
  pending_ = near_[slot];
  near_[slot] = nullptr;
  near_bits_.clear(slot);
  if (pending_ != nullptr) pending_->pprev_ = &pending_;
}

// Visits far slot of `group` at the first tick of that group: its timers of this group are now
// within one near rotation and move down; timers of a later group that alias here stay a round.
void TimerWheel::cascade(std::uint64_t group) {
  const auto slot = static_cast<std::uint32_t>(group & far_mask);
  TimerNode* node = far_[slot];
  far_[slot] = nullptr;
  far_bits_.clear(slot);
  while (node != nullptr) {
    TimerNode* next = node->next_;
    const std::uint64_t node_group = node->due_tick_ >> near_shift;
    TT_DASSERT(node_group >= group);
    if (node_group == group) {
      link_near(*node);
    } else {
      link_far(*node);
    }
    node = next;
  }
}

std::optional<std::uint64_t> TimerWheel::next_deadline_ms() const {
  if (armed_count_ == 0) return std::nullopt;
  // Inside on_expire, timers still waiting in the detached slot are due right now.
  if (pending_ != nullptr) return now_tick_ * timer_tick_ms;
  const std::uint64_t tick = next_event_tick();
  TT_DASSERT(tick != tick_none);
  return tick * timer_tick_ms;
}

std::uint64_t TimerWheel::ms_until_next(std::uint64_t now_ms, std::uint64_t cap_ms) const {
  const std::optional<std::uint64_t> next = next_deadline_ms();
  if (!next.has_value()) return cap_ms;
  if (*next <= now_ms) return 0;
  return std::min(*next - now_ms, cap_ms);
}

}  // namespace tokentap
