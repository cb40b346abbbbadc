// Shard: the per-core event loop; see shard.h.
#include "tokentap/proxy/shard.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "tokentap/base/assert.h"
#include "tokentap/base/clock.h"

namespace tokentap {
namespace {

constexpr std::uint64_t stop_grace_ms = 2'000;  // time to tear down connections on stop
constexpr std::uint32_t rearm_min_free_buffers = 16;

// Connect timeout for the linked timeout op; must outlive the submit, hence static storage.
const __kernel_timespec connect_timeout_ts{upstream_connect_timeout_ms / 1000,
                                           (upstream_connect_timeout_ms % 1000) * 1'000'000ll};

void set_nodelay(int fd) {
  const int one = 1;
  // Streamed lines must leave at once; a failure here only costs latency, never correctness.
  (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

}  // namespace

Shard::Shard(const Config& config, int index, int listen_fd, MetricsShard& metrics,
             ModelTable& models, AccessRing* access_log)
    : config_(config),
      metrics_(metrics),
      models_(models),
      access_log_(access_log),
      index_(index),
      listen_fd_(listen_fd),
      timers_(monotonic_ms()) {}

Shard::~Shard() {
  timers_.clear();  // connections die with the slab; their timer nodes must be unlinked first
  if (wake_fd_ >= 0) close(wake_fd_);
}

bool Shard::init(std::string* error) {
  TT_ASSERT(fleet_ != nullptr && "attach_fleet before init");
  // The CQ is sized for bursts of multishot completions: several per submitted entry.
  if (!ring_.init(config_.sq_entries, config_.sq_entries * (ring_cq_entries / ring_sq_entries),
                  error)) {
    return false;
  }
  if (!bufs_.init(ring_.raw(), config_.ring_buffers, buf_spare_count, error)) return false;
  segments_.init(segments_per_buffer * (config_.ring_buffers + buf_spare_count));
  pipes_.init(splice_pipes_per_shard);
  // One upstream per client connection plus the idle pool; one metering slot per connection.
  if (!conns_.init(config_.max_connections) ||
      !upstreams_.init(config_.max_connections + upstream_idle_max, upstream_targets_max,
                       fleet_->size()) ||
      !inspects_.init(config_.max_connections) || !strips_.init(config_.max_connections)) {
    *error = "cannot reserve connection slabs";
    return false;
  }
  // A connection can be listed once per starved recv (client and upstream side).
  starved_conns_.reserve(2 * std::size_t{config_.max_connections});
  starved_scratch_.reserve(2 * std::size_t{config_.max_connections});
  wake_fd_ = eventfd(0, EFD_CLOEXEC);
  if (wake_fd_ < 0) {
    *error = "eventfd failed";
    return false;
  }
  arm_wakeup();
  arm_accept();
  sync_targets();
  return true;
}

void Shard::notify_targets() {
  const std::uint64_t one = 1;
  (void)!write(wake_fd_, &one, sizeof(one));
}

void Shard::sync_targets() {
  const std::uint64_t version = fleet_->targets_version();
  if (version == targets_seen_) return;
  targets_seen_ = version;
  for (std::uint32_t b = 0; b < fleet_->size(); ++b) {
    std::uint32_t generation = 0;
    fleet_->copy_target(b, &targets_[b], &generation);
    if (generation == target_generation_[b]) continue;
    target_generation_[b] = generation;
    // Idle connections to the old address (or to a removed backend) are closed now; those in
    // use finish their exchange and are closed instead of parked (park_upstream).
    upstreams_.take_all_idle(b, [this](std::uint32_t slot) { retire_upstream(slot); });
  }
}

void Shard::request_stop(std::uint32_t drain_ms) {
  drain_ms_.store(drain_ms, std::memory_order_relaxed);
  stop_.store(true, std::memory_order_release);
  const std::uint64_t one = 1;
  (void)!write(wake_fd_, &one, sizeof(one));
}

void Shard::arm_wakeup() {
  io_uring_sqe* sqe = ring_.sqe();
  io_uring_prep_read(sqe, wake_fd_, &wake_value_, sizeof(wake_value_), 0);
  io_uring_sqe_set_data64(sqe, UserData{shard_slot, 0, Op::wakeup}.encode());
}

void Shard::arm_accept() {
  io_uring_sqe* sqe = ring_.sqe();
  io_uring_prep_multishot_accept(sqe, listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
  io_uring_sqe_set_data64(sqe, UserData{shard_slot, 0, Op::accept}.encode());
  accept_armed_ = true;
}

void Shard::arm_recv(int fd, std::uint64_t user_data) {
  io_uring_sqe* sqe = ring_.sqe();
  io_uring_prep_recv_multishot(sqe, fd, nullptr, 0, 0);
  sqe->flags |= IOSQE_BUFFER_SELECT;
  sqe->buf_group = buf_group_id;
  io_uring_sqe_set_data64(sqe, user_data);
}

void Shard::arm_poll(int fd, unsigned events, std::uint64_t user_data) {
  io_uring_sqe* sqe = ring_.sqe();
  io_uring_prep_poll_add(sqe, fd, events);
  io_uring_sqe_set_data64(sqe, user_data);
}

void Shard::cancel(std::uint64_t user_data) {
  io_uring_sqe* sqe = ring_.sqe();
  io_uring_prep_cancel64(sqe, user_data, 0);
  io_uring_sqe_set_data64(sqe, UserData{shard_slot, 0, Op::cancel}.encode());
}

void Shard::cancel_fd(int fd) {
  io_uring_sqe* sqe = ring_.sqe();
  io_uring_prep_cancel_fd(sqe, fd, IORING_ASYNC_CANCEL_ALL);
  io_uring_sqe_set_data64(sqe, UserData{shard_slot, 0, Op::cancel}.encode());
}

void Shard::run() {
  std::uint64_t stop_deadline_ms = 0;
  std::uint64_t drain_deadline_ms = 0;
  bool hard_stopped = false;
  turn_ns_ = monotonic_ns();
  for (;;) {
    const unsigned wait_ms =
        static_cast<unsigned>(timers_.ms_until_next(monotonic_ms(), loop_wait_ms));
    const int rc = ring_.submit_and_wait(wait_ms);
    (void)rc;  // -ETIME (timeout) and -EINTR (signal) are normal wake-ups
    turn_ns_ = monotonic_ns();
    unsigned head;
    unsigned seen = 0;
    io_uring_cqe* cqe;
    io_uring_for_each_cqe(ring_.raw(), head, cqe) {
      dispatch(cqe);
      if (++seen == cqe_batch_max) break;
    }
    io_uring_cq_advance(ring_.raw(), seen);
    bufs_.flush();
    rearm_starved();
    const std::uint64_t turn_ms = turn_ns_ / ns_per_ms;
    timers_.advance(turn_ms, [this](TimerNode& node) {
      const auto slot = static_cast<std::uint32_t>(node.owner());
      conns_[slot].on_timer();
      maybe_free_conn(slot);
    });
    give_back_idle(turn_ms);
    sync_targets();  // one atomic load per turn unless a reload moved a target
    if (stop_.load(std::memory_order_acquire)) {
      const std::uint64_t now = monotonic_ms();
      if (stop_deadline_ms == 0) {
        const std::uint32_t drain_ms = drain_ms_.load(std::memory_order_relaxed);
        drain_deadline_ms = now + drain_ms;
        stop_deadline_ms = drain_deadline_ms + stop_grace_ms;
        if (drain_ms > 0) {
          begin_drain();
        } else {
          shutdown_all();
          hard_stopped = true;
        }
      }
      if (!hard_stopped && (now >= drain_deadline_ms || conns_.used() == 0)) {
        shutdown_all();  // the drain is over: whatever is left is cut now
        hard_stopped = true;
      }
      if ((conns_.used() == 0 && upstreams_.used() == 0) || now > stop_deadline_ms) break;
    }
  }
  io_uring_submit(ring_.raw());
}

void Shard::give_back_idle(std::uint64_t now) {
  if (now < next_trim_ms_) return;
  next_trim_ms_ = now + slab_trim_interval_ms;
  counters_.slab_bytes_trimmed += conns_.trim(slab_trim_min_bytes) +
                                  inspects_.trim(slab_trim_min_bytes) +
                                  strips_.trim(slab_trim_min_bytes) +
                                  bufs_.trim_spares(slab_trim_min_bytes) +
                                  upstreams_.trim(slab_trim_min_bytes);
  // Same cadence: idle upstream connections the last second never needed are closed (half of
  // them each time), before their slots could be trimmed on a later turn.
  upstreams_.purge_surplus([this](std::uint32_t slot) { retire_upstream(slot); });
}

void Shard::begin_drain() {
  if (accept_armed_) cancel(UserData{shard_slot, 0, Op::accept}.encode());
  for (std::uint32_t slot = 0; slot < conns_.constructed(); ++slot) {
    if (conns_[slot].state() != Conn::State::free) {
      conns_[slot].drain();
      maybe_free_conn(slot);
    }
  }
  while (upstreams_.idle_count() > 0) retire_upstream(upstreams_.take_any_idle());
}

void Shard::shutdown_all() {
  if (accept_armed_) cancel(UserData{shard_slot, 0, Op::accept}.encode());
  for (std::uint32_t slot = 0; slot < conns_.constructed(); ++slot) {
    if (conns_[slot].state() != Conn::State::free) {
      conns_[slot].shutdown();
      maybe_free_conn(slot);
    }
  }
  while (upstreams_.idle_count() > 0) retire_upstream(upstreams_.take_any_idle());
}

void Shard::dispatch(io_uring_cqe* cqe) {
  const UserData ud = UserData::decode(io_uring_cqe_get_data64(cqe));
  const int res = cqe->res;
  const std::uint32_t flags = cqe->flags;
  switch (ud.op) {
    case Op::accept:
      on_accept(res, flags);
      return;
    case Op::wakeup:
      if (!stop_.load(std::memory_order_acquire)) arm_wakeup();
      return;
    case Op::cancel:
    case Op::timeout:
      return;  // their effect shows on the op they targeted
    case Op::client_recv:
    case Op::client_send:
    case Op::client_poll:
      dispatch_conn(ud, res, flags);
      return;
    case Op::upstream_connect:
    case Op::upstream_recv:
    case Op::upstream_send:
    case Op::upstream_poll:
      dispatch_upstream(ud, res, flags);
      return;
    default:
      ++counters_.stale_cqes;
      drop_buffer(res, flags);
      return;
  }
}

void Shard::drop_buffer(int res, std::uint32_t flags) {
  if ((flags & IORING_CQE_F_BUFFER) == 0) return;
  const std::uint16_t bid = buffer_id(flags);
  bufs_.on_received(bid);
  bufs_.unref(bid);
  (void)res;
}

void Shard::dispatch_conn(UserData ud, int res, std::uint32_t flags) {
  if (!conns_.valid(ud.slot) || !ud.matches(conns_[ud.slot].generation()) ||
      conns_[ud.slot].state() == Conn::State::free) {
    ++counters_.stale_cqes;
    drop_buffer(res, flags);
    return;
  }
  Conn& c = conns_[ud.slot];
  c.completed(ud.op, (flags & IORING_CQE_F_MORE) != 0);
  c.on_completion(ud.op, res, flags);
  maybe_free_conn(ud.slot);
}

void Shard::dispatch_upstream(UserData ud, int res, std::uint32_t flags) {
  UpstreamConn& u = upstreams_.at(ud.slot);
  if (!ud.matches(u.generation) || u.state == UpstreamConn::State::free) {
    ++counters_.stale_cqes;
    drop_buffer(res, flags);
    return;
  }
  u.completed(ud.op, (flags & IORING_CQE_F_MORE) != 0);
  if (u.owner != slot_none) {
    const std::uint32_t owner = u.owner;
    conns_[owner].on_completion(ud.op, res, flags);
    maybe_free_conn(owner);
  } else {
    on_upstream_unowned(ud.slot, ud.op, res, flags);
  }
  maybe_free_upstream(ud.slot);
}

void Shard::on_upstream_unowned(std::uint32_t slot, Op op, int res, std::uint32_t flags) {
  UpstreamConn& u = upstreams_.at(slot);
  drop_buffer(res, flags);
  switch (u.state) {
    case UpstreamConn::State::idle:
      // Anything arriving on an idle connection (EOF from a restarting Ollama, stray bytes,
      // an error, a recv that ran out of buffers) makes it unusable: never hand it out again.
      if (op == Op::upstream_recv) {
        upstreams_.remove_idle(slot);
        retire_upstream(slot);
      }
      return;
    case UpstreamConn::State::connecting:  // its client left during connect
    case UpstreamConn::State::active:
      retire_upstream(slot);
      return;
    case UpstreamConn::State::closing:
    case UpstreamConn::State::free:
      return;
  }
}

void Shard::on_accept(int res, std::uint32_t flags) {
  if ((flags & IORING_CQE_F_MORE) == 0) {
    accept_armed_ = false;
    if (!stop_.load(std::memory_order_acquire)) arm_accept();
  }
  if (res < 0) return;  // EMFILE, ECONNABORTED…: the listener stays armed
  const std::uint32_t slot = conns_.alloc();
  if (slot == slot_none || stop_.load(std::memory_order_acquire)) {
    metrics_.connection_rejected(RejectReason::limit);
    close(res);
    if (slot != slot_none) conns_.release(slot);
    return;
  }
  metrics_.connection_opened();
  set_nodelay(res);
  conns_[slot].start(this, slot, res);
  // The peer address is only needed for the access log: no syscall when it is off.
  if (access_log_ != nullptr) conns_[slot].note_peer();
}

std::uint32_t Shard::connect_upstream(std::uint32_t owner, std::uint8_t backend,
                                      const Endpoint& ep) {
  const std::uint32_t slot = upstreams_.alloc();
  if (slot == slot_none) return slot;
  const int fd = socket(ep.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    upstreams_.release(slot);
    return slot_none;
  }
  set_nodelay(fd);
  UpstreamConn& u = upstreams_.at(slot);
  u.fd = fd;
  u.state = UpstreamConn::State::connecting;
  u.owner = owner;
  u.backend = backend;
  u.target_generation = target_generation_[backend];
  u.inflight = 0;
  u.recv_armed = u.recv_starved = u.send_inflight = u.reused = false;
  u.submitted(Op::upstream_connect);
  ring_.reserve(2);
  io_uring_sqe* sqe = ring_.sqe();
  io_uring_sqe* timeout = ring_.sqe();
  io_uring_prep_connect(sqe, fd, reinterpret_cast<const sockaddr*>(&ep.addr), ep.addr_len);
  sqe->flags |= IOSQE_IO_LINK;
  io_uring_sqe_set_data64(sqe, UserData{slot, u.generation, Op::upstream_connect}.encode());
  io_uring_prep_link_timeout(timeout, const_cast<__kernel_timespec*>(&connect_timeout_ts), 0);
  io_uring_sqe_set_data64(timeout, UserData{shard_slot, 0, Op::timeout}.encode());
  return slot;
}

void Shard::retire_upstream(std::uint32_t slot) {
  UpstreamConn& u = upstreams_.at(slot);
  if (u.state == UpstreamConn::State::closing) return;
  u.state = UpstreamConn::State::closing;
  u.owner = slot_none;
  // shutdown sends FIN now, so Ollama sees the client go and stops generating, even while our
  // own ops on the socket are still being cancelled.
  shutdown(u.fd, SHUT_RDWR);
  if (u.inflight > 0) cancel_fd(u.fd);
  maybe_free_upstream(slot);
}

void Shard::park_upstream(std::uint32_t slot) {
  UpstreamConn& u = upstreams_.at(slot);
  u.owner = slot_none;
  u.reused = false;
  if (stop_.load(std::memory_order_relaxed) || !u.recv_armed ||
      u.target_generation != target_generation_[u.backend] || !upstreams_.put_idle(slot)) {
    retire_upstream(slot);
    return;
  }
  u.state = UpstreamConn::State::idle;
}

void Shard::maybe_free_upstream(std::uint32_t slot) {
  UpstreamConn& u = upstreams_.at(slot);
  if (u.state != UpstreamConn::State::closing || u.inflight != 0) return;
  close(u.fd);
  u.fd = -1;
  upstreams_.release(slot);
}

void Shard::maybe_free_conn(std::uint32_t slot) {
  Conn& c = conns_[slot];
  if (!c.ready_to_free()) return;
  c.release_resources();
  c.bump_generation();
  conns_.release(slot);
  metrics_.connection_closed();
}

void Shard::rearm_starved() {
  // Wait for a few buffers (fewer on a tiny ring) so a re-armed recv is not starved at once.
  const std::uint32_t enough =
      std::max(1u, std::min(rearm_min_free_buffers, bufs_.ring_count() / 4));
  if (starved_conns_.empty() || bufs_.ring_free() < enough) return;
  starved_scratch_.swap(starved_conns_);
  for (const std::uint64_t packed : starved_scratch_) {
    const UserData ud = UserData::decode(packed);
    if (conns_.valid(ud.slot) && ud.matches(conns_[ud.slot].generation()) &&
        conns_[ud.slot].state() != Conn::State::free) {
      conns_[ud.slot].on_buffers_available();
    }
  }
  starved_scratch_.clear();
}

}  // namespace tokentap
