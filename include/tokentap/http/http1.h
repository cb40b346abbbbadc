// http1: HTTP/1.1 framing with llhttp, and the rewrite of a request head for the upstream.
//
// HttpParser wraps one llhttp parser (request or response side of a connection). It pauses at the
// end of a head and at the end of a message so the caller learns exactly where each ends inside a
// receive buffer: bytes before the pause belong to this message, bytes after it to the next one.
// Body bytes are forwarded raw (chunk framing included); llhttp only tracks where they end.
//
// rewrite_request_head turns the client's head into the upstream's: same request line and
// headers, with the hop-by-hop set of RFC 9110 §7.6.1 removed and Host replaced by the upstream's
// (wire-format §1.6: a loopback Ollama answers 403 to a foreign Host) unless --preserve-host.
// `Connection: close` and the version are kept, so Ollama frames and closes exactly as it would
// for the client directly; the proxy then does not pool that upstream connection.
#pragma once

#include <llhttp.h>

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace tokentap {

constexpr std::size_t head_bytes_max = 15 * 1024;  // 431 beyond this
constexpr std::size_t target_bytes_max = 8 * 1024;
constexpr std::size_t connection_tokens_max = 8;

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
  std::uint64_t content_length() const { return content_length_; }
  // Body bytes of a Content-Length message not parsed yet (llhttp counts them down).
  std::uint64_t body_remaining() const { return parser_.content_length; }
  int status() const { return parser_.status_code; }
  std::uint8_t method() const { return parser_.method; }
  std::uint8_t http_major() const { return parser_.http_major; }
  std::uint8_t http_minor() const { return parser_.http_minor; }
  bool upgrade() const { return parser_.upgrade != 0; }
  const char* error_reason() const { return llhttp_get_error_reason(&parser_); }
  llhttp_errno_t error_code() const { return llhttp_get_errno(&parser_); }

 private:
  static int on_headers_complete(llhttp_t* p);
  static int on_message_complete(llhttp_t* p);
  static int on_body(llhttp_t* p, const char* at, std::size_t len);
  static const llhttp_settings_t settings_;

  llhttp_t parser_{};
  std::uint64_t content_length_ = 0;  // captured at head end (llhttp counts it down)
  BodySinkFn sink_ = nullptr;
  void* sink_ctx_ = nullptr;
  bool no_body_ = false;
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
  std::string_view target;  // points into the raw head
  bool connection_close = false;
  bool expect_continue = false;
  bool has_host = false;
  bool content_encoded = false;  // Content-Encoding present (body not inspectable)
  std::string_view content_type;
};

enum class RewriteError : std::uint8_t { ok, too_large, bad_head };

// raw: a complete head (request line .. blank line) already validated by llhttp.
// Writes the upstream head into out (capacity cap) and its length into *out_len.
[[nodiscard]] RewriteError rewrite_request_head(std::string_view raw, const RewriteOptions& opt,
                                                char* out, std::size_t cap, std::size_t* out_len,
                                                HeadFacts* facts);

}  // namespace tokentap
