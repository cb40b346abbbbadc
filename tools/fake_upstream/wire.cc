// Wire: Go net/http response heads and body framing; the per-worker Clock (see wire.h).
#include "wire.h"

#include <time.h>

#include <cstdio>
#include <cstring>

namespace tokentap::fake {
namespace {

constexpr std::string_view fixed_date = "Mon, 24 Aug 2026 14:00:11 GMT";
constexpr std::string_view fixed_created_at = "2026-08-24T14:00:11.519610579Z";
constexpr std::int64_t fixed_created = 1787580011;  // 2026-08-24T14:00:11Z
constexpr std::uint32_t fixed_id3 = 547;
constexpr std::uint32_t fixed_id6 = 482913;
constexpr std::string_view fixed_hex24 = "01a7c3e95b2d4f6801a7c3e9";
constexpr std::string_view fixed_hex24_req = "3c91e0b7a5d24f6e8b17c2a0";

void put_hex24(char* out, std::uint64_t a, std::uint64_t b) {
  constexpr char digits[] = "0123456789abcdef";
  for (int i = 0; i < 16; ++i) out[i] = digits[(a >> (60 - 4 * i)) & 0xf];
  for (int i = 0; i < 8; ++i) out[16 + i] = digits[(b >> (28 - 4 * i)) & 0xf];
}

}  // namespace

std::string_view status_text(int status) {
  switch (status) {
    case 100:
      return "Continue";
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 202:
      return "Accepted";
    case 204:
      return "No Content";
    case 301:
      return "Moved Permanently";
    case 304:
      return "Not Modified";
    case 307:
      return "Temporary Redirect";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 409:
      return "Conflict";
    case 413:
      return "Request Entity Too Large";
    case 422:
      return "Unprocessable Entity";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    case 505:
      return "HTTP Version Not Supported";
    default:
      return {};
  }
}

Framing single_write_framing(const ReplyMeta& meta, std::size_t body_bytes) {
  // HEAD: Go still sets Content-Length for a small non-empty write, and sends no body.
  if (meta.head_method) {
    return body_bytes > 0 && body_bytes <= go_chunking_buffer_bytes ? Framing::content_length
                                                                    : Framing::head_only;
  }
  if (body_bytes <= go_chunking_buffer_bytes) return Framing::content_length;
  return meta.http10 ? Framing::close_delimited : Framing::chunked;
}

Framing flushed_framing(const ReplyMeta& meta) {
  if (meta.head_method) return Framing::head_only;
  return meta.http10 ? Framing::close_delimited : Framing::chunked;
}

void write_head(ByteBuf& out, const ReplyMeta& meta, int status, const HandlerHeaders& h,
                Framing framing, std::size_t content_length, std::string_view date) {
  out.append(meta.http10 ? "HTTP/1.0 " : "HTTP/1.1 ");
  out.append_u64(static_cast<std::uint64_t>(status));
  const std::string_view text = status_text(status);
  if (text.empty()) {
    out.append(" status code ");
    out.append_u64(static_cast<std::uint64_t>(status));
  } else {
    out.append(' ');
    out.append(text);
  }
  out.append("\r\n");
  // Handler headers, sorted by key (Go's Header.WriteSubset). Go drops the handler's own
  // Connection header when it decided to close.
  if (!h.allow.empty()) {
    out.append("Allow: ");
    out.append(h.allow);
    out.append("\r\n");
  }
  if (h.stream_headers) out.append("Cache-Control: no-cache\r\n");
  if (h.stream_headers && !meta.close) out.append("Connection: keep-alive\r\n");
  if (h.content_length >= 0) {
    out.append("Content-Length: ");
    out.append_i64(h.content_length);
    out.append("\r\n");
  }
  if (!h.content_type.empty()) {
    out.append("Content-Type: ");
    out.append(h.content_type);
    out.append("\r\n");
  }
  if (h.fake_bytes >= 0) {
    out.append("X-Fake-Bytes: ");
    out.append_i64(h.fake_bytes);
    out.append("\r\n");
  }
  if (h.has_fake_checksum) {
    out.append("X-Fake-Checksum: ");
    out.append_hex(h.fake_checksum);
    out.append("\r\n");
  }
  // extraHeader.Write: Date, Content-Length, Connection, Transfer-Encoding.
  out.append("Date: ");
  out.append(date);
  out.append("\r\n");
  if (h.content_length < 0 && framing == Framing::content_length) {
    out.append("Content-Length: ");
    out.append_u64(content_length);
    out.append("\r\n");
  }
  if (meta.close && !meta.http10) out.append("Connection: close\r\n");
  if (framing == Framing::chunked) out.append("Transfer-Encoding: chunked\r\n");
  out.append("\r\n");
}

void write_single_body(ByteBuf& out, Framing framing, std::string_view body) {
  switch (framing) {
    case Framing::content_length:
    case Framing::close_delimited:
      out.append(body);
      return;
    case Framing::chunked:
      if (!body.empty()) write_chunk(out, body);
      out.append(last_chunk);
      return;
    case Framing::head_only:
      return;
  }
}

void write_chunk(ByteBuf& out, std::string_view payload) {
  out.append_hex(payload.size());
  out.append("\r\n");
  out.append(payload);
  out.append("\r\n");
}

void write_go_error(ByteBuf& out, std::string_view public_error) {
  out.append("HTTP/1.1 ");
  out.append(public_error);
  out.append("\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n");
  out.append(public_error);
}

Clock::Clock(bool deterministic) : deterministic_(deterministic) {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  rng_ = static_cast<std::uint64_t>(ts.tv_nsec) * 0x9E3779B97F4A7C15ull ^
         reinterpret_cast<std::uintptr_t>(this);
  if (rng_ == 0) rng_ = 1;
}

std::uint64_t Clock::next_random() {  // xorshift64*: ids only, not security
  rng_ ^= rng_ >> 12;
  rng_ ^= rng_ << 25;
  rng_ ^= rng_ >> 27;
  return rng_ * 0x2545F4914F6CDD1Dull;
}

std::string_view Clock::date() {
  if (deterministic_) return fixed_date;
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  if (ts.tv_sec != date_s_) {  // Go's Date has second resolution: format once per second
    date_s_ = ts.tv_sec;
    const time_t t = ts.tv_sec;
    tm utc{};
    gmtime_r(&t, &utc);
    date_len_ = strftime(date_buf_, sizeof(date_buf_), "%a, %d %b %Y %H:%M:%S GMT", &utc);
  }
  return {date_buf_, date_len_};
}

Stamp Clock::stamp() {
  Stamp s;
  if (deterministic_) {
    s.created = fixed_created;
    s.id3 = fixed_id3;
    s.id6 = fixed_id6;
    std::memcpy(s.created_at_buf, fixed_created_at.data(), fixed_created_at.size());
    s.created_at_len = static_cast<std::uint8_t>(fixed_created_at.size());
    std::memcpy(s.hex24_buf, fixed_hex24.data(), 24);
    std::memcpy(s.hex24_req_buf, fixed_hex24_req.data(), 24);
    return s;
  }
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  const time_t t = ts.tv_sec;
  tm utc{};
  gmtime_r(&t, &utc);
  std::size_t n = strftime(s.created_at_buf, sizeof(s.created_at_buf), "%Y-%m-%dT%H:%M:%S", &utc);
  if (ts.tv_nsec != 0) {  // Go's RFC3339Nano: up to 9 digits, trailing zeros trimmed
    char frac[16];
    int len = std::snprintf(frac, sizeof(frac), ".%09ld", static_cast<long>(ts.tv_nsec));
    while (len > 1 && frac[len - 1] == '0') --len;
    std::memcpy(s.created_at_buf + n, frac, static_cast<std::size_t>(len));
    n += static_cast<std::size_t>(len);
  }
  s.created_at_buf[n++] = 'Z';
  s.created_at_len = static_cast<std::uint8_t>(n);
  s.created = ts.tv_sec;
  s.id3 = static_cast<std::uint32_t>(next_random() % 999);
  s.id6 = static_cast<std::uint32_t>(next_random() % 999999);
  put_hex24(s.hex24_buf, next_random(), next_random());
  put_hex24(s.hex24_req_buf, next_random(), next_random());
  return s;
}

}  // namespace tokentap::fake
