// Shard: one core's share of the proxy. Everything it touches on the data path it owns alone:
// its thread, io_uring, SO_REUSEPORT listener, provided buffers, connection slab, upstream pool.
// The only state shared with other shards is the immutable Config (STYLE §3).
//
// Loop turn: submit everything queued and wait for at least one completion (one io_uring_enter),
// dispatch the CQE batch, advance the CQ once, publish returned buffers, re-arm receivers that
// were starved of buffers. Every SQE carries a UserData (slot, generation, op); a CQE whose
// generation no longer matches its slot is stale and dropped (its buffer, if any, recycled).
//
// Op accounting (in-flight counts, multishot arming) is done here in dispatch, before the owner
// sees the completion, so owners only decide what a completion means.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "tokentap/obs/access_log.h"
#include "tokentap/loop/buf_ring.h"
#include "tokentap/base/config.h"
#include "tokentap/proxy/conn.h"
#include "tokentap/meter/inspect.h"
#include "tokentap/meter/json_skim.h"
#include "tokentap/obs/metrics.h"
#include "tokentap/loop/ring.h"
#include "tokentap/loop/send_queue.h"
#include "tokentap/base/slab.h"
#include "tokentap/loop/timer_wheel.h"
#include "tokentap/loop/splice_pipe.h"
#include "tokentap/obs/backend_source.h"
#include "tokentap/upstream/backend.h"
#include "tokentap/upstream/catalog.h"
#include "tokentap/upstream/upstream_pool.h"

namespace tokentap {

constexpr std::uint32_t cqe_batch_max = 256;
constexpr unsigned loop_wait_ms = 1000;  // wake at least this often to look at the stop flag
constexpr std::uint32_t shard_slot = UINT32_MAX;  // user_data slot of shard-level ops
// The upstream index of the fan-out service (app/fan_out.h): after every backend slot, so its
// connections have an idle list of their own and never serve a request routed to a backend.
constexpr std::uint32_t fan_out_slot = fleet_backends_max;
constexpr std::uint32_t upstream_targets_max = fleet_backends_max + 1;  // backends + fan-out
// After a burst ends, the free tail of the connection slabs goes back to the kernel: checked this
// often, and only when at least this much would be returned (a madvise per tick otherwise).
constexpr std::uint64_t slab_trim_interval_ms = 1000;
constexpr std::size_t slab_trim_min_bytes = 64 * 1024;

// Loop diagnostics that are not part of the metrics contract.
struct ShardCounters {
  std::uint64_t stale_cqes = 0;
  std::uint64_t slab_bytes_trimmed = 0;  // slab memory given back to the kernel after bursts
};

class Shard {
 public:
  // access_log: this shard's ring, or null when --access-log is off.
  Shard(const Config& config, int index, int listen_fd, MetricsShard& metrics,
        ModelTable& models, AccessRing* access_log);
  Shard(const Shard&) = delete;
  Shard& operator=(const Shard&) = delete;
  ~Shard();

  // Before init: the fleet every shard routes over, and its per-backend counters (one per
  // backend index). Both outlive the shard.
  void attach_fleet(Fleet* fleet, BackendCounters* counters, const Catalog* catalog) {
    fleet_ = fleet;
    backend_counters_ = counters;
    catalog_ = catalog;
  }
  // Before init: where the fan-out service listens (POST /api/pull, DELETE /api/delete and
  // POST /api/copy of a fleet go there, to reach every backend). Without it they go to one.
  void attach_fan_out(const Endpoint& endpoint) {
    targets_[fan_out_slot] = BackendTarget{endpoint, "tokentap-fanout"};
  }
  bool has_fan_out() const { return targets_[fan_out_slot].endpoint.addr_len != 0; }
  // On the shard's own thread (SINGLE_ISSUER): ring, buffers, slabs, first accept.
  [[nodiscard]] bool init(std::string* error);
  void run();
  // Any thread: asks the loop to stop. With drain_ms > 0 it first stops accepting, closes idle
  // connections and lets requests in progress (streams included) finish for up to drain_ms;
  // then, or at once without a drain, it closes every connection and returns from run().
  void request_stop(std::uint32_t drain_ms = 0);

