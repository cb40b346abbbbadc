// Request head parsing and chunked body decoding (see request_head.h). Accepts what Go's
// net/http accepts for the cases tokentap produces; anything odd is a 400, as in Go.
#include "request_head.h"

#include <charconv>

namespace tokentap::fake {
namespace {

constexpr char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }

bool is_token_char(char c) {
  if (c >= 'a' && c <= 'z') return true;
  if (c >= 'A' && c <= 'Z') return true;
  if (c >= '0' && c <= '9') return true;
  switch (c) {
    case '!':
    case '#':
    case '$':
    case '%':
    case '&':
    case '\'':
    case '*':
    case '+':
    case '-':
    case '.':
    case '^':
    case '_':
    case '`':
    case '|':
    case '~':
      return true;
    default:
      return false;
  }
}

template <typename Int>
bool parse_decimal(std::string_view text, Int* out) {
  if (text.empty()) return false;
  Int value{};
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || end != text.data() + text.size()) return false;
  *out = value;
  return true;
}

// True if the comma-separated list `value` holds `token` (case-insensitive).
bool has_token(std::string_view value, std::string_view token) {
  while (!value.empty()) {
    const std::size_t comma = value.find(',');
    std::string_view item = value.substr(0, comma);
    value.remove_prefix(comma == std::string_view::npos ? value.size() : comma + 1);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
    if (iequals(item, token)) return true;
  }
  return false;
}

bool starts_with_ci(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && iequals(s.substr(0, prefix.size()), prefix);
}

// X-Fake-* headers. Unparsable values are ignored: the default stays.
void parse_control(std::string_view name, std::string_view value, Controls* c) {
  const std::string_view key = name.substr(7);  // after "X-Fake-"
  if (iequals(key, "Tokens")) {
    std::uint32_t n = 0;
    if (parse_decimal(value, &n)) c->tokens = n > fake_tokens_max ? fake_tokens_max : n;
  } else if (iequals(key, "Prompt-Tokens")) {
    std::int64_t n = 0;
    if (parse_decimal(value, &n) && n >= 0) c->prompt_tokens = n;
  } else if (iequals(key, "Delay-Ms")) {
    std::uint32_t n = 0;
    if (parse_decimal(value, &n)) c->delay_ms = n > fake_delay_ms_max ? fake_delay_ms_max : n;
  } else if (iequals(key, "Error")) {
    if (iequals(value, "before")) c->error = FakeError::before;
    if (iequals(value, "midstream")) c->error = FakeError::midstream;
  } else if (iequals(key, "Abort-After")) {
    std::int64_t n = 0;
    if (parse_decimal(value, &n) && n >= 0) c->abort_after = n;
  } else if (iequals(key, "Close")) {
    CloseMode mode = CloseMode::none;
    if (parse_close_mode(value, &mode)) c->close = mode;
  } else if (iequals(key, "Close-After-Response")) {
    c->close_after = value == "1" || iequals(value, "true");
  } else if (iequals(key, "Status")) {
    std::uint16_t n = 0;
    if (parse_decimal(value, &n) && n >= 100 && n <= 999) c->status = n;
  } else if (iequals(key, "Think")) {
    c->think = value == "1" || iequals(value, "true");
  } else if (iequals(key, "Tools")) {
    c->tools = value == "1" || iequals(value, "true");
  }
}

// Applies one header line to `out`; false if it makes the request malformed.
bool apply_header(std::string_view name, std::string_view value, RequestHead* out,
                  HeadStatus* status) {
  if (iequals(name, "Host")) {
    if (out->has_host) return false;  // Go: "too many Host headers"
    out->host = value;
    out->has_host = true;
  } else if (iequals(name, "Content-Length")) {
    std::int64_t n = 0;
    if (!parse_decimal(value, &n) || n < 0) return false;
    if (out->content_length >= 0 && out->content_length != n) return false;
    out->content_length = n;
  } else if (iequals(name, "Transfer-Encoding")) {
    if (!iequals(value, "chunked")) {
      *status = HeadStatus::unsupported_te;
      return false;
    }
    out->chunked = true;
  } else if (iequals(name, "Connection")) {
    if (has_token(value, "close")) out->connection_close = true;
  } else if (iequals(name, "Expect")) {
    if (iequals(value, "100-continue")) out->expect_continue = true;
  } else if (starts_with_ci(name, "X-Fake-")) {
    parse_control(name, value, &out->controls);
  }
  return true;
}

HeadStatus parse_request_line(std::string_view line, RequestHead* out) {
  const std::size_t sp1 = line.find(' ');
  if (sp1 == std::string_view::npos || sp1 == 0) return HeadStatus::bad_request;
  const std::size_t sp2 = line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || sp2 == sp1 + 1) return HeadStatus::bad_request;
  out->method = line.substr(0, sp1);
  for (const char c : out->method) {
    if (!is_token_char(c)) return HeadStatus::bad_request;
  }
  out->target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  const std::string_view version = line.substr(sp2 + 1);
  if (version == "HTTP/1.1") {
    out->minor_version = 1;
  } else if (version == "HTTP/1.0") {
    out->minor_version = 0;
  } else {
    return starts_with_ci(version, "HTTP/") ? HeadStatus::bad_version : HeadStatus::bad_request;
  }
  for (const char c : out->target) {
    if (static_cast<unsigned char>(c) <= ' ' || c == 0x7f) return HeadStatus::bad_request;
  }
  const std::size_t q = out->target.find('?');
  out->path = out->target.substr(0, q);
  out->query = q == std::string_view::npos ? std::string_view{} : out->target.substr(q + 1);
  return HeadStatus::ok;
}

