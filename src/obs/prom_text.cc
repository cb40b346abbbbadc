// prom_text: merge every shard's series and write the text exposition (see prom_text.h).
#include "tokentap/obs/prom_text.h"

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <iterator>
#include <numeric>

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

constexpr std::uint64_t request_slot_empty = ~std::uint64_t{0};
constexpr std::size_t request_table_min = 1024;  // slots; grows by doubling, kept across scrapes
constexpr double ns_per_s = 1e9;

constexpr Family f_requests{"tokentap_requests_total", "counter",
                            "Requests completed, by endpoint, model, status and stream."};
constexpr Family f_duration{"tokentap_request_duration_seconds", "histogram",
                            "Request received to last response byte sent."};
constexpr Family f_ttft{"tokentap_time_to_first_token_seconds", "histogram",
                        "Streaming inference: request received to first output chunk sent."};
constexpr Family f_tpot{"tokentap_time_per_output_token_seconds", "histogram",
                        "Streaming inference: time between output tokens."};
constexpr Family f_prompt{"tokentap_prompt_tokens_total", "counter",
                          "Prompt tokens reported by the upstream."};
constexpr Family f_completion{"tokentap_completion_tokens_total", "counter",
                              "Completion tokens reported by the upstream."};
constexpr Family f_tps{"tokentap_generation_tokens_per_second", "histogram",
                       "Ollama native: eval_count / eval_duration."};
constexpr Family f_prompt_eval{"tokentap_prompt_eval_seconds_total", "counter",
                               "Ollama native prompt_eval_duration."};
constexpr Family f_generation{"tokentap_generation_seconds_total", "counter",
                              "Ollama native eval_duration."};
constexpr Family f_load{"tokentap_model_load_seconds_total", "counter",
                        "Ollama native load_duration."};
constexpr Family f_active{"tokentap_active_requests", "gauge", "Inference requests in flight."};
constexpr Family f_request_bytes{"tokentap_request_bytes_total", "counter",
                                 "Request bytes received from clients (head and body)."};
constexpr Family f_response_bytes{"tokentap_response_bytes_total", "counter",
                                  "Response bytes sent to clients (head and body)."};
constexpr Family f_aborts{"tokentap_client_aborts_total", "counter",
                          "Client closed before the response ended."};
constexpr Family f_upstream_errors{"tokentap_upstream_errors_total", "counter",
                                   "Upstream failures by kind."};
constexpr Family f_usage_missing{"tokentap_usage_missing_total", "counter",
                                 "Inference responses that ended without usable usage."};
constexpr Family f_conn_open{"tokentap_connections_open", "gauge", "Client connections open now."};
constexpr Family f_conn_total{"tokentap_connections_total", "counter",
                              "Client connections accepted."};
constexpr Family f_conn_rejected{"tokentap_connections_rejected_total", "counter",
                                 "Client connections refused, by reason."};
constexpr Family f_build{"tokentap_build_info", "gauge", "Build information; always 1."};
constexpr Family f_cpu{"process_cpu_seconds_total", "counter",
                       "Total user and system CPU time spent in seconds."};
constexpr Family f_rss{"process_resident_memory_bytes", "gauge", "Resident memory size in bytes."};
constexpr Family f_fds{"process_open_fds", "gauge", "Number of open file descriptors."};
constexpr Family f_start{"process_start_time_seconds", "gauge",
                         "Start time of the process since unix epoch in seconds."};

template <std::size_t N>
std::vector<std::string> le_strings(const std::array<double, N>& bounds) {
  std::vector<std::string> out;
  for (const double b : bounds) out.push_back(fmt::format("{}", b));
  out.emplace_back("+Inf");
  return out;
}

}  // namespace

void append_label_value(std::string& out, std::string_view value) {
  std::size_t start = 0;
  for (std::size_t i = 0; i < value.size(); ++i) {
    const char c = value[i];
    if (c != '\\' && c != '"' && c != '\n') continue;
    out.append(value.data() + start, i - start);
    out += c == '\n' ? "\\n" : c == '"' ? "\\\"" : "\\\\";
    start = i + 1;
  }
  out.append(value.data() + start, value.size() - start);
}