  // ---- services for Conn ----
  const Config& config() const { return config_; }
  Ring& ring() { return ring_; }
  BufRing& bufs() { return bufs_; }
  SegmentPool& segments() { return segments_; }
  UpstreamPool& upstreams() { return upstreams_; }
  PipePool& pipes() { return pipes_; }
  TimerWheel& timers() { return timers_; }
  ShardCounters& counters() { return counters_; }
  MetricsShard& metrics() { return metrics_; }
  ModelTable& models() { return models_; }
  AccessRing* access_log() { return access_log_; }
  Slab<Inspect>& inspects() { return inspects_; }
  Slab<UsageStrip>& strips() { return strips_; }
  PieceParser& piece_parser() { return piece_parser_; }
  Fleet& fleet() { return *fleet_; }
  // Where backend slot b is, as this shard last copied it from the fleet (a reload moves it at
  // the shard's next loop turn; connections already open stay where they are).
  const BackendTarget& target(std::uint32_t b) const { return targets_[b]; }
  // Any thread: a reload changed the fleet's targets; the loop looks at them at once rather
  // than at its next wake-up (loop_wait_ms at most).
  void notify_targets();
  const Catalog& catalog() const { return *catalog_; }
  BackendCounters& backend_counters(std::uint32_t backend) { return backend_counters_[backend]; }
  // Round-robin position for the balancer's ties; per shard, so no two shards contend on it.
  // It moves once per attempt sent (advance_rr), not per decision: a held request is chosen
  // for twice (at its head, again once its model is known), and moving on both would send every
  // sequential request of a tie to the same backend.
  std::uint32_t rr() const { return rr_; }
  void advance_rr() { ++rr_; }

  void arm_recv(int fd, std::uint64_t user_data);
  void cancel(std::uint64_t user_data);
  void arm_poll(int fd, unsigned events, std::uint64_t user_data);
  void cancel_fd(int fd);
  // Starts a connect to the upstream; returns the UpstreamPool slot or none on failure.
  [[nodiscard]] std::uint32_t connect_upstream(std::uint32_t owner, std::uint8_t backend,
                                               const Endpoint& ep);
  // Closes an upstream connection not in use: shutdown now, close when its last op completes.
  void retire_upstream(std::uint32_t slot);
  // Back to the idle list (or closed if the list is full).
  void park_upstream(std::uint32_t slot);
  // A recv of this connection (client or upstream side) stopped on ENOBUFS: call its
  // on_buffers_available once buffers are back. `tag` is UserData{slot, generation}.encode().
  void starved_conn(std::uint64_t tag) { starved_conns_.push_back(tag); }
  std::uint32_t open_conns() const { return conns_.used(); }
  // CLOCK_MONOTONIC read once per loop turn, right after the wait returned: every completion of
  // the turn arrived by then. Timestamps on the data path (token times, durations, timer
  // deadlines) use it, so a 32-line stream costs one clock read per turn, not one per line.
  std::uint64_t now_ns() const { return turn_ns_; }

 private:
  void dispatch(io_uring_cqe* cqe);
  void dispatch_conn(UserData ud, int res, std::uint32_t flags);
  void dispatch_upstream(UserData ud, int res, std::uint32_t flags);
  void on_upstream_unowned(std::uint32_t slot, Op op, int res, std::uint32_t flags);
  void on_accept(int res, std::uint32_t flags);
  void arm_accept();
  void arm_wakeup();
  void drop_buffer(int res, std::uint32_t flags);
  void maybe_free_conn(std::uint32_t slot);
  void maybe_free_upstream(std::uint32_t slot);
  void rearm_starved();
  void shutdown_all();
  void begin_drain();
  // Once a second: slab tails and spare buffers back to the kernel, surplus idle upstreams closed.
  void give_back_idle(std::uint64_t now_ms);
  // When the fleet's targets moved: copy them, close idle connections to a moved or removed one.
  void sync_targets();

  const Config& config_;
  MetricsShard& metrics_;
  ModelTable& models_;
  AccessRing* access_log_;
  int index_;
  int listen_fd_;
  int wake_fd_ = -1;
  std::uint64_t wake_value_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<std::uint32_t> drain_ms_{0};
  bool accept_armed_ = false;

  Ring ring_;
  TimerWheel timers_;
  BufRing bufs_;
  SegmentPool segments_;
  Slab<Conn> conns_;
  UpstreamPool upstreams_;
  PipePool pipes_;
  Slab<Inspect> inspects_;  // metering state, one per inference exchange in flight
  Slab<UsageStrip> strips_;  // one per response stripped of the usage the proxy asked for
  PieceParser piece_parser_;
  std::vector<std::uint64_t> starved_conns_;
  std::vector<std::uint64_t> starved_scratch_;  // swapped with starved_conns_ while re-arming
  ShardCounters counters_;
  std::uint64_t next_trim_ms_ = 0;
  std::uint64_t turn_ns_ = 0;  // see now_ns()
  Fleet* fleet_ = nullptr;
  BackendCounters* backend_counters_ = nullptr;
  const Catalog* catalog_ = nullptr;
  std::uint32_t rr_ = 0;
  // This shard's copy of the fleet's targets (sync_targets), read by its own thread only.
  std::array<BackendTarget, upstream_targets_max> targets_{};
  std::array<std::uint32_t, upstream_targets_max> target_generation_{};
  std::uint64_t targets_seen_ = UINT64_MAX;  // targets_version() at the last copy; none yet
};

}  // namespace tokentap
