// piece_parser: json_uint, and PieceParser, which reads a captured usage object's integer counts
// with simdjson's on-demand API (error codes, no exceptions). The parser and its padded scratch
// buffer are sized for piece_bytes_max at construction, so no parse allocates afterwards.
#include "tokentap/meter/llm_tail.h"

#include <simdjson.h>

#include <charconv>
#include <cstring>
#include <string_view>
#include <utility>

#include "tokentap/base/assert.h"

namespace tokentap {

std::optional<std::uint64_t> json_uint(std::string_view token) {
  if (token.empty() || (token.size() > 1 && token[0] == '0')) return std::nullopt;
  std::uint64_t value = 0;
  const char* const end = token.data() + token.size();
  const auto [ptr, ec] = std::from_chars(token.data(), end, value);
  if (ec != std::errc{} || ptr != end) return std::nullopt;
  return value;
}

struct PieceParser::Impl {
  simdjson::ondemand::parser parser{piece_bytes_max};
  std::array<char, piece_bytes_max + simdjson::SIMDJSON_PADDING> scratch{};
};

PieceParser::PieceParser() : impl_(std::make_unique<Impl>()) {
  // Size the parser's internal buffers now so that no parse allocates later.
  const simdjson::error_code rc = impl_->parser.allocate(piece_bytes_max);
  TT_ASSERT(rc == simdjson::SUCCESS);
}

PieceParser::~PieceParser() = default;

bool PieceParser::read_counts(std::string_view object, std::span<const std::string_view> keys,
                              Counts* out) {
  *out = Counts{};
  if (object.size() > piece_bytes_max || keys.size() > keys_max) return false;
  auto& scratch = impl_->scratch;
  std::memcpy(scratch.data(), object.data(), object.size());
  std::memset(scratch.data() + object.size(), ' ', simdjson::SIMDJSON_PADDING);
  simdjson::ondemand::document doc;
  const simdjson::padded_string_view input(scratch.data(), object.size(), scratch.size());
  if (impl_->parser.iterate(input).get(doc) != simdjson::SUCCESS) return false;
  simdjson::ondemand::object obj;
  if (doc.get_object().get(obj) != simdjson::SUCCESS) return false;
  for (auto member : obj) {
    simdjson::ondemand::field field;
    std::string_view key;
    if (std::move(member).get(field) != simdjson::SUCCESS) return false;
    if (field.unescaped_key().get(key) != simdjson::SUCCESS) return false;
    for (std::size_t i = 0; i < keys.size(); ++i) {
      if (key != keys[i]) continue;
      const auto bit = static_cast<std::uint8_t>(1u << i);
      std::uint64_t v = 0;
      if (field.value().get_uint64().get(v) == simdjson::SUCCESS) {
        out->value[i] = v;
        out->present |= bit;
      } else {
        out->present &= static_cast<std::uint8_t>(~bit);
      }
      break;
    }
  }
  return true;
}

}  // namespace tokentap
