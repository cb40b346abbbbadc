// Wire: how Go's net/http (as used by Ollama through gin) frames a response, reproduced byte for
// byte (wire-format.md §1.2-1.5):
//  - status line "HTTP/1.x <code> <StatusText>" ("status code N" when Go has no text);
//  - the handler's headers sorted by key, then Date, then Content-Length, Connection: close and
//    Transfer-Encoding: chunked, in that order;
//  - the 2048-byte rule: one write ≤ 2048 bytes before the handler returns gets Content-Length,
//    a larger one goes out as a single chunk; every flush is one chunk; lowercase hex sizes;
//    "0\r\n\r\n" with no trailers ends the body.
// Also the per-worker Clock: Date header, created_at/created values and response ids, fixed in
// deterministic mode so identical requests give identical bytes.
#pragma once

#include <cstdint>
#include <string_view>

#include "byte_buf.h"

namespace tokentap::fake {

constexpr std::size_t go_chunking_buffer_bytes = 2048;  // net/http bufferBeforeChunkingSize
constexpr std::string_view last_chunk = "0\r\n\r\n";

// Facts about the request that shape every response head.
struct ReplyMeta {
  bool http10 = false;
  bool head_method = false;
  bool close = false;  // the connection closes after this response (Connection: close on 1.1)
};

// What the handler set through w.Header(); written sorted by key. Only the headers Ollama (and
// the fake's own endpoints) ever set are representable, in their sorted order.
struct HandlerHeaders {
  std::string_view allow;            // 405 answers (gin)
  bool stream_headers = false;       // Cache-Control: no-cache + Connection: keep-alive
  std::int64_t content_length = -1;  // set by the handler itself (GET /fake/blob)
  std::string_view content_type;     // empty: none
  std::int64_t fake_bytes = -1;      // POST /api/blobs answers
  bool has_fake_checksum = false;
  std::uint64_t fake_checksum = 0;
};

enum class Framing : std::uint8_t {
  content_length,   // Content-Length: N, then the body
  chunked,          // Transfer-Encoding: chunked
  close_delimited,  // HTTP/1.0 without a length: the body ends when the connection closes
  head_only,        // no body follows (HEAD, or nothing was written for a HEAD)
};

[[nodiscard]] std::string_view status_text(int status);

// Go's framing for a body handed to one Write() before the handler returned. For HEAD the body
// is never sent (callers skip write_single_body), only its Content-Length when Go would set it.
[[nodiscard]] Framing single_write_framing(const ReplyMeta& meta, std::size_t body_bytes);
// Go's framing for a response that flushes before the handler returns (every stream).
[[nodiscard]] Framing flushed_framing(const ReplyMeta& meta);

void write_head(ByteBuf& out, const ReplyMeta& meta, int status, const HandlerHeaders& headers,
                Framing framing, std::size_t content_length, std::string_view date);
// The body of a single-write response in its framing (chunked: one chunk plus terminator).
void write_single_body(ByteBuf& out, Framing framing, std::string_view body);
void write_chunk(ByteBuf& out, std::string_view payload);
// Go's answer to a request it cannot parse ("400 Bad Request", "431 Request Header Fields Too
// Large", ...): text/plain, Connection: close, the message as body, no Date.
void write_go_error(ByteBuf& out, std::string_view public_error);

// Time values and ids as one response sees them. Self-contained (no views into the Clock), so a
// stream keeps its own values while the worker's Clock moves on.
struct Stamp {
  std::int64_t created = 0;  // unix seconds
  std::uint32_t id3 = 0;     // rand.Intn(999): chatcmpl-N, cmpl-N
  std::uint32_t id6 = 0;     // rand.Intn(999999): resp_N, msg_N, rs_N, fc_N
  std::uint8_t created_at_len = 0;
  char created_at_buf[40] = {};
  char hex24_buf[24] = {};      // msg_<hex24> for Anthropic messages
  char hex24_req_buf[24] = {};  // req_<hex24> for Anthropic error envelopes

  // RFC 3339 with nanoseconds, trailing zeros trimmed (Go's time.Time JSON form).
  [[nodiscard]] std::string_view created_at() const { return {created_at_buf, created_at_len}; }
  [[nodiscard]] std::string_view hex24() const { return {hex24_buf, 24}; }
  [[nodiscard]] std::string_view hex24_req() const { return {hex24_req_buf, 24}; }
};

class Clock {
 public:
  explicit Clock(bool deterministic);
  // Fresh values for one response (wall clock and random ids unless deterministic).
  [[nodiscard]] Stamp stamp();
  // The Date header value, "Mon, 24 Aug 2026 14:00:11 GMT"; valid until the next call.
  [[nodiscard]] std::string_view date();

 private:
  [[nodiscard]] std::uint64_t next_random();

  bool deterministic_;
  std::int64_t date_s_ = -1;
  std::uint64_t rng_;
  std::size_t date_len_ = 0;
  char date_buf_[40] = {};
};

}  // namespace tokentap::fake
