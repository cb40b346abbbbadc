// request_head: the rewrite of a client's request head into the upstream's, and the refusals a
// conforming intermediary owes on the way (RFC 9112 §2.3, §3, §6.1; RFC 9110 §7.2, §7.6).
//
// Two passes over a head llhttp already accepted. Pass 1 reads the request line and the fields
// that decide what to drop or refuse (Connection options, Host lines, Transfer-Encoding); pass 2
// copies field lines in order, minus the hop-by-hop ones, with Host, Content-Length and
// Max-Forwards rewritten in place. The request line forwarded always says HTTP/1.1: an
// intermediary sends its own version (RFC 9110 §2.5), and the proxy's side of the upstream
// connection is a 1.1 client whatever the client spoke. No allocation; `out` is the caller's.
#include <cstdint>
#include <string_view>

#include "head_field.h"
#include "tokentap/http/http1.h"

namespace tokentap {

using head_field::all_digits;
using head_field::iequals;
using head_field::is_alpha;
using head_field::is_digit;
using head_field::is_hex;
using head_field::Line;
using head_field::next_line;
using head_field::split_header;
using head_field::Writer;

HttpRefusal refusal_of(RewriteError e) {
  switch (e) {
    case RewriteError::too_large:
      return {431, "Request Header Fields Too Large", "tokentap: request head too large"};
    case RewriteError::bad_head:
      return {400, "Bad Request", "tokentap: malformed request head"};
    case RewriteError::bad_version:
      return {505, "HTTP Version Not Supported", "tokentap: only HTTP/1.x is supported"};
    case RewriteError::duplicate_host:
      return {400, "Bad Request", "tokentap: missing, repeated or invalid Host"};
    case RewriteError::bad_target:
      return {400, "Bad Request", "tokentap: invalid request target"};
    case RewriteError::bad_framing:
      return {400, "Bad Request", "tokentap: invalid message framing"};
    case RewriteError::too_many_connection_options:
      return {400, "Bad Request", "tokentap: too many Connection options"};
    case RewriteError::method_not_allowed:
      // Allow names the methods Ollama's API routes answer (the same list the proxy's own
      // OPTIONS reply gives).
      return {405, "Method Not Allowed", "tokentap: CONNECT and authority-form are not served",
              "GET, HEAD, POST, DELETE, OPTIONS"};
    case RewriteError::target_too_long:
      return {414, "URI Too Long", "tokentap: request target too long"};
    case RewriteError::ok:
      break;
  }
  return {500, "Internal Server Error", "tokentap: no refusal for this head"};
}

namespace {

// RFC 3986 reg-name / IP-literal characters, and an optional ":port" (RFC 9110 §7.2 Host,
// §4.2.1 http authority). Userinfo ('@') is never part of a Host value.
bool is_reg_name_char(char c) {
  return is_alpha(c) || is_digit(c) ||
         std::string_view("-._~!$&'()*+,;=").find(c) != std::string_view::npos;
}

bool host_valid(std::string_view s, bool allow_empty) {
  std::string_view port;
  if (!s.empty() && s.front() == '[') {
    const auto close = s.find(']');
    if (close == std::string_view::npos || close == 1) return false;
    for (const char c : s.substr(1, close - 1)) {
      if (!is_hex(c) && c != ':' && c != '.' && c != 'v' && c != 'V' && !is_reg_name_char(c)) {
        return false;
      }
    }
    const std::string_view after = s.substr(close + 1);
    if (!after.empty() && after.front() != ':') return false;
    if (!after.empty()) port = after.substr(1);
  } else {
    const auto colon = s.find(':');
    const std::string_view host = s.substr(0, colon);
    if (colon != std::string_view::npos) port = s.substr(colon + 1);
    if (host.empty() && !allow_empty) return false;
    for (std::size_t i = 0; i < host.size(); ++i) {
      if (host[i] == '%') {
        if (i + 2 >= host.size() || !is_hex(host[i + 1]) || !is_hex(host[i + 2])) return false;
        i += 2;
      } else if (!is_reg_name_char(host[i])) {
        return false;
      }
    }
  }
  return all_digits(port);
}

struct RequestLine {
  std::string_view line;       // including CRLF
  std::string_view origin;     // what the upstream's request line carries
  std::string_view authority;  // absolute-form only
  int major = 0;
  int minor = 0;
};

// absolute-form (RFC 9112 §3.2.2): "http://authority/path?query". The origin-form part is what
// Ollama gets; the authority stands for Host (§3.2.2: the received Host is ignored).
RewriteError absolute_form_parse(std::string_view target, RequestLine* rl) {
  const auto colon = target.find(':');
  const std::string_view scheme = target.substr(0, colon);
  if (!iequals(scheme, "http") && !iequals(scheme, "https")) return RewriteError::bad_target;
  std::string_view rest = target.substr(colon + 1);
  if (rest.substr(0, 2) != "//") return RewriteError::bad_target;
  rest.remove_prefix(2);
  const auto path = rest.find_first_of("/?");
  const std::string_view authority = rest.substr(0, path);
  // Userinfo is a credential in the URI; an empty host is invalid for http (RFC 9110 §4.2.1).
  if (authority.find('@') != std::string_view::npos || !host_valid(authority, false)) {
    return RewriteError::bad_target;
  }
  // An empty path ("http://h", "http://h?q") would need a "/" the raw head does not hold;
  // HeadFacts::target points into the head, so it is refused (see docs/http-conformance.md).
  if (path == std::string_view::npos || rest[path] != '/') return RewriteError::bad_target;
  rl->authority = authority;
  rl->origin = rest.substr(path);
  return RewriteError::ok;
}

// Does `target` start with an RFC 3986 scheme and a colon?
bool has_scheme(std::string_view target) {
  if (target.empty() || !is_alpha(target.front())) return false;
  for (const char c : target) {
    if (c == ':') return true;
    if (!is_alpha(c) && !is_digit(c) && c != '+' && c != '-' && c != '.') return false;
  }
  return false;
}

// authority-form (RFC 9112 §3.2.3): "host:port", used only by CONNECT.
bool is_authority_form(std::string_view target) {
  const auto colon = target.rfind(':');
  if (colon == std::string_view::npos || colon + 1 == target.size()) return false;
  return all_digits(target.substr(colon + 1)) && host_valid(target, false) &&
         target.find('/') == std::string_view::npos;
}

// The request-target forms of RFC 9112 §3.2, and which of them the proxy serves.
RewriteError target_classify(std::string_view method, std::string_view target, RequestLine* rl) {
  if (target.find('#') != std::string_view::npos) return RewriteError::bad_target;  // §3.2
  if (target.size() > target_bytes_max) return RewriteError::target_too_long;
  if (method == "CONNECT") return RewriteError::method_not_allowed;
  if (!target.empty() && target.front() == '/') {
    rl->origin = target;
    return RewriteError::ok;
  }
  if (target == "*") {
    rl->origin = target;
    return method == "OPTIONS" ? RewriteError::ok : RewriteError::bad_target;
  }
  if (has_scheme(target) && target.find("://") != std::string_view::npos) {
    return absolute_form_parse(target, rl);
  }
  if (is_authority_form(target)) return RewriteError::method_not_allowed;
  return RewriteError::bad_target;
}

RewriteError request_line_parse(std::string_view* rest, RequestLine* rl, HeadFacts* facts) {
  if (!next_line(rest, &rl->line)) return RewriteError::bad_head;
  const std::string_view line = rl->line.substr(0, rl->line.size() - 2);
  const auto sp1 = line.find(' ');
  const auto sp2 = line.find(' ', sp1 + 1);
  if (sp1 == std::string_view::npos || sp2 == std::string_view::npos) return RewriteError::bad_head;
  facts->method = line.substr(0, sp1);
  const std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  if (!head_field::parse_version(line.substr(sp2 + 1), &rl->major, &rl->minor)) {
    return RewriteError::bad_head;
  }
  // RFC 9110 §6.2 / RFC 9112 §2.3: a major version the proxy does not implement is a 505;
  // a higher 1.x minor is processed as 1.1.
  if (rl->major != 1) return RewriteError::bad_version;
  facts->http10 = rl->minor == 0;
  facts->connect = facts->method == "CONNECT";
  facts->target = target;
  const RewriteError err = target_classify(facts->method, target, rl);
  if (err != RewriteError::ok) return err;
  facts->target = rl->origin;
  facts->absolute_form = !rl->authority.empty();
  return RewriteError::ok;
}

// What pass 1 learns from the field lines.
struct HeadScan {
  head_field::ConnectionTokens tokens;
  int host_lines = 0;
  std::string_view host_value;
  bool transfer_encoding = false;
  bool upgrade = false;
};

RewriteError request_head_scan(std::string_view rest, const RequestLine& rl, HeadScan* scan,
                               HeadFacts* facts) {
  const bool fields_ok = head_field::for_each_field(&rest, [scan](const Line& h) {
    if (iequals(h.name, "connection")) {
      scan->tokens.add_list(h.value);
    } else if (iequals(h.name, "host")) {
      ++scan->host_lines;
      scan->host_value = h.value;
    } else if (iequals(h.name, "transfer-encoding")) {
      scan->transfer_encoding = true;
    } else if (iequals(h.name, "upgrade")) {
      scan->upgrade = true;
    }
    return true;
  });
  if (!fields_ok) return RewriteError::bad_head;
  facts->connection_close = scan->tokens.close;
  facts->keep_alive_10 = facts->http10 && scan->tokens.keep_alive && !scan->tokens.close;
  facts->upgrade = scan->upgrade;
  facts->has_host = scan->host_lines > 0;
  facts->host = rl.authority.empty() ? scan->host_value : rl.authority;
  if (scan->tokens.overflow) return RewriteError::too_many_connection_options;
  // Removing a nominated Content-Length or Transfer-Encoding would move the body's end for
  // the upstream's parser; RFC 9112 §6.1: Transfer-Encoding in 1.0 is faulty framing.
  if (scan->tokens.framing || (facts->http10 && scan->transfer_encoding)) {
    return RewriteError::bad_framing;
  }
  // RFC 9112 §3.2: 400 for an HTTP/1.1 request without Host, more than one Host line, or an
  // invalid Host value (an absolute-form target does not lift the requirement).
  if (scan->host_lines > 1 || (scan->host_lines == 0 && !facts->http10) ||
      (scan->host_lines == 1 && !host_valid(scan->host_value, true))) {
    return RewriteError::duplicate_host;
  }
  return RewriteError::ok;
}

void note_fact(const Line& h, HeadFacts* facts) {
  if (iequals(h.name, "expect")) {
    facts->expect_continue = iequals(h.value, "100-continue");
  } else if (iequals(h.name, "content-encoding")) {
    facts->content_encoded = !h.value.empty() && !iequals(h.value, "identity");
  } else if (iequals(h.name, "content-type")) {
    facts->content_type = h.value;
  } else if (iequals(h.name, backend_pin_field)) {
    facts->backend_pin = h.value;
  }
}

// Max-Forwards (RFC 9110 §7.6.2) applies to OPTIONS and TRACE only. False: not a number, forward
// the field unchanged.
bool max_forwards_parse(std::string_view v, std::uint64_t* out) {
  if (v.empty() || !all_digits(v)) return false;
  std::uint64_t n = 0;
  for (const char c : v) {
    const auto d = static_cast<std::uint64_t>(c - '0');
    n = n > (UINT64_MAX - d) / 10 ? UINT64_MAX : n * 10 + d;  // saturate
  }
  *out = n;
  return true;
}

struct WriteContext {
  const RewriteOptions& opt;
  const RequestLine& rl;
  const HeadScan& scan;
  bool max_forwards_applies;
};

// Pass 2 for one field line.
void request_field_write(const Line& h, const WriteContext& c, Writer* w, HeadFacts* facts) {
  if (iequals(h.name, "host")) {
    if (!c.opt.preserve_host) return w->put_field("Host", c.opt.upstream_host);
    // §3.2.2: with an absolute-form target, the target's authority replaces the received Host.
    if (!c.rl.authority.empty()) return w->put_field("Host", c.rl.authority);
    return w->put(h.whole);
  }
  if (c.scan.tokens.drops(h.name)) return;
  if (iequals(h.name, backend_pin_field)) return;  // for tokentap only, never forwarded
  if (iequals(h.name, "expect") && (c.opt.drop_expect || facts->http10)) return;
  if (c.opt.content_length >= 0 && iequals(h.name, "content-length")) {
    return w->put_number_field("Content-Length", static_cast<std::uint64_t>(c.opt.content_length));
  }
  std::uint64_t hops = 0;
  if (c.max_forwards_applies && iequals(h.name, "max-forwards") &&
      max_forwards_parse(h.value, &hops)) {
    if (hops == 0) facts->max_forwards_zero = true;
    return w->put_number_field("Max-Forwards", hops == 0 ? 0 : hops - 1);
  }
  w->put(h.whole);
}

}  // namespace

RewriteError rewrite_request_head(std::string_view raw, const RewriteOptions& opt, char* out,
                                  std::size_t cap, std::size_t* out_len, HeadFacts* facts) {
  *facts = HeadFacts{};
  if (raw.size() > head_bytes_max) return RewriteError::too_large;
  std::string_view rest = raw;
  // RFC 9112 §2.2: empty lines before the request line are ignored (llhttp skips them too).
  while (rest.substr(0, 2) == "\r\n") rest.remove_prefix(2);
  RequestLine rl;
  RewriteError err = request_line_parse(&rest, &rl, facts);
  if (err != RewriteError::ok) return err;
  HeadScan scan;
  err = request_head_scan(rest, rl, &scan, facts);
  if (err != RewriteError::ok) return err;

  Writer w(out, cap);
  w.put(facts->method);
  w.put(" ");
  w.put(rl.origin);
  w.put(" HTTP/1.1\r\n");
  const bool max_forwards_applies = facts->method == "OPTIONS" || facts->method == "TRACE";
  const WriteContext ctx{opt, rl, scan, max_forwards_applies};
  (void)head_field::for_each_field(&rest, [&](const Line& h) {  // pass 1 checked the lines
    note_fact(h, facts);
    request_field_write(h, ctx, &w, facts);
    return true;
  });
  if (facts->http10) facts->expect_continue = false;  // RFC 9110 §10.1.1
  if (!facts->has_host) {
    // A 1.0 request without Host: the upstream gets a 1.1 request line, which needs one.
    w.put_field("Host",
                opt.preserve_host && !rl.authority.empty() ? rl.authority : opt.upstream_host);
  }
  // RFC 9110 §7.6.3: the received protocol and our pseudonym, after any Via the client sent.
  w.put(facts->http10 ? "Via: 1.0 tokentap\r\n" : "Via: 1.1 tokentap\r\n");
  if (scan.tokens.close) w.put("Connection: close\r\n");
  w.put("\r\n");
  if (w.overflow()) return RewriteError::too_large;
  *out_len = w.len();
  return RewriteError::ok;
}

}  // namespace tokentap
