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
  std::uint32_t idle_pos = 0;                       // index in the idle list while idle
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
  [[nodiscard]] bool init(std::uint32_t capacity) {
    idle_.reserve(upstream_idle_max);
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

  // The most recently used idle connection (warmest), or none.
  [[nodiscard]] std::uint32_t take_idle() {
    if (idle_.empty()) return slot_none;
    const std::uint32_t slot = idle_.back();
    idle_.pop_back();
    note_idle_low();
    return slot;
  }
  // False when the idle list is full: the caller closes the connection instead.
  [[nodiscard]] bool put_idle(std::uint32_t slot) {
    if (idle_.size() >= upstream_idle_max) return false;
    slab_[slot].idle_pos = static_cast<std::uint32_t>(idle_.size());
    idle_.push_back(slot);
    return true;
  }
  void remove_idle(std::uint32_t slot) {
    const std::uint32_t pos = slab_[slot].idle_pos;
    TT_ASSERT(pos < idle_.size() && idle_[pos] == slot);
    idle_.erase(idle_.begin() + pos);  // keeps the list ordered coldest → warmest
    renumber_from(pos);
    note_idle_low();
  }
  // Once per purge interval: hands the coldest idle connections to `retire` (half of those
  // that stayed idle the whole interval, never going below upstream_idle_keep) and removes them
  // from the list; starts the next interval's low-water mark.
  template <class Fn>
  void purge_surplus(Fn&& retire) {
    TT_ASSERT(idle_low_ <= idle_count());  // every shrink of the list lowers the mark
    const std::uint32_t surplus =
        idle_low_ > upstream_idle_keep ? (idle_low_ - upstream_idle_keep + 1) / 2 : 0;
    for (std::uint32_t i = 0; i < surplus; ++i) retire(idle_[i]);
    idle_.erase(idle_.begin(), idle_.begin() + surplus);
    renumber_from(0);
    idle_low_ = idle_count();
  }
  std::uint32_t idle_count() const { return static_cast<std::uint32_t>(idle_.size()); }
  std::uint32_t used() const { return slab_.used(); }
  std::size_t trim(std::size_t min_bytes) { return slab_.trim(min_bytes); }

 private:
  void note_idle_low() { idle_low_ = std::min(idle_low_, idle_count()); }
  void renumber_from(std::uint32_t pos) {
    for (std::uint32_t i = pos; i < idle_.size(); ++i) slab_[idle_[i]].idle_pos = i;
  }

  Slab<UpstreamConn> slab_;
  std::vector<std::uint32_t> idle_;  // coldest first; take_idle() takes the warmest
  std::uint32_t idle_low_ = 0;       // fewest idle since the last purge: never needed
};

}  // namespace tokentap
