// Instance: the state one FakeUpstream shares across its workers, for fleet tests that run
// several fakes in one process, each a different Ollama (see fake_upstream.h Options).
//
//  - Catalog: the installed and resident models and the bodies of GET /api/tags, /v1/models and
//    /api/ps rendered from them once. Immutable; set_models()/set_resident() publish a new one
//    through an atomic shared_ptr, so a request sees one consistent catalog.
//  - busy, health, close, pull_fail, pull_delay_ms: relaxed atomics, read once per request.
//  - /api/pull, /api/delete and /api/copy change the installed list from a worker: they take
//    setter_mutex like the setters (an admin request, never an inference one) and publish a new
//    catalog. Without Options::models the list starts as the default seven and every model name
//    stays accepted for inference.
//
// Model names: the installed list keeps the names as given (plus ":latest" when there is no tag);
// a request's model matches case-insensitively, also without its ":latest".
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "fake_upstream.h"

namespace tokentap::fake {

struct Catalog {
  bool checks_models = false;     // Options::models was given: other models get 404
  std::vector<std::string> keys;  // installed names, normalized (lower case, with a tag)
  std::string tags_body;          // GET /api/tags (gin c.JSON: no newline)
  std::string v1_models_body;     // GET /v1/models (json.Encoder: a newline)
  std::string ps_body;            // GET /api/ps

  // `model` as the request's JSON wrote it (escapes kept).
  [[nodiscard]] bool installed(std::string_view model) const;
  // In the list (whether or not the instance checks models for inference).
  [[nodiscard]] bool listed(std::string_view model) const;
};

// "llama3.2" → "llama3.2:latest"; lower case.
[[nodiscard]] std::string normalize_model(std::string_view name);
// listed: the installed names; checks_models: other names get 404 on inference routes.
[[nodiscard]] std::shared_ptr<const Catalog> make_catalog(const std::vector<std::string>& listed,
                                                          bool checks_models,
                                                          const std::vector<std::string>& resident);

struct Instance {
  std::atomic<bool> busy{false};
  std::atomic<Health> health{Health::ok};
  std::atomic<CloseMode> close{CloseMode::none};
  std::atomic<bool> pull_fail{false};
  std::atomic<std::uint32_t> pull_delay_ms{0};
  std::uint32_t health_slow_ms = 1500;
  std::atomic<std::shared_ptr<const Catalog>> catalog;
  // What the catalog is rebuilt from, under setter_mutex (the setters, and a worker only for
  // /api/pull, /api/delete, /api/copy).
  std::mutex setter_mutex;
  std::vector<std::string> listed;  // Options::models, or the default seven
  bool checks_models = false;       // Options::models was given
  std::vector<std::string> resident;

  [[nodiscard]] std::shared_ptr<const Catalog> load_catalog() const {
    return catalog.load(std::memory_order_acquire);
  }
  void set_models(std::optional<std::vector<std::string>> models);
  void set_resident(std::vector<std::string> names);
  // Adds `model` (raw JSON string content) unless it is listed already.
  void add_model(std::string_view model);
  // Removes `model`; false if it was not listed.
  [[nodiscard]] bool remove_model(std::string_view model);

 private:
  void publish();  // setter_mutex held
};

}  // namespace tokentap::fake
