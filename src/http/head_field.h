// head_field: the field-line syntax shared by the request and the response head rewrites.
//
// Both rewrites read a head llhttp has already accepted, but they re-check what request
// smuggling relies on (a name that is not a token, obs-fold, control characters, a bare LF),
// because the bytes they forward are read again by a parser that is not llhttp. Everything here
// is a pure function over string_views into the raw head; nothing allocates.
//
// Connection options (RFC 9110 §7.6.1): every field the Connection header nominates is
// hop-by-hop and must be removed. The names are kept in a fixed array of
// connection_tokens_max; a head naming more is refused rather than forwarded with some of them
// left in (issue 20). A head that nominates a framing field (Content-Length,
// Transfer-Encoding) is refused too: removing it would change where the body ends for the
// next parser, which is exactly a smuggling shape.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string_view>

#include "tokentap/http/http1.h"

namespace tokentap::head_field {

inline char ascii_lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; }

inline bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (ascii_lower(a[i]) != ascii_lower(b[i])) return false;
  }
  return true;
}

inline bool is_digit(char c) { return c >= '0' && c <= '9'; }
inline bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
inline bool is_hex(char c) {
  return is_digit(c) || (ascii_lower(c) >= 'a' && ascii_lower(c) <= 'f');
}
inline bool all_digits(std::string_view s) {
  for (const char c : s) {
    if (!is_digit(c)) return false;
  }
  return true;
}

inline std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

struct Line {
  std::string_view name;
  std::string_view value;
  std::string_view whole;  // including CRLF
};

// Splits the next CRLF-terminated line from *rest. False on a bare LF or a missing CRLF.
inline bool next_line(std::string_view* rest, std::string_view* line) {
  const auto lf = rest->find('\n');
  if (lf == std::string_view::npos || lf == 0 || (*rest)[lf - 1] != '\r') return false;
  *line = rest->substr(0, lf + 1);
  rest->remove_prefix(lf + 1);
  return true;
}

// RFC 9110 §5.6.2 token characters: what a field name may contain.
inline bool is_tchar(char c) {
  if (is_digit(c) || is_alpha(c)) return true;
  return std::strchr("!#$%&'*+-.^_`|~", c) != nullptr && c != '\0';
}

// Splits "Name: value\r\n". Rejects a name that is not a token (whitespace before the colon,
// an obs-fold continuation line) and control characters (NUL, a bare CR…) in the value, which
// upstream parsers may read differently from llhttp (RFC 9112 §5.1, §5.2).
inline bool split_header(std::string_view line, Line* out) {
  const auto colon = line.find(':');
  if (colon == std::string_view::npos || colon == 0) return false;
  for (std::size_t i = 0; i < colon; ++i) {
    if (!is_tchar(line[i])) return false;
  }
  const std::string_view raw_value = line.substr(colon + 1, line.size() - colon - 3);
  for (const char c : raw_value) {
    const auto u = static_cast<unsigned char>(c);
    if ((u < 0x20 && c != '\t') || u == 0x7f) return false;
  }
  out->whole = line;
  out->name = line.substr(0, colon);
  out->value = trim(raw_value);
  return true;
}

// The fixed hop-by-hop set a proxy never forwards (RFC 9110 §7.6.1, RFC 9112 §9.6).
// Transfer-Encoding is not in it: a body is forwarded with its framing untouched.
inline bool is_hop_by_hop(std::string_view name) {
  return iequals(name, "connection") || iequals(name, "keep-alive") ||
         iequals(name, "proxy-connection") || iequals(name, "te") || iequals(name, "upgrade");
}

inline bool is_framing(std::string_view name) {
  return iequals(name, "content-length") || iequals(name, "transfer-encoding");
}

// Calls fn(token) for each non-empty member of a comma-separated list (RFC 9110 §5.6.1).
// Calls fn(const Line&) for each field line of *rest (what follows the start line) up to the
// blank line that ends the head; fn returns false to stop. False: a line is not a valid field
// (split_header), the head has no blank line, or fn stopped. *rest is left after what was read.
template <typename Fn>
bool for_each_field(std::string_view* rest, Fn fn) {
  std::string_view line;
  while (next_line(rest, &line) && line.size() > 2) {
    Line h;
    if (!split_header(line, &h) || !fn(h)) return false;
  }
  return line == "\r\n";
}

template <typename Fn>
void for_each_token(std::string_view value, Fn fn) {
  while (!value.empty()) {
    const auto comma = value.find(',');
    const std::string_view token = trim(value.substr(0, comma));
    if (!token.empty()) fn(token);
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
}

struct ConnectionTokens {
  std::array<std::string_view, connection_tokens_max> names{};
  std::size_t count = 0;
  bool close = false;
  bool keep_alive = false;
  bool overflow = false;  // more options than names can hold: refuse, never forward any
  bool framing = false;   // a framing field was nominated: refuse

  void add_list(std::string_view value) {
    for_each_token(value, [this](std::string_view token) {
      if (iequals(token, "close")) {
        close = true;
      } else if (iequals(token, "keep-alive")) {
        keep_alive = true;
      } else if (is_framing(token)) {
        framing = true;
      } else if (is_hop_by_hop(token) || iequals(token, "host")) {
        // Removed anyway (or, for Host, written by the proxy itself): no slot needed.
      } else if (count < names.size()) {
        names[count++] = token;
      } else {
        overflow = true;
      }
    });
  }
  bool names_header(std::string_view name) const {
    for (std::size_t i = 0; i < count; ++i) {
      if (iequals(names[i], name)) return true;
    }
    return false;
  }
  // A field the recipient must not see: the fixed set or a nominated one.
  bool drops(std::string_view name) const { return is_hop_by_hop(name) || names_header(name); }
};

class Writer {
 public:
  Writer(char* out, std::size_t cap) : out_(out), cap_(cap) {}
  void put(std::string_view s) {
    if (len_ + s.size() > cap_) {
      overflow_ = true;
      return;
    }
    std::memcpy(out_ + len_, s.data(), s.size());
    len_ += s.size();
  }
  void put_field(std::string_view name, std::string_view value) {
    put(name);
    put(": ");
    put(value);
    put("\r\n");
  }
  void put_number_field(std::string_view name, std::uint64_t v) {
    char num[24];
    const int n = std::snprintf(num, sizeof(num), "%llu", static_cast<unsigned long long>(v));
    put_field(name, std::string_view(num, static_cast<std::size_t>(n)));
  }
  std::size_t len() const { return len_; }
  bool overflow() const { return overflow_; }

 private:
  char* out_;
  std::size_t cap_;
  std::size_t len_ = 0;
  bool overflow_ = false;
};

// "HTTP/d.d" (llhttp checked the shape; this reads it). False when it is not that shape.
inline bool parse_version(std::string_view v, int* major, int* minor) {
  if (v.size() != 8 || v.substr(0, 5) != "HTTP/" || !is_digit(v[5]) || v[6] != '.' ||
      !is_digit(v[7])) {
    return false;
  }
  *major = v[5] - '0';
  *minor = v[7] - '0';
  return true;
}

}  // namespace tokentap::head_field
