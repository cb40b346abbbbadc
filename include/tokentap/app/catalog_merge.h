// catalog_merge: the union of several Ollama model lists, for Catalog (upstream/catalog.h).
// Entries are kept byte for byte (minified as simdjson reads them), the first backend's entry
// wins for a name given by several, and the order is first seen. A body that is not the
// expected shape contributes nothing. Pure functions, unit-tested.
#pragma once

#include <string>
#include <vector>

namespace tokentap {

// /api/tags bodies ({"models":[{"name":…},…]}) → one /api/tags body.
[[nodiscard]] std::string merge_tags(const std::vector<std::string>& bodies);
// /v1/models bodies ({"object":"list","data":[{"id":…},…]}) → one /v1/models body (with the
// trailing newline Ollama's OpenAI layer writes).
[[nodiscard]] std::string merge_openai_models(const std::vector<std::string>& bodies);

}  // namespace tokentap
