// libFuzzer target for compact_skim. Oracle: whenever it answers for a document, its captures
// are exactly JsonSkim's (slot, type, emptiness, offsets, kept bytes, order) and JsonSkim ends the document
// without failing. The spec is the OpenAI dialect's, with a star path, a flag path that is also
// a prefix, and two bytes paths: "usage" (containers and scalars kept raw, cut at 64 bytes) and
// "type" (the typed dialects' event type: escape-free strings kept as their contents, cut at 8
// bytes; strings with escapes are left to JsonSkim).
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "tokentap/meter/compact_skim.h"

namespace {

using tokentap::SkimKind;
using tokentap::SkimPath;

constexpr std::array<SkimPath, 8> paths{{
    {{"choices"}},
    {{"usage"}, SkimKind::bytes, 64},
    {{"error"}},
    {{"model"}},
    {{"choices", "*", "delta", "content"}},
    {{"choices", "*", "delta", "tool_calls"}},
    {{"choices", "*", "text"}},
    {{"type"}, SkimKind::bytes, 8},
}};
constexpr tokentap::SkimSpec spec = tokentap::make_skim_spec(paths, false);
static_assert(spec.valid);

std::string describe(const tokentap::SkimCapture& c) {
  const bool keep = spec.paths[c.slot].kind == SkimKind::bytes;
  return std::to_string(c.slot) + ":" + std::to_string(static_cast<int>(c.type)) +
         (c.nonempty ? "+" : "-") + std::to_string(c.begin) + "-" + std::to_string(c.end) +
         (keep ? "[" + std::string(c.bytes) + (c.truncated ? "...]" : "]") : "") + " ";
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view doc(reinterpret_cast<const char*>(data), size);
  tokentap::CompactCaptures caps;
  if (!tokentap::compact_skim(doc, spec, &caps)) return 0;
  std::string fast;
  for (std::uint8_t i = 0; i < caps.count; ++i) fast += describe(caps.at(i));
  tokentap::JsonSkim skim;
  skim.init(spec, false);
  std::string slow;
  bool ended = false;
  for (std::size_t at = 0; at < doc.size();) {
    at += skim.feed(doc.data() + at, doc.size() - at);
    if (skim.event() == tokentap::JsonSkim::Event::failed) std::abort();
    if (skim.event() == tokentap::JsonSkim::Event::captured) slow += describe(skim.capture());
    if (skim.event() == tokentap::JsonSkim::Event::document_end) ended = true;
  }
  if (!ended || fast != slow) std::abort();
  return 0;
}
