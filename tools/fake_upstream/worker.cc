// Worker: epoll loop, accept, connection slab and timer heap (see worker.h).
#include "worker.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cstring>

#include "../../include/tokentap/base/assert.h"
#include "conn.h"

namespace tokentap::fake {
namespace {

constexpr std::uint64_t pack(std::uint32_t slot, std::uint32_t gen) {
  return static_cast<std::uint64_t>(gen) << 32 | slot;
}

}  // namespace

std::uint64_t monotonic_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ull +
         static_cast<std::uint64_t>(ts.tv_nsec);
}

Worker::Worker(const Options& options, int listen_fd, bool host_check, WorkerStats* stats,
               SharedStats* shared, Instance* instance)
    : listen_fd_(listen_fd),
      host_check_(host_check),
      stats_(stats),
      shared_(shared),
      instance_(instance),
      clock_(options.deterministic) {}

Worker::~Worker() {
  close_all();
  if (wake_fd_ >= 0) ::close(wake_fd_);
  if (epoll_fd_ >= 0) ::close(epoll_fd_);
  if (listen_fd_ >= 0) ::close(listen_fd_);
}

bool Worker::init(std::string* error) {
  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (epoll_fd_ < 0 || wake_fd_ < 0) {
    *error = std::string("epoll/eventfd: ") + std::strerror(errno);
    return false;
  }
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = pack(listener_slot, 0);
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, listen_fd_, &ev) != 0) {
    *error = std::string("epoll_ctl listener: ") + std::strerror(errno);
    return false;
  }
  ev.data.u64 = pack(wake_slot, 0);
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &ev) != 0) {
    *error = std::string("epoll_ctl eventfd: ") + std::strerror(errno);
    return false;
  }
  return true;
}

void Worker::request_stop() {
  stop_.store(true, std::memory_order_release);
  const std::uint64_t one = 1;
  [[maybe_unused]] const ssize_t n = ::write(wake_fd_, &one, sizeof(one));
}

void Worker::run() {
  epoll_event events[events_per_turn];
  while (!stop_.load(std::memory_order_acquire)) {
    timespec timeout{};
    timespec* timeout_ptr = nullptr;
    if (!timers_.empty()) {
      const std::uint64_t now = monotonic_ns();
      const std::uint64_t due = timers_.top().deadline_ns;
      const std::uint64_t wait = due > now ? due - now : 0;
      timeout.tv_sec = static_cast<time_t>(wait / 1'000'000'000ull);
      timeout.tv_nsec = static_cast<long>(wait % 1'000'000'000ull);
      timeout_ptr = &timeout;
    }
    const int n = epoll_pwait2(epoll_fd_, events, events_per_turn, timeout_ptr, nullptr);
    if (n < 0 && errno != EINTR) break;
    for (int i = 0; i < n; ++i) {
      const std::uint64_t data = events[i].data.u64;
      const auto slot = static_cast<std::uint32_t>(data);
      if (slot == listener_slot) {
        on_accept();
      } else if (slot == wake_slot) {
        std::uint64_t value = 0;
        [[maybe_unused]] const ssize_t r = ::read(wake_fd_, &value, sizeof(value));
      } else {
        on_conn_event(data, events[i].events);
      }
    }
    run_timers();
  }
  close_all();
}

void Worker::on_accept() {
  for (;;) {
    const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;  // EAGAIN, or a transient error (EMFILE…): the next edge retries
    WorkerStats::add(stats_->connections_accepted, 1);
    if (free_slots_.empty() && conns_.size() >= conns_max) {
      ::close(fd);  // full: refuse rather than grow without bound
      continue;
    }
    const int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    std::uint32_t slot = 0;
    if (!free_slots_.empty()) {
      slot = free_slots_.back();
      free_slots_.pop_back();
    } else {
      slot = static_cast<std::uint32_t>(conns_.size());
      conns_.push_back(std::make_unique<Conn>());
    }
    Conn& conn = *conns_[slot];
    conn.open(fd, slot);
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
    ev.data.u64 = pack(slot, conn.gen());
    if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
      conn.shutdown_close();
      release_closed(conn);
    }
  }
}

void Worker::on_conn_event(std::uint64_t data, std::uint32_t events) {
  const auto slot = static_cast<std::uint32_t>(data);
  const auto gen = static_cast<std::uint32_t>(data >> 32);
  if (slot >= conns_.size()) return;
  Conn& conn = *conns_[slot];
  if (conn.closed() || conn.gen() != gen) return;  // closed (and maybe reused) in this batch
  conn.on_events(*this, events);
  if (conn.closed()) release_closed(conn);
}

void Worker::run_timers() {
  const std::uint64_t now = monotonic_ns();
  while (!timers_.empty() && timers_.top().deadline_ns <= now) {
    const Timer t = timers_.top();
    timers_.pop();
    Conn& conn = *conns_[t.slot];
    if (conn.closed() || conn.gen() != t.gen) continue;
    conn.on_timer(*this, t.seq);
    if (conn.closed()) release_closed(conn);
  }
}

void Worker::add_timer(std::uint64_t deadline_ns, std::uint32_t slot, std::uint32_t gen,
                       std::uint32_t seq) {
  timers_.push(Timer{deadline_ns, slot, gen, seq});
}

void Worker::release_closed(Conn& conn) {
  TT_ASSERT(conn.closed());
  free_slots_.push_back(conn.slot());
}

void Worker::note_peer_close() {
  WorkerStats::add(stats_->connections_closed_by_peer, 1);
  const std::uint64_t now = monotonic_ns();
  std::uint64_t seen = shared_->last_peer_close_ns.load(std::memory_order_relaxed);
  while (seen < now &&
         !shared_->last_peer_close_ns.compare_exchange_weak(seen, now, std::memory_order_relaxed)) {
  }
}

void Worker::note_blob_checksum(std::uint64_t checksum) {
  shared_->blob_checksum_last.store(checksum, std::memory_order_relaxed);
}

void Worker::close_all() {
  for (auto& conn : conns_) {
    if (!conn->closed()) conn->shutdown_close();
  }
  conns_.clear();
  free_slots_.clear();
  while (!timers_.empty()) timers_.pop();
}

}  // namespace tokentap::fake
