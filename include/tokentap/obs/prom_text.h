// prom_text: the hand-written Prometheus text exposition (format 0.0.4) of every shard's metrics.
//
// A scrape merges all shards by summing counters, gauges, histogram buckets and sums (there is no
// per-shard label), then writes each family once, in the order of metrics.md's table, with
// `# HELP` and `# TYPE`. Histograms are written as cumulative `_bucket{le=...}` lines, `_sum`, and
// a `_count` computed from the buckets, so `_count` always equals the `+Inf` bucket even while the
// shards keep writing. Series within a family are sorted by endpoint, then model name, then the
// remaining labels, so the same state always renders the same bytes. Label values are escaped
// (\\, \", \n). A family with no series is left out entirely.
//
// Which series exist (metrics.md "a zero or absent upstream field creates no series"):
//  - requests_total, request_duration_seconds: every (endpoint, model[, status], stream) seen.
//  - token/duration counters, client_aborts, usage_missing, byte counters: once non-zero.
//  - TTFT, TPOT, tokens/s histograms: once observed.
//  - active_requests: once an inference request started for that (endpoint, model).
//  - upstream_errors_total{kind} and connections_rejected_total{reason}: every value, from 0.
//  - the backend families (metrics.md "Backends", written in prom_backend.cc): the gauges,
//    ejections and health checks only with a BackendSource, for each backend it names; the
//    per-shard backend series once counted, labelled with the source's name for their index
//    (an index the source does not name is left out), or, without a source, with the index in
//    decimal; retries_total{reason} every value from 0 with a source, else once non-zero.
//    Backend series are sorted by index (configuration order), then model name, then status.
//
// Runs on the scraper's thread, never a shard's; it allocates scratch space on the first scrapes
// and reuses it (and the caller's output string) afterwards.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tokentap/obs/backend_source.h"
#include "tokentap/obs/metrics.h"
#include "tokentap/obs/model_table.h"
#include "tokentap/obs/process_stats.h"

namespace tokentap {

inline constexpr std::string_view prom_content_type = "text/plain; version=0.0.4; charset=utf-8";

// Appends `value` escaped as a label value: backslash, double quote and newline.
void append_label_value(std::string& out, std::string_view value);

class PromRenderer {
 public:
  PromRenderer();

  // Clears `out` and writes the whole exposition into it (its capacity is kept between calls).
  // Safe while the shards' owner threads keep writing. `backends` (may be empty) is called once.
  void render(std::span<const MetricsShard* const> shards, const ModelTable& models,
              const ProcessStats& process, std::string_view version, const BackendSource& backends,
              std::string& out);
  void render(std::span<const MetricsShard* const> shards, const ModelTable& models,
              const ProcessStats& process, std::string_view version, std::string& out);

  template <std::size_t Bounds>
  struct MergedHistogram {
    std::array<std::uint64_t, Bounds + 1> buckets{};
    double sum = 0;
  };
  struct MergedModel {  // one (endpoint, model) pair over all shards
    std::uint64_t key = 0;
    std::uint64_t started = 0;
    std::uint64_t finished = 0;
    std::uint64_t prompt_tokens = 0;
    std::uint64_t completion_tokens = 0;
    std::uint64_t client_aborts = 0;
    std::array<MergedHistogram<duration_bounds_s.size()>, 2> duration{};
    MergedHistogram<ttft_bounds_s.size()> ttft{};
    MergedHistogram<tpot_bounds_s.size()> tpot{};
  };
  struct MergedPerModel {  // one model over all endpoints and shards
    std::uint64_t load_ns = 0;
    std::uint64_t prompt_eval_ns = 0;
    std::uint64_t eval_ns = 0;
    MergedHistogram<tps_bounds.size()> tokens_per_second{};
  };
  struct MergedScalars {
    std::uint64_t connections_opened = 0;
    std::uint64_t connections_closed = 0;
    std::array<std::uint64_t, reject_reason_count> rejected{};
    std::array<std::uint64_t, upstream_error_count> upstream_errors{};
    std::array<std::uint64_t, route_count> request_bytes{};
    std::array<std::uint64_t, route_count> response_bytes{};
    std::array<std::uint64_t, route_count> usage_missing{};
    std::array<std::uint64_t, retry_reason_count> retries{};
  };
  struct FleetBackend {  // what the BackendSource said about one backend index, copied
    std::string name;    // empty: vacant, or not named by the source
    bool up = false;
    std::uint32_t in_flight = 0;
    std::uint32_t slots = 0;
    bool has_counters = false;
    std::array<std::uint64_t, health_result_count> health_checks{};
    std::array<std::uint64_t, ejection_reason_count> ejections{};
  };
  struct MergedBackendTokens {  // one (backend, model) pair over all shards
    std::uint64_t key = 0;      // backend_model_key(); after sort_backends, backend:32 | rank:32
    std::uint64_t prompt_tokens = 0;
    std::uint64_t completion_tokens = 0;
  };

