// prom_backend: the backend families of the exposition (metrics.md "Backends"; see prom_text.h
// for which series exist). Three sources meet here:
//  - the fleet, read once per scrape through the BackendSource and copied at once (names,
//    gauges, the prober's counters), so nothing the source pointed to is used afterwards;
//  - each shard's BackendSeries records (only those its "seen" mask publishes) and its
//    (backend, model) token table, appended unsorted and then merged by sorting on the key;
//  - the shards' retry scalars, merged with the other scalars in prom_text.cc.
// With a source, an index it does not name labels nothing: its shard series are left out (the
// backend was removed). Without one, the index itself, in decimal, is the backend label.
#include <algorithm>
#include <bit>

#include "prom_writer.h"
#include "tokentap/base/assert.h"

namespace tokentap {
namespace {

using prom_detail::add;
using prom_detail::append_label;
using prom_detail::append_u64;
using prom_detail::count_of;
using prom_detail::Family;
using prom_detail::FamilyWriter;
using prom_detail::load;

constexpr Family f_backend_up{"tokentap_backend_up", "gauge",
                              "1 when the backend is in rotation (healthy, not ejected), else 0."};
constexpr Family f_backend_in_flight{"tokentap_backend_in_flight", "gauge",
                                     "Requests in flight to the backend."};
constexpr Family f_backend_slots{"tokentap_backend_slots", "gauge",
                                 "Concurrent requests the backend accepts."};
constexpr Family f_backend_requests{"tokentap_backend_requests_total", "counter",
                                    "Requests completed, by the backend that served them and "
                                    "status."};
constexpr Family f_backend_prompt{"tokentap_backend_prompt_tokens_total", "counter",
                                  "Prompt tokens reported by the upstream, by backend and model."};
constexpr Family f_backend_completion{
    "tokentap_backend_completion_tokens_total", "counter",
    "Completion tokens reported by the upstream, by backend and model."};
constexpr Family f_backend_ttft{
    "tokentap_backend_time_to_first_token_seconds", "histogram",
    "Streaming inference: request received to first output chunk sent, by backend."};
constexpr Family f_ejections{"tokentap_backend_ejections_total", "counter",
                             "Times the backend was taken out of rotation, by reason."};
constexpr Family f_health_checks{"tokentap_health_checks_total", "counter",
                                 "Active health checks of the backend, by result."};
constexpr Family f_retries{"tokentap_retries_total", "counter",
                           "Requests sent again to another backend, by reason."};

}  // namespace

void PromRenderer::read_fleet(const BackendSource& source) {
  have_fleet_ = static_cast<bool>(source);
  fleet_count_ = 0;
  if (!have_fleet_) return;
  gauge_scratch_.fill(BackendGauge{});
  counter_scratch_.fill(nullptr);
  const std::size_t n = std::min<std::size_t>(
      source(gauge_scratch_.data(), counter_scratch_.data(), backend_slots_max), backend_slots_max);
  for (std::size_t i = 0; i < n; ++i) {
    const BackendGauge& g = gauge_scratch_[i];
    const BackendCounters* c = counter_scratch_[i];
    FleetBackend& f = fleet_[i];
    f.name.assign(g.name);
    // A name given twice would render duplicate series, which makes Prometheus drop the whole
    // scrape: the later index is treated as vacant instead.
    for (std::size_t j = 0; j < i && !f.name.empty(); ++j) {
      if (fleet_[j].name == f.name) f.name.clear();
    }
    f.up = g.up;
    f.in_flight = g.in_flight;
    f.slots = g.slots;
    f.has_counters = c != nullptr;
    for (std::size_t k = 0; k < health_result_count; ++k) {
      f.health_checks[k] = c != nullptr ? load(c->health_checks[k]) : 0;
    }
    for (std::size_t k = 0; k < ejection_reason_count; ++k) {
      f.ejections[k] = c != nullptr ? load(c->ejections[k]) : 0;
    }
  }
  fleet_count_ = n;
  gauge_scratch_.fill(BackendGauge{});  // keep no view into the source's storage
}

void PromRenderer::merge_backend_record(const BackendSeries& b, std::uint32_t index) {
  add(backend_ttft_[index], b.ttft);
  for (std::size_t w = 0; w < b.touched.size(); ++w) {
    // Acquire: the count was stored before its bit, so it reads as at least one.
    for (std::uint64_t bits = b.touched[w].load(std::memory_order_acquire); bits != 0;
         bits &= bits - 1) {
      const std::size_t s = w * 64 + static_cast<std::size_t>(std::countr_zero(bits));
      backend_requests_.emplace_back(index << 16 | static_cast<std::uint32_t>(status_min + s),
                                     load(b.requests[s]));
    }
  }
  const std::uint64_t prompt = load(b.prompt_tokens_overflow);
  const std::uint64_t completion = load(b.completion_tokens_overflow);
  if (prompt != 0 || completion != 0) {
    backend_tokens_.push_back(
        {backend_model_key(static_cast<std::uint8_t>(index), model_overflow), prompt, completion});
  }
}

void PromRenderer::merge_backends(std::span<const MetricsShard* const> shards) {
  for (std::uint64_t bits = backends_seen_; bits != 0; bits &= bits - 1) {
    backend_ttft_[static_cast<std::size_t>(std::countr_zero(bits))] = {};  // last scrape's
  }
  backends_seen_ = 0;
  backend_requests_.clear();
  backend_tokens_.clear();
  for (const MetricsShard* shard : shards) {
    const std::uint64_t seen = shard->backends_seen();  // acquire: the records are constructed
    backends_seen_ |= seen;
    for (std::uint64_t bits = seen; bits != 0; bits &= bits - 1) {
      const auto index = static_cast<std::uint32_t>(std::countr_zero(bits));
      merge_backend_record(shard->backend(static_cast<std::uint8_t>(index)), index);
    }
    for (const BackendModelSeries& s : shard->backend_model_series()) {
      backend_tokens_.push_back({s.key.load(std::memory_order_relaxed), load(s.prompt_tokens),
                                 load(s.completion_tokens)});
    }
  }
}

void PromRenderer::sort_backends() {
  // Requests: sort on (backend, status) and sum the shards' entries for the same key.
  std::sort(backend_requests_.begin(), backend_requests_.end());
  std::size_t n = 0;
  for (const auto& [key, count] : backend_requests_) {
    if (n != 0 && backend_requests_[n - 1].first == key) {
      backend_requests_[n - 1].second += count;
    } else {
      backend_requests_[n++] = {key, count};
    }
  }
  backend_requests_.resize(n);
  // Tokens: rekey by (backend, rank of the model name), then sort and sum the same way.
  for (MergedBackendTokens& t : backend_tokens_) {
    const auto model = static_cast<ModelId>(t.key);
    TT_ASSERT(model < rank_.size() && (t.key >> 32) < backend_slots_max);
    t.key = (t.key >> 32) << 32 | rank_[model];
  }
  std::sort(
      backend_tokens_.begin(), backend_tokens_.end(),
      [](const MergedBackendTokens& a, const MergedBackendTokens& b) { return a.key < b.key; });
  n = 0;
  for (const MergedBackendTokens& t : backend_tokens_) {
    if (n != 0 && backend_tokens_[n - 1].key == t.key) {
      backend_tokens_[n - 1].prompt_tokens += t.prompt_tokens;
      backend_tokens_[n - 1].completion_tokens += t.completion_tokens;
    } else {
      backend_tokens_[n++] = t;
    }
  }
  backend_tokens_.resize(n);
}

bool PromRenderer::set_backend_label(std::uint32_t index) {
  labels_.clear();
  if (!have_fleet_) {
    labels_ += "backend=\"";
    append_u64(labels_, index);
    labels_ += '"';
    return true;
  }
  if (index >= fleet_count_ || fleet_[index].name.empty()) return false;
  append_label(labels_, "backend", fleet_[index].name);
  return true;
}

void PromRenderer::emit_fleet_gauges(std::string& out) {
  const auto each = [&](const Family& family, auto&& value) {
    FamilyWriter w(out, family);
    for (std::uint32_t i = 0; i < fleet_count_; ++i) {
      if (set_backend_label(i)) w.u64(labels_, value(fleet_[i]));
    }
  };
  each(f_backend_up, [](const FleetBackend& f) -> std::uint64_t { return f.up ? 1 : 0; });
  each(f_backend_in_flight, [](const FleetBackend& f) -> std::uint64_t { return f.in_flight; });
  each(f_backend_slots, [](const FleetBackend& f) -> std::uint64_t { return f.slots; });
}

void PromRenderer::emit_backend_shard_series(const ModelTable& models, std::string& out) {
  FamilyWriter requests(out, f_backend_requests);
  for (const auto& [key, count] : backend_requests_) {
    if (!set_backend_label(key >> 16)) continue;
    labels_ += ",status=\"";
    append_u64(labels_, key & 0xffff);
    labels_ += '"';
    requests.u64(labels_, count);
  }
  for (const bool prompt : {true, false}) {
    FamilyWriter w(out, prompt ? f_backend_prompt : f_backend_completion);
    for (const MergedBackendTokens& t : backend_tokens_) {
      const std::uint64_t value = prompt ? t.prompt_tokens : t.completion_tokens;
      if (value == 0 || !set_backend_label(static_cast<std::uint32_t>(t.key >> 32))) continue;
      append_label(labels_, "model", models.name(ids_by_name_[static_cast<std::uint32_t>(t.key)]));
      w.u64(labels_, value);
    }
  }
  FamilyWriter ttft(out, f_backend_ttft);
  for (std::uint64_t bits = backends_seen_; bits != 0; bits &= bits - 1) {
    const auto index = static_cast<std::uint32_t>(std::countr_zero(bits));
    if (count_of(backend_ttft_[index]) == 0 || !set_backend_label(index)) continue;
    ttft.histogram(labels_, backend_ttft_[index], le_[1]);
  }
}

void PromRenderer::emit_fleet_counters(std::string& out) {
  FamilyWriter ejections(out, f_ejections);
  for (std::uint32_t i = 0; i < fleet_count_; ++i) {
    if (!fleet_[i].has_counters || !set_backend_label(i)) continue;
    const std::size_t base = labels_.size();
    for (std::size_t k = 0; k < ejection_reason_count; ++k) {
      labels_.resize(base);
      append_label(labels_, "reason", ejection_reason_labels[k]);
      ejections.u64(labels_, fleet_[i].ejections[k]);
    }
  }
  FamilyWriter checks(out, f_health_checks);
  for (std::uint32_t i = 0; i < fleet_count_; ++i) {
    if (!fleet_[i].has_counters || !set_backend_label(i)) continue;
    const std::size_t base = labels_.size();
    for (std::size_t k = 0; k < health_result_count; ++k) {
      labels_.resize(base);
      append_label(labels_, "result", health_result_labels[k]);
      checks.u64(labels_, fleet_[i].health_checks[k]);
    }
  }
}

void PromRenderer::emit_backends(const ModelTable& models, std::string& out) {
  emit_fleet_gauges(out);
  emit_backend_shard_series(models, out);
  emit_fleet_counters(out);
  FamilyWriter retries(out, f_retries);
  for (std::size_t i = 0; i < retry_reason_count; ++i) {
    // With a fleet every reason from 0 (rate() and alerts need the series); without one, a
    // retry can only come from a caller that counts them anyway: only what was counted.
    if (!have_fleet_ && scalars_.retries[i] == 0) continue;
    labels_.clear();
    append_label(labels_, "reason", retry_reason_labels[i]);
    retries.u64(labels_, scalars_.retries[i]);
  }
}

}  // namespace tokentap
