// http1: llhttp glue and request-head rewriting; see http1.h.
#include "tokentap/http/http1.h"

#include <array>
#include <cstdio>
#include <cstring>

#include "tokentap/base/assert.h"

namespace tokentap {

const llhttp_settings_t HttpParser::settings_ = [] {
  llhttp_settings_t s;
  llhttp_settings_init(&s);
  s.on_headers_complete = &HttpParser::on_headers_complete;
  s.on_message_complete = &HttpParser::on_message_complete;
  s.on_body = &HttpParser::on_body;
  return s;
}();

void HttpParser::init_request() {
  sink_ = nullptr;
  llhttp_init(&parser_, HTTP_REQUEST, &settings_);
  parser_.data = this;
  no_body_ = false;
  content_length_ = 0;
  pending_ = Stop::need_more;
}

void HttpParser::init_response() {
  sink_ = nullptr;
  llhttp_init(&parser_, HTTP_RESPONSE, &settings_);
  parser_.data = this;
  no_body_ = false;
  content_length_ = 0;
  pending_ = Stop::need_more;
}

int HttpParser::on_headers_complete(llhttp_t* p) {
  auto* self = static_cast<HttpParser*>(p->data);
  self->content_length_ = p->content_length;
  if (self->no_body_) {
    // A response to HEAD: llhttp cannot know the method, so tell it there is no body.
    // The message then completes at once and its pause reports both stops together.
    return 1;
  }
  self->pending_ = Stop::head_done;
  return HPE_PAUSED;
}

int HttpParser::on_message_complete(llhttp_t* p) {
  auto* self = static_cast<HttpParser*>(p->data);
  self->pending_ = Stop::message_done;
  return HPE_PAUSED;
}

int HttpParser::on_body(llhttp_t* p, const char* at, std::size_t len) {
  auto* self = static_cast<HttpParser*>(p->data);
  if (self->sink_ != nullptr) self->sink_(self->sink_ctx_, at, len);
  return 0;
}

HttpParser::Stop HttpParser::feed(const char* data, std::size_t n, std::size_t* used) {
  pending_ = Stop::need_more;
  const llhttp_errno_t err = llhttp_execute(&parser_, data, n);
  if (err == HPE_OK) {
    *used = n;
    return Stop::need_more;
  }
  if (err == HPE_PAUSED) {
    *used = static_cast<std::size_t>(llhttp_get_error_pos(&parser_) - data);
    llhttp_resume(&parser_);
    TT_ASSERT(pending_ != Stop::need_more);
    return pending_;
  }
  // The bytes before the offending one were valid (a complete chunk before a bad size line):
  // the caller may still forward them before failing the message.
  const char* pos = llhttp_get_error_pos(&parser_);
  *used = pos >= data && pos <= data + n ? static_cast<std::size_t>(pos - data) : 0;
  return Stop::error;
}

HttpParser::Stop HttpParser::finish() {
  pending_ = Stop::need_more;
  const llhttp_errno_t err = llhttp_finish(&parser_);
  if (err == HPE_PAUSED || pending_ == Stop::message_done) return Stop::message_done;
  // HPE_OK without a callback: no message was in progress at EOF.
  return err == HPE_OK ? Stop::need_more : Stop::error;
}

// ---- head rewriting -------------------------------------------------------------------------

namespace {

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x + 32);
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y + 32);
    if (x != y) return false;
  }
  return true;
}

std::string_view trim(std::string_view s) {
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
bool next_line(std::string_view* rest, std::string_view* line) {
  const auto lf = rest->find('\n');
  if (lf == std::string_view::npos || lf == 0 || (*rest)[lf - 1] != '\r') return false;
  *line = rest->substr(0, lf + 1);
  rest->remove_prefix(lf + 1);
  return true;
}

// RFC 9110 §5.6.2 token characters: what a field name may contain.
bool is_tchar(char c) {
  if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return true;
  switch (c) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+': case '-':
    case '.': case '^': case '_': case '`': case '|': case '~':
      return true;
    default:
      return false;
  }
}

