// JsonSkim, strings and keys: skipping strings nobody captures, decoding the ones a path needs
// (escapes, \u surrogate pairs, invalid UTF-8 kept as bytes), and matching object keys against
// the spec's paths. The structural automaton is in json_skim.cc.
#include <cstring>

#include "byte_scan.h"
#include "tokentap/base/assert.h"
#include "tokentap/base/hex.h"
#include "tokentap/meter/json_skim.h"

namespace tokentap {
namespace {

using byte_scan::find_string_special;

}  // namespace

const char* JsonSkim::run_skip_string(const char* p, const char* end) {
  bool closed = false;
  p = byte_scan::skip_string(p, end, &esc_pending_, &closed);
  if (closed) end_value(p, JsonType::string, at(p) - val_begin_ > 2);
  return p;
}

const char* JsonSkim::run_decoded_string(const char* p, const char* end) {
  while (p < end) {
    if (esc_ != 0) {
      p = run_escape(p, end);
      if (mode_ == Mode::failed) return p;
      continue;
    }
    const char c = *p;
    if (c == '"') {
      drop_high_surrogate();  // a high surrogate must be followed by a low one
      ++p;
      if (mode_ == Mode::key_string) {
        end_key();
      } else {
        end_value(p, JsonType::string, at(p) - val_begin_ > 2);
      }
      return p;
    }
    if (c == '\\') {
      esc_ = 1;
      ++p;
      continue;
    }
    if (static_cast<unsigned char>(c) < 0x20) {
      fail(SkimError::string);
      return p + 1;
    }
    const char* q = find_string_special(p + 1, end);
    drop_high_surrogate();
    push_decoded(p, static_cast<std::size_t>(q - p));
    p = q;
  }
  return p;
}

// One byte of an escape: the letter after '\', or one of the four hex digits of \uXXXX.
const char* JsonSkim::run_escape(const char* p, const char* /*end*/) {
  const char c = *p++;
  if (esc_ == 1) {
    char out = 0;
    switch (c) {
      case '"':
      case '\\':
      case '/':
        out = c;
        break;
      case 'b':
        out = '\b';
        break;
      case 'f':
        out = '\f';
        break;
      case 'n':
        out = '\n';
        break;
      case 'r':
        out = '\r';
        break;
      case 't':
        out = '\t';
        break;
      case 'u':
        esc_ = 2;
        uhex_ = 0;
        return p;
      default:
        fail(SkimError::string);
        return p;
    }
    esc_ = 0;
    drop_high_surrogate();
    push_byte(static_cast<std::uint8_t>(out));
    return p;
  }
  const int v = hex_digit_value(c);
  if (v < 0) {
    fail(SkimError::string);
    return p;
  }
  uhex_ = static_cast<std::uint16_t>(uhex_ << 4 | v);
  if (++esc_ == 6) {
    esc_ = 0;
    on_unicode_escape(uhex_);
  }
  return p;
}

void JsonSkim::begin_string() {
  esc_ = 0;
  esc_pending_ = false;
  hi_surrogate_ = 0;
  str_lossy_ = false;
}

// A pending high surrogate not followed by a low one decodes as U+FFFD, as in Go.
void JsonSkim::drop_high_surrogate() {
  if (hi_surrogate_ == 0) return;
  hi_surrogate_ = 0;
  push_codepoint(0xFFFD);
  str_lossy_ = true;
}

// Applies one \uXXXX the way Go's encoding/json does: a surrogate that is not half of a valid
// pair decodes as U+FFFD, and the string is marked lossy.
void JsonSkim::on_unicode_escape(std::uint32_t u) {
  const bool low = u >= 0xDC00 && u <= 0xDFFF;
  if (hi_surrogate_ != 0 && low) {
    const std::uint32_t hi = hi_surrogate_;
    hi_surrogate_ = 0;
    push_codepoint(0x10000 + ((hi - 0xD800) << 10) + (u - 0xDC00));
    return;
  }
  drop_high_surrogate();
  if (u >= 0xD800 && u <= 0xDBFF) {
    hi_surrogate_ = static_cast<std::uint16_t>(u);
  } else if (low) {
    push_codepoint(0xFFFD);
    str_lossy_ = true;
  } else {
    push_codepoint(u);
  }
}

void JsonSkim::push_codepoint(std::uint32_t cp) {
  if (cp < 0x80) {
    push_byte(static_cast<std::uint8_t>(cp));
  } else if (cp < 0x800) {
    push_byte(static_cast<std::uint8_t>(0xC0 | cp >> 6));
    push_byte(static_cast<std::uint8_t>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    push_byte(static_cast<std::uint8_t>(0xE0 | cp >> 12));
    push_byte(static_cast<std::uint8_t>(0x80 | (cp >> 6 & 0x3F)));
    push_byte(static_cast<std::uint8_t>(0x80 | (cp & 0x3F)));
  } else {
    push_byte(static_cast<std::uint8_t>(0xF0 | cp >> 18));
    push_byte(static_cast<std::uint8_t>(0x80 | (cp >> 12 & 0x3F)));
    push_byte(static_cast<std::uint8_t>(0x80 | (cp >> 6 & 0x3F)));
    push_byte(static_cast<std::uint8_t>(0x80 | (cp & 0x3F)));
  }
}

void JsonSkim::push_decoded(const char* p, std::size_t n) {
  if (mode_ == Mode::text_string) {
    capture_append(p, n);
    return;
  }
  if (!spec_->fold_keys) {
    const std::size_t room = skim_key_bytes_max - key_len_;
    key_long_ = key_long_ || n > room;
    n = n > room ? room : n;
    std::memcpy(key_.data() + key_len_, p, n);
    key_len_ = static_cast<std::uint8_t>(key_len_ + n);
    return;
  }
  for (std::size_t i = 0; i < n; ++i) key_push(static_cast<std::uint8_t>(p[i]));
}

void JsonSkim::push_byte(std::uint8_t b) {
  if (mode_ == Mode::text_string) {
    const char c = static_cast<char>(b);
    capture_append(&c, 1);
  } else {
    key_push(b);
  }
}

// Appends one decoded key byte. With fold_keys, Go's case-insensitive field matching is applied
// on the fly: ASCII letters are lowered, and the only two non-ASCII runes whose simple case
// folding reaches ASCII, U+017F (C5 BF) and U+212A (E2 84 AA), become 's' and 'k'.
void JsonSkim::key_push(std::uint8_t b) {
  const auto append = [this](std::uint8_t x) {
    if (key_len_ < skim_key_bytes_max) {
      key_[key_len_++] = static_cast<char>(x);
    } else {
      key_long_ = true;
    }
  };
  if (!spec_->fold_keys) {
    append(b);
    return;
  }
  if (fold_n_ == 1 && fold_pending_[0] == 0xC5 && b == 0xBF) {
    fold_n_ = 0;
    append('s');
    return;
  }
  if (fold_n_ == 1 && fold_pending_[0] == 0xE2 && b == 0x84) {
    fold_pending_[1] = b;
    fold_n_ = 2;
    return;
  }
  if (fold_n_ == 2 && b == 0xAA) {
    fold_n_ = 0;
    append('k');
    return;
  }
  key_flush_fold();
  if (b == 0xC5 || b == 0xE2) {
    fold_pending_[0] = b;
    fold_n_ = 1;
    return;
  }
  append(b >= 'A' && b <= 'Z' ? static_cast<std::uint8_t>(b + ('a' - 'A')) : b);
}

void JsonSkim::key_flush_fold() {
  const std::uint8_t n = fold_n_;
  fold_n_ = 0;
  for (std::uint8_t i = 0; i < n; ++i) {
    if (key_len_ < skim_key_bytes_max) {
      key_[key_len_++] = static_cast<char>(fold_pending_[i]);
    } else {
      key_long_ = true;
    }
  }
}

// The common key: no escape, no control byte, its closing quote in this input, and no case
// folding to apply. Read in one block scan, matched, and followed by its colon (and the value's
// first byte, when both are here). Returns nullptr, having changed nothing, for any other key:
// the byte-wise key_string mode reads that one.
const char* JsonSkim::read_plain_key(const char* p, const char* end) {
  if (spec_->fold_keys) return nullptr;
  const char* q = find_string_special(p, end);
  if (q == end || *q != '"') return nullptr;
  const auto n = static_cast<std::size_t>(q - p);
  key_long_ = n > skim_key_bytes_max;
  key_len_ = static_cast<std::uint8_t>(key_long_ ? skim_key_bytes_max : n);
  std::memcpy(key_.data(), p, key_len_);
  end_key();
  ++q;
  while (q < end && (*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r')) ++q;
  if (q == end || *q != ':') return q;  // mode colon: run_structure checks what comes
  ++q;
  mode_ = Mode::value;
  return q;
}

// The key is complete: the next value's candidates are the paths whose key at this depth is it.
void JsonSkim::end_key() {
  key_flush_fold();
  mode_ = Mode::colon;
  cand_ = 0;
  if (key_long_) return;
  // Paths sharing this key are compared once: a match takes them all, a miss drops them all.
  const std::uint32_t d = depth_ - 1;
  std::uint32_t m = mask_[depth_] & ~spec_->star_at[depth_] &
                    spec_->key_filter[d][skim_detail::key_hash(key_.data(), key_len_)];
  while (m != 0) {
    const int i = std::countr_zero(m);
    const std::string_view& k = spec_->paths[i].keys[d];
    const std::uint32_t same = spec_->same_key[d][i];
    if (k.size() == key_len_ && std::memcmp(k.data(), key_.data(), key_len_) == 0) {
      cand_ = m & same;
      return;
    }
    m &= ~same;
  }
}

}  // namespace tokentap
