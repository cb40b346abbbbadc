// UpstreamPool: the shard's connections to the upstream server, and its keep-alive idle list.
//
// Each upstream connection is its own object with its own slot, generation and in-flight count,
// so it can outlive the client connection that used it (teardown after an abort) or wait in the
// idle list between requests. An idle connection keeps a multishot recv armed: if Ollama closes
// it (restart), the EOF arrives at once and the connection leaves the pool before anyone reuses
// it. A connection is returned to the pool only after a complete request and a complete,
// keep-alive response with nothing extra: a half-read connection is never reused.
//
// Sizing: the idle list holds as many connections as the shard's concurrency needed (up to
// upstream_idle_max), so a steady load never closes and reopens upstream connections (a cap
// below the concurrency turned ~16 % of requests at 256 client connections into a fresh
// connect + close). Connections nobody needed for a whole purge interval are surplus: each
// purge closes half of them, the coldest first, down to upstream_idle_keep, so the pool follows
// the load down within seconds after a burst.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "tokentap/base/assert.h"
#include "tokentap/base/slab.h"
#include "tokentap/loop/user_data.h"

namespace tokentap {

constexpr std::uint32_t upstream_idle_max = 4096;  // idle keep-alive connections per shard
constexpr std::uint32_t upstream_idle_keep = 16;   // a purge never goes below this many
constexpr std::uint32_t upstream_connect_timeout_ms = 5'000;

// In-flight accounting has one owner: these two functions. The code that submits an op on the
// socket calls submitted(), the shard's dispatch calls completed() before anyone sees the CQE.
struct UpstreamConn {
  enum class State : std::uint8_t { free, connecting, active, idle, closing };

  void submitted(Op op) {
    ++inflight;
    if (op == Op::upstream_recv) recv_armed = true;
    if (op == Op::upstream_send) send_inflight = true;
  }
  // A multishot recv stays armed while its CQEs carry F_MORE; every other op ends with its CQE.
  void completed(Op op, bool more) {
    if (op == Op::upstream_recv && more) return;
    TT_ASSERT(inflight > 0);
    --inflight;
    if (op == Op::upstream_recv) recv_armed = false;
    if (op == Op::upstream_send) send_inflight = false;
  }

  int fd = -1;
  std::uint32_t generation = 0;
  State state = State::free;
  std::uint32_t owner = slot_none;  // client Conn slot while active
  std::uint32_t idle_pos = 0;                       // index in its backend's idle list
  std::uint32_t target_generation = 0;  // of the backend's target it connected to (reloads)
  std::uint8_t backend = 0;                         // the backend it is connected to
  std::uint8_t inflight = 0;                        // ops in flight on fd
  bool recv_armed = false;
  bool recv_starved = false;  // multishot recv ended with ENOBUFS; re-armed when buffers return
  bool send_inflight = false;
  bool reused = false;        // came from the idle list for the current request
};

// Whether a request may be replayed on a fresh connection after its pooled one failed: only when
// the pooled connection was dead before it took any byte of the request (the upstream closed
// it while idle) and nothing of a response reached the client, once per request. Every failure
// path (a send error, an EOF before the response) asks this one function.
struct StaleRetryFacts {
  bool reused = false;            // the connection came from the idle list
  bool retried = false;           // this request already used its retry
  bool send_inflight = false;     // a send is still in flight: its bytes may have gone out
  bool response_started = false;  // some response byte reached the client
  std::uint64_t bytes_sent = 0;   // request bytes the upstream accepted
};
[[nodiscard]] constexpr bool stale_retry_allowed(const StaleRetryFacts& f) {
  return f.reused && !f.retried && !f.send_inflight && !f.response_started && f.bytes_sent == 0;
}

class UpstreamPool {
 public:
  // capacity: upstream connections per shard; backends: one idle list each (a connection to
  // one backend can never serve a request routed to another), the first `reserved` of them
  // (those configured at start) reserved in full now; a backend added by a reload grows its
  // list on first use.
  [[nodiscard]] bool init(std::uint32_t capacity, std::uint32_t backends = 1,
                          std::uint32_t reserved = 1) {
    TT_ASSERT(backends >= 1 && backends <= 256);  // UpstreamConn::backend is 8 bits
    lists_.resize(backends);
    for (std::uint32_t b = 0; b < std::min(reserved, backends); ++b) {
      lists_[b].slots.reserve(std::min(upstream_idle_max, capacity));
    }
    return slab_.init(capacity);
  }

