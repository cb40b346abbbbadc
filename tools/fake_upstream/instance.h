// Instance: the state one FakeUpstream shares across its workers, for fleet tests that run
// several fakes in one process, each a different Ollama (see fake_upstream.h Options).
//
//  - Catalog: the installed and resident models and the bodies of GET /api/tags, /v1/models and
//    /api/ps rendered from them once. Immutable; set_models()/set_resident() publish a new one
//    through an atomic shared_ptr, so a request sees one consistent catalog.
//  - busy, health, close: relaxed atomics, read once per request.
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
};

// "llama3.2" → "llama3.2:latest"; lower case.
[[nodiscard]] std::string normalize_model(std::string_view name);
[[nodiscard]] std::shared_ptr<const Catalog> make_catalog(
    const std::optional<std::vector<std::string>>& models,
    const std::vector<std::string>& resident);

struct Instance {
  std::atomic<bool> busy{false};
  std::atomic<Health> health{Health::ok};
  std::atomic<CloseMode> close{CloseMode::none};
  std::uint32_t health_slow_ms = 1500;
  std::atomic<std::shared_ptr<const Catalog>> catalog;
  // What set_models()/set_resident() rebuild the catalog from, under setter_mutex (workers never
  // take it).
  std::mutex setter_mutex;
  std::optional<std::vector<std::string>> models;
  std::vector<std::string> resident;

  [[nodiscard]] std::shared_ptr<const Catalog> load_catalog() const {
    return catalog.load(std::memory_order_acquire);
  }
};

}  // namespace tokentap::fake
