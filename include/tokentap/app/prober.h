// Prober: the background threads that watch every backend of a fleet (issue 16 "Health",
// "Model-aware"). One thread per configured backend, never a shard: a check blocks for up to
// its timeout and must not delay anyone's bytes. A reload adds and removes threads (sync()).
//
// Each thread, every --health-interval: `GET /api/version` (timeout health_check_timeout_ms);
// the answer goes to Fleet::report_check, whose policy turns 3 failures into down and 2 passes
// into up. Every tags_poll_interval_ms, and at once when the backend comes up: `GET /api/tags`,
// whose model names (each `name:latest` also as `name`, the spelling clients use) are interned in
// the ModelTable and become the backend's installed set, which the balancer reads lock-free.
// Counters (tokentap_health_checks_total, tokentap_backend_ejections_total) are relaxed atomics
// in storage the Server keeps for the metrics thread.
#pragma once

#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "tokentap/app/blocking_http.h"
#include "tokentap/base/config.h"
#include "tokentap/obs/backend_source.h"
#include "tokentap/obs/model_table.h"
#include "tokentap/upstream/backend.h"
#include "tokentap/upstream/catalog.h"

namespace tokentap {

constexpr std::uint32_t health_check_timeout_ms = 1'000;
constexpr std::uint64_t tags_poll_interval_ms = 10'000;
constexpr std::size_t tags_models_max = 1024;  // names read from one answer
// probe_get, ProbeAnswer and probe_body_bytes_max: app/blocking_http.h.

// The model names of an Ollama /api/tags answer; false when it is not one.
[[nodiscard]] bool parse_tag_names(const std::string& body, std::vector<std::string>* names);

class Prober {
 public:
  // fleet and counters (one per backend index) must outlive the prober.
  Prober(const Config& config, Fleet& fleet, ModelTable& models,
         std::array<BackendCounters, backends_max>& counters, Catalog& catalog);
  ~Prober();
  Prober(const Prober&) = delete;
  Prober& operator=(const Prober&) = delete;

  // Makes the set of watched backends the fleet's configured ones (none while the fleet has one
  // backend: one upstream is not health-checked, as before issue 16): starts a thread for each
  // new one, stops and joins those of removed ones, and republishes the catalog. Called at start
  // and after each reload, from one thread at a time.
  void sync();
  void stop();

 private:
  void run(std::uint32_t backend);
  [[nodiscard]] BackendTarget target_of(std::uint32_t backend) const;
  void forget(std::uint32_t backend);  // a removed backend's last answers leave the catalog
  void check(std::uint32_t backend);
  void poll_tags(std::uint32_t backend);
  void poll_ps(std::uint32_t backend);
  void publish_catalog();
  // Sleeps ms; false once the prober stops or `backend` is no longer watched.
  [[nodiscard]] bool wait(std::uint32_t backend, std::uint64_t ms);

  const Config& config_;
  Fleet& fleet_;
  ModelTable& models_;
  std::array<BackendCounters, backends_max>& counters_;
  Catalog& catalog_;
  std::mutex lists_mu_;  // the prober threads' last answers, merged into the catalog
  std::vector<std::string> tags_bodies_;
  std::vector<std::string> models_bodies_;
  std::vector<std::string> ps_bodies_;
  std::array<std::thread, fleet_backends_max> threads_;
  std::mutex mu_;  // for the stop wake-ups and watched_; never touched by a shard
  std::condition_variable cv_;
  std::array<bool, fleet_backends_max> watched_{};  // under mu_
  bool stopping_ = false;
};

}  // namespace tokentap