  UpstreamConn& at(std::uint32_t slot) { return slab_[slot]; }
  [[nodiscard]] std::uint32_t alloc() { return slab_.alloc(); }
  void release(std::uint32_t slot) {
    UpstreamConn& u = slab_[slot];
    ++u.generation;
    u.state = UpstreamConn::State::free;
    slab_.release(slot);
  }

  // The most recently used idle connection to `backend` (warmest), or none.
  [[nodiscard]] std::uint32_t take_idle(std::uint32_t backend) {
    IdleList& l = lists_[backend];
    if (l.slots.empty()) return slot_none;
    const std::uint32_t slot = l.slots.back();
    l.slots.pop_back();
    --idle_total_;
    l.note_low();
    return slot;
  }
  // Hands every idle connection to `backend` to `retire` (its target moved or it was removed).
  template <class Fn>
  void take_all_idle(std::uint32_t backend, Fn&& retire) {
    if (backend >= lists_.size()) return;
    while (true) {
      const std::uint32_t s = take_idle(backend);
      if (s == slot_none) return;
      retire(s);
    }
  }
  // Any idle connection (drain and stop close them all), or none.
  [[nodiscard]] std::uint32_t take_any_idle() {
    for (std::uint32_t b = 0; b < lists_.size(); ++b) {
      if (const std::uint32_t s = take_idle(b); s != slot_none) return s;
    }
    return slot_none;
  }
  // False when the shard already keeps upstream_idle_max idle connections: the caller closes
  // this one instead (the slab is sized for that many beside one per client connection).
  [[nodiscard]] bool put_idle(std::uint32_t slot) {
    if (idle_total_ >= upstream_idle_max) return false;
    IdleList& l = lists_[slab_[slot].backend];
    slab_[slot].idle_pos = static_cast<std::uint32_t>(l.slots.size());
    l.slots.push_back(slot);
    ++idle_total_;
    return true;
  }
  void remove_idle(std::uint32_t slot) {
    IdleList& l = lists_[slab_[slot].backend];
    const std::uint32_t pos = slab_[slot].idle_pos;
    TT_ASSERT(pos < l.slots.size() && l.slots[pos] == slot);
    l.slots.erase(l.slots.begin() + pos);  // keeps the list ordered coldest → warmest
    --idle_total_;
    renumber_from(l, pos);
    l.note_low();
  }
  // Once per purge interval, per backend: hands the coldest idle connections to `retire` (half
  // of those that stayed idle the whole interval, never going below upstream_idle_keep) and
  // removes them from the list; starts the next interval's low-water mark.
  template <class Fn>
  void purge_surplus(Fn&& retire) {
    for (IdleList& l : lists_) {
      const auto count = static_cast<std::uint32_t>(l.slots.size());
      TT_ASSERT(l.low <= count);  // every shrink of the list lowers the mark
      const std::uint32_t surplus =
          l.low > upstream_idle_keep ? (l.low - upstream_idle_keep + 1) / 2 : 0;
      for (std::uint32_t i = 0; i < surplus; ++i) retire(l.slots[i]);
      l.slots.erase(l.slots.begin(), l.slots.begin() + surplus);
      idle_total_ -= surplus;
      renumber_from(l, 0);
      l.low = static_cast<std::uint32_t>(l.slots.size());
    }
  }
  std::uint32_t idle_count() const { return idle_total_; }
  std::uint32_t used() const { return slab_.used(); }
  std::size_t trim(std::size_t min_bytes) { return slab_.trim(min_bytes); }

 private:
  struct IdleList {
    std::vector<std::uint32_t> slots;  // coldest first; take_idle() takes the warmest
    std::uint32_t low = 0;             // fewest idle since the last purge: never needed
    void note_low() { low = std::min(low, static_cast<std::uint32_t>(slots.size())); }
  };
  void renumber_from(IdleList& l, std::uint32_t pos) {
    for (std::uint32_t i = pos; i < l.slots.size(); ++i) slab_[l.slots[i]].idle_pos = i;
  }

  Slab<UpstreamConn> slab_;
  std::vector<IdleList> lists_;
  std::uint32_t idle_total_ = 0;
};

}  // namespace tokentap
