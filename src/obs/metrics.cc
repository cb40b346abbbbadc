// MetricsShard: the single-writer series tables and the per-request update (see metrics.h).
#include "tokentap/obs/metrics.h"

#include <bit>
#include <cmath>
#include <cstdlib>
#include <new>
#include <type_traits>

#include "tokentap/base/assert.h"

namespace tokentap {
namespace {

// Index load factor is at most 1/2, so a probe sequence stays short and always meets an empty
// entry (or the key) before wrapping.
constexpr std::size_t index_slots_per_record = 2;

void gauge_add(Counter& c) {
  // Release: the scraper reads the "down" side with acquire before the "up" side (see header).
  c.store(c.load(std::memory_order_relaxed) + 1, std::memory_order_release);
}

template <std::size_t Bounds>
void observe(Histogram<Bounds>& h, const std::array<double, Bounds>& bounds, double v) {
  // A negative or NaN value is a caller bug; count it in the lowest bucket, keep the sum sane.
  TT_DASSERT(v >= 0);
  if (!(v >= 0)) v = 0;
  std::size_t i = 0;
  while (i < Bounds && v > bounds[i]) ++i;  // le is inclusive: v == bound lands in that bucket
  counter_add(h.buckets[i], 1);
  h.sum.store(h.sum.load(std::memory_order_relaxed) + v, std::memory_order_relaxed);
}

// One more request with `status` in a dense by-status array and its touched bitmap.
template <std::size_t Words>
void count_status(std::array<std::atomic<std::uint64_t>, Words>& touched,
                  std::array<Counter, status_span>& count, std::uint16_t status) {
  const std::size_t s = status - status_min;
  // Count first, then mark: a scraper that sees the bit finds a non-zero count.
  count[s].store(count[s].load(std::memory_order_relaxed) + 1, std::memory_order_release);
  auto& word = touched[s / 64];
  const std::uint64_t bit = std::uint64_t{1} << (s % 64);
  const std::uint64_t old = word.load(std::memory_order_relaxed);
  if ((old & bit) == 0) word.store(old | bit, std::memory_order_release);
}

}  // namespace

// A dense, append-only array of records plus an index only the owner reads. Records live in
// raw aligned storage and are constructed when first used, so unused capacity is never touched.
template <typename Record>
struct MetricsShard::Table {
  explicit Table(std::uint32_t capacity_records)
      : capacity(capacity_records),
        index_bits(std::countr_zero(
            std::bit_ceil(std::size_t{capacity_records} * index_slots_per_record))),
        index_mask((std::size_t{1} << index_bits) - 1),
        index(static_cast<std::uint32_t*>(std::calloc(index_mask + 1, sizeof(std::uint32_t)))),
        records(static_cast<Record*>(::operator new (sizeof(Record) * capacity_records,
                                                     std::align_val_t{alignof(Record)}))) {
    TT_ASSERT(capacity_records >= 1);
    if (index == nullptr) throw std::bad_alloc();
  }

  ~Table() {
    static_assert(std::is_trivially_destructible_v<Record>);
    ::operator delete (records, std::align_val_t{alignof(Record)});
    std::free(index);
  }

  // The record for `key`, created if new; nullptr when the table is full.
  Record* find_or_insert(std::uint64_t key) {
    std::size_t i = (key * 0x9e3779b97f4a7c15ull) >> (64 - index_bits);
    for (;; i = (i + 1) & index_mask) {
      const std::uint32_t slot = index[i];
      if (slot == 0) break;
      Record& r = records[slot - 1];
      if (r.key.load(std::memory_order_relaxed) == key) return &r;
    }
    const std::uint32_t n = used.load(std::memory_order_relaxed);
    if (n == capacity) return nullptr;
    Record* r = new (&records[n]) Record();
    r->key.store(key, std::memory_order_relaxed);
    // Release: a scraper that sees the new count sees the key (and, transitively, the model
    // name the intern table published before this thread got the id).
    used.store(n + 1, std::memory_order_release);
    index[i] = n + 1;
    return r;
  }

