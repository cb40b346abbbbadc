// JsonSkim: an incremental JSON structure tracker that captures a few values at fixed key paths.
//
// The proxy sees bodies as they arrive, split anywhere (inside a key, an escape, a number, a UTF-8
// sequence). JsonSkim keeps string/escape state and nesting depth across feed() calls, so any
// split gives the same result, and it never needs more than one value's capture in memory.
//
// What it checks. Along matched paths (the containers that can still lead to a configured path)
// it checks the grammar: members, colons, commas, keys (decoded, escapes included), numbers and
// literals. Everywhere else it only follows strings and brackets: a subtree that no path enters
// is skipped by character class, 16 bytes at a time, and only bracket matching is verified
// there. So `[1 2]` deep inside `messages` is not flagged; an unbalanced or mismatched bracket,
// a raw control character in a decoded string or a bad escape anywhere on a matched path is.
// Values are validated exactly by whoever reads a capture (simdjson, json_uint, the UTF-8 check).
//
// Captures. A spec (SkimSpec, built at compile time) lists up to 32 key paths of up to 4 keys;
// "*" matches any array element. A `flag` path records only the value's type, emptiness and byte
// offsets; a `bytes` path also keeps the value: strings unescaped into UTF-8, anything else as
// raw JSON text, up to the path's cap (more marks the capture truncated, never fails). Only one
// `bytes` value is kept at a time, so feed() stops after every completed capture and the caller
// reads it before feeding on: that also lets callers apply "last duplicate wins" per occurrence.
//
// Invariants: no heap allocation; bounded work per byte (a key is compared against at most 32
// paths once); offsets count every byte fed since reset(). No kernel features are used.
#pragma once

#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace tokentap {

constexpr std::size_t skim_path_keys_max = 4;   // keys in one path ("choices/*/delta/content")
constexpr std::size_t skim_paths_max = 32;      // paths in one spec: bits of a uint32 mask
constexpr std::size_t skim_key_bytes_max = 24;  // decoded key bytes compared; longer never match
constexpr std::size_t skim_capture_bytes_max =
    512;                                       // one `bytes` capture (model name, usage object)
constexpr std::uint32_t skim_depth_max = 512;  // open containers; deeper input fails

constexpr std::size_t skim_key_hash_size = 64;  // entries of a per-depth key pre-filter
static_assert(skim_paths_max == 32, "path masks are uint32");
static_assert(skim_depth_max % 64 == 0, "the container-kind bit stack is whole uint64 words");

enum class JsonType : std::uint8_t { none, object, array, string, number, true_, false_, null };

enum class SkimKind : std::uint8_t {
  flag,   // type, emptiness and offsets only
  bytes,  // also the value: strings unescaped, anything else raw
};

struct SkimPath {
  std::array<std::string_view, skim_path_keys_max> keys{};  // unused trailing keys are empty
  SkimKind kind = SkimKind::flag;
  std::uint16_t cap_bytes = 0;  // bytes kind only: most bytes kept
};

// Masks derived from the paths at compile time, so the skimmer never loops over paths per byte.
struct SkimSpec {
  const SkimPath* paths = nullptr;
  std::uint8_t count = 0;
  bool fold_keys = false;  // Go encoding/json key matching: case-insensitive, with ſ→s and K→k
  bool valid = false;      // make_skim_spec accepted the paths
  std::array<std::uint32_t, skim_path_keys_max + 1> ends_at{};    // [d]: paths of exactly d keys
  std::array<std::uint32_t, skim_path_keys_max + 1> goes_past{};  // [d]: paths of more than d keys
  std::array<std::uint32_t, skim_path_keys_max + 1> star_at{};    // [d]: paths whose key d-1 is *
  // [d][i]: paths whose key d equals path i's key d (one comparison decides them all)
  std::array<std::array<std::uint32_t, skim_paths_max>, skim_path_keys_max> same_key{};
  // [d][key_hash(k)]: paths whose key d could be k; most keys on the wire hit an empty entry and
  // are compared against nothing
  std::array<std::array<std::uint32_t, skim_key_hash_size>, skim_path_keys_max> key_filter{};
};

