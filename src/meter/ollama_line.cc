// ollama_line: see ollama_line.h for what a yes guarantees.
#include "tokentap/meter/ollama_line.h"

#include <bit>
#include <cstdint>

#include "byte_scan.h"
#include "tokentap/base/assert.h"

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

// One value nobody keeps at p (< members_end); line_end bounds a number or literal, which
// needs the byte after it. The byte after the value, or nullptr.
const char* skip_value(const char* p, const char* members_end, const char* line_end) {
  if (*p == '"') return byte_scan::skip_whole_string(p + 1, members_end);
  if (*p == '{' || *p == '[') return byte_scan::skip_container(p, members_end);
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