// Splits "Name: value\r\n". Rejects what request smuggling relies on: a name that is not a token
// (whitespace before the colon, obs-fold continuation lines) and control characters (NUL…)
// in the value, which upstream parsers may read differently from llhttp.
bool split_header(std::string_view line, Line* out) {
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

// Headers a proxy must not forward (RFC 9110 §7.6.1), except Transfer-Encoding, which stays
// because the body is forwarded with its framing untouched.
bool is_hop_by_hop(std::string_view name) {
  return iequals(name, "connection") || iequals(name, "keep-alive") ||
         iequals(name, "proxy-connection") || iequals(name, "te") || iequals(name, "upgrade");
}

struct ConnectionTokens {
  std::array<std::string_view, connection_tokens_max> names{};
  std::size_t count = 0;
  bool close = false;

  void add_list(std::string_view value) {
    while (!value.empty()) {
      const auto comma = value.find(',');
      const std::string_view token = trim(value.substr(0, comma));
      if (iequals(token, "close")) {
        close = true;
      } else if (!token.empty() && !iequals(token, "keep-alive") && count < names.size()) {
        names[count++] = token;
      }
      if (comma == std::string_view::npos) break;
      value.remove_prefix(comma + 1);
    }
  }
  bool names_header(std::string_view name) const {
    for (std::size_t i = 0; i < count; ++i) {
      if (iequals(names[i], name)) return true;
    }
    return false;
  }
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
  std::size_t len() const { return len_; }
  bool overflow() const { return overflow_; }

 private:
  char* out_;
  std::size_t cap_;
  std::size_t len_ = 0;
  bool overflow_ = false;
};

void note_fact(const Line& h, HeadFacts* facts) {
  if (iequals(h.name, "expect")) {
    facts->expect_continue = iequals(h.value, "100-continue");
  } else if (iequals(h.name, "content-encoding")) {
    facts->content_encoded = !h.value.empty() && !iequals(h.value, "identity");
  } else if (iequals(h.name, "content-type")) {
    facts->content_type = h.value;
  }
}

}  // namespace

RewriteError rewrite_request_head(std::string_view raw, const RewriteOptions& opt, char* out,
                                  std::size_t cap, std::size_t* out_len, HeadFacts* facts) {
  *facts = HeadFacts{};
  if (raw.size() > head_bytes_max) return RewriteError::too_large;
  std::string_view rest = raw;
  std::string_view request_line;
  if (!next_line(&rest, &request_line)) return RewriteError::bad_head;
  const auto sp1 = request_line.find(' ');
  const auto sp2 = request_line.find(' ', sp1 + 1);
  if (sp1 == std::string_view::npos || sp2 == std::string_view::npos) return RewriteError::bad_head;
  facts->method = request_line.substr(0, sp1);
  facts->target = request_line.substr(sp1 + 1, sp2 - sp1 - 1);
  // Origin-form only ("/path"), or "*" for OPTIONS: an absolute-form target could name
  // another host, and the proxy only ever talks to its one upstream.
  const bool origin_form = !facts->target.empty() && facts->target.front() == '/';
  const bool asterisk = facts->target == "*" && facts->method == "OPTIONS";
  if ((!origin_form && !asterisk) || facts->target.size() > target_bytes_max) {
    return RewriteError::bad_head;
  }

  // Pass 1: the Connection header's tokens decide which other headers are hop-by-hop.
  ConnectionTokens tokens;
  for (std::string_view scan = rest, line; next_line(&scan, &line) && line.size() > 2;) {
    Line h;
    if (!split_header(line, &h)) return RewriteError::bad_head;
    if (iequals(h.name, "connection")) tokens.add_list(h.value);
  }
  facts->connection_close = tokens.close;

  // Pass 2: copy, dropping hop-by-hop headers and replacing Host in place.
  Writer w(out, cap);
  w.put(request_line);
  std::string_view line;
  while (next_line(&rest, &line) && line.size() > 2) {
    Line h;
    if (!split_header(line, &h)) return RewriteError::bad_head;
    note_fact(h, facts);
    if (iequals(h.name, "host")) {
      facts->has_host = true;
      if (!opt.preserve_host) {
        w.put("Host: ");
        w.put(opt.upstream_host);
        w.put("\r\n");
        continue;
      }
    } else if (is_hop_by_hop(h.name) || tokens.names_header(h.name)) {
      continue;
    } else if (opt.drop_expect && iequals(h.name, "expect")) {
      continue;
    } else if (opt.content_length >= 0 && iequals(h.name, "content-length")) {
      char num[24];
      const int n = std::snprintf(num, sizeof(num), "%lld",
                                  static_cast<long long>(opt.content_length));
      w.put("Content-Length: ");
      w.put(std::string_view(num, static_cast<std::size_t>(n)));
      w.put("\r\n");
      continue;
    }
    w.put(h.whole);
  }
  if (line != "\r\n") return RewriteError::bad_head;
  if (!facts->has_host && !opt.preserve_host) {
    w.put("Host: ");
    w.put(opt.upstream_host);
    w.put("\r\n");
  }
  if (tokens.close) w.put("Connection: close\r\n");
  w.put("\r\n");
  if (w.overflow()) return RewriteError::too_large;
  *out_len = w.len();
  return RewriteError::ok;
}

}  // namespace tokentap
