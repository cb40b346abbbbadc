// Prober: active health checks and installed-model polls per backend; see prober.h.
#include "tokentap/app/prober.h"

#include <chrono>
#include <simdjson.h>

#include "tokentap/app/catalog_merge.h"
#include "tokentap/base/clock.h"

namespace tokentap {

bool parse_tag_names(const std::string& body, std::vector<std::string>* names) {
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (parser.parse(body).get(doc) != simdjson::SUCCESS) return false;
  simdjson::dom::array models;
  if (doc["models"].get_array().get(models) != simdjson::SUCCESS) return false;
  for (simdjson::dom::element m : models) {
    std::string_view name;
    if (m["name"].get_string().get(name) != simdjson::SUCCESS &&
        m["model"].get_string().get(name) != simdjson::SUCCESS) {
      continue;
    }
    if (names->size() >= tags_models_max) break;
    names->emplace_back(name);
  }
  return true;
}

Prober::Prober(const Config& config, Fleet& fleet, ModelTable& models,
               std::array<BackendCounters, backends_max>& counters, Catalog& catalog)
    : config_(config),
      fleet_(fleet),
      models_(models),
      counters_(counters),
      catalog_(catalog),
      tags_bodies_(fleet_backends_max),
      models_bodies_(fleet_backends_max),
      ps_bodies_(fleet_backends_max) {}

Prober::~Prober() { stop(); }

void Prober::sync() {
  std::array<bool, fleet_backends_max> leaving{};
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return;
    const bool routing = fleet_.routing();
    for (std::uint32_t i = 0; i < fleet_.size(); ++i) {
      const bool want = routing && fleet_.configured(i);
      if (want == watched_[i]) continue;
      watched_[i] = want;
      leaving[i] = !want;
    }
  }
  cv_.notify_all();
  for (std::uint32_t i = 0; i < fleet_backends_max; ++i) {
    if (leaving[i] && threads_[i].joinable()) {
      threads_[i].join();
      forget(i);
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  for (std::uint32_t i = 0; i < fleet_.size(); ++i) {
    if (watched_[i] && !threads_[i].joinable()) threads_[i] = std::thread([this, i] { run(i); });
  }
}

void Prober::stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  for (std::thread& t : threads_) {
    if (t.joinable()) t.join();
  }
}

bool Prober::wait(std::uint32_t backend, std::uint64_t ms) {
  std::unique_lock<std::mutex> lock(mu_);
  return !cv_.wait_for(lock, std::chrono::milliseconds(ms),
                       [this, backend] { return stopping_ || !watched_[backend]; });
}

BackendTarget Prober::target_of(std::uint32_t backend) const {
  BackendTarget t;
  std::uint32_t generation = 0;
  fleet_.copy_target(backend, &t, &generation);
  return t;
}

void Prober::forget(std::uint32_t backend) {
  {
    std::lock_guard<std::mutex> lock(lists_mu_);
    tags_bodies_[backend].clear();
    models_bodies_[backend].clear();
    ps_bodies_[backend].clear();
  }
  publish_catalog();
}

void Prober::run(std::uint32_t backend) {
  poll_tags(backend);  // the installed models are wanted before the first request routes
  std::uint64_t next_tags = monotonic_ms() + tags_poll_interval_ms;
  // What the catalog last saw of this backend: a change by any shard (a refused connect marks
  // it down at once) or by this thread's checks republishes the union.
  bool in_catalog = fleet_.healthy(backend, monotonic_ms());
  do {
    const bool was_up = fleet_.at(backend).up.load(std::memory_order_relaxed);
    check(backend);
    const bool is_up = fleet_.at(backend).up.load(std::memory_order_relaxed);
    const bool in_rotation = fleet_.healthy(backend, monotonic_ms());
    if (in_rotation) poll_ps(backend);  // residency changes by the second
    if ((is_up && !was_up) || monotonic_ms() >= next_tags) {
      poll_tags(backend);
      next_tags = monotonic_ms() + tags_poll_interval_ms;
    } else if (in_rotation != in_catalog) {
      publish_catalog();  // the union is over the backends in rotation
    }
    in_catalog = in_rotation;
  } while (wait(backend, config_.health_interval_ms));
}

void Prober::check(std::uint32_t backend) {
  const BackendTarget b = target_of(backend);
  const ProbeAnswer a = probe_get(b.endpoint, b.host_header, "/api/version",
                                  health_check_timeout_ms);
  const bool passed = a.status >= 200 && a.status < 300;
  const HealthResult result = passed      ? HealthResult::ok
                              : a.timed_out ? HealthResult::timeout
                                            : HealthResult::fail;
  counters_[backend].health_checks[static_cast<std::size_t>(result)].fetch_add(
      1, std::memory_order_relaxed);
  count_ejection(counters_[backend], fleet_.report_check(backend, passed, monotonic_ms()));
}

void Prober::poll_tags(std::uint32_t backend) {
  const BackendTarget b = target_of(backend);
  const ProbeAnswer a = probe_get(b.endpoint, b.host_header, "/api/tags", health_check_timeout_ms);
  std::vector<std::string> names;
  if (a.status != 200 || !parse_tag_names(a.body, &names)) return;  // keep the last known set
  std::vector<ModelId> ids;
  for (const std::string& n : names) {
    ids.push_back(models_.intern(n));
    constexpr std::string_view latest = ":latest";
    if (n.size() > latest.size() && n.ends_with(latest)) {
      ids.push_back(models_.intern(std::string_view(n).substr(0, n.size() - latest.size())));
    }
  }
  fleet_.at(backend).set_models(ids);
  const ProbeAnswer listed = probe_get(b.endpoint, b.host_header, "/v1/models",
                                       health_check_timeout_ms);
  {
    std::lock_guard<std::mutex> lock(lists_mu_);
    tags_bodies_[backend] = a.body;
    if (listed.status == 200) models_bodies_[backend] = listed.body;
  }
  publish_catalog();
}

// The models resident on one backend (polled every check: residency changes by the second).
void Prober::poll_ps(std::uint32_t backend) {
  const BackendTarget b = target_of(backend);
  const ProbeAnswer a = probe_get(b.endpoint, b.host_header, "/api/ps", health_check_timeout_ms);
  if (a.status != 200) return;
  {
    std::lock_guard<std::mutex> lock(lists_mu_);
    if (ps_bodies_[backend] == a.body) return;  // unchanged: nothing to publish
    ps_bodies_[backend] = a.body;
  }
  publish_catalog();
}

// The union over the backends in rotation now, in configuration order.
void Prober::publish_catalog() {
  std::vector<std::string> tags;
  std::vector<std::string> models;
  std::vector<std::string> ps;
  const std::uint64_t now = monotonic_ms();
  {
    std::lock_guard<std::mutex> lock(lists_mu_);
    for (std::uint32_t i = 0; i < fleet_.size(); ++i) {
      if (!fleet_.healthy(i, now)) continue;
      if (!tags_bodies_[i].empty()) tags.push_back(tags_bodies_[i]);
      if (!models_bodies_[i].empty()) models.push_back(models_bodies_[i]);
      if (!ps_bodies_[i].empty()) ps.push_back(ps_bodies_[i]);
    }
  }
  if (tags.empty()) return;  // nothing known: requests go to a backend as before
  auto bodies = std::make_shared<CatalogBodies>();
  bodies->tags = merge_tags(tags);
  bodies->models = models.empty() ? std::string() : merge_openai_models(models);
  bodies->ps = ps.empty() ? std::string() : merge_tags(ps);  // the same {"models":[…]} shape
  catalog_.publish(std::move(bodies));
}

}  // namespace tokentap
