// Ledger: the writer thread of ledger.h — drain the shards' queues, sum per row, write a
// transaction per interval, answer flush() and stop().
#include "tokentap/ledger/ledger.h"

#include <chrono>

#include "tokentap/base/assert.h"
#include "tokentap/ledger/usage_time.h"

namespace tokentap::ledger {

std::unique_ptr<Ledger> Ledger::open(const std::string& dir, std::uint32_t producers,
                                     const LedgerLabels* labels, std::string* error) {
  TT_ASSERT(producers >= 1 && producers <= producers_max && labels != nullptr);
  std::unique_ptr<Ledger> l(new Ledger());
  l->store_ = LedgerStore::open(dir, LedgerStore::Mode::write, error);
  if (!l->store_) return nullptr;
  l->labels_ = labels;
  for (std::uint32_t i = 0; i < producers; ++i) {
    l->producers_.push_back(std::make_unique<Producer>(queue_records_max));
  }
  l->writer_ = std::thread([p = l.get()] { p->run(); });
  return l;
}

Ledger::~Ledger() { stop(); }

bool Ledger::record(std::uint32_t producer, const UsageRecord& r) {
  TT_ASSERT(producer < producers_.size());
  Producer& p = *producers_[producer];
  // Single writer per counter: a relaxed load + store is an increment no one races.
  if (stopped_.load(std::memory_order_relaxed) || !p.queue.push(r)) {
    p.dropped.store(p.dropped.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    return false;
  }
  p.recorded.store(p.recorded.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  return true;
}

void Ledger::drain() {
  for (const std::unique_ptr<Producer>& p : producers_) {
    p->queue.drain([this](const UsageRecord& r) {
      const RowId id{hour_start(static_cast<std::int64_t>(r.unix_s)), r.key, r.model, r.backend};
      auto it = pending_.find(id);
      if (it == pending_.end()) {
        if (pending_.size() >= pending_rows_max) {
          dropped_rows_.fetch_add(1, std::memory_order_relaxed);
          return;
        }
        it = pending_.emplace(id, UsageTotals{}).first;
      }
      it->second.requests += 1;
      it->second.prompt_tokens += r.prompt_tokens;
      it->second.completion_tokens += r.completion_tokens;
      it->second.errors += r.errors;
    });
  }
}

bool Ledger::write(std::string* error) {
  if (pending_.empty()) return true;
  std::vector<UsageDelta> deltas;
  deltas.reserve(pending_.size());
  for (const auto& [id, totals] : pending_) {
    const auto& [hour, key, model, backend] = id;
    deltas.push_back(UsageDelta{std::string(labels_->key_name(key)),
                                std::string(labels_->model_name(model)),
                                std::string(labels_->backend_name(backend)), hour, totals});
  }
  if (!store_->add(deltas, error)) {
    write_errors_.fetch_add(1, std::memory_order_relaxed);
    return false;  // the sums stay pending for the next try
  }
  pending_.clear();
  writes_.fetch_add(1, std::memory_order_relaxed);
  return true;
}

void Ledger::run() {
  using clock = std::chrono::steady_clock;
  clock::time_point next_write = clock::now() + std::chrono::milliseconds(write_interval_ms);
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    wake_.wait_for(lock, std::chrono::milliseconds(drain_interval_ms),
                   [this] { return stop_requested_ || flush_requests_ != flushes_done_; });
    const bool stopping = stop_requested_;
    const std::uint64_t flush_target = flush_requests_;
    const bool due = stopping || flush_target != flushes_done_ || clock::now() >= next_write;
    lock.unlock();
    drain();
    std::string error;
    bool ok = true;
    if (due) {
      ok = write(&error);
      next_write = clock::now() + std::chrono::milliseconds(write_interval_ms);
    }
    lock.lock();
    if (due) {
      last_error_ = ok ? std::string() : error;
      last_flush_ok_ = ok;
      flushes_done_ = flush_target;
      flushed_.notify_all();
    }
    if (stopping) return;
  }
}

bool Ledger::flush(std::string* error) {
  std::unique_lock<std::mutex> lock(mutex_);
  if (!writer_.joinable()) {
    *error = store_->path() + ": the ledger is stopped";
    return false;
  }
  const std::uint64_t target = ++flush_requests_;
  wake_.notify_one();
  flushed_.wait(lock, [&] { return flushes_done_ >= target; });
  if (!last_flush_ok_) *error = last_error_;
  return last_flush_ok_;
}

void Ledger::stop() {
  stopped_.store(true, std::memory_order_relaxed);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!writer_.joinable()) return;
    stop_requested_ = true;
  }
  wake_.notify_one();
  writer_.join();
}

LedgerStats Ledger::stats() const {
  LedgerStats s;
  for (const std::unique_ptr<Producer>& p : producers_) {
    s.recorded += p->recorded.load(std::memory_order_relaxed);
    s.dropped += p->dropped.load(std::memory_order_relaxed);
  }
  s.dropped += dropped_rows_.load(std::memory_order_relaxed);
  s.writes = writes_.load(std::memory_order_relaxed);
  s.write_errors = write_errors_.load(std::memory_order_relaxed);
  return s;
}

std::string Ledger::last_error() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return last_error_;
}

}  // namespace tokentap::ledger