ChunkedDecoder::Step failed() {
  ChunkedDecoder::Step s;
  s.error = true;
  return s;
}

}  // namespace

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

std::size_t find_head_end(std::string_view bytes) {
  const std::size_t at = bytes.find("\r\n\r\n");
  return at == std::string_view::npos ? 0 : at + 4;
}

HeadStatus parse_request_head(std::string_view head, RequestHead* out) {
  *out = RequestHead{};
  // Go skips empty lines before a request line (RFC 9112 §2.2).
  while (head.size() >= 2 && head.substr(0, 2) == "\r\n") head.remove_prefix(2);
  const std::size_t eol = head.find("\r\n");
  if (eol == std::string_view::npos) return HeadStatus::bad_request;
  const HeadStatus line_status = parse_request_line(head.substr(0, eol), out);
  if (line_status != HeadStatus::ok) return line_status;

  std::string_view rest = head.substr(eol + 2);
  if (rest.size() >= 2) rest.remove_suffix(2);  // the empty line
  out->header_block = rest;
  HeadStatus status = HeadStatus::ok;
  while (!rest.empty()) {
    const std::size_t end = rest.find("\r\n");
    const std::string_view line = rest.substr(0, end);
    rest.remove_prefix(end == std::string_view::npos ? rest.size() : end + 2);
    const std::size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) return HeadStatus::bad_request;
    const std::string_view name = line.substr(0, colon);
    for (const char c : name) {
      if (!is_token_char(c)) return HeadStatus::bad_request;  // also rejects obs-fold
    }
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t'))
      value.remove_prefix(1);
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
    if (!apply_header(name, value, out, &status)) {
      return status == HeadStatus::ok ? HeadStatus::bad_request : status;
    }
  }
  if (out->chunked) out->content_length = -1;  // RFC 9112 §6.3: chunked wins
  if (!out->http10() && !out->has_host) return HeadStatus::missing_host;
  return HeadStatus::ok;
}

ChunkedDecoder::Step ChunkedDecoder::step_size(std::string_view in) {
  Step s;
  while (s.consumed < in.size()) {
    const char c = in[s.consumed];
    if (state_ == State::size) {
      int digit = -1;
      if (c >= '0' && c <= '9') digit = c - '0';
      if (c >= 'a' && c <= 'f') digit = c - 'a' + 10;
      if (c >= 'A' && c <= 'F') digit = c - 'A' + 10;
      if (digit >= 0) {
        if (++digits_ > size_digits_max) return failed();
        remaining_ = remaining_ * 16 + static_cast<std::uint64_t>(digit);
        ++s.consumed;
        continue;
      }
      if (digits_ == 0) return failed();
      state_ = c == '\r' ? State::size_lf : State::size_ext;
      if (c != '\r' && c != ';' && c != ' ' && c != '\t') return failed();
      ++s.consumed;
      continue;
    }
    if (state_ == State::size_ext) {  // chunk extensions are skipped
      if (c == '\r') state_ = State::size_lf;
      ++s.consumed;
      continue;
    }
    // size_lf
    if (c != '\n') return failed();
    ++s.consumed;
    state_ = remaining_ == 0 ? State::trailer : State::data;
    digits_ = 0;
    return s;
  }
  return s;
}

ChunkedDecoder::Step ChunkedDecoder::step_trailer(std::string_view in) {
  Step s;
  while (s.consumed < in.size()) {
    const char c = in[s.consumed++];
    switch (state_) {
      case State::trailer:  // at the start of a trailer line
        state_ = c == '\r' ? State::final_lf : State::trailer_text;
        break;
      case State::trailer_text:
        if (c == '\r') state_ = State::trailer_lf;
        break;
      case State::trailer_lf:
        if (c != '\n') return failed();
        state_ = State::trailer;
        break;
      case State::final_lf:
        if (c != '\n') return failed();
        state_ = State::done;
        s.done = true;
        return s;
      default:
        return failed();
    }
  }
  return s;
}

ChunkedDecoder::Step ChunkedDecoder::step(std::string_view in) {
  switch (state_) {
    case State::size:
    case State::size_ext:
    case State::size_lf:
      return step_size(in);
    case State::data: {
      const std::size_t n = remaining_ < in.size() ? remaining_ : in.size();
      remaining_ -= n;
      if (remaining_ == 0) state_ = State::data_cr;
      Step s;
      s.consumed = n;
      s.data = in.substr(0, n);
      return s;
    }
    case State::data_cr:
    case State::data_lf: {
      Step s;
      while (s.consumed < in.size()) {
        const char c = in[s.consumed++];
        if (c != (state_ == State::data_cr ? '\r' : '\n')) return failed();
        if (state_ == State::data_lf) {
          state_ = State::size;
          return s;
        }
        state_ = State::data_lf;
      }
      return s;
    }
    case State::trailer:
    case State::trailer_text:
    case State::trailer_lf:
    case State::final_lf:
      return step_trailer(in);
    case State::done: {
      Step s;
      s.done = true;
      return s;
    }
  }
  return failed();
}

}  // namespace tokentap::fake