namespace skim_detail {
constexpr std::size_t path_length(const SkimPath& p) {
  std::size_t n = 0;
  while (n < skim_path_keys_max && !p.keys[n].empty()) ++n;
  return n;
}
constexpr bool path_is_prefix(const SkimPath& a, std::size_t a_len, const SkimPath& b) {
  if (a_len >= path_length(b)) return false;
  for (std::size_t i = 0; i < a_len; ++i) {
    if (a.keys[i] != b.keys[i]) return false;
  }
  return true;
}
// The key pre-filter's hash: length, first and last byte (of the decoded, folded key).
constexpr std::size_t key_hash(const char* k, std::size_t len) {
  if (len == 0) return 0;
  const auto first = static_cast<unsigned char>(k[0]);
  const auto last = static_cast<unsigned char>(k[len - 1]);
  return (len * 7 + first * 3 + last) % skim_key_hash_size;
}
// By reference and by hand: GCC 12 refuses, at compile time, to copy a value-initialized
// string_view member out of a constexpr aggregate (which operator== would do).
constexpr bool key_equal(const std::string_view& a, const std::string_view& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (a[i] != b[i]) return false;
  }
  return true;
}
constexpr bool same_keys(const SkimPath& a, const SkimPath& b) {
  for (std::size_t i = 0; i < skim_path_keys_max; ++i) {
    if (!key_equal(a.keys[i], b.keys[i])) return false;
  }
  return true;
}
constexpr bool path_acceptable(const SkimPath& p) {
  const std::size_t len = path_length(p);
  if (len == 0) return false;
  for (std::size_t i = len; i < skim_path_keys_max; ++i) {
    if (!p.keys[i].empty()) return false;
  }
  for (std::size_t i = 0; i < len; ++i) {
    if (p.keys[i].size() > skim_key_bytes_max) return false;
  }
  if (p.kind == SkimKind::bytes) return p.cap_bytes > 0 && p.cap_bytes <= skim_capture_bytes_max;
  return p.cap_bytes == 0;
}
}  // namespace skim_detail

// Builds a spec; `valid` is false for an empty or oversized list, a malformed path, a duplicate
// path, or a `bytes` path that is a prefix of another path (one bytes capture at a time).
template <std::size_t N>
constexpr SkimSpec make_skim_spec(const std::array<SkimPath, N>& paths, bool fold_keys) {
  SkimSpec spec;
  spec.paths = paths.data();
  spec.count = static_cast<std::uint8_t>(N);
  spec.fold_keys = fold_keys;
  bool ok = N > 0 && N <= skim_paths_max;
  for (std::size_t i = 0; ok && i < N; ++i) {
    const std::size_t len = skim_detail::path_length(paths[i]);
    ok = skim_detail::path_acceptable(paths[i]);
    for (std::size_t j = 0; ok && j < N; ++j) {
      if (j == i) continue;
      ok = !skim_detail::same_keys(paths[i], paths[j]);
      if (ok && paths[i].kind == SkimKind::bytes) {
        ok = !skim_detail::path_is_prefix(paths[i], len, paths[j]);
      }
    }
    if (!ok) break;
    const std::uint32_t bit = std::uint32_t{1} << i;
    for (std::size_t j = 0; j < N; ++j) {
      const std::size_t j_len = skim_detail::path_length(paths[j]);
      for (std::size_t d = 0; d < len && d < j_len; ++d) {
        if (skim_detail::key_equal(paths[i].keys[d], paths[j].keys[d])) {
          spec.same_key[d][i] |= std::uint32_t{1} << j;
        }
      }
    }
    spec.ends_at[len] |= bit;
    for (std::size_t d = 0; d < len; ++d) {
      const std::string_view& k = paths[i].keys[d];
      spec.key_filter[d][skim_detail::key_hash(k.data(), k.size())] |= bit;
      spec.goes_past[d] |= bit;
      if (paths[i].keys[d] == "*") spec.star_at[d + 1] |= bit;
    }
  }
  spec.valid = ok;
  return spec;
}

// One completed value at a configured path.
struct SkimCapture {
  std::uint8_t slot = 0;  // index of the path in the spec
  JsonType type = JsonType::none;
  bool nonempty = false;    // string of >= 1 byte, container with >= 1 member
  bool truncated = false;   // bytes kind: the value was longer than the path's cap
  bool lossy = false;       // string with a lone surrogate escape (Go decodes it as U+FFFD)
  std::uint64_t begin = 0;  // offset of the value's first byte
  std::uint64_t end = 0;    // offset one past its last byte
  std::string_view bytes;   // bytes kind: the value (valid until the next feed())
};

