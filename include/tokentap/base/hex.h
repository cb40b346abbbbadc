// hex: the value of one hexadecimal digit, for the parsers that read hex text (JSON \u escapes
// in meter, sha256 key hashes in auth).
#pragma once

namespace tokentap {

// 0..15 for [0-9a-fA-F], -1 for anything else.
[[nodiscard]] constexpr int hex_digit_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}
static_assert(hex_digit_value('7') == 7 && hex_digit_value('b') == 11);
static_assert(hex_digit_value('F') == 15 && hex_digit_value('g') == -1);

}  // namespace tokentap
