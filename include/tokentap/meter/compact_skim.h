// compact_skim: JsonSkim's captures for one whole document in compact form (no whitespace, as
// Go's encoding/json and OpenAI write every streamed chunk), found in one recursive pass instead
// of one dispatch per token. TailScanner uses it for each whole `data:` event of an OpenAI
// chat/completions, Responses or Anthropic stream, the bulk of such a stream: JsonSkim spent
// ~600 ns an event there.
//
// Exactness. When it answers true, `out` holds exactly the captures JsonSkim (same spec, single
// document, fed the same bytes from a reset) would emit, in the same order, with the same slot,
// type, emptiness, offsets and kept bytes (a `bytes` path's raw value, such as a usage object,
// viewed in `doc` and cut at the path's cap; a string's contents when it has no escape), and
// JsonSkim would end the document without failing. It answers false (the caller then feeds
// JsonSkim as before) for anything it does not read the same way:
//   - whitespace or a key with an escape or control byte inside a container a path enters;
//   - a `bytes` path's string value with an escape or a control byte (JsonSkim decodes those,
//     or fails on a raw control byte), more than compact_captures_max
//     captures, a matched array element that is not a container, containers nested deeper than
//     byte_scan::skip_container_nest_max where no path enters;
//   - any malformed token, or bytes after the root value.
// A false costs at most one extra pass over the document. Strings no path keeps are skipped
// without decoding and subtrees no path enters are checked for bracket matching only, exactly as
// JsonSkim does. No state, no allocation, no kernel features.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <new>
#include <string_view>
#include <type_traits>

#include "tokentap/meter/json_skim.h"

namespace tokentap {

constexpr std::size_t compact_captures_max = 16;

// Only at(0) .. at(count - 1) exist: the storage is raw bytes, each capture constructed when it
// is found (zero-initialising 16 captures cost more than reading a typed event).
class CompactCaptures {
 public:
  std::uint8_t count = 0;

  [[nodiscard]] const SkimCapture& at(std::uint8_t i) const {
    return *std::launder(reinterpret_cast<const SkimCapture*>(storage_.data()) + i);
  }
  // Constructs the next capture; nullptr when all compact_captures_max are taken.
  [[nodiscard]] SkimCapture* add() {
    if (count == compact_captures_max) return nullptr;
    return new (storage_.data() + sizeof(SkimCapture) * count++) SkimCapture{};
  }

 private:
  alignas(SkimCapture) std::array<std::byte, sizeof(SkimCapture) * compact_captures_max> storage_;
};
static_assert(std::is_trivially_destructible_v<SkimCapture>, "captures are never destroyed");

[[nodiscard]] bool compact_skim(std::string_view doc, const SkimSpec& spec, CompactCaptures* out);

}  // namespace tokentap
