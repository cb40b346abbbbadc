// libFuzzer target for JsonSkim. Oracles: (1) feeding the input in pieces (cut points derived from
// the input) gives exactly the events of feeding it whole; (2) a document simdjson accepts is
// never failed by the skimmer (unless deeper than skim_depth_max), and its last top-level
// "model" string equals the skimmer's last capture; (3) captures stay inside the input and caps.
#include <simdjson.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "tokentap/meter/json_skim.h"

namespace {

using tokentap::JsonSkim;
using tokentap::SkimKind;
using tokentap::SkimPath;

constexpr std::array<SkimPath, 5> paths{{
    {{"model"}, SkimKind::bytes, 300},
    {{"usage"}, SkimKind::bytes, 64},
    {{"a", "*", "b"}},
    {{"a"}},
    {{"n"}, SkimKind::bytes, 8},
}};
constexpr tokentap::SkimSpec spec = tokentap::make_skim_spec(paths, false);

struct Outcome {
  std::string log;
  bool failed = false;
  bool ended = false;
  std::string last_model;
  bool model_seen = false;
};

Outcome run(const std::string& text, const std::vector<std::size_t>& cuts) {
  JsonSkim skim;
  skim.init(spec, false);
  Outcome o;
  std::size_t from = 0;
  for (std::size_t i = 0; i <= cuts.size(); ++i) {
    const std::size_t to = i < cuts.size() ? cuts[i] : text.size();
    std::size_t at = from;
    while (at < to) {
      at += skim.feed(text.data() + at, to - at);
      if (skim.event() == JsonSkim::Event::captured) {
        const auto& c = skim.capture();
        if (c.begin >= c.end || c.end > text.size()) std::abort();
        if (c.bytes.size() > paths[c.slot].cap_bytes) std::abort();
        o.log += std::to_string(c.slot) + "/" + std::to_string(c.begin) + "/" +
                 std::to_string(c.end) + "/" + std::string(c.bytes) + ";";
        if (c.slot == 0 && c.type == tokentap::JsonType::string && !c.truncated) {
          o.last_model = std::string(c.bytes);
          o.model_seen = true;
        } else if (c.slot == 0) {
          o.model_seen = false;
        }
      } else if (skim.event() == JsonSkim::Event::document_end) {
        o.log += "end;";
        o.ended = true;
      } else if (skim.event() == JsonSkim::Event::failed) {
        o.log += "fail;";
        o.failed = true;
      }
    }
    from = to;
  }
  return o;
}

// Deepest bracket nesting outside strings.
std::size_t max_depth(const std::string& text) {
  std::size_t depth = 0, deepest = 0;
  bool in_string = false, escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      deepest = std::max(deepest, ++depth);
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return deepest;
}

void check_against_simdjson(const std::string& text, const Outcome& whole) {
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (parser.parse(text).get(doc) != simdjson::SUCCESS) return;
  if (whole.failed) {
    if (max_depth(text) < tokentap::skim_depth_max) std::abort();  // only depth may fail it
    return;
  }
  // A number or literal at the root ends only at a following byte (there is no end-of-input
  // call: the proxy's bodies are objects).
  const auto type = doc.type();
  const bool scalar_root = type != simdjson::dom::element_type::OBJECT &&
                           type != simdjson::dom::element_type::ARRAY &&
                           type != simdjson::dom::element_type::STRING;
  if (!whole.ended && !scalar_root) std::abort();
  simdjson::dom::object obj;
  if (doc.get(obj) != simdjson::SUCCESS) return;
  std::string model;
  bool seen = false;
  for (auto field : obj) {
    if (field.key != "model") continue;
    std::string_view v;
    seen = field.value.get(v) == simdjson::SUCCESS && v.size() <= 300;
    if (seen) model = std::string(v);
  }
  if (seen != whole.model_seen || (seen && model != whole.last_model)) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  const Outcome whole = run(text, {});
  std::vector<std::size_t> cuts;
  std::size_t at = 0;
  for (std::size_t i = 0; i < size && cuts.size() < 16; ++i) {
    at += 1 + data[i] % 23;
    if (at >= size) break;
    cuts.push_back(at);
  }
  if (run(text, cuts).log != whole.log) std::abort();
  check_against_simdjson(text, whole);
  return 0;
}
