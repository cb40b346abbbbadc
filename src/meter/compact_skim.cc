// compact_skim: see compact_skim.h for what a true answer guarantees. The recursion mirrors
// JsonSkim's masks: `cand` holds the paths that match the value about to be read and `depth` is
// the number of containers open around it (JsonSkim's depth_ when it calls begin_value).
#include "tokentap/meter/compact_skim.h"

#include <bit>

#include "byte_scan.h"

namespace tokentap {
namespace {

constexpr std::uint8_t no_slot = skim_detail::no_slot;

class CompactReader {
 public:
  CompactReader(std::string_view doc, const SkimSpec& spec, CompactCaptures* out)
      : begin_(doc.data()), p_(doc.data()), end_(doc.data() + doc.size()), spec_(spec), out_(out) {}

  bool read() {
    out_->count = 0;
    if (spec_.fold_keys) return false;  // Go's key folding is JsonSkim's alone
    if (p_ == end_ || (*p_ != '{' && *p_ != '['))
      return false;  // JsonSkim's root is a container here
    return value(0, spec_.goes_past[0]) && p_ == end_;
  }

 private:
  bool value(std::uint32_t depth, std::uint32_t cand) {
    if (p_ == end_) return false;
    const std::uint32_t targets = cand & spec_.ends_at[depth];
    const std::uint32_t deeper = cand & spec_.goes_past[depth];
    const auto slot = targets != 0 ? static_cast<std::uint8_t>(std::countr_zero(targets)) : no_slot;
    const char* const start = p_;
    const char c = *p_;
    if (c == '"' && slot != no_slot && spec_.paths[slot].kind == SkimKind::bytes) {
      return kept_string(slot);
    }
    if ((c == '{' || c == '[') && deeper != 0) {
      if (depth == skim_path_keys_max) return false;  // make_skim_spec rules this out
      return c == '{' ? object(depth + 1, deeper, slot) : array(depth + 1, deeper, slot);
    }
    JsonType type = JsonType::string;
    bool nonempty = false;
    if (c == '{' || c == '[') {
      // Skipped whole: emptiness is the first byte after the opener (any whitespace skipped).
      const char* q = p_ + 1;
      while (q < end_ && (*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r')) ++q;
      nonempty = q < end_ && *q != '}' && *q != ']';
      type = c == '{' ? JsonType::object : JsonType::array;
      p_ = byte_scan::skip_container(p_, end_);
    } else if (c == '"') {
      p_ = byte_scan::skip_whole_string(p_ + 1, end_);
      nonempty = p_ != nullptr && p_ - start > 2;
    } else {
      type = c == 't'   ? JsonType::true_
             : c == 'f' ? JsonType::false_
             : c == 'n' ? JsonType::null
                        : JsonType::number;
      nonempty = true;  // as JsonSkim reports every number and literal
      p_ = JsonSkim::skip_plain_scalar(p_, end_);
    }
    if (p_ == nullptr) return false;
    return slot == no_slot || emit(slot, type, nonempty, start);
  }

  // A bytes path keeps a string decoded. Without an escape or a control byte (a type name, an
  // id) the decoded value is the raw contents; anything else is left to JsonSkim's decoder.
  bool kept_string(std::uint8_t slot) {
    const char* const start = p_;
    const char* const close = byte_scan::find_string_special(p_ + 1, end_);
    if (close == end_ || *close != '"') return false;
    p_ = close + 1;
    return emit(slot, JsonType::string, close - start > 1, start);
  }

  // p_ at '{'; depth counts it.
  bool object(std::uint32_t depth, std::uint32_t mask, std::uint8_t slot) {
    const char* const start = p_++;
    bool filled = false;
    if (p_ < end_ && *p_ == '}') return close(slot, JsonType::object, filled, start);
    for (;;) {
      if (p_ == end_ || *p_ != '"') return false;
      const char* key_end = byte_scan::find_string_special(p_ + 1, end_);
      if (key_end == end_ || *key_end != '"') return false;
      const std::string_view key(p_ + 1, static_cast<std::size_t>(key_end - p_ - 1));
      p_ = key_end + 1;
      if (p_ == end_ || *p_++ != ':') return false;
      filled = true;
      // A "*" path key stands for array elements only, never for an object key.
      const std::uint32_t keyed = mask & ~spec_.star_at[depth];
      if (!value(depth, key_matches(depth - 1, keyed, key))) return false;
      if (p_ == end_) return false;
      const char sep = *p_;
      if (sep == '}') return close(slot, JsonType::object, filled, start);
      if (sep != ',') return false;
      ++p_;
    }
  }

  // p_ at '['; depth counts it.
  bool array(std::uint32_t depth, std::uint32_t mask, std::uint8_t slot) {
    const char* const start = p_++;
    const std::uint32_t cand = mask & spec_.star_at[depth];
    bool filled = false;
    if (p_ < end_ && *p_ == ']') return close(slot, JsonType::array, filled, start);
    for (;;) {
      // An element that is not a container is read by JsonSkim's scalar rules on a matched
      // path; rare in a chunk, so it is left to JsonSkim.
      if (p_ == end_ || (*p_ != '{' && *p_ != '[')) return false;
      filled = true;
      if (!value(depth, cand)) return false;
      if (p_ == end_) return false;
      const char sep = *p_;
      if (sep == ']') return close(slot, JsonType::array, filled, start);
      if (sep != ',') return false;
      ++p_;
    }
  }

  // The paths among mask whose key at index i is `key` (JsonSkim compares decoded keys of at
  // most skim_key_bytes_max bytes; this key has no escape, so raw and decoded are the same). The
  // spec's key pre-filter rules most keys out before any comparison, as in JsonSkim.
  std::uint32_t key_matches(std::uint32_t i, std::uint32_t mask, std::string_view key) const {
    if (key.size() > skim_key_bytes_max) return 0;
    std::uint32_t maybe = mask & spec_.key_filter[i][skim_detail::key_hash(key.data(), key.size())];
    std::uint32_t matched = 0;
    for (; maybe != 0; maybe &= maybe - 1) {
      const int path = std::countr_zero(maybe);
      if (spec_.paths[path].keys[i] == key) matched |= 1u << path;
    }
    return matched;
  }

  bool close(std::uint8_t slot, JsonType type, bool filled, const char* start) {
    ++p_;
    return slot == no_slot || emit(slot, type, filled, start);
  }

  // A bytes path's value is kept up to the path's cap, as JsonSkim keeps it: a number, a literal
  // or a container as its raw text, a string (escape-free, see kept_string) as its contents. The
  // view points into the document.
  bool emit(std::uint8_t slot, JsonType type, bool nonempty, const char* start) {
    SkimCapture* const added = out_->add();
    if (added == nullptr) return false;
    SkimCapture& c = *added;
    c.slot = slot;
    c.type = type;
    c.nonempty = nonempty;
    c.begin = static_cast<std::uint64_t>(start - begin_);
    c.end = static_cast<std::uint64_t>(p_ - begin_);
    if (spec_.paths[slot].kind == SkimKind::bytes) {
      const std::size_t cap = spec_.paths[slot].cap_bytes;
      const bool quoted = type == JsonType::string;  // kept without its quotes
      const char* const from = quoted ? start + 1 : start;
      const char* const to = quoted ? p_ - 1 : p_;
      const auto len = static_cast<std::size_t>(to - from);
      c.truncated = len > cap;
      c.bytes = std::string_view(from, c.truncated ? cap : len);
    }
    return true;
  }

  const char* const begin_;
  const char* p_;
  const char* const end_;
  const SkimSpec& spec_;
  CompactCaptures* const out_;
};

}  // namespace

bool compact_skim(std::string_view doc, const SkimSpec& spec, CompactCaptures* out) {
  return CompactReader(doc, spec, out).read();
}

}  // namespace tokentap