PromRenderer::PromRenderer()
    : le_{le_strings(duration_bounds_s), le_strings(ttft_bounds_s), le_strings(tpot_bounds_s),
          le_strings(tps_bounds)} {}

void PromRenderer::reset(const ModelTable& models) {
  // Clear only what the last scrape touched, so an idle large --max-models costs nothing.
  for (const MergedModel& m : merged_) {
    model_index_[(m.key >> 32) * id_capacity_ + static_cast<ModelId>(m.key)] = 0;
  }
  std::fill(per_model_index_.begin(), per_model_index_.end(), 0);
  merged_.clear();
  per_model_.clear();
  if (id_capacity_ != models.id_capacity()) {
    id_capacity_ = models.id_capacity();
    model_index_.assign(route_count * id_capacity_, 0);
    per_model_index_.assign(id_capacity_, 0);
  }
  std::fill(request_keys_.begin(), request_keys_.end(), request_slot_empty);
  if (request_keys_.empty()) {
    request_keys_.assign(request_table_min, request_slot_empty);
    request_counts_.assign(request_table_min, 0);
  }
  scalars_ = MergedScalars{};
}

void PromRenderer::merge_scalars(std::span<const MetricsShard* const> shards) {
  for (const MetricsShard* shard : shards) {
    const ShardScalars& s = shard->scalars();
    // "Down" before "up", acquire: the open gauge can never read below zero.
    scalars_.connections_closed += s.connections_closed.load(std::memory_order_acquire);
    scalars_.connections_opened += load(s.connections_opened);
    for (std::size_t i = 0; i < reject_reason_count; ++i)
      scalars_.rejected[i] += load(s.rejected[i]);
    for (std::size_t i = 0; i < upstream_error_count; ++i) {
      scalars_.upstream_errors[i] += load(s.upstream_errors[i]);
    }
    for (std::size_t i = 0; i < retry_reason_count; ++i) scalars_.retries[i] += load(s.retries[i]);
    for (std::size_t r = 0; r < route_count; ++r) {
      scalars_.request_bytes[r] += load(s.request_bytes[r]);
      scalars_.response_bytes[r] += load(s.response_bytes[r]);
      scalars_.usage_missing[r] += load(s.usage_missing[r]);
    }
  }
}

void PromRenderer::merge_model(const ModelSeries& s) {
  const std::uint64_t key = s.key.load(std::memory_order_relaxed);
  const std::uint64_t route = key >> 32;
  const auto model = static_cast<ModelId>(key);
  TT_ASSERT(route < route_count && model < id_capacity_);
  std::uint32_t& slot = model_index_[route * id_capacity_ + model];
  if (slot == 0) {
    merged_.emplace_back().key = key;
    slot = static_cast<std::uint32_t>(merged_.size());
  }
  MergedModel& m = merged_[slot - 1];
  m.finished += s.finished.load(std::memory_order_acquire);  // before started: see header
  m.started += load(s.started);
  m.prompt_tokens += load(s.prompt_tokens);
  m.completion_tokens += load(s.completion_tokens);
  m.client_aborts += load(s.client_aborts);
  add(m.duration[0], s.duration[0]);
  add(m.duration[1], s.duration[1]);
  add(m.ttft, s.ttft);
  add(m.tpot, s.tpot);
  const std::uint64_t load_ns = load(s.load_ns);
  const std::uint64_t prompt_eval_ns = load(s.prompt_eval_ns);
  const std::uint64_t eval_ns = load(s.eval_ns);
  if (load_ns == 0 && prompt_eval_ns == 0 && eval_ns == 0) return;  // no Ollama timings here
  std::uint32_t& per = per_model_index_[model];
  if (per == 0) {
    per_model_.emplace_back();
    per = static_cast<std::uint32_t>(per_model_.size());
  }
  MergedPerModel& p = per_model_[per - 1];
  p.load_ns += load_ns;
  p.prompt_eval_ns += prompt_eval_ns;
  p.eval_ns += eval_ns;
  add(p.tokens_per_second, s.tokens_per_second);
}