  [[nodiscard]] std::span<const Record> published() const {
    return {records, used.load(std::memory_order_acquire)};
  }

  const std::uint32_t capacity;
  const int index_bits;
  const std::size_t index_mask;
  std::uint32_t* const index;  // record number + 1, 0 = empty; owner-private
  Record* const records;
  std::atomic<std::uint32_t> used{0};
};

MetricsShard::MetricsShard(MetricsLimits limits)
    : models_(std::make_unique<Table<ModelSeries>>(limits.model_series)),
      requests_(std::make_unique<Table<RequestSeries>>(limits.request_series)),
      overflow_models_(std::make_unique<std::array<ModelSeries, route_count>>()),
      overflow_requests_(std::make_unique<std::array<OverflowRequests, route_count * 2>>()),
      backend_models_(std::make_unique<Table<BackendModelSeries>>(limits.backend_model_series)),
      // Raw storage (~470 KiB of address space): a record's pages are touched only when its
      // backend serves its first request on this shard.
      backends_(static_cast<BackendSeries*>(::operator new (
          sizeof(BackendSeries) * backend_slots_max, std::align_val_t{alignof(BackendSeries)}))) {
  for (std::size_t r = 0; r < route_count; ++r) {
    (*overflow_models_)[r].key.store(model_key(static_cast<Route>(r), model_overflow),
                                     std::memory_order_relaxed);
  }
}

MetricsShard::~MetricsShard() {
  static_assert(std::is_trivially_destructible_v<BackendSeries>);
  ::operator delete (backends_, std::align_val_t{alignof(BackendSeries)});
}

void MetricsShard::connection_opened() { gauge_add(scalars_.connections_opened); }
void MetricsShard::connection_closed() { gauge_add(scalars_.connections_closed); }

void MetricsShard::connection_rejected(RejectReason reason) {
  counter_add(scalars_.rejected[static_cast<std::size_t>(reason)], 1);
}

void MetricsShard::upstream_error(UpstreamError kind) {
  counter_add(scalars_.upstream_errors[static_cast<std::size_t>(kind)], 1);
}

void MetricsShard::retry(RetryReason reason) {
  TT_DASSERT(reason < RetryReason::count_);
  counter_add(scalars_.retries[static_cast<std::size_t>(reason)], 1);
}

ModelSeries& MetricsShard::model_record(Route route, ModelId model) {
  TT_DASSERT(route < Route::count_);
  if (model != model_overflow) {
    if (ModelSeries* r = models_->find_or_insert(model_key(route, model))) return *r;
  }
  return (*overflow_models_)[static_cast<std::size_t>(route)];
}

void MetricsShard::request_started(Route route, ModelId model) {
  if (!is_inference(route)) return;
  gauge_add(model_record(route, model).started);
}

void MetricsShard::count_request(const RequestRecord& r) {
  if (r.model != model_overflow) {
    if (RequestSeries* s =
            requests_->find_or_insert(request_key(r.route, r.model, r.status, r.stream))) {
      counter_add(s->count, 1);
      return;
    }
  }
  count_request_overflow(r);
}

void MetricsShard::count_request_overflow(const RequestRecord& r) {
  OverflowRequests& o =
      (*overflow_requests_)[static_cast<std::size_t>(r.route) * 2 + (r.stream ? 1 : 0)];
  count_status(o.touched, o.count, r.status);
}

BackendSeries& MetricsShard::backend_record(std::uint8_t index) {
  const std::uint64_t bit = std::uint64_t{1} << index;
  const std::uint64_t seen = backends_seen_.load(std::memory_order_relaxed);
  if ((seen & bit) == 0) {
    new (&backends_[index]) BackendSeries();
    // Release: a scraper that sees the bit sees the constructed (zeroed) record.
    backends_seen_.store(seen | bit, std::memory_order_release);
  }
  return backends_[index];
}

void MetricsShard::count_backend(const RequestRecord& r) {
  TT_ASSERT(r.backend < backend_slots_max);
  BackendSeries& b = backend_record(r.backend);
  count_status(b.touched, b.requests, r.status);
  if (r.ttft_s) observe(b.ttft, ttft_bounds_s, *r.ttft_s);
  if (r.prompt_tokens == 0 && r.completion_tokens == 0) return;  // absent: no series
  BackendModelSeries* m =
      r.model == model_overflow
          ? nullptr
          : backend_models_->find_or_insert(backend_model_key(r.backend, r.model));
  Counter& prompt = m != nullptr ? m->prompt_tokens : b.prompt_tokens_overflow;
  Counter& completion = m != nullptr ? m->completion_tokens : b.completion_tokens_overflow;
  if (r.prompt_tokens != 0) counter_add(prompt, r.prompt_tokens);
  if (r.completion_tokens != 0) counter_add(completion, r.completion_tokens);
}

void MetricsShard::request_finished(const RequestRecord& r) {
  TT_ASSERT(r.route < Route::count_);
  TT_ASSERT(r.status >= status_min && r.status <= status_max);
  count_request(r);
  ModelSeries& m = model_record(r.route, r.model);
  observe(m.duration[r.stream ? 1 : 0], duration_bounds_s, r.duration_s);
  if (r.ttft_s) observe(m.ttft, ttft_bounds_s, *r.ttft_s);
  if (r.tpot_s) observe(m.tpot, tpot_bounds_s, *r.tpot_s);
  if (r.prompt_tokens != 0) counter_add(m.prompt_tokens, r.prompt_tokens);
  if (r.completion_tokens != 0) counter_add(m.completion_tokens, r.completion_tokens);
  if (r.load_ns != 0) counter_add(m.load_ns, r.load_ns);
  if (r.prompt_eval_ns != 0) counter_add(m.prompt_eval_ns, r.prompt_eval_ns);
  if (r.eval_ns != 0) {
    counter_add(m.eval_ns, r.eval_ns);
    if (r.completion_tokens != 0) {
      const double tps =
          static_cast<double>(r.completion_tokens) * 1e9 / static_cast<double>(r.eval_ns);
      observe(m.tokens_per_second, tps_bounds, tps);
    }
  }
  if (r.client_aborted) counter_add(m.client_aborts, 1);
  if (is_inference(r.route)) {
    // Pairing: every finish of an inference request follows its start on this shard.
    TT_ASSERT(m.finished.load(std::memory_order_relaxed) <
              m.started.load(std::memory_order_relaxed));
    gauge_add(m.finished);
  }
  const auto route = static_cast<std::size_t>(r.route);
  if (r.request_bytes != 0) counter_add(scalars_.request_bytes[route], r.request_bytes);
  if (r.response_bytes != 0) counter_add(scalars_.response_bytes[route], r.response_bytes);
  if (r.usage_missing) counter_add(scalars_.usage_missing[route], 1);
  if (r.backend != backend_none) count_backend(r);
}

std::span<const ModelSeries> MetricsShard::model_series() const { return models_->published(); }

std::span<const RequestSeries> MetricsShard::request_series() const {
  return requests_->published();
}

std::span<const ModelSeries, route_count> MetricsShard::overflow_models() const {
  return std::span<const ModelSeries, route_count>(*overflow_models_);
}

const OverflowRequests& MetricsShard::overflow_requests(Route r, bool stream) const {
  return (*overflow_requests_)[static_cast<std::size_t>(r) * 2 + (stream ? 1 : 0)];
}

std::uint64_t MetricsShard::backends_seen() const {
  return backends_seen_.load(std::memory_order_acquire);
}

const BackendSeries& MetricsShard::backend(std::uint8_t index) const {
  TT_ASSERT(index < backend_slots_max);
  return backends_[index];
}

std::span<const BackendModelSeries> MetricsShard::backend_model_series() const {
  return backend_models_->published();
}

}  // namespace tokentap
