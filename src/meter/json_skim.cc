// JsonSkim: the incremental skimmer's state machine (strings and keys: json_skim_string.cc).
//
// The skimmer is a pushdown automaton with one mode per grammar position. feed() dispatches on
// the mode; each run_* handles a stretch of bytes and returns where it stopped. Subtrees that no
// path enters are skipped with block scans (byte_scan.h) for '"', '\\' and brackets.
#include "tokentap/meter/json_skim.h"

#include <bit>
#include <cstring>

#include "byte_scan.h"
#include "tokentap/base/assert.h"

namespace tokentap {
namespace {

using byte_scan::find_bracket_or_quote;

constexpr bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
constexpr bool is_digit(char c) { return c >= '0' && c <= '9'; }
constexpr bool is_scalar_char(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '.' ||
         c == '+' || c == '-';
}
constexpr std::uint8_t bit_of(std::uint32_t depth) {
  return static_cast<std::uint8_t>(1u << depth);
}

// The JSON number grammar as a DFA. 0 start, 1 after '-', 2 leading zero, 3 integer digits,
// 4 after '.', 5 fraction digits, 6 after 'e', 7 after exponent sign, 8 exponent digits, 9 reject.
constexpr std::uint8_t num_reject = 9;
constexpr std::uint8_t num_next(std::uint8_t s, char c) {
  const bool digit = c >= '0' && c <= '9';
  const bool exp = c == 'e' || c == 'E';
  switch (s) {
    case 0:
      return c == '-' ? 1 : c == '0' ? 2 : digit ? 3 : num_reject;
    case 1:
      return c == '0' ? 2 : digit ? 3 : num_reject;
    case 2:
      return c == '.' ? 4 : exp ? 6 : num_reject;
    case 3:
      return digit ? 3 : c == '.' ? 4 : exp ? 6 : num_reject;
    case 4:
      return digit ? 5 : num_reject;
    case 5:
      return digit ? 5 : exp ? 6 : num_reject;
    case 6:
      return (c == '+' || c == '-') ? 7 : digit ? 8 : num_reject;
    case 7:
    case 8:
      return digit ? 8 : num_reject;
    default:
      return num_reject;
  }
}
constexpr bool num_accepts(std::uint8_t s) { return s == 2 || s == 3 || s == 5 || s == 8; }
// The states that loop on digits (integer, fraction, exponent): a run of digits is consumed there
// without stepping the automaton byte by byte.
constexpr bool num_digit_loop(std::uint8_t s) { return s == 3 || s == 5 || s == 8; }

// The type of the value whose first byte is c (c already known to start a value, or a number).
constexpr JsonType type_of(char c) {
  return c == '{'   ? JsonType::object
         : c == '[' ? JsonType::array
         : c == '"' ? JsonType::string
         : c == 't' ? JsonType::true_
         : c == 'f' ? JsonType::false_
         : c == 'n' ? JsonType::null
                    : JsonType::number;
}
// The literal a value starting with c must spell; empty for a number.
constexpr std::string_view literal_of(char c) {
  return c == 't' ? "true" : c == 'f' ? "false" : c == 'n' ? "null" : "";
}

}  // namespace

void JsonSkim::init(const SkimSpec& spec, bool multi_document) {
  TT_ASSERT(spec.valid);
  spec_ = &spec;
  multi_ = multi_document;
  reset();
}

void JsonSkim::reset() {
  TT_ASSERT(spec_ != nullptr);
  // Copied from a constant: cheaper than building a temporary once per SSE event.
  static constexpr skim_detail::SkimCursor fresh{};
  static_cast<skim_detail::SkimCursor&>(*this) = fresh;
  cand_ = spec_->goes_past[0];  // every path starts at the root
}

std::size_t JsonSkim::feed(const char* data, std::size_t size) {
  event_ = Event::none;
  const char* p = data;
  const char* const end = data + size;
  base_ = data;
  base_offset_ = offset_;
  raw_from_ = data;
  while (p < end && event_ == Event::none) {
    switch (mode_) {
      case Mode::skip:
        p = run_skip(p, end);
        break;
      case Mode::skip_string:
        p = run_skip_string(p, end);
        break;
      case Mode::key_string:
      case Mode::text_string:
        p = run_decoded_string(p, end);
        break;
      case Mode::scalar:
        p = run_scalar(p, end);
        break;
      case Mode::failed:
        p = end;
        break;  // failed earlier: swallow input until reset()
      default:
        p = run_members(p, end);
        break;
    }
  }
  if (raw_on_) capture_append(raw_from_, static_cast<std::size_t>(p - raw_from_));
  offset_ += static_cast<std::uint64_t>(p - data);
  return static_cast<std::size_t>(p - data);
}

// The structural tokens and the values nobody keeps (skipped strings, numbers, literals), in
// one loop: going back through feed()'s dispatch after each of them cost a mispredicted
// indirect jump per token, the bulk of the time on a stream of small chunks. Returns at the end
// of the input, on an event, or when a mode that needs its own run (a decoded string, a
// skipped container) begins.
const char* JsonSkim::run_members(const char* p, const char* end) {
  while (p < end && event_ == Event::none) {
    switch (mode_) {
      case Mode::skip_string:
        p = run_skip_string(p, end);
        break;
      case Mode::scalar:
        p = run_scalar(p, end);
        break;
      case Mode::key_string:
      case Mode::text_string:
      case Mode::skip:
      case Mode::failed:
        return p;
      default:
        p = run_structure(p, end);
        break;
    }
  }
  return p;
}

// Whitespace, then one structural token for the current grammar position.
const char* JsonSkim::run_structure(const char* p, const char* end) {
  while (p < end && is_ws(*p)) ++p;
  if (p == end) return p;
  const char c = *p;
  switch (mode_) {
    case Mode::value:
      return begin_value(p);
    case Mode::first_value:
      return c == ']' ? close_container(p) : begin_value(p);
    case Mode::first_key:
      if (c == '}') return close_container(p);
      [[fallthrough]];
    case Mode::key:
      if (c != '"') break;
      if (const char* q = skip_plain_members(p, end); q != p) return q;
      filled_ |= bit_of(depth_);
      key_len_ = 0;
      key_long_ = false;
      fold_n_ = 0;
      begin_string();
      if (const char* after = read_plain_key(p + 1, end)) return after;
      mode_ = Mode::key_string;
      return p + 1;
    case Mode::colon:
      if (c != ':') break;
      mode_ = Mode::value;
      return p + 1;
    case Mode::after_value:
      if (c == ',') return after_separator(p);
      if (c == '}' || c == ']') return close_container(p);
      break;
    default:
      break;  // Mode::done: only whitespace may follow a single document
  }
  fail(SkimError::syntax);
  return p + 1;
}

// Members that no path can use, read in one tight loop: a plain key (no escape) that the key
// pre-filter rules out, then a string, number or literal value. Most of a streamed chunk's
// members are such ("id", "created", "index", "finish_reason"...), and the general path spent
// some 300 instructions on each, one token and one dispatch at a time. Called at a key's
// opening quote; state is committed only at member boundaries, so any member this loop does
// not fully understand (a candidate key, a container, an escape in the key, a token cut by the
// end of the input, anything malformed) is left, untouched, to the general path, which reads
// it, and fails it, exactly as before.
const char* JsonSkim::skip_plain_members(const char* p, const char* end) {
  if (spec_->fold_keys) return p;
  const std::uint32_t d = depth_ - 1;
  const std::uint32_t live = mask_[depth_] & ~spec_->star_at[depth_];
  const auto& filter = spec_->key_filter[d];
  const char* committed = p;
  for (;;) {
    const char* q = p + 1;  // p is at the key's opening quote
    const char* key_end = byte_scan::find_string_special(q, end);
    if (key_end == end || *key_end != '"') break;
    const auto key_len = static_cast<std::size_t>(key_end - q);
    if (key_len <= skim_key_bytes_max && (live & filter[skim_detail::key_hash(q, key_len)]) != 0) {
      break;  // a path may want this key: the general path matches it
    }
    q = key_end + 1;
    while (q < end && is_ws(*q)) ++q;
    if (q == end || *q != ':') break;
    ++q;
    while (q < end && is_ws(*q)) ++q;
    if (q == end) break;
    if (*q == '"') {
      bool escape = false;
      bool closed = false;
      q = byte_scan::skip_string(q + 1, end, &escape, &closed);
      if (!closed) break;
    } else if (!(q = skip_plain_scalar(q, end))) {
      break;
    }
    while (q < end && is_ws(*q)) ++q;
    if (q == end) break;
    if (*q == '}') {  // the object's last member: the general path closes it
      filled_ |= bit_of(depth_);
      mode_ = Mode::after_value;
      return q;
    }
    if (*q != ',') break;
    ++q;
    filled_ |= bit_of(depth_);
    mode_ = Mode::key;
    committed = q;
    while (q < end && is_ws(*q)) ++q;
    if (q == end || *q != '"') break;
    p = q;
  }
  return committed;
}

// nullptr leaves the token to run_scalar, which decides (and reports) what is wrong with it.
const char* JsonSkim::skip_plain_scalar(const char* p, const char* end) {
  const char* q = p;
  while (q < end && is_scalar_char(*q)) ++q;
  if (q == end || q == p) return nullptr;
  const std::string_view token(p, static_cast<std::size_t>(q - p));
  const std::string_view lit = literal_of(*p);
  if (!lit.empty()) return token == lit ? q : nullptr;
  std::uint8_t state = 0;
  for (const char c : token) {
    state = num_next(state, c);
    if (state == num_reject) return nullptr;
  }
  return num_accepts(state) ? q : nullptr;
}

void JsonSkim::skip_document(std::size_t bytes, JsonType type) {
  TT_ASSERT(between_documents());
  doc_begin_ = offset_;
  doc_type_ = type;
  offset_ += bytes;
}

const char* JsonSkim::after_separator(const char* p) {
  if (top_is_object()) {
    mode_ = Mode::key;
  } else {
    mode_ = Mode::value;
    cand_ = mask_[depth_] & spec_->star_at[depth_];
  }
  return p + 1;
}

void JsonSkim::start_document(const char* p) {
  doc_started_ = true;
  doc_begin_ = at(p);
  doc_type_ = type_of(*p);
  filled_ = 0;
}

// A value starts at p on a matched path: decide its target slot and how to read it.
const char* JsonSkim::begin_value(const char* p) {
  if (depth_ == 0) {
    start_document(p);
  } else {
    filled_ |= bit_of(depth_);
  }
  TT_DASSERT(depth_ <= skim_path_keys_max);
  const std::uint32_t targets = cand_ & spec_->ends_at[depth_];
  const std::uint32_t deeper = cand_ & spec_->goes_past[depth_];
  const std::uint8_t slot =
      targets != 0 ? static_cast<std::uint8_t>(std::countr_zero(targets)) : no_slot;
  const bool keep = slot != no_slot && kind_of(slot) == SkimKind::bytes;
  const char c = *p;
  if (c == '{' || c == '[') return open_container(p, c == '{', slot, deeper);
  val_slot_ = slot;
  val_begin_ = at(p);
  if (keep) start_capture(slot);
  if (c == '"') {
    val_type_ = JsonType::string;
    begin_string();
    mode_ = keep ? Mode::text_string : Mode::skip_string;
    return p + 1;
  }
  const bool number = c == '-' || (c >= '0' && c <= '9');
  const std::string_view lit = literal_of(c);
  if (lit.empty() && !number) {
    fail(SkimError::syntax);
    return p + 1;
  }
  val_type_ = type_of(c);
  lit_ = lit.data();
  lit_len_ = static_cast<std::uint8_t>(lit.size());
  lit_pos_ = 0;
  num_state_ = 0;
  raw_on_ = keep;
  raw_from_ = p;
  mode_ = Mode::scalar;
  return p;  // run_scalar validates the first character too
}

const char* JsonSkim::open_container(const char* p, bool object, std::uint8_t slot,
                                     std::uint32_t deeper) {
  if (depth_ == skim_depth_max) {
    fail(SkimError::depth);
    return p + 1;
  }
  push_kind(object);
  ++depth_;
  const JsonType type = object ? JsonType::object : JsonType::array;
  if (deeper == 0) {
    // No path goes below this value: skip it, keeping its raw bytes if it is a bytes target.
    val_slot_ = slot;
    val_begin_ = at(p);
    val_type_ = type;
    if (slot != no_slot && kind_of(slot) == SkimKind::bytes) {
      start_capture(slot);
      raw_on_ = true;
      raw_from_ = p;
    }
    skip_floor_ = depth_ - 1;
    skip_first_ = slot != no_slot;
    skip_nonempty_ = false;
    in_str_ = false;
    esc_pending_ = false;
    mode_ = Mode::skip;
    return p + 1;
  }
  // A path continues inside: follow the grammar. make_skim_spec keeps bytes targets out of here.
  TT_DASSERT(depth_ <= skim_path_keys_max);
  TT_DASSERT(slot == no_slot || kind_of(slot) == SkimKind::flag);
  mask_[depth_] = deeper;
  open_slot_[depth_] = slot;
  open_begin_[depth_] = at(p);
  filled_ &= static_cast<std::uint8_t>(~bit_of(depth_));
  if (object) {
    mode_ = Mode::first_key;
  } else {
    mode_ = Mode::first_value;
    cand_ = deeper & spec_->star_at[depth_];
  }
  return p + 1;
}

// Closes a container followed strictly (skip mode closes its own).
const char* JsonSkim::close_container(const char* p) {
  const bool object = top_is_object();
  if ((*p == '}') != object) {
    fail(SkimError::syntax);
    return p + 1;
  }
  const std::uint8_t slot = open_slot_[depth_];
  const bool nonempty = (filled_ & bit_of(depth_)) != 0;
  const std::uint64_t begin = open_begin_[depth_];
  open_slot_[depth_] = no_slot;
  --depth_;
  end_value(p + 1, JsonType::none, nonempty);
  if (slot != no_slot) {
    emit(slot, object ? JsonType::object : JsonType::array, nonempty, begin, at(p + 1));
  }
  return p + 1;
}

// A value ended just before end_p at the current depth. Emits the pending scalar, string or
// skipped-container capture (type none: the caller emits a strict container's own).
void JsonSkim::end_value(const char* end_p, JsonType type, bool nonempty) {
  if (type != JsonType::none && val_slot_ != no_slot) {
    emit(val_slot_, type, nonempty, val_begin_, at(end_p));
  }
  val_slot_ = no_slot;
  if (depth_ == 0) {
    end_root();
  } else {
    mode_ = Mode::after_value;
  }
}

void JsonSkim::end_root() {
  TT_DASSERT(event_ == Event::none);  // the root is never a capture target
  event_ = Event::document_end;
  doc_started_ = false;
  if (multi_) {
    mode_ = Mode::value;
    cand_ = spec_->goes_past[0];
  } else {
    mode_ = Mode::done;
  }
}

void JsonSkim::emit(std::uint8_t slot, JsonType type, bool nonempty, std::uint64_t begin,
                    std::uint64_t end) {
  const bool keep = kind_of(slot) == SkimKind::bytes;
  capture_.slot = slot;
  capture_.type = type;
  capture_.nonempty = nonempty;
  capture_.truncated = keep && cap_truncated_;
  capture_.lossy = type == JsonType::string && str_lossy_;
  capture_.begin = begin;
  capture_.end = end;
  capture_.bytes = keep ? std::string_view(buf_.data(), cap_len_) : std::string_view{};
  event_ = Event::captured;
}

const char* JsonSkim::run_skip(const char* p, const char* end) {
  while (p < end) {
    if (in_str_) {
      bool closed = false;
      p = byte_scan::skip_string(p, end, &esc_pending_, &closed);
      in_str_ = !closed;
      continue;
    }
    if (skip_first_) {
      while (p < end && is_ws(*p)) ++p;
      if (p == end) break;
      skip_first_ = false;
      skip_nonempty_ = *p != '}' && *p != ']';
    }
    p = find_bracket_or_quote(p, end);
    if (p == end) break;
    const char c = *p++;
    if (c == '"') {
      in_str_ = true;
      continue;
    }
    if (c == '{' || c == '[') {
      if (depth_ == skim_depth_max) {
        fail(SkimError::depth);
        return p;
      }
      push_kind(c == '{');
      ++depth_;
      continue;
    }
    if ((c == '}') != top_is_object()) {
      fail(SkimError::syntax);
      return p;
    }
    --depth_;
    if (depth_ == skip_floor_) {
      if (raw_on_) {
        capture_append(raw_from_, static_cast<std::size_t>(p - raw_from_));
        raw_on_ = false;
      }
      end_value(p, val_type_, skip_nonempty_);
      return p;
    }
  }
  return p;
}

const char* JsonSkim::run_scalar(const char* p, const char* end) {
  while (p < end) {
    if (lit_len_ == 0 && num_digit_loop(num_state_)) {
      while (p < end && is_digit(*p)) ++p;
      if (p == end) break;
    }
    const char c = *p;
    if (!is_scalar_char(c)) break;
    if (lit_len_ != 0) {
      if (lit_pos_ >= lit_len_ || lit_[lit_pos_] != c) {
        fail(SkimError::syntax);
        return p + 1;
      }
      ++lit_pos_;
    } else {
      num_state_ = num_next(num_state_, c);
      if (num_state_ == num_reject) {
        fail(SkimError::syntax);
        return p + 1;
      }
    }
    ++p;
  }
  if (p == end) return p;  // the token may go on in the next feed()
  const bool complete = lit_len_ != 0 ? lit_pos_ == lit_len_ : num_accepts(num_state_);
  if (!complete) {
    fail(SkimError::syntax);
    return p;
  }
  if (raw_on_) {
    capture_append(raw_from_, static_cast<std::size_t>(p - raw_from_));
    raw_on_ = false;
  }
  end_value(p, val_type_, true);
  return p;
}

void JsonSkim::start_capture(std::uint8_t slot) {
  cap_len_ = 0;
  cap_limit_ = spec_->paths[slot].cap_bytes;
  cap_truncated_ = false;
}

void JsonSkim::capture_append(const char* p, std::size_t n) {
  const std::size_t room = cap_limit_ - cap_len_;
  if (n > room) {
    cap_truncated_ = true;
    n = room;
  }
  std::memcpy(buf_.data() + cap_len_, p, n);
  cap_len_ = static_cast<std::uint16_t>(cap_len_ + n);
}

void JsonSkim::push_kind(bool object) {
  std::uint64_t& word = kinds_[depth_ / 64];
  const std::uint64_t bit = std::uint64_t{1} << (depth_ % 64);
  word = object ? (word | bit) : (word & ~bit);
}

bool JsonSkim::top_is_object() const {
  TT_DASSERT(depth_ > 0);
  const std::uint32_t i = depth_ - 1;
  return (kinds_[i / 64] >> (i % 64) & 1) != 0;
}

void JsonSkim::fail(SkimError e) {
  error_ = e;
  mode_ = Mode::failed;
  event_ = Event::failed;
  raw_on_ = false;
  doc_started_ = false;
}

}  // namespace tokentap
