// response_head: the rewrite of an upstream response head into the client's (RFC 9110 §7.6,
// RFC 9112 §6.1, §9.3).
//
// The status line gets our own version (HTTP/1.1, RFC 9110 §2.5) with the upstream's code and
// reason phrase byte for byte. The hop-by-hop fields and every Connection-nominated one are
// removed; every other field line is copied byte for byte and in order, because SDK clients
// (Go's net/http, the Python and JS libraries) must see what Ollama sent. Via is not added to
// responses on purpose, for the same reason (docs/http-conformance.md says so).
//
// An HTTP/1.0 client cannot parse chunked framing (RFC 9112 §6.1: a server MUST NOT send
// Transfer-Encoding to it): a chunked response loses its Transfer-Encoding, gains
// `Connection: close`, and the caller sends the de-chunked body delimited by the close
// (ResponseFacts::dechunk). Any other transfer coding cannot be undone here and is refused.
#include <string_view>

#include "head_field.h"
#include "tokentap/http/http1.h"

namespace tokentap {

using head_field::iequals;
using head_field::is_digit;
using head_field::Line;
using head_field::next_line;
using head_field::split_header;
using head_field::Writer;

namespace {

struct ResponseScan {
  head_field::ConnectionTokens tokens;
  bool transfer_encoding = false;
  bool chunked_only = true;  // every transfer coding named is `chunked` (vacuous when none)
  bool chunked_last = false;
};

void connection_put(Writer* w, std::string_view name, std::string_view options) {
  w->put(name);
  w->put(": ");
  w->put(options);
  w->put("\r\n");
}

void transfer_codings_note(std::string_view value, ResponseScan* scan) {
  scan->transfer_encoding = true;
  head_field::for_each_token(value, [scan](std::string_view coding) {
    scan->chunked_last = iequals(coding, "chunked");
    if (!scan->chunked_last) scan->chunked_only = false;
  });
}

RewriteError response_head_scan(std::string_view rest, ResponseScan* scan) {
  const bool fields_ok = head_field::for_each_field(&rest, [scan](const Line& h) {
    if (iequals(h.name, "connection")) {
      scan->tokens.add_list(h.value);
    } else if (iequals(h.name, "transfer-encoding")) {
      transfer_codings_note(h.value, scan);
    }
    return true;
  });
  if (!fields_ok) return RewriteError::bad_head;
  if (scan->tokens.overflow) return RewriteError::too_many_connection_options;
  if (scan->tokens.framing) return RewriteError::bad_framing;
  return RewriteError::ok;
}

// "HTTP/d.d SP ddd ..." (llhttp accepted it). *status is the code; major != 1 is refused.
RewriteError status_line_parse(std::string_view line, int* status) {
  int major = 0;
  int minor = 0;
  if (line.size() < 14 || !head_field::parse_version(line.substr(0, 8), &major, &minor) ||
      line[8] != ' ' || !is_digit(line[9]) || !is_digit(line[10]) || !is_digit(line[11])) {
    return RewriteError::bad_head;
  }
  if (major != 1) return RewriteError::bad_version;
  *status = (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
  return RewriteError::ok;
}

}  // namespace

bool response_head_as_is(std::string_view raw, const ResponseRewriteOptions& opt) {
  if (opt.client_http10 || opt.close || opt.keep_alive_10) return false;
  if (raw.size() > response_head_bytes_max || !raw.starts_with("HTTP/1.1 ")) return false;
  std::string_view rest = raw;
  std::string_view status_line;
  if (!next_line(&rest, &status_line)) return false;
  // The rewrite's own field checks (obs-fold, controls): what it would refuse never passes.
  const bool plain = head_field::for_each_field(
      &rest, [](const Line& h) { return !head_field::is_hop_by_hop(h.name); });
  return plain && rest.empty();
}

RewriteError rewrite_response_head(std::string_view raw, const ResponseRewriteOptions& opt,
                                   char* out, std::size_t cap, std::size_t* out_len,
                                   ResponseFacts* facts) {
  *facts = ResponseFacts{};
  if (raw.size() > response_head_bytes_max) return RewriteError::too_large;
  std::string_view rest = raw;
  std::string_view status_line;
  if (!next_line(&rest, &status_line)) return RewriteError::bad_head;
  RewriteError err = status_line_parse(status_line, &facts->status);
  if (err != RewriteError::ok) return err;
  ResponseScan scan;
  err = response_head_scan(rest, &scan);
  if (err != RewriteError::ok) return err;
  if (opt.client_http10 && scan.transfer_encoding) {
    // Only chunked can be undone by the caller; gzip & co would reach a 1.0 client unlabelled.
    if (!scan.chunked_only || !scan.chunked_last) return RewriteError::bad_framing;
    facts->dechunk = true;
  }

  // The upstream's Connection field is replaced, where it stood and spelled as it was, by our
  // own options for the client connection (RFC 9110 §7.6.1 allows exactly that), so a response
  // the client connection keeps alive keeps its bytes: `Connection: keep-alive` stays as sent.
  const bool closing = opt.close || facts->dechunk;
  const std::string_view own = closing                                    ? "close"
                               : opt.keep_alive_10 || scan.tokens.keep_alive ? "keep-alive"
                                                                            : "";
  bool own_written = false;
  Writer w(out, cap);
  w.put("HTTP/1.1");
  w.put(status_line.substr(8));  // " 200 OK\r\n": code and reason as the upstream sent them
  (void)head_field::for_each_field(&rest, [&](const Line& h) {  // pass 1 checked the lines
    if (iequals(h.name, "connection")) {
      if (!own_written && !own.empty()) connection_put(&w, h.name, own);
      own_written = true;
      return true;
    }
    if (scan.tokens.drops(h.name)) return true;
    // De-chunked, the body is close-delimited (RFC 9112 §6.3 rule 8): neither length field
    // may stay (a Content-Length beside Transfer-Encoding is already refused by llhttp).
    if (!(facts->dechunk && head_field::is_framing(h.name))) w.put(h.whole);
    return true;
  });
  // RFC 9112 §9.6 (close) / §9.3 and RFC 2068 §19.7.1 (a 1.0 client kept alive).
  if (!own_written && (closing || opt.keep_alive_10)) connection_put(&w, "Connection", own);
  w.put("\r\n");
  if (w.overflow()) return RewriteError::too_large;
  *out_len = w.len();
  return RewriteError::ok;
}

}  // namespace tokentap
