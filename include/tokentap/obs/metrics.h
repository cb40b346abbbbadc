// MetricsShard: one shard's counters, gauges and histograms (metrics.md), written by that shard's
// thread only and read, without locks, by the scraper (prom_text), which sums all shards.
//
// Write discipline: every value is a std::atomic written with a relaxed load + store by the one
// owning thread: no lock, no read-modify-write instruction, no allocation after construction.
// The scraper reads with relaxed loads; the few orderings that matter are release/acquire (a
// series' key is published before its index can be seen; a gauge's "down" counter is read before
// its "up" counter so a gauge never reads below zero).
//
// Series storage is bounded and reserved at construction (address space from the allocator,
// pages touched only as series appear):
//  - request counters, keyed by (endpoint, model, status, stream): a dense array of
//    `request_series` records plus a private open-addressing index over them.
//  - per (endpoint, model) records with the histograms, token and duration counters and the
//    active gauge: a dense array of `model_series` records plus a private index.
//  - fixed scalar arrays for the label sets that are closed enums (endpoint, kind, reason).
// When a table is full, or the model is `__overflow__`, the observation goes to a fixed overflow
// record with model="__overflow__" for the same endpoint (and, for requests_total, the same
// status and stream: a 900-wide array per endpoint and stream, never full). Nothing is dropped:
// the sums on /metrics stay exact, only the model label is coarsened.
// Gauges are two monotonic counters (up, down) so a scrape can never see a negative value.
//
// Per-backend series (metrics.md "Backends"), counted only for a request whose `backend` is set:
//  - one BackendSeries record per backend index (< backend_slots_max), constructed on the
//    backend's first request and published through a 64-bit "seen" mask: its TTFT histogram,
//    its requests by status (a dense 900-wide array with a touched bitmap: the (backend, status)
//    space is closed and small, so it never fills and never needs an overflow) and its
//    model="__overflow__" token counters;
//  - token counters keyed by (backend, model) in a bounded table like the ones above; when it is
//    full, or the model is `__overflow__`, the tokens go to that backend's overflow counters.
// The fleet-wide values (up, in flight, slots, ejections, health checks) are not per shard: the
// metrics server reads them at scrape time through a BackendSource (backend_source.h).
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>

#include "tokentap/obs/model_table.h"
#include "tokentap/base/route.h"

