// http1: HTTP/1.1 framing with llhttp, and the rewrite of request and response heads.
//
// HttpParser wraps one llhttp parser (request or response side of a connection). It pauses at the
// end of a head and at the end of a message so the caller learns exactly where each ends inside a
// receive buffer: bytes before the pause belong to this message, bytes after it to the next one.
// Body bytes are forwarded raw (chunk framing included); llhttp only tracks where they end.
// Versions: llhttp 8 accepts only 0.9, 1.0, 1.1 and 2.0 unless LENIENT_VERSION is set; it is
// set, so that 1.2+ can be treated as 1.1 (RFC 9112 §2.3) and other majors answered 505 by the
// rewrite instead of a 400 from the parser. Upgrade: the proxy strips Upgrade and stays on
// HTTP/1.1, so a request that asked for one ends normally and the next request parses; a CONNECT
// request or a 101 response leaves llhttp in HPE_PAUSED_UPGRADE, reported as Stop::error.
// A 1xx, 204 or 304 response ends at its head whatever its length fields say (RFC 9112 §6.3
// rule 1), like an answer to HEAD.
//
// rewrite_request_head (request_head.cc) turns the client's head into the upstream's: the
// request line with the origin-form target and our own version (HTTP/1.1, RFC 9110 §2.5), the
// hop-by-hop set of RFC 9110 §7.6.1 and every Connection-nominated field removed, Host replaced
// by the upstream's (wire-format §1.6: a loopback Ollama answers 403 to a foreign Host) unless
// --preserve-host, Max-Forwards decremented for OPTIONS/TRACE (§7.6.2), `Via: 1.x tokentap`
// appended (§7.6.3). `Connection: close` is kept, so the proxy does not pool that upstream.
// Everything a conforming server must refuse (RFC 9112 §3.2, §6.1) is a RewriteError that
// refusal_of maps to the status the proxy answers.
//
// rewrite_response_head (response_head.cc) turns the upstream's head into the client's: our own
// version on the status line, hop-by-hop fields removed (the upstream's Connection replaced where
// it stood by our own options), every other field byte for byte in order (SDKs see Ollama's
// headers), and for an HTTP/1.0 client a chunked body announced as close-delimited (the caller
// de-chunks it). docs/http-conformance.md lists every rule with its test.
#pragma once

