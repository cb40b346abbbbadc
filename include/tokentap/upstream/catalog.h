// Catalog: what a fleet answers as one Ollama for the model lists (issue 16 "Fleet endpoints"):
// `GET /api/tags` and `GET /v1/models` return the union over the healthy backends, one entry
// per model name, in Ollama's own formats; `GET /api/ps` the union of the resident models. The
// prober builds the bodies after each poll and publishes them here; a shard that serves one of
// those requests takes the current snapshot.
// Publication swaps a shared_ptr (std::atomic_load/store on it): touched once per such request,
// never per byte, and an old snapshot lives until its last reader has copied it out.
#pragma once

#include <atomic>
#include <memory>
#include <string>

namespace tokentap {

struct CatalogBodies {
  std::string tags;    // {"models":[…]} as /api/tags
  std::string models;  // {"object":"list","data":[…]} as /v1/models
  std::string ps;      // {"models":[…]} as /api/ps: the models resident anywhere in rotation
};

class Catalog {
 public:
  void publish(std::shared_ptr<const CatalogBodies> bodies) {
    std::atomic_store_explicit(&current_, std::move(bodies), std::memory_order_release);
  }
  // Null until the first poll of a healthy backend answered.
  [[nodiscard]] std::shared_ptr<const CatalogBodies> current() const {
    return std::atomic_load_explicit(&current_, std::memory_order_acquire);
  }

 private:
  std::shared_ptr<const CatalogBodies> current_;
};

}  // namespace tokentap
