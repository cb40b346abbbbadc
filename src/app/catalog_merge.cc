// catalog_merge: union of model lists; see catalog_merge.h.
#include "tokentap/app/catalog_merge.h"

#include <simdjson.h>

#include <string_view>
#include <unordered_set>

namespace tokentap {
namespace {

// Appends the entries of body[list] whose body[list][i][key] was not seen yet.
void merge_into(const std::vector<std::string>& bodies, const char* list, const char* key,
                std::string* out) {
  simdjson::dom::parser parser;
  std::unordered_set<std::string> seen;
  bool first = true;
  for (const std::string& body : bodies) {
    simdjson::dom::element doc;
    simdjson::dom::array entries;
    if (parser.parse(body).get(doc) != simdjson::SUCCESS) continue;
    if (doc[list].get_array().get(entries) != simdjson::SUCCESS) continue;
    for (simdjson::dom::element e : entries) {
      std::string_view name;
      if (e[key].get_string().get(name) != simdjson::SUCCESS) continue;
      if (!seen.emplace(name).second) continue;
      if (!first) *out += ',';
      first = false;
      *out += simdjson::minify(e);
    }
  }
}

}  // namespace

std::string merge_tags(const std::vector<std::string>& bodies) {
  std::string out = "{\"models\":[";
  merge_into(bodies, "models", "name", &out);
  out += "]}";
  return out;
}

std::string merge_openai_models(const std::vector<std::string>& bodies) {
  std::string out = "{\"object\":\"list\",\"data\":[";
  merge_into(bodies, "data", "id", &out);
  out += "]}\n";
  return out;
}

}  // namespace tokentap
