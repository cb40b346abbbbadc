// UpstreamPool: the shard's connections to the upstream server, and its keep-alive idle list.
//
// Each upstream connection is its own object with its own slot, generation and in-flight count,
// so it can outlive the client connection that used it (teardown after an abort) or wait in the
// idle list between requests. An idle connection keeps a multishot recv armed: if Ollama closes
// it (restart), the EOF arrives at once and the connection leaves the pool before anyone reuses
// it. A connection is returned to the pool only after a complete request and a complete,
// keep-alive response with nothing extra: a half-read connection is never reused.
#pragma once

#include <cstdint>
#include <vector>

#include "tokentap/slab.h"

namespace tokentap {

constexpr std::uint32_t upstream_idle_max = 128;  // idle keep-alive connections per shard
constexpr std::uint32_t upstream_connect_timeout_ms = 5'000;

struct UpstreamConn {
  enum class State : std::uint8_t { free, connecting, active, idle, closing };

  int fd = -1;
  std::uint32_t generation = 0;
  State state = State::free;
  std::uint32_t owner = Slab<UpstreamConn>::none;  // client Conn slot while active
  std::uint32_t idle_pos = 0;                       // index in the idle list while idle
  std::uint8_t inflight = 0;                        // ops in flight on fd
  bool recv_armed = false;
  bool recv_starved = false;  // multishot recv ended with ENOBUFS; re-armed when buffers return
  bool send_inflight = false;
  bool reused = false;        // came from the idle list for the current request
};

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
    if (idle_.empty()) return Slab<UpstreamConn>::none;
    const std::uint32_t slot = idle_.back();
    idle_.pop_back();
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
    idle_[pos] = idle_.back();
    slab_[idle_[pos]].idle_pos = pos;
    idle_.pop_back();
  }
  std::uint32_t idle_count() const { return static_cast<std::uint32_t>(idle_.size()); }
  std::uint32_t used() const { return slab_.used(); }
  std::size_t trim(std::size_t min_bytes) { return slab_.trim(min_bytes); }

 private:
  Slab<UpstreamConn> slab_;
  std::vector<std::uint32_t> idle_;
};

}  // namespace tokentap