 private:
  void reset(const ModelTable& models);
  void merge_scalars(std::span<const MetricsShard* const> shards);
  void merge_model(const ModelSeries& s);
  void merge_requests(std::span<const MetricsShard* const> shards);
  void request_add(std::uint64_t key, std::uint64_t count);
  void rank_models(const ModelTable& models);
  void sort_series();

  void emit_requests(const ModelTable& models, std::string& out);
  void emit_endpoint_model(const ModelTable& models, std::string& out);
  void emit_per_model(const ModelTable& models, std::string& out);
  void emit_scalars(std::string& out);
  void set_labels(Route route, std::string_view model);

  // prom_backend.cc
  void read_fleet(const BackendSource& source);
  void merge_backends(std::span<const MetricsShard* const> shards);
  void merge_backend_record(const BackendSeries& b, std::uint32_t index);
  void sort_backends();
  void emit_backends(const ModelTable& models, std::string& out);
  void emit_backend_shard_series(const ModelTable& models, std::string& out);
  void emit_fleet_gauges(std::string& out);
  void emit_fleet_counters(std::string& out);
  [[nodiscard]] bool set_backend_label(std::uint32_t index);  // false: not to be rendered

  std::array<std::vector<std::string>, 4> le_;  // duration, ttft, tpot, tokens/s; "+Inf" last
  std::string labels_;                          // the current series' labels, reused

  std::uint32_t id_capacity_ = 0;
  std::vector<std::uint32_t> model_index_;  // route * id_capacity_ + model -> merged_ + 1
  std::vector<MergedModel> merged_;
  std::vector<std::uint32_t> per_model_index_;  // model -> per_model_ + 1
  std::vector<MergedPerModel> per_model_;
  std::vector<std::pair<std::uint64_t, std::uint32_t>> model_order_;  // (sort key, merged_)

  std::vector<std::uint64_t> request_keys_;  // open addressing, ~0 = empty
  std::vector<std::uint64_t> request_counts_;
  std::size_t request_used_ = 0;
  std::vector<std::pair<std::uint64_t, std::uint64_t>> request_order_;  // (sort key, count)

  std::vector<ModelId> ids_by_name_;
  std::vector<std::uint32_t> rank_;  // model id -> position in ids_by_name_
  MergedScalars scalars_;

  bool have_fleet_ = false;  // a BackendSource was given
  std::size_t fleet_count_ = 0;
  std::array<FleetBackend, backend_slots_max> fleet_{};
  std::array<BackendGauge, backend_slots_max> gauge_scratch_{};
  std::array<const BackendCounters*, backend_slots_max> counter_scratch_{};
  std::uint64_t backends_seen_ = 0;  // any shard counted for the index
  std::array<MergedHistogram<ttft_bounds_s.size()>, backend_slots_max> backend_ttft_{};
  std::vector<std::pair<std::uint32_t, std::uint64_t>> backend_requests_;  // (b<<16|status, n)
  std::vector<MergedBackendTokens> backend_tokens_;
};

// One-shot convenience (for --metrics-on-proxy or tests): a fresh renderer per call.
void render(std::span<const MetricsShard* const> shards, const ModelTable& models,
            const ProcessStats& process, std::string_view version, std::string& out);

}  // namespace tokentap