void PromRenderer::request_add(std::uint64_t key, std::uint64_t count) {
  if (count == 0) return;
  std::size_t mask = request_keys_.size() - 1;
  std::size_t i = (key * 0x9e3779b97f4a7c15ull) >> 20 & mask;
  for (;; i = (i + 1) & mask) {
    if (request_keys_[i] == key) {
      request_counts_[i] += count;
      return;
    }
    if (request_keys_[i] == request_slot_empty) break;
  }
  request_keys_[i] = key;
  request_counts_[i] = count;
  if (++request_used_ * 2 <= request_keys_.size()) return;
  // Over half full: double and re-insert (scrape side only; the capacity is kept afterwards).
  std::vector<std::uint64_t> keys(request_keys_.size() * 2, request_slot_empty);
  std::vector<std::uint64_t> counts(keys.size(), 0);
  mask = keys.size() - 1;
  for (std::size_t j = 0; j < request_keys_.size(); ++j) {
    if (request_keys_[j] == request_slot_empty) continue;
    std::size_t k = (request_keys_[j] * 0x9e3779b97f4a7c15ull) >> 20 & mask;
    while (keys[k] != request_slot_empty) k = (k + 1) & mask;
    keys[k] = request_keys_[j];
    counts[k] = request_counts_[j];
  }
  request_keys_.swap(keys);
  request_counts_.swap(counts);
}

void PromRenderer::merge_requests(std::span<const MetricsShard* const> shards) {
  request_used_ = 0;
  for (const MetricsShard* shard : shards) {
    for (const RequestSeries& s : shard->request_series()) {
      request_add(s.key.load(std::memory_order_relaxed), load(s.count));
    }
    for (std::size_t r = 0; r < route_count; ++r) {
      for (const bool stream : {false, true}) {
        const OverflowRequests& o = shard->overflow_requests(static_cast<Route>(r), stream);
        for (std::size_t w = 0; w < o.touched.size(); ++w) {
          // Acquire: the count was stored before its bit, so it reads as at least one.
          for (std::uint64_t bits = o.touched[w].load(std::memory_order_acquire); bits != 0;
               bits &= bits - 1) {
            const std::size_t s = w * 64 + static_cast<std::size_t>(std::countr_zero(bits));
            request_add(request_key(static_cast<Route>(r), model_overflow,
                                    static_cast<std::uint16_t>(status_min + s), stream),
                        load(o.count[s]));
          }
        }
      }
    }
  }
}

void PromRenderer::rank_models(const ModelTable& models) {
  // Read after merging: every id a merged series holds is below this count and published.
  const std::uint32_t n = models.id_count();
  ids_by_name_.resize(n);
  std::iota(ids_by_name_.begin(), ids_by_name_.end(), ModelId{0});
  std::sort(ids_by_name_.begin(), ids_by_name_.end(),
            [&](ModelId a, ModelId b) { return models.name(a) < models.name(b); });
  rank_.resize(n);
  for (std::uint32_t i = 0; i < n; ++i) rank_[ids_by_name_[i]] = i;
}

void PromRenderer::sort_series() {
  model_order_.clear();
  for (std::uint32_t i = 0; i < merged_.size(); ++i) {
    const std::uint64_t key = merged_[i].key;
    const auto model = static_cast<ModelId>(key);
    TT_ASSERT(model < rank_.size());
    model_order_.emplace_back(((key >> 32) << 32) | rank_[model], i);
  }
  std::sort(model_order_.begin(), model_order_.end());
  request_order_.clear();
  for (std::size_t i = 0; i < request_keys_.size(); ++i) {
    const std::uint64_t key = request_keys_[i];
    if (key == request_slot_empty) continue;
    const auto model = static_cast<ModelId>(key >> 16);
    TT_ASSERT(model < rank_.size());
    const std::uint64_t sort_key =
        ((key >> 48) << 48) | (std::uint64_t{rank_[model]} << 16) | (key & 0xffff);
    request_order_.emplace_back(sort_key, request_counts_[i]);
  }
  std::sort(request_order_.begin(), request_order_.end());
}