#include <llhttp.h>

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace tokentap {

constexpr std::size_t head_bytes_max = 15 * 1024;           // 431 beyond this
constexpr std::size_t response_head_bytes_max = 15 * 1024;  // 502 beyond this (issue 20)
constexpr std::size_t target_bytes_max = 8 * 1024;          // 414 beyond this
// Connection options a head may nominate; more are refused (400 / 502), never half-removed.
constexpr std::size_t connection_tokens_max = 32;
static_assert(target_bytes_max < head_bytes_max);

// Receives the de-chunked body bytes of a message (metering): fn(ctx, data, len).
using BodySinkFn = void (*)(void* ctx, const char* data, std::size_t len);

class HttpParser {
 public:
  enum class Stop : std::uint8_t { need_more, head_done, message_done, error };

  void init_request();
  void init_response();
  // Parses up to n bytes, stopping after the head or after the message. *used is how many
  // bytes belong to what was parsed; the rest must be fed again (they start the next part).
  // On error, *used is the valid prefix before the offending byte.
  [[nodiscard]] Stop feed(const char* data, std::size_t n, std::size_t* used);
  // At EOF: completes a close-delimited message. message_done or error.
  [[nodiscard]] Stop finish();

  // Response side: the request was HEAD, so the response has no body whatever it says.
  void set_no_body(bool v) { no_body_ = v; }
  void set_sink(BodySinkFn fn, void* ctx) {
    sink_ = fn;
    sink_ctx_ = ctx;
  }

  bool keep_alive() const { return llhttp_should_keep_alive(&parser_) != 0; }
  bool chunked() const { return (parser_.flags & F_CHUNKED) != 0; }
  bool has_content_length() const { return (parser_.flags & F_CONTENT_LENGTH) != 0; }
  // The body's length from Content-Length; 0 for a bodyless response (see bodyless()).
  std::uint64_t content_length() const { return content_length_; }
  // Body bytes of a Content-Length message not parsed yet (llhttp counts them down).
  std::uint64_t body_remaining() const { return bodyless_ ? 0 : parser_.content_length; }
  // Response side: no body follows this head whatever its fields say (RFC 9112 §6.3 rule 1:
  // an answer to HEAD, 1xx, 204, 304). has_content_length() and chunked() still report the
  // fields as sent; content_length() and body_remaining() are 0.
  bool bodyless() const { return bodyless_; }
  int status() const { return parser_.status_code; }
  std::uint8_t method() const { return parser_.method; }
  std::uint8_t http_major() const { return parser_.http_major; }
  std::uint8_t http_minor() const { return parser_.http_minor; }
  // The message asked for a protocol switch (Connection: upgrade + Upgrade, CONNECT, or a 101
  // response). Stays true after the message ends, until the next head. A request's Upgrade is
  // stripped by the rewrite, so its end is reported normally and the next request parses.
  bool upgrade() const { return upgrade_; }
  // Request side: the method is CONNECT (the bytes after its head are a tunnel, never parsed).
  bool connect() const { return request_ && parser_.method == HTTP_CONNECT; }
  const char* error_reason() const { return llhttp_get_error_reason(&parser_); }
  llhttp_errno_t error_code() const { return llhttp_get_errno(&parser_); }

 private:
  static int on_headers_complete(llhttp_t* p);
  static int on_message_complete(llhttp_t* p);
  static int on_body(llhttp_t* p, const char* at, std::size_t len);
  static const llhttp_settings_t settings_;
  void init(llhttp_type_t type);

  llhttp_t parser_{};
  std::uint64_t content_length_ = 0;  // captured at head end (llhttp counts it down)
  BodySinkFn sink_ = nullptr;
  void* sink_ctx_ = nullptr;
  bool no_body_ = false;
  bool request_ = false;
  bool upgrade_ = false;
  bool bodyless_ = false;
  Stop pending_ = Stop::need_more;
};

struct RewriteOptions {
  std::string_view upstream_host;  // "127.0.0.1:11434"
  bool preserve_host = false;
  std::int64_t content_length = -1;  // >= 0: replace Content-Length (the body was edited)
  bool drop_expect = false;          // the proxy answered Expect: 100-continue itself
};

// Facts about a request head that the proxy acts on, read while rewriting it.
struct HeadFacts {
  std::string_view method;
  // The origin-form path and query the upstream receives (for an absolute-form request, the
  // part after the authority), or "*"; points into the raw head.
  std::string_view target;
  // The client's idea of the host: the absolute-form target's authority, else the Host value
  // (empty when an HTTP/1.0 request has none). Points into the raw head.
  std::string_view host;
  bool connection_close = false;  // the client sent `Connection: close`
  bool expect_continue = false;   // HTTP/1.1 `Expect: 100-continue` (ignored from 1.0)
  bool has_host = false;
  bool content_encoded = false;  // Content-Encoding present (body not inspectable)
  std::string_view content_type;
  bool http10 = false;             // the client spoke HTTP/1.0
  bool keep_alive_10 = false;      // ... and sent `Connection: keep-alive`
  bool max_forwards_zero = false;  // OPTIONS/TRACE with Max-Forwards: 0: the proxy answers
  bool upgrade = false;            // the client sent Upgrade (stripped; HTTP/1.1 is kept)
  bool connect = false;            // method CONNECT (refused: method_not_allowed)
  bool absolute_form = false;      // the target was absolute-form (http://host/path)
  // The X-Tokentap-Backend value: the backend the client pins this request to (issue 16); the
  // field itself is not forwarded. Points into the raw head; empty when absent.
  std::string_view backend_pin;
};

inline constexpr std::string_view backend_pin_field = "x-tokentap-backend";

enum class RewriteError : std::uint8_t {
  ok,
  too_large,                    // head over head_bytes_max (or the output capacity): 431
  bad_head,                     // field syntax (obs-fold, space before colon, bare LF…): 400
  bad_version,                  // major version other than 1: 505 (response side: 502)
  duplicate_host,               // two Host lines, none in HTTP/1.1, or an invalid value: 400
  bad_target,                   // fragment, bad absolute-form, "*" not for OPTIONS…: 400
  bad_framing,                  // Transfer-Encoding in 1.0, a nominated framing field: 400
  too_many_connection_options,  // more than connection_tokens_max nominated fields: 400
  method_not_allowed,           // CONNECT or an authority-form target: 405 with Allow
  target_too_long,              // target over target_bytes_max: 414
};

// What the proxy answers for a refused request head. message starts "tokentap: " and holds no
// quote or backslash (it goes into a JSON string); allow is the Allow value of a 405, else null.
struct HttpRefusal {
  int status;
  const char* reason;
  const char* message;
  const char* allow = nullptr;
};

// Not meaningful for RewriteError::ok (returns a 500 so a misuse is visible).
[[nodiscard]] HttpRefusal refusal_of(RewriteError e);

// raw: a complete head (request line .. blank line) already validated by llhttp.
// Writes the upstream head into out (capacity cap) and its length into *out_len.
// *facts is filled as far as the head was read, also when an error is returned.
[[nodiscard]] RewriteError rewrite_request_head(std::string_view raw, const RewriteOptions& opt,
                                                char* out, std::size_t cap, std::size_t* out_len,
                                                HeadFacts* facts);

struct ResponseRewriteOptions {
  bool client_http10 = false;  // the client spoke HTTP/1.0
  bool close = false;          // the proxy closes the client after this response
  bool keep_alive_10 = false;  // a 1.0 client kept alive: add `Connection: keep-alive`
};

struct ResponseFacts {
  int status = 0;
  bool dechunk = false;  // client_http10 and the response was chunked: Transfer-Encoding was
                         // dropped; the caller sends the de-chunked body, delimited by close
};

// True when rewrite_response_head would return `raw` unchanged, so the caller may forward the
// received bytes by reference: an HTTP/1.1 status line, no hop-by-hop field (Connection,
// Keep-Alive, Proxy-Connection, TE, Upgrade) and nothing to add (not closing, not a 1.0
// client). Ollama's own heads pass; one scan of the field names, no copy. `raw` was accepted by
// llhttp, which checked the field syntax.
[[nodiscard]] bool response_head_as_is(std::string_view raw, const ResponseRewriteOptions& opt);

// raw: one complete response head (status line .. blank line) llhttp already accepted, final or
// 1xx (the caller never forwards a 1xx to a 1.0 client). Errors: too_large (over
// response_head_bytes_max or cap), bad_version (major != 1), bad_head, bad_framing (a nominated
// framing field; a 1.0 client and a transfer coding other than chunked),
// too_many_connection_options. The caller answers each with 502.
[[nodiscard]] RewriteError rewrite_response_head(std::string_view raw,
                                                 const ResponseRewriteOptions& opt, char* out,
                                                 std::size_t cap, std::size_t* out_len,
                                                 ResponseFacts* facts);

}  // namespace tokentap
