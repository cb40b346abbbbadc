// KeyWindow: the CAS loops that apply key_window.h's pure rules to the shared words.
//
// Memory order: each word is its own state and orders nothing else, so the CAS loops are
// relaxed; exactness comes from the CAS itself (a read-modify-write always sees the latest value
// in the word's modification order), not from fences.
#include "tokentap/auth/key_window.h"

#include "tokentap/base/assert.h"

namespace tokentap::auth {
namespace {

constexpr int window_count = 3;

constexpr std::size_t index(Window w) { return static_cast<std::size_t>(w); }

}  // namespace

KeyWindow::KeyWindow(std::span<const KeyLimits> limits)
    : slots_(new Slot[limits.size()]), size_(static_cast<std::uint32_t>(limits.size())) {
  TT_ASSERT(limits.size() <= key_slots_max);
  for (std::size_t i = 0; i < limits.size(); ++i) {
    slots_[i].limit[index(Window::requests_minute)] = limits[i].requests_per_minute;
    slots_[i].limit[index(Window::tokens_minute)] = limits[i].tokens_per_minute;
    slots_[i].limit[index(Window::tokens_day)] = limits[i].tokens_per_day;
  }
}

KeyWindow::Slot& KeyWindow::slot(KeyId key) {
  TT_ASSERT(key < size_);
  return slots_[key];
}

const KeyWindow::Slot& KeyWindow::slot(KeyId key) const {
  TT_ASSERT(key < size_);
  return slots_[key];
}

Refusal KeyWindow::try_admit(KeyId key, std::uint64_t unix_s) {
  Slot& s = slot(key);
  // Token windows first and read-only: a request refused for tokens spends no request.
  for (const Window w : {Window::tokens_minute, Window::tokens_day}) {
    const std::uint64_t limit = s.limit[index(w)];
    if (limit == 0) continue;
    const WordLayout l = layout_of(w);
    const std::uint64_t word = s.words[index(w)].load(std::memory_order_relaxed);
    if (room(l, word, window_id(l, unix_s), limit) == 0) return Refusal::tokens;
  }
  const std::uint64_t limit = s.limit[index(Window::requests_minute)];
  if (limit == 0) return Refusal::none;
  std::atomic<std::uint64_t>& word = s.words[index(Window::requests_minute)];
  const std::uint64_t id = window_id(minute_layout, unix_s);
  std::uint64_t seen = word.load(std::memory_order_relaxed);
  for (;;) {
    const std::optional<std::uint64_t> next = admit_step(minute_layout, seen, id, limit);
    if (!next) return Refusal::rate;
    if (word.compare_exchange_weak(seen, *next, std::memory_order_relaxed)) return Refusal::none;
  }
}

void KeyWindow::add(Slot& s, Window w, std::uint64_t tokens, std::uint64_t unix_s) {
  const WordLayout l = layout_of(w);
  const std::uint64_t id = window_id(l, unix_s);
  std::atomic<std::uint64_t>& word = s.words[index(w)];
  std::uint64_t seen = word.load(std::memory_order_relaxed);
  while (!word.compare_exchange_weak(seen, charge_step(l, seen, id, tokens),
                                     std::memory_order_relaxed)) {
  }
}

void KeyWindow::charge(KeyId key, std::uint64_t tokens, std::uint64_t unix_s) {
  if (tokens == 0) return;
  Slot& s = slot(key);
  for (const Window w : {Window::tokens_minute, Window::tokens_day}) {
    if (s.limit[index(w)] != 0) add(s, w, tokens, unix_s);
  }
}

void KeyWindow::seed_day(KeyId key, std::uint64_t tokens, std::uint64_t unix_s) {
  Slot& s = slot(key);
  if (tokens != 0 && s.limit[index(Window::tokens_day)] != 0) {
    add(s, Window::tokens_day, tokens, unix_s);
  }
}

std::uint64_t KeyWindow::retry_after_s(KeyId key, std::uint64_t unix_s) const {
  const Slot& s = slot(key);
  std::uint64_t wait = 0;
  for (int i = 0; i < window_count; ++i) {
    const std::uint64_t limit = s.limit[i];
    if (limit == 0) continue;
    const WordLayout l = layout_of(static_cast<Window>(i));
    const std::uint64_t word = s.words[i].load(std::memory_order_relaxed);
    const std::uint64_t id = window_id(l, unix_s);
    if (room(l, word, id, limit) != 0) continue;
    // A word ahead of the clock (a step back) resets when the clock reaches its window's end.
    const std::uint64_t end_s = (current_id(l, word, id) + 1) * l.period_s;
    const std::uint64_t until = end_s - unix_s;
    if (until > wait) wait = until;
  }
  return wait == 0 ? 1 : wait;  // a window that reset meanwhile: try again in a second
}

std::optional<std::uint64_t> KeyWindow::remaining(KeyId key, Window w, std::uint64_t unix_s) const {
  const Slot& s = slot(key);
  const std::uint64_t limit = s.limit[index(w)];
  if (limit == 0) return std::nullopt;
  const WordLayout l = layout_of(w);
  return room(l, s.words[index(w)].load(std::memory_order_relaxed), window_id(l, unix_s), limit);
}

}  // namespace tokentap::auth