void PromRenderer::set_labels(Route route, std::string_view model) {
  labels_.clear();
  append_label(labels_, "endpoint", route_label(route));
  append_label(labels_, "model", model);
}

void PromRenderer::emit_requests(const ModelTable& models, std::string& out) {
  FamilyWriter w(out, f_requests);
  for (const auto& [sort_key, count] : request_order_) {
    const ModelId model = ids_by_name_[static_cast<std::uint32_t>(sort_key >> 16)];
    set_labels(static_cast<Route>(sort_key >> 48), models.name(model));
    labels_ += ",status=\"";
    append_u64(labels_, (sort_key >> 1) & 0x3ff);
    labels_ += (sort_key & 1) != 0 ? "\",stream=\"true\"" : "\",stream=\"false\"";
    w.u64(labels_, count);
  }
}

void PromRenderer::emit_endpoint_model(const ModelTable& models, std::string& out) {
  // One pass per family keeps each family contiguous, as the format requires.
  const auto each = [&](const Family& family, auto&& write) {
    FamilyWriter w(out, family);
    for (const auto& [sort_key, index] : model_order_) {
      const MergedModel& m = merged_[index];
      set_labels(static_cast<Route>(m.key >> 32), models.name(static_cast<ModelId>(m.key)));
      write(w, m);
    }
  };
  each(f_duration, [&](FamilyWriter& w, const MergedModel& m) {
    const std::size_t base = labels_.size();
    for (const bool stream : {false, true}) {
      if (count_of(m.duration[stream]) == 0) continue;
      labels_.resize(base);
      labels_ += stream ? ",stream=\"true\"" : ",stream=\"false\"";
      w.histogram(labels_, m.duration[stream], le_[0]);
    }
  });
  each(f_ttft, [&](FamilyWriter& w, const MergedModel& m) {
    if (count_of(m.ttft) != 0) w.histogram(labels_, m.ttft, le_[1]);
  });
  each(f_tpot, [&](FamilyWriter& w, const MergedModel& m) {
    if (count_of(m.tpot) != 0) w.histogram(labels_, m.tpot, le_[2]);
  });
  each(f_prompt, [&](FamilyWriter& w, const MergedModel& m) {
    if (m.prompt_tokens != 0) w.u64(labels_, m.prompt_tokens);
  });
  each(f_completion, [&](FamilyWriter& w, const MergedModel& m) {
    if (m.completion_tokens != 0) w.u64(labels_, m.completion_tokens);
  });
  emit_per_model(models, out);
  each(f_active, [&](FamilyWriter& w, const MergedModel& m) {
    if (m.started != 0) w.u64(labels_, m.started - m.finished);
  });
  for (const auto& [family, values] : {std::pair{&f_request_bytes, &scalars_.request_bytes},
                                       std::pair{&f_response_bytes, &scalars_.response_bytes}}) {
    FamilyWriter w(out, *family);
    for (std::size_t r = 0; r < route_count; ++r) {
      labels_.clear();
      append_label(labels_, "endpoint", route_label(static_cast<Route>(r)));
      if ((*values)[r] != 0) w.u64(labels_, (*values)[r]);
    }
  }
  each(f_aborts, [&](FamilyWriter& w, const MergedModel& m) {
    if (m.client_aborts != 0) w.u64(labels_, m.client_aborts);
  });
}

