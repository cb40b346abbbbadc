// byte_scan: the byte-class searches the body scanners (JsonSkim, UsageStrip) spend their time
// in, 16 bytes at a time with SSE2 (baseline on x86-64, so the generic build always has it) and
// with 8-byte SWAR words elsewhere; the last few bytes of a span go one at a time.
//
// Each find_* returns the first byte at or after p in the class, or end. The classes:
//   quote_or_backslash  '"' '\\'                  (skipping a string's contents)
//   string_special      '"' '\\' and bytes < 0x20 (decoding a string: a control byte fails it)
//   bracket_or_quote    '"' '{' '}' '[' ']'       (skipping a subtree: only brackets matter)
//   line_end            '\r' '\n'                 (an SSE line's content)
// Internal to src/: no kernel features, no state.
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace tokentap::byte_scan {

static_assert(std::endian::native == std::endian::little, "the scans assume little-endian");

constexpr bool is_quote_or_backslash(char c) { return c == '"' || c == '\\'; }
constexpr bool is_string_special(char c) {
  return c == '"' || c == '\\' || static_cast<unsigned char>(c) < 0x20;
}
constexpr bool is_bracket_or_quote(char c) {
  return c == '"' || c == '{' || c == '}' || c == '[' || c == ']';
}
constexpr bool is_line_end(char c) { return c == '\r' || c == '\n'; }

#if defined(__SSE2__)

inline __m128i load16(const char* p) {
  return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
}
inline __m128i splat(char c) { return _mm_set1_epi8(c); }

// The block-wise search: `mask` gives the 16-bit match mask of the block at p.
template <typename Mask, typename Scalar>
inline const char* find_blocks(const char* p, const char* end, Mask mask, Scalar scalar) {
  while (end - p >= 16) {
    const unsigned m = mask(load16(p));
    if (m != 0) return p + std::countr_zero(m);
    p += 16;
  }
  while (p < end && !scalar(*p)) ++p;
  return p;
}

inline const char* find_quote_or_backslash(const char* p, const char* end) {
  return find_blocks(
      p, end,
      [](__m128i b) {
        const __m128i hit = _mm_or_si128(_mm_cmpeq_epi8(b, splat('"')),
                                         _mm_cmpeq_epi8(b, splat('\\')));
        return static_cast<unsigned>(_mm_movemask_epi8(hit));
      },
      is_quote_or_backslash);
}

inline const char* find_string_special(const char* p, const char* end) {
  return find_blocks(
      p, end,
      [](__m128i b) {
        // b <= 0x1f unsigned exactly when max(b, 0x1f) == 0x1f.
        const __m128i ctl = _mm_cmpeq_epi8(_mm_max_epu8(b, splat(0x1f)), splat(0x1f));
        const __m128i hit = _mm_or_si128(
            ctl, _mm_or_si128(_mm_cmpeq_epi8(b, splat('"')), _mm_cmpeq_epi8(b, splat('\\'))));
        return static_cast<unsigned>(_mm_movemask_epi8(hit));
      },
      is_string_special);
}

// '[' | 0x20 == '{' and ']' | 0x20 == '}', and no other byte maps onto those two, so two
// compares on the folded block cover four brackets.
inline const char* find_bracket_or_quote(const char* p, const char* end) {
  return find_blocks(
      p, end,
      [](__m128i b) {
        const __m128i folded = _mm_or_si128(b, splat(0x20));
        const __m128i hit = _mm_or_si128(
            _mm_cmpeq_epi8(b, splat('"')),
            _mm_or_si128(_mm_cmpeq_epi8(folded, splat('{')), _mm_cmpeq_epi8(folded, splat('}'))));
        return static_cast<unsigned>(_mm_movemask_epi8(hit));
      },
      is_bracket_or_quote);
}

inline const char* find_line_end(const char* p, const char* end) {
  return find_blocks(
      p, end,
      [](__m128i b) {
        const __m128i hit = _mm_or_si128(_mm_cmpeq_epi8(b, splat('\r')),
                                         _mm_cmpeq_epi8(b, splat('\n')));
        return static_cast<unsigned>(_mm_movemask_epi8(hit));
      },
      is_line_end);
}

#else  // SWAR fallback

constexpr std::uint64_t swar_ones = 0x0101010101010101ULL;
constexpr std::uint64_t swar_highs = 0x8080808080808080ULL;

inline std::uint64_t load8(const char* p) {
  std::uint64_t w;
  std::memcpy(&w, p, sizeof w);
  return w;
}
// High bit set in every byte of w equal to c. The lowest set bit is exact; higher ones may be
// false positives after a match, which is fine because callers only use the lowest.
inline std::uint64_t bytes_equal(std::uint64_t w, std::uint8_t c) {
  const std::uint64_t v = w ^ (swar_ones * c);
  return (v - swar_ones) & ~v & swar_highs;
}
// High bit set in bytes < 0x20 (lowest set bit exact, as above).
inline std::uint64_t bytes_control(std::uint64_t w) {
  return (w - swar_ones * 0x20) & ~w & swar_highs;
}

template <typename Mask, typename Scalar>
inline const char* find_words(const char* p, const char* end, Mask mask, Scalar scalar) {
  while (end - p >= 8) {
    const std::uint64_t hit = mask(load8(p));
    if (hit != 0) return p + (std::countr_zero(hit) >> 3);
    p += 8;
  }
  while (p < end && !scalar(*p)) ++p;
  return p;
}

inline const char* find_quote_or_backslash(const char* p, const char* end) {
  return find_words(
      p, end, [](std::uint64_t w) { return bytes_equal(w, '"') | bytes_equal(w, '\\'); },
      is_quote_or_backslash);
}

inline const char* find_string_special(const char* p, const char* end) {
  return find_words(
      p, end,
      [](std::uint64_t w) {
        return bytes_equal(w, '"') | bytes_equal(w, '\\') | bytes_control(w);
      },
      is_string_special);
}

inline const char* find_bracket_or_quote(const char* p, const char* end) {
  return find_words(
      p, end,
      [](std::uint64_t w) {
        const std::uint64_t folded = w | (swar_ones * 0x20);
        return bytes_equal(w, '"') | bytes_equal(folded, '{') | bytes_equal(folded, '}');
      },
      is_bracket_or_quote);
}

inline const char* find_line_end(const char* p, const char* end) {
  return find_words(
      p, end, [](std::uint64_t w) { return bytes_equal(w, '\r') | bytes_equal(w, '\n'); },
      is_line_end);
}

#endif

// The first byte of an SSE event that may decide its fate in UsageStrip: a '\r' (CR framing),
// an LF followed by an LF (the blank line ending the event) or a '"' followed by 'u' (a key
// that may be "usage"); end when none starts before end - 1. Byte pairs are tested 16 at a time
// on SSE2 (the block at p and the block at p + 1); this replaced two memmem calls and a memchr
// per event, which were a fifth of tokentap's time on a stripped chat stream.
inline bool is_event_mark(const char* p) {
  return p[0] == '\r' || (p[0] == '\n' && p[1] == '\n') || (p[0] == '"' && p[1] == 'u');
}
inline const char* find_event_mark(const char* p, const char* end) {
#if defined(__SSE2__)
  while (end - p >= 17) {
    const __m128i b0 = load16(p);
    const __m128i b1 = load16(p + 1);
    const __m128i cr = _mm_cmpeq_epi8(b0, splat('\r'));
    const __m128i lf2 =
        _mm_and_si128(_mm_cmpeq_epi8(b0, splat('\n')), _mm_cmpeq_epi8(b1, splat('\n')));
    const __m128i qu =
        _mm_and_si128(_mm_cmpeq_epi8(b0, splat('"')), _mm_cmpeq_epi8(b1, splat('u')));
    const auto m =
        static_cast<unsigned>(_mm_movemask_epi8(_mm_or_si128(cr, _mm_or_si128(lf2, qu))));
    if (m != 0) return p + std::countr_zero(m);
    p += 16;
  }
#endif
  for (; end - p >= 2; ++p) {
    if (is_event_mark(p)) return p;
  }
  return end;
}

// Skips the inside of a JSON string from p (just after its opening quote, or mid-way) up to and
// including the closing quote. *escape_pending carries a backslash that ended the previous
// piece. Returns the byte after the closing quote with *closed set, or end when the string goes
// on past this piece.
inline const char* skip_string(const char* p, const char* end, bool* escape_pending,
                               bool* closed) {
  *closed = false;
  while (p < end) {
    if (*escape_pending) {
      *escape_pending = false;
      ++p;
      continue;
    }
    p = find_quote_or_backslash(p, end);
    if (p == end) break;
    if (*p++ == '\\') {
      *escape_pending = true;
      continue;
    }
    *closed = true;
    break;
  }
  return p;
}

// The inside of a string after its opening quote, wholly before end: the byte after its closing
// quote, or nullptr if it does not close there.
inline const char* skip_whole_string(const char* p, const char* end) {
  bool escape = false;
  bool closed = false;
  p = skip_string(p, end, &escape, &closed);
  return closed ? p : nullptr;
}

// A whole JSON container at p ('{' or '['), read as JsonSkim reads a subtree no path enters:
// only strings (escapes followed) and bracket matching count. Returns the byte after its closing
// bracket, or nullptr when it does not close before end, a bracket does not match, or it nests
// deeper than nest_max (a caller's cue to leave it to JsonSkim).
constexpr std::uint32_t skip_container_nest_max = 64;
inline const char* skip_container(const char* p, const char* end) {
  std::uint64_t objects = 0;  // bit d: the container at depth d is an object
  std::uint32_t depth = 0;
  static_assert(skip_container_nest_max <= 64, "one bit per open container");
  while (p < end) {
    p = find_bracket_or_quote(p, end);
    if (p == end) return nullptr;
    const char c = *p++;
    if (c == '"') {
      if ((p = skip_whole_string(p, end)) == nullptr) return nullptr;
      continue;
    }
    if (c == '{' || c == '[') {
      if (depth == skip_container_nest_max) return nullptr;
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

}  // namespace tokentap::byte_scan
