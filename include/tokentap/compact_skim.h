// compact_skim: JsonSkim's captures for one whole document in compact form (no whitespace, as
// Go's encoding/json and OpenAI write every streamed chunk), found in one recursive pass instead
// of one dispatch per token. TailScanner uses it for each whole `data:` event of an OpenAI
// chat/completions stream, the bulk of such a stream: JsonSkim spent ~600 ns an event there.
//
// Exactness. When it answers true, `out` holds exactly the captures JsonSkim (same spec, single
// document, fed the same bytes from a reset) would emit, in the same order, with the same slot,
// type, emptiness, offsets and kept bytes (a `bytes` path's raw value, such as a usage object,
// viewed in `doc` and cut at the path's cap), and JsonSkim would end the document without
// failing. It answers
// false (the caller then feeds JsonSkim as before) for anything it does not read the same way:
//   - whitespace or a key with an escape or control byte inside a container a path enters;
//   - a `bytes` path's string value (JsonSkim unescapes those), more than compact_captures_max
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
#include <string_view>

#include "tokentap/json_skim.h"

namespace tokentap {

constexpr std::size_t compact_captures_max = 16;

// Only at[0, count) is meaningful: the array is left uninitialised (zeroing it cost more than
// reading a chunk).
struct CompactCaptures {
  std::array<SkimCapture, compact_captures_max> at;
  std::uint8_t count = 0;
};

[[nodiscard]] bool compact_skim(std::string_view doc, const SkimSpec& spec, CompactCaptures* out);

}  // namespace tokentap
