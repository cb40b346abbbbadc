// Ledger: the persistent usage ledger of --state-dir — per-shard queues in, one writer thread,
// SQLite out (ledger_store.h).
//
// Producers (shard threads) call record() once per finished request: a push onto the shard's
// own UsageQueue (no lock, no system call, no allocation); a full queue drops the record and
// counts it, it never blocks a shard. The writer thread wakes every drain_interval_ms, drains
// every queue into per-row sums in memory (one row per key, model, backend and hour, so ten
// thousand requests of one key and model are one row), and writes the sums in one transaction
// per write_interval_ms at most. A crash loses what was not yet written: at most about one
// write interval. A failed write (disk full, a lock held too long) keeps the sums and is retried
// on the next interval, counted in write_errors and reported by last_error(); the sums are
// bounded by pending_rows_max, past which new rows are dropped and counted.
//
// Names are resolved on the writer thread through LedgerLabels, so a record carries ids only.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <tuple>
#include <vector>

#include "tokentap/base/config.h"
#include "tokentap/ledger/ledger_store.h"
#include "tokentap/ledger/usage_queue.h"

namespace tokentap::ledger {

// Per shard: at 50 ms drains, 16384 records are 327,000 requests a second per shard.
constexpr std::uint32_t queue_records_max = 16'384;
constexpr std::uint32_t drain_interval_ms = 50;
constexpr std::uint32_t write_interval_ms = 1000;  // one transaction a second at most
// Distinct (key, model, backend, hour) rows held between writes. Reached only when writes keep
// failing for hours.
constexpr std::size_t pending_rows_max = 65'536;
constexpr std::uint32_t producers_max = 256;  // one queue per shard
static_assert(producers_max >= threads_max, "every shard gets a queue");
static_assert(drain_interval_ms < write_interval_ms);

// The names behind a record's ids. Called on the writer thread only; the ids a shard recorded
// must resolve there (the key table and backends are immutable, the model table append-only).
class LedgerLabels {
 public:
  virtual ~LedgerLabels() = default;
  [[nodiscard]] virtual std::string_view key_name(std::uint32_t key) const = 0;
  [[nodiscard]] virtual std::string_view model_name(std::uint32_t model) const = 0;
  [[nodiscard]] virtual std::string_view backend_name(std::uint32_t backend) const = 0;
};

struct LedgerStats {
  std::uint64_t recorded = 0;      // accepted by record()
  std::uint64_t dropped = 0;       // refused: a full queue, or pending_rows_max reached
  std::uint64_t writes = 0;        // transactions committed
  std::uint64_t write_errors = 0;  // transactions that failed (retried)
};

class Ledger {
 public:
  // Opens DIR/usage.sqlite3 for writing and starts the writer thread; `producers` queues (one
  // per shard, at most producers_max). `labels` must outlive the Ledger.
  [[nodiscard]] static std::unique_ptr<Ledger> open(const std::string& dir, std::uint32_t producers,
                                                    const LedgerLabels* labels, std::string* error);
  ~Ledger();  // stop()
  Ledger(const Ledger&) = delete;
  Ledger& operator=(const Ledger&) = delete;

  // From producer `producer`'s thread only (one thread per producer index). False when the
  // record was dropped (counted in stats().dropped).
  bool record(std::uint32_t producer, const UsageRecord& r);

  // Drains and writes now, waiting for the write; false with *error when it failed. For tests
  // and shutdown; the writer does the same on its own every write interval.
  [[nodiscard]] bool flush(std::string* error);
  // Writes what is queued and stops the writer; record() after stop() drops.
  void stop();

  [[nodiscard]] LedgerStats stats() const;
  [[nodiscard]] std::string last_error() const;  // "" when the last write succeeded
  [[nodiscard]] const std::string& path() const { return store_->path(); }

 private:
  using RowId = std::tuple<std::int64_t, std::uint32_t, std::uint32_t, std::uint32_t>;
  struct alignas(64) Producer {
    explicit Producer(std::uint32_t capacity) : queue(capacity) {}
    UsageQueue queue;
    std::atomic<std::uint64_t> recorded{0};  // written by the producer only
    std::atomic<std::uint64_t> dropped{0};
  };

  Ledger() = default;
  void run();
  void drain();
  [[nodiscard]] bool write(std::string* error);

  std::unique_ptr<LedgerStore> store_;
  const LedgerLabels* labels_ = nullptr;
  std::vector<std::unique_ptr<Producer>> producers_;
  std::map<RowId, UsageTotals> pending_;  // writer thread only
  std::atomic<std::uint64_t> dropped_rows_{0};
  std::atomic<std::uint64_t> writes_{0};
  std::atomic<std::uint64_t> write_errors_{0};
  std::atomic<bool> stopped_{false};

  mutable std::mutex mutex_;  // guards the fields below; never taken by record()
  std::condition_variable wake_;
  std::condition_variable flushed_;
  bool stop_requested_ = false;
  std::uint64_t flush_requests_ = 0;
  std::uint64_t flushes_done_ = 0;
  bool last_flush_ok_ = true;
  std::string last_error_;
  std::thread writer_;
};

}  // namespace tokentap::ledger