namespace tokentap {

// ---- label enums ------------------------------------------------------------------------------

enum class RejectReason : std::uint8_t { limit, bad_request, header_too_large, timeout, count_ };
enum class UpstreamError : std::uint8_t { connect, reset, timeout, malformed, count_ };

constexpr std::size_t reject_reason_count = static_cast<std::size_t>(RejectReason::count_);
constexpr std::size_t upstream_error_count = static_cast<std::size_t>(UpstreamError::count_);

inline constexpr std::array<std::string_view, reject_reason_count> reject_reason_labels{
    "limit", "bad_request", "header_too_large", "timeout"};
inline constexpr std::array<std::string_view, upstream_error_count> upstream_error_labels{
    "connect", "reset", "timeout", "malformed"};

// Why a request was sent to another backend: the connect failed, the connection was reset
// before any response byte, or the backend answered 503 (busy) before any byte reached the client.
enum class RetryReason : std::uint8_t { connect, reset, busy, count_ };
constexpr std::size_t retry_reason_count = static_cast<std::size_t>(RetryReason::count_);
inline constexpr std::array<std::string_view, retry_reason_count> retry_reason_labels{
    "connect", "reset", "busy"};

// ---- backends ---------------------------------------------------------------------------------

// Backends are numbered 0 .. backend_slots_max - 1 in configuration order; the index fits the
// 8-bit RequestRecord::backend, whose all-ones value means "no backend" (refused or answered
// by tokentap itself), and the scraper's 64-bit "seen" mask.
constexpr std::uint32_t backend_slots_max = 64;
constexpr std::uint8_t backend_none = 0xff;
static_assert(backend_slots_max <= backend_none && backend_slots_max <= 64);

// ---- buckets (metrics.md "Buckets"); upper bounds, le inclusive, +Inf implicit -----------------

inline constexpr std::array<double, 18> duration_bounds_s{
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 80, 160, 320, 640, 1280};
inline constexpr std::array<double, 19> ttft_bounds_s{0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08,
                                                      0.1,   0.25,  0.5,  0.75, 1,    2.5,  5,
                                                      7.5,   10,    20,   40,   80};
inline constexpr std::array<double, 17> tpot_bounds_s{0.001, 0.0025, 0.005, 0.01, 0.015, 0.02,
                                                      0.025, 0.03,   0.04,  0.05, 0.075, 0.1,
                                                      0.2,   0.3,    0.5,   1,    2.5};
inline constexpr std::array<double, 15> tps_bounds{1,  2,   5,   10,  20,  30,  40,  50,
                                                   75, 100, 150, 200, 300, 500, 1000};

// ---- storage types (read by prom_text) --------------------------------------------------------

using Counter = std::atomic<std::uint64_t>;
static_assert(Counter::is_always_lock_free);
static_assert(std::atomic<double>::is_always_lock_free);

// Single-writer increment: a plain load and store, never a locked instruction.
inline void counter_add(Counter& c, std::uint64_t delta) {
  c.store(c.load(std::memory_order_relaxed) + delta, std::memory_order_relaxed);
}

// Per-bucket (not cumulative) counts, the last one for +Inf. _count is their sum at render
// time, so a scrape can never show a _count that disagrees with the +Inf bucket.
template <std::size_t Bounds>
struct Histogram {
  static constexpr std::size_t bucket_count = Bounds + 1;
  std::array<Counter, bucket_count> buckets{};
  std::atomic<double> sum{0.0};
};

using DurationHistogram = Histogram<duration_bounds_s.size()>;
using TtftHistogram = Histogram<ttft_bounds_s.size()>;
using TpotHistogram = Histogram<tpot_bounds_s.size()>;
using TpsHistogram = Histogram<tps_bounds.size()>;

// Packs the labels of a series key; stream is bit 0 so requests keys sort false before true.
[[nodiscard]] constexpr std::uint64_t model_key(Route r, ModelId m) {
  return (std::uint64_t{static_cast<std::uint8_t>(r)} << 32) | m;
}
[[nodiscard]] constexpr std::uint64_t request_key(Route r, ModelId m, std::uint16_t status,
                                                  bool stream) {
  return (model_key(r, m) << 16) | (std::uint64_t{status} << 1) | (stream ? 1 : 0);
}

// Everything about one (endpoint, model) pair.
struct alignas(128) ModelSeries {
  std::atomic<std::uint64_t> key{0};  // model_key(); written before the record is published
  Counter started{0};                 // active gauge = started - finished
  Counter finished{0};
  Counter prompt_tokens{0};
  Counter completion_tokens{0};
  Counter load_ns{0};
  Counter prompt_eval_ns{0};
  Counter eval_ns{0};
  Counter client_aborts{0};
  std::array<DurationHistogram, 2> duration{};  // [stream]
  TtftHistogram ttft{};
  TpotHistogram tpot{};
  TpsHistogram tokens_per_second{};
};

struct RequestSeries {
  std::atomic<std::uint64_t> key{0};  // request_key()
  Counter count{0};
};

constexpr std::uint16_t status_min = 100;
constexpr std::uint16_t status_max = 999;
constexpr std::size_t status_span = status_max - status_min + 1;

// requests_total{model="__overflow__"} for one endpoint and stream value, indexed by status.
struct alignas(128) OverflowRequests {
  std::array<std::atomic<std::uint64_t>, (status_span + 63) / 64> touched{};  // status bitmap
  std::array<Counter, status_span> count{};
};

// The shard-wide values whose labels are closed enums.
struct alignas(128) ShardScalars {
  Counter connections_opened{0};
  Counter connections_closed{0};
  std::array<Counter, reject_reason_count> rejected{};
  std::array<Counter, upstream_error_count> upstream_errors{};
  std::array<Counter, route_count> request_bytes{};
  std::array<Counter, route_count> response_bytes{};
  std::array<Counter, route_count> usage_missing{};
  std::array<Counter, retry_reason_count> retries{};
};

// One backend's per-shard values that need no model label.
struct alignas(128) BackendSeries {
  TtftHistogram ttft{};
  Counter prompt_tokens_overflow{0};  // model="__overflow__" for this backend
  Counter completion_tokens_overflow{0};
  std::array<std::atomic<std::uint64_t>, (status_span + 63) / 64> touched{};  // status bitmap
  std::array<Counter, status_span> requests{};                                // by status
};

// Token counters of one (backend, model) pair.
struct BackendModelSeries {
  std::atomic<std::uint64_t> key{0};  // backend_model_key()
  Counter prompt_tokens{0};
  Counter completion_tokens{0};
};

[[nodiscard]] constexpr std::uint64_t backend_model_key(std::uint8_t backend, ModelId m) {
  return (std::uint64_t{backend} << 32) | m;
}

static_assert(alignof(ModelSeries) == 128 && sizeof(ModelSeries) % 128 == 0);
static_assert(sizeof(ModelSeries) == 896, "one (endpoint, model) record: 7 blocks of 128 B");
static_assert(sizeof(RequestSeries) == 16);
static_assert(alignof(ShardScalars) == 128 && alignof(OverflowRequests) == 128);
static_assert(alignof(BackendSeries) == 128 && sizeof(BackendSeries) == 7552);
static_assert(sizeof(BackendModelSeries) == 24);

// ---- the data path API ------------------------------------------------------------------------

// What the proxy knows when a request ends. A zero token count or Ollama duration means
// "absent": it adds nothing and creates no series (metrics.md). duration_s is always observed.
struct RequestRecord {
  Route route = Route::other;
  ModelId model = model_unknown;
  std::uint16_t status = 0;  // sent to the client, 100..999
  bool stream = false;       // effective value
  bool client_aborted = false;
  bool usage_missing = false;
  std::uint8_t backend = backend_none;  // index of the backend that served it (config order)
  std::uint8_t attempts = 1;            // backends tried, the serving one included
  double duration_s = 0;                // request received -> last response byte sent
  std::optional<double> ttft_s;         // streaming inference only
  std::optional<double> tpot_s;         // streaming, completion_tokens >= 2
  std::uint64_t prompt_tokens = 0;
  std::uint64_t completion_tokens = 0;  // also Ollama's eval_count for tokens per second
  std::uint64_t load_ns = 0;            // Ollama native durations, nanoseconds
  std::uint64_t prompt_eval_ns = 0;
  std::uint64_t eval_ns = 0;
  std::uint64_t request_bytes = 0;   // head + body received from the client
  std::uint64_t response_bytes = 0;  // head + body sent to the client
};

struct MetricsLimits {
  std::uint32_t model_series = 4096;          // (endpoint, model) pairs per shard
  std::uint32_t request_series = 16384;       // (endpoint, model, status, stream) per shard
  std::uint32_t backend_model_series = 4096;  // (backend, model) pairs per shard
};

class MetricsShard {
 public:
  explicit MetricsShard(MetricsLimits limits = {});
  ~MetricsShard();
  MetricsShard(const MetricsShard&) = delete;
  MetricsShard& operator=(const MetricsShard&) = delete;