enum class SkimEvent : std::uint8_t {
  none,          // feed() consumed everything it was given
  captured,      // capture() holds a completed value
  document_end,  // the root value closed
  failed,        // error() says why; later bytes are ignored until reset()
};

enum class SkimError : std::uint8_t {
  none,
  syntax,  // unexpected byte for the grammar at this point
  depth,   // more than skim_depth_max open containers
  string,  // raw control character or bad escape in a decoded string
};

namespace skim_detail {
enum class SkimMode : std::uint8_t {
  value,        // a value must start (root, after ':' or after ',' in an array)
  first_value,  // after '[': a value or ']'
  first_key,    // after '{': '"' or '}'
  key,          // after ',' in an object: '"'
  colon,        // after a key
  after_value,  // ',' or a closer
  key_string,   // inside a key, decoding into key_
  text_string,  // inside a captured string, decoding into buf_
  skip_string,  // inside a string value nobody reads
  scalar,       // inside a number or literal on a matched path
  skip,         // inside a subtree no path enters
  done,         // single document: the root ended, only whitespace may follow
  failed,
};
inline constexpr std::uint8_t no_slot = 0xff;

// JsonSkim's per-document scalars, kept apart so that reset() is one small assignment rather
// than a rewrite of the capture buffer (the SSE path resets once per event).
struct SkimCursor {
  const char* base_ = nullptr;      // data pointer of the current feed()
  const char* raw_from_ = nullptr;  // raw capture: first byte not yet copied in this feed()
  std::uint64_t base_offset_ = 0;
  std::uint64_t offset_ = 0;
  std::uint64_t doc_begin_ = 0;
  std::uint64_t val_begin_ = 0;  // offset of the pending scalar/string/skipped container
  std::array<std::uint64_t, skim_path_keys_max + 1> open_begin_{};  // strict containers' starts
  std::array<std::uint32_t, skim_path_keys_max + 1> mask_{};  // paths still matching at depth d
  std::uint32_t cand_ = 0;  // paths matching the value about to start
  std::uint32_t depth_ = 0;
  std::uint32_t skip_floor_ = 0;  // skip mode ends when depth_ returns here
  std::array<std::uint8_t, skim_path_keys_max + 1> open_slot_{
      no_slot, no_slot, no_slot, no_slot, no_slot};  // target slot of a strict container
  std::uint8_t filled_ = 0;  // bit d: strict container at depth d has a member
  SkimMode mode_ = SkimMode::value;
  SkimEvent event_ = SkimEvent::none;
  SkimError error_ = SkimError::none;
  JsonType doc_type_ = JsonType::none;
  JsonType val_type_ = JsonType::none;
  std::uint8_t val_slot_ = no_slot;  // target of the pending scalar/string/skipped container
  bool doc_started_ = false;
  bool raw_on_ = false;      // copying raw bytes into buf_
  bool skip_first_ = false;  // skipped target container: its first non-space byte is next
  bool skip_nonempty_ = false;
  bool in_str_ = false;       // skip mode: inside a string
  bool esc_pending_ = false;  // skip mode or skip_string: the byte after a backslash is next
  // Decoded strings (keys and text captures).
  std::uint8_t esc_ = 0;  // 0: none, 1: after '\', 2..5: hex digits read + 2
  std::uint16_t uhex_ = 0;
  std::uint16_t hi_surrogate_ = 0;
  bool str_lossy_ = false;
  // Scalar validation: a literal's expected text, or the JSON number automaton state.
  const char* lit_ = nullptr;
  std::uint8_t lit_len_ = 0;
  std::uint8_t lit_pos_ = 0;
  std::uint8_t num_state_ = 0;
  std::uint8_t key_len_ = 0;
  bool key_long_ = false;
  std::uint8_t fold_n_ = 0;
  // The bytes capture in progress.
  std::uint16_t cap_len_ = 0;
  std::uint16_t cap_limit_ = 0;
  bool cap_truncated_ = false;
};
}  // namespace skim_detail

class JsonSkim : private skim_detail::SkimCursor {
 public:
  using Event = SkimEvent;

