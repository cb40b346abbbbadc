// ollama_line: see ollama_line.h for what a yes guarantees.
#include "tokentap/ollama_line.h"

#include <bit>
#include <cstdint>

#include "byte_scan.h"
#include "tokentap/assert.h"

namespace tokentap {
namespace {

constexpr std::string_view done_false_tail = R"(,"done":false})";
constexpr std::string_view done_false_only = R"({"done":false})";

bool is_wanted(const char* key, std::size_t len, const SkimSpec& spec) {
  if (len > skim_key_bytes_max) return false;  // JsonSkim never matches longer keys
  std::uint32_t maybe = spec.key_filter[0][skim_detail::key_hash(key, len)];
  const std::string_view k(key, len);
  for (; maybe != 0; maybe &= maybe - 1) {
    if (spec.paths[std::countr_zero(maybe)].keys[0] == k) return true;
  }
  return false;
}

// A string's contents after its opening quote, as JsonSkim skips a string nobody reads: the byte
// after its closing quote, or nullptr if it does not close before end.
const char* skip_string(const char* p, const char* end) {
  bool escape = false;
  bool closed = false;
  p = byte_scan::skip_string(p, end, &escape, &closed);
  return closed ? p : nullptr;
}

// A container at p, as JsonSkim skips a subtree no path enters: only strings and bracket
// matching count. The byte after its closing bracket, or nullptr.
const char* skip_container(const char* p, const char* end) {
  std::uint64_t objects = 0;  // bit d: the container at depth d is an object
  std::uint32_t depth = 0;
  static_assert(ollama_line_nest_max <= 64, "one bit per open container");
  while (p < end) {
    p = byte_scan::find_bracket_or_quote(p, end);
    if (p == end) return nullptr;
    const char c = *p++;
    if (c == '"') {
      if ((p = skip_string(p, end)) == nullptr) return nullptr;
      continue;
    }
    if (c == '{' || c == '[') {
      if (depth == ollama_line_nest_max) return nullptr;
      const std::uint64_t bit = std::uint64_t{1} << depth;
      objects = c == '{' ? objects | bit : objects & ~bit;
      ++depth;
      continue;
    }
    if (depth == 0) return nullptr;
    --depth;
    if ((c == '}') != ((objects >> depth & 1) != 0)) return nullptr;
    if (depth == 0) return p;
  }
  return nullptr;
}

// One value nobody keeps at p (< members_end); line_end bounds a number or literal, which
// needs the byte after it. The byte after the value, or nullptr.
const char* skip_value(const char* p, const char* members_end, const char* line_end) {
  if (*p == '"') return skip_string(p + 1, members_end);
  if (*p == '{' || *p == '[') return skip_container(p, members_end);
  const char* q = JsonSkim::skip_plain_scalar(p, line_end);
  return q != nullptr && q <= members_end ? q : nullptr;
}

}  // namespace

bool is_ollama_piece_line(std::string_view line, const SkimSpec& spec) {
  TT_DASSERT(!spec.fold_keys);
  if (line == done_false_only) return true;
  if (line.size() <= done_false_tail.size() + 1 || line.front() != '{' ||
      !line.ends_with(done_false_tail)) {
    return false;
  }
  const char* p = line.data() + 1;
  const char* const line_end = line.data() + line.size();
  const char* const members_end = line_end - done_false_tail.size();
  for (;;) {
    if (p == members_end || *p != '"') return false;
    const char* key_end = byte_scan::find_string_special(p + 1, members_end);
    if (key_end == members_end || *key_end != '"') return false;
    if (is_wanted(p + 1, static_cast<std::size_t>(key_end - p - 1), spec)) return false;
    p = key_end + 1;
    if (p == members_end || *p != ':') return false;
    if (++p == members_end) return false;
    if ((p = skip_value(p, members_end, line_end)) == nullptr) return false;
    if (p == members_end) return true;
    if (*p != ',') return false;
    ++p;
  }
}

}  // namespace tokentap