  void connection_opened();
  void connection_closed();
  void connection_rejected(RejectReason reason);
  void upstream_error(UpstreamError kind);
  // A request is sent to another backend (retries_total{reason} + 1).
  void retry(RetryReason reason);

  // Inference routes only (is_inference): active_requests{endpoint, model} + 1. Every started
  // request must be finished with the same route and model.
  void request_started(Route route, ModelId model);
  // Everything else about one request; for an inference route also active_requests - 1. With
  // r.backend set (< backend_slots_max), also that backend's requests, tokens and TTFT.
  void request_finished(const RequestRecord& r);

  // ---- scrape side: safe from any thread while the owner writes ----
  [[nodiscard]] std::span<const ModelSeries> model_series() const;
  [[nodiscard]] std::span<const RequestSeries> request_series() const;
  // One overflow record per route (model="__overflow__"); unused ones read as all zero.
  [[nodiscard]] std::span<const ModelSeries, route_count> overflow_models() const;
  [[nodiscard]] const OverflowRequests& overflow_requests(Route r, bool stream) const;
  [[nodiscard]] const ShardScalars& scalars() const { return scalars_; }
  // Bit i set: backend(i) is constructed and may be read (acquire).
  [[nodiscard]] std::uint64_t backends_seen() const;
  // Only for an index whose bit backends_seen() returned.
  [[nodiscard]] const BackendSeries& backend(std::uint8_t index) const;
  [[nodiscard]] std::span<const BackendModelSeries> backend_model_series() const;

 private:
  template <typename Record>
  struct Table;

  [[nodiscard]] ModelSeries& model_record(Route route, ModelId model);
  void count_request(const RequestRecord& r);
  void count_request_overflow(const RequestRecord& r);
  void count_backend(const RequestRecord& r);
  [[nodiscard]] BackendSeries& backend_record(std::uint8_t index);

  ShardScalars scalars_;
  std::unique_ptr<Table<ModelSeries>> models_;
  std::unique_ptr<Table<RequestSeries>> requests_;
  std::unique_ptr<std::array<ModelSeries, route_count>> overflow_models_;
  std::unique_ptr<std::array<OverflowRequests, route_count * 2>> overflow_requests_;
  std::unique_ptr<Table<BackendModelSeries>> backend_models_;
  BackendSeries* backends_;  // backend_slots_max records, raw storage, constructed on first use
  std::atomic<std::uint64_t> backends_seen_{0};
};

}  // namespace tokentap