  // multi_document: after a root value, whitespace and then another document may follow
  // (NDJSON, json.Decoder streams). Otherwise any non-whitespace after the root fails.
  void init(const SkimSpec& spec, bool multi_document);
  // Forgets all state and restarts offsets at 0. Keeps the spec.
  void reset();

  // Consumes bytes until the input ends or an event happens (the event's last byte included,
  // except for a number or literal, which ends before the byte that ends it). Returns the count.
  [[nodiscard]] std::size_t feed(const char* data, std::size_t size);

  [[nodiscard]] Event event() const { return event_; }
  [[nodiscard]] const SkimCapture& capture() const { return capture_; }
  [[nodiscard]] SkimError error() const { return error_; }
  [[nodiscard]] bool failed() const { return mode_ == Mode::failed; }
  [[nodiscard]] std::uint64_t offset() const { return offset_; }
  // True while a document has started and its root value has not ended.
  [[nodiscard]] bool in_document() const { return doc_started_; }
  // The last document's root: its type and the offset of its first byte.
  [[nodiscard]] JsonType document_type() const { return doc_type_; }
  [[nodiscard]] std::uint64_t document_begin() const { return doc_begin_; }
  // Multi-document mode, nothing failed, no document started: a new document may begin here.
  [[nodiscard]] bool between_documents() const {
    return multi_ && !doc_started_ && mode_ == Mode::value;
  }
  // The caller read the next `bytes` bytes as one whole document of root type `type` on its own
  // (a line ollama_line recognised): offsets and document_begin/type move on as feed() would
  // have moved them, and the skimmer stays between documents. Only when between_documents().
  void skip_document(std::size_t bytes, JsonType type);

  // A number or literal starting at p that ends (on a byte that cannot continue it) before end
  // and is valid JSON: returns the byte after it; nullptr otherwise.
  static const char* skip_plain_scalar(const char* p, const char* end);

 private:
  using Mode = skim_detail::SkimMode;
  static constexpr std::uint8_t no_slot = skim_detail::no_slot;

  const char* run_members(const char* p, const char* end);
  const char* run_structure(const char* p, const char* end);
  const char* read_plain_key(const char* p, const char* end);
  const char* skip_plain_members(const char* p, const char* end);
  const char* run_skip(const char* p, const char* end);
  const char* run_skip_string(const char* p, const char* end);
  const char* run_decoded_string(const char* p, const char* end);
  const char* run_escape(const char* p, const char* end);
  const char* run_scalar(const char* p, const char* end);

  const char* begin_value(const char* p);
  const char* open_container(const char* p, bool object, std::uint8_t slot, std::uint32_t deeper);
  const char* close_container(const char* p);
  const char* after_separator(const char* p);
  void end_value(const char* end_p, JsonType type, bool nonempty);
  void end_root();
  void end_key();
  void start_document(const char* p);
  void push_kind(bool object);
  [[nodiscard]] bool top_is_object() const;
  void fail(SkimError e);

  void push_decoded(const char* p, std::size_t n);
  void push_byte(std::uint8_t b);
  void push_codepoint(std::uint32_t cp);
  void on_unicode_escape(std::uint32_t u);
  void drop_high_surrogate();
  void key_push(std::uint8_t b);
  void key_flush_fold();
  void start_capture(std::uint8_t slot);
  void capture_append(const char* p, std::size_t n);
  void begin_string();
  void emit(std::uint8_t slot, JsonType type, bool nonempty, std::uint64_t begin,
            std::uint64_t end);

  [[nodiscard]] std::uint64_t at(const char* p) const {
    return base_offset_ + static_cast<std::uint64_t>(p - base_);
  }
  [[nodiscard]] SkimKind kind_of(std::uint8_t slot) const { return spec_->paths[slot].kind; }

  // Everything else lives in SkimCursor, which reset() re-initializes in one assignment.
  const SkimSpec* spec_ = nullptr;
  bool multi_ = false;
  std::array<std::uint64_t, skim_depth_max / 64> kinds_{};  // bit set: object; clear: array
  std::array<char, skim_key_bytes_max> key_{};              // the key being decoded
  std::array<std::uint8_t, 2> fold_pending_{};
  SkimCapture capture_;
  std::array<char, skim_capture_bytes_max> buf_{};  // the bytes capture in progress or last
};

}  // namespace tokentap
