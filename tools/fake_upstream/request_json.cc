// Request JSON scanning (see request_json.h). Grammar per RFC 8259; every read is bounds-checked,
// so arbitrary bytes give `false`, never a crash.
#include "request_json.h"

#include <utility>

namespace tokentap::fake {
namespace {

class Scanner {
 public:
  explicit Scanner(std::string_view text) : p_(text.data()), end_(text.data() + text.size()) {}

  [[nodiscard]] bool scan_object(RequestFields* out);
  [[nodiscard]] bool at_end() {
    skip_ws();
    return p_ == end_;
  }

 private:
  void skip_ws() {
    while (p_ < end_ && (*p_ == ' ' || *p_ == '\t' || *p_ == '\n' || *p_ == '\r')) ++p_;
  }
  [[nodiscard]] bool eat(char c) {
    skip_ws();
    if (p_ == end_ || *p_ != c) return false;
    ++p_;
    return true;
  }
  [[nodiscard]] bool peek(char c) {
    skip_ws();
    return p_ < end_ && *p_ == c;
  }
  [[nodiscard]] bool string(std::string_view* contents);
  [[nodiscard]] bool number(std::string_view* text);
  [[nodiscard]] bool literal(std::string_view word);
  [[nodiscard]] bool value(int depth);
  [[nodiscard]] bool array_count(std::int64_t* count);
  [[nodiscard]] bool boolean_or_null(std::int8_t* out);
  [[nodiscard]] bool stream_options(RequestFields* out);
  [[nodiscard]] bool field(std::string_view key, RequestFields* out);