void PromRenderer::emit_per_model(const ModelTable& models, std::string& out) {
  const auto each = [&](const Family& family, auto&& write) {
    FamilyWriter w(out, family);
    for (const ModelId id : ids_by_name_) {
      if (id >= per_model_index_.size() || per_model_index_[id] == 0) continue;
      labels_.clear();
      append_label(labels_, "model", models.name(id));
      write(w, per_model_[per_model_index_[id] - 1]);
    }
  };
  each(f_tps, [&](FamilyWriter& w, const MergedPerModel& p) {
    if (count_of(p.tokens_per_second) != 0) w.histogram(labels_, p.tokens_per_second, le_[3]);
  });
  each(f_prompt_eval, [&](FamilyWriter& w, const MergedPerModel& p) {
    if (p.prompt_eval_ns != 0) w.f64(labels_, static_cast<double>(p.prompt_eval_ns) / ns_per_s);
  });
  each(f_generation, [&](FamilyWriter& w, const MergedPerModel& p) {
    if (p.eval_ns != 0) w.f64(labels_, static_cast<double>(p.eval_ns) / ns_per_s);
  });
  each(f_load, [&](FamilyWriter& w, const MergedPerModel& p) {
    if (p.load_ns != 0) w.f64(labels_, static_cast<double>(p.load_ns) / ns_per_s);
  });
}

void PromRenderer::emit_scalars(std::string& out) {
  FamilyWriter errors(out, f_upstream_errors);
  for (std::size_t i = 0; i < upstream_error_count; ++i) {
    labels_.clear();
    append_label(labels_, "kind", upstream_error_labels[i]);
    errors.u64(labels_, scalars_.upstream_errors[i]);
  }
  FamilyWriter usage(out, f_usage_missing);
  for (std::size_t r = 0; r < route_count; ++r) {
    if (scalars_.usage_missing[r] == 0) continue;
    labels_.clear();
    append_label(labels_, "endpoint", route_label(static_cast<Route>(r)));
    usage.u64(labels_, scalars_.usage_missing[r]);
  }
  FamilyWriter(out, f_conn_open).u64({}, scalars_.connections_opened - scalars_.connections_closed);
  FamilyWriter(out, f_conn_total).u64({}, scalars_.connections_opened);
  FamilyWriter rejected(out, f_conn_rejected);
  for (std::size_t i = 0; i < reject_reason_count; ++i) {
    labels_.clear();
    append_label(labels_, "reason", reject_reason_labels[i]);
    rejected.u64(labels_, scalars_.rejected[i]);
  }
}

void PromRenderer::render(std::span<const MetricsShard* const> shards, const ModelTable& models,
                          const ProcessStats& process, std::string_view version, std::string& out) {
  render(shards, models, process, version, BackendSource{}, out);
}

void PromRenderer::render(std::span<const MetricsShard* const> shards, const ModelTable& models,
                          const ProcessStats& process, std::string_view version,
                          const BackendSource& backends, std::string& out) {
  out.clear();
  reset(models);
  read_fleet(backends);  // first: the source's pointers need only outlive this copy
  merge_scalars(shards);
  for (const MetricsShard* shard : shards) {
    for (const ModelSeries& s : shard->model_series()) merge_model(s);
    for (const ModelSeries& s : shard->overflow_models()) merge_model(s);
  }
  merge_requests(shards);
  merge_backends(shards);
  rank_models(models);
  sort_series();
  sort_backends();
  emit_requests(models, out);
  emit_endpoint_model(models, out);
  emit_scalars(out);
  emit_backends(models, out);
  labels_.clear();
  append_label(labels_, "version", version);
  FamilyWriter(out, f_build).u64(labels_, 1);
  if (process.cpu_seconds) FamilyWriter(out, f_cpu).f64({}, *process.cpu_seconds);
  if (process.resident_bytes) FamilyWriter(out, f_rss).u64({}, *process.resident_bytes);
  if (process.open_fds) FamilyWriter(out, f_fds).u64({}, *process.open_fds);
  if (process.start_time_seconds) FamilyWriter(out, f_start).f64({}, *process.start_time_seconds);
}

void render(std::span<const MetricsShard* const> shards, const ModelTable& models,
            const ProcessStats& process, std::string_view version, std::string& out) {
  PromRenderer renderer;
  renderer.render(shards, models, process, version, out);
}

}  // namespace tokentap
