// Worker: one thread's epoll loop, its SO_REUSEPORT listener, its connection slab and its timers.
//
// Invariants:
//  - every socket a worker accepts is served by that worker only (no locks on the data path);
//  - epoll registrations are edge-triggered, made once per connection with
//    EPOLLIN|EPOLLOUT|EPOLLRDHUP, and never modified; the u64 carries slot and generation so an
//    event for a slot that was closed and reused in the same batch is dropped;
//  - timers live in a min-heap keyed by CLOCK_MONOTONIC deadline; epoll_pwait2 (Linux 5.11,
//    glibc 2.35) sleeps until the earliest, so delays have microsecond resolution and the loop
//    never sleeps anywhere else. Stale heap entries are skipped by (generation, sequence);
//  - stop is an eventfd write; the loop exits at its next turn and closes everything it owns.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <queue>
#include <string>
#include <vector>

#include "byte_buf.h"
#include "fake_upstream.h"
#include "instance.h"
#include "plan.h"
#include "wire.h"

namespace tokentap::fake {

class Conn;

// One worker's counters: single writer (its thread), relaxed atomics so stats() can read them.
struct alignas(128) WorkerStats {
  std::atomic<std::uint64_t> requests{0};
  std::atomic<std::uint64_t> connections_accepted{0};
  std::atomic<std::uint64_t> connections_closed_by_peer{0};
  std::atomic<std::uint64_t> prompt_tokens_sent{0};
  std::atomic<std::uint64_t> completion_tokens_sent{0};
  std::atomic<std::uint64_t> blob_bytes_received{0};
  std::atomic<std::uint64_t> bytes_sent{0};
  std::atomic<std::uint64_t> inference_requests{0};
  std::atomic<std::uint64_t> busy_answers{0};
  std::atomic<std::uint64_t> model_not_found_answers{0};
  std::atomic<std::uint64_t> health_checks{0};
  std::atomic<std::uint64_t> pull_requests{0};
  std::atomic<std::uint64_t> delete_requests{0};
  std::atomic<std::uint64_t> copy_requests{0};
  std::atomic<std::int64_t> inference_in_flight{0};  // a gauge: reset_stats() leaves it
  std::array<std::atomic<std::uint64_t>, endpoint_count> by_endpoint{};  // request heads per path

  static void add(std::atomic<std::uint64_t>& counter, std::uint64_t n) {
    counter.fetch_add(n, std::memory_order_relaxed);
  }
};

// Values that are "the latest over all workers" rather than sums.
struct SharedStats {
  std::atomic<std::uint64_t> last_peer_close_ns{0};
  std::atomic<std::uint64_t> blob_checksum_last{0};
};

[[nodiscard]] std::uint64_t monotonic_ns();

class Worker {
 public:
  Worker(const Options& options, int listen_fd, bool host_check, WorkerStats* stats,
         SharedStats* shared, Instance* instance);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  [[nodiscard]] bool init(std::string* error);
  void run();
  void request_stop();  // any thread

  // Services for connections.
  [[nodiscard]] Clock& clock() { return clock_; }
  [[nodiscard]] ByteBuf& scratch() { return scratch_; }
  [[nodiscard]] WorkerStats& stats() { return *stats_; }
  [[nodiscard]] bool host_check() const { return host_check_; }
  // Not const: /api/pull, /api/delete and /api/copy change the installed models.
  [[nodiscard]] Instance& instance() const { return *instance_; }
  void note_peer_close();
  void note_blob_checksum(std::uint64_t checksum);
  void add_timer(std::uint64_t deadline_ns, std::uint32_t slot, std::uint32_t gen,
                 std::uint32_t seq);

 private:
  struct Timer {
    std::uint64_t deadline_ns;
    std::uint32_t slot;
    std::uint32_t gen;
    std::uint32_t seq;
    bool operator>(const Timer& o) const { return deadline_ns > o.deadline_ns; }
  };

  void on_accept();
  void on_conn_event(std::uint64_t data, std::uint32_t events);
  void run_timers();
  void release_closed(Conn& conn);
  void close_all();

  static constexpr std::uint32_t listener_slot = 0xFFFFFFFFu;
  static constexpr std::uint32_t wake_slot = 0xFFFFFFFEu;
  static constexpr std::size_t conns_max = 65536;
  static constexpr int events_per_turn = 256;

  int listen_fd_;
  int epoll_fd_ = -1;
  int wake_fd_ = -1;
  bool host_check_;
  std::atomic<bool> stop_{false};
  WorkerStats* stats_;
  SharedStats* shared_;
  Instance* instance_;
  Clock clock_;
  ByteBuf scratch_;
  std::vector<std::unique_ptr<Conn>> conns_;
  std::vector<std::uint32_t> free_slots_;
  std::priority_queue<Timer, std::vector<Timer>, std::greater<>> timers_;
};

}  // namespace tokentap::fake