  const char* p_;
  const char* end_;
};

bool is_hex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

// A Go duration string or decimal text is zero when it holds no non-zero digit ("0", "0s", "0.0").
bool zero_text(std::string_view text) {
  bool digit = false;
  for (const char c : text) {
    if (c >= '1' && c <= '9') return false;
    if (c == 'e' || c == 'E') break;  // the exponent of 0e5 does not matter
    digit |= c == '0';
  }
  return digit;
}

bool Scanner::string(std::string_view* contents) {
  if (!eat('"')) return false;
  const char* start = p_;
  while (p_ < end_) {
    const char c = *p_;
    if (c == '"') {
      *contents = std::string_view(start, static_cast<std::size_t>(p_ - start));
      ++p_;
      return true;
    }
    if (static_cast<unsigned char>(c) < 0x20) return false;
    if (c != '\\') {
      ++p_;
      continue;
    }
    if (end_ - p_ < 2) return false;
    const char e = p_[1];
    if (e == 'u') {
      if (end_ - p_ < 6) return false;
      for (int i = 2; i < 6; ++i) {
        if (!is_hex(p_[i])) return false;
      }
      p_ += 6;
      continue;
    }
    if (e != '"' && e != '\\' && e != '/' && e != 'b' && e != 'f' && e != 'n' && e != 'r' &&
        e != 't') {
      return false;
    }
    p_ += 2;
  }
  return false;
}

bool Scanner::number(std::string_view* text) {
  skip_ws();
  const char* start = p_;
  if (p_ < end_ && *p_ == '-') ++p_;
  if (p_ == end_) return false;
  if (*p_ == '0') {
    ++p_;
  } else if (*p_ >= '1' && *p_ <= '9') {
    while (p_ < end_ && *p_ >= '0' && *p_ <= '9') ++p_;
  } else {
    return false;
  }
  if (p_ < end_ && *p_ == '.') {
    ++p_;
    if (p_ == end_ || *p_ < '0' || *p_ > '9') return false;
    while (p_ < end_ && *p_ >= '0' && *p_ <= '9') ++p_;
  }
  if (p_ < end_ && (*p_ == 'e' || *p_ == 'E')) {
    ++p_;
    if (p_ < end_ && (*p_ == '+' || *p_ == '-')) ++p_;
    if (p_ == end_ || *p_ < '0' || *p_ > '9') return false;
    while (p_ < end_ && *p_ >= '0' && *p_ <= '9') ++p_;
  }
  *text = std::string_view(start, static_cast<std::size_t>(p_ - start));
  return true;
}

bool Scanner::literal(std::string_view word) {
  skip_ws();
  if (static_cast<std::size_t>(end_ - p_) < word.size()) return false;
  if (std::string_view(p_, word.size()) != word) return false;
  p_ += word.size();
  return true;
}

bool Scanner::value(int depth) {
  if (depth > json_depth_max) return false;
  skip_ws();
  if (p_ == end_) return false;
  std::string_view ignored;
  switch (*p_) {
    case '"':
      return string(&ignored);
    case 't':
      return literal("true");
    case 'f':
      return literal("false");
    case 'n':
      return literal("null");
    case '[': {
      ++p_;
      if (eat(']')) return true;
      do {
        if (!value(depth + 1)) return false;
      } while (eat(','));
      return eat(']');
    }
    case '{': {
      ++p_;
      if (eat('}')) return true;
      do {
        if (!string(&ignored) || !eat(':') || !value(depth + 1)) return false;
      } while (eat(','));
      return eat('}');
    }
    default:
      return number(&ignored);
  }
}

bool Scanner::array_count(std::int64_t* count) {
  if (!peek('[')) {
    *count = -1;
    return value(1);
  }
  ++p_;
  *count = 0;
  if (eat(']')) return true;
  do {
    if (!value(2)) return false;
    ++*count;
  } while (eat(','));
  return eat(']');
}

bool Scanner::boolean_or_null(std::int8_t* out) {
  if (literal("true")) {
    *out = 1;
  } else if (literal("false")) {
    *out = 0;
  } else if (literal("null")) {
    *out = -1;
  } else {
    return false;  // Go: cannot unmarshal into bool
  }
  return true;
}

bool Scanner::stream_options(RequestFields* out) {
  if (!peek('{')) return value(1);
  ++p_;
  if (eat('}')) return true;
  do {
    std::string_view key;
    if (!string(&key) || !eat(':')) return false;
    if (key == "include_usage") {
      std::int8_t v = -1;
      if (!boolean_or_null(&v)) return false;
      out->include_usage = v == 1;
    } else if (!value(2)) {
      return false;
    }
  } while (eat(','));
  return eat('}');
}

bool Scanner::field(std::string_view key, RequestFields* out) {
  std::string_view text;
  if (key == "model") {
    if (peek('"')) return out->has_model = string(&out->model);
    return value(1);
  }
  if (key == "stream") return boolean_or_null(&out->stream);
  for (auto [k, dst] : {std::pair{"name", &out->name}, std::pair{"source", &out->source},
                        std::pair{"destination", &out->destination}}) {
    if (key != k) continue;
    if (peek('"')) return string(dst);
    return value(1);
  }
  if (key == "stream_options") return stream_options(out);
  if (key == "raw") {
    std::int8_t v = -1;
    if (!boolean_or_null(&v)) return false;
    out->raw = v == 1;
    return true;
  }
  if (key == "prompt") {
    if (literal("null")) return true;
    if (!peek('"')) {
      out->prompt_empty = false;
      return value(1);
    }
    if (!string(&text)) return false;
    out->prompt_empty = text.empty();
    return true;
  }
  if (key == "messages") return array_count(&out->messages);
  if (key == "tools") {
    std::int64_t n = -1;
    if (!array_count(&n)) return false;
    out->has_tools = n > 0;
    return true;
  }
  if (key == "input") {
    if (!peek('"')) return array_count(&out->inputs);
    if (!string(&text)) return false;
    out->inputs = text.empty() ? 0 : 1;
    return true;
  }
  if (key == "keep_alive") {
    if (literal("null")) return true;
    if (peek('"') ? !string(&text) : !number(&text)) return false;
    out->keep_alive_zero = zero_text(text);
    return true;
  }
  return value(1);
}

bool Scanner::scan_object(RequestFields* out) {
  if (!eat('{')) return false;
  if (eat('}')) return true;
  do {
    std::string_view key;
    if (!string(&key) || !eat(':')) return false;
    if (!field(key, out)) return false;
  } while (eat(','));
  return eat('}');
}

}  // namespace

bool scan_request_json(std::string_view body, RequestFields* out) {
  *out = RequestFields{};
  Scanner scanner(body);
  return scanner.scan_object(out) && scanner.at_end();
}

}  // namespace tokentap::fake
