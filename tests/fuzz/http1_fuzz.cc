// libFuzzer target: request framing (and response framing when the first byte's top bit is
// set). Arbitrary bytes go through HttpParser (any split, as receive buffers would cut them),
// every request head it accepts through rewrite_request_head and every response head through
// rewrite_response_head (for a 1.1 client, and a 1.0 one when bit 0x20 is set).
// Checks: no crash or sanitizer finding, `used` never exceeds the input; a rewritten request
// head says HTTP/1.1, ends with an empty line, carries exactly one Host (the upstream's) and no
// hop-by-hop field; a rewritten response head says HTTP/1.1, ends with an empty line, and
// carries no Transfer-Encoding when it is to be de-chunked.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "tokentap/http/http1.h"

// tests/fuzz/build.sh compiles src/http/http1.cc only; the head rewrites live beside it since
// http1.cc was split by concern. Including them here keeps the script (not this target's file)
// unchanged; once build.sh compiles src/http/*.cc, these two lines go.
#include "../../src/http/request_head.cc"
#include "../../src/http/response_head.cc"

using tokentap::HttpParser;

namespace {

bool contains_field(std::string_view head, std::string_view name_colon) {
  // Case-insensitive search for "\r\n<name>:" at a line start.
  for (std::size_t at = head.find("\r\n"); at != std::string_view::npos;
       at = head.find("\r\n", at + 2)) {
    if (tokentap::head_field::iequals(head.substr(at + 2, name_colon.size()), name_colon)) {
      return true;
    }
  }
  return false;
}

void check_request_head(const std::string& head) {
  char out[tokentap::head_bytes_max + 512];
  std::size_t out_len = 0;
  tokentap::HeadFacts facts;
  const auto err = tokentap::rewrite_request_head(head, {"127.0.0.1:11434", false}, out,
                                                  sizeof(out), &out_len, &facts);
  if (err != tokentap::RewriteError::ok) {
    (void)tokentap::refusal_of(err);
    return;
  }
  const std::string_view rewritten(out, out_len);
  if (rewritten.size() < 4 || rewritten.substr(rewritten.size() - 4) != "\r\n\r\n") std::abort();
  const auto line_end = rewritten.find("\r\n");
  if (rewritten.substr(line_end - 9, 9) != " HTTP/1.1") std::abort();
  const auto host = rewritten.find("\r\nHost: ");
  if (host == std::string_view::npos) std::abort();
  if (rewritten.substr(host + 8, 17) != "127.0.0.1:11434\r\n") std::abort();
  if (rewritten.find("\r\nHost: ", host + 1) != std::string_view::npos) std::abort();
  for (const char* hop : {"keep-alive:", "te:", "upgrade:", "proxy-connection:"}) {
    if (contains_field(rewritten, hop)) std::abort();
  }
  if (facts.http10 && contains_field(rewritten, "transfer-encoding:")) std::abort();
}

void check_response_head(const std::string& head, bool client_http10) {
  char out[tokentap::response_head_bytes_max + 512];
  std::size_t out_len = 0;
  tokentap::ResponseFacts facts;
  tokentap::ResponseRewriteOptions opt;
  opt.client_http10 = client_http10;
  opt.keep_alive_10 = client_http10;
  const auto err = tokentap::rewrite_response_head(head, opt, out, sizeof(out), &out_len, &facts);
  if (err != tokentap::RewriteError::ok) return;
  const std::string_view rewritten(out, out_len);
  if (rewritten.substr(0, 9) != "HTTP/1.1 ") std::abort();
  if (rewritten.size() < 4 || rewritten.substr(rewritten.size() - 4) != "\r\n\r\n") std::abort();
  if (facts.dechunk && contains_field(rewritten, "transfer-encoding:")) std::abort();
  for (const char* hop : {"keep-alive:", "te:", "upgrade:", "proxy-connection:"}) {
    if (contains_field(rewritten, hop)) std::abort();
  }
}

// Response framing (Content-Length, chunked, close-delimited, 1xx, bodyless HEAD answers) as the
// upstream side parses it: every stop within the input, a fresh parser per response as the
// proxy does, and finish() at EOF.
void fuzz_responses(const char* p, std::size_t n, std::size_t split, bool head_request,
                    bool client_http10) {
  HttpParser parser;
  parser.init_response();
  parser.set_no_body(head_request);
  std::string head;
  bool in_head = true;
  for (std::size_t at = 0; at < n;) {
    const std::size_t len = std::min(split, n - at);
    std::size_t used = 0;
    const HttpParser::Stop stop = parser.feed(p + at, len, &used);
    if (used > len) std::abort();
    if (stop == HttpParser::Stop::error) return;
    if (in_head) head.append(p + at, used);
    at += used;
    if (stop == HttpParser::Stop::head_done) {
      check_response_head(head, client_http10);
      in_head = false;
    }
    if (stop == HttpParser::Stop::message_done) {
      head.clear();
      in_head = true;
      if (parser.status() >= 200) {
        parser.init_response();
        parser.set_no_body(head_request);
      }
    }
  }
  (void)parser.finish();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  if ((data[0] & 0x80) != 0) {
    fuzz_responses(reinterpret_cast<const char*>(data + 1), size - 1, data[0] % 17 + 1,
                   (data[0] & 0x40) != 0, (data[0] & 0x20) != 0);
    return 0;
  }
  const std::size_t split = data[0] % 17 + 1;  // feed pieces of 1..17 bytes
  const char* p = reinterpret_cast<const char*>(data + 1);
  const std::size_t n = size - 1;
  HttpParser parser;
  parser.init_request();
  std::string head;
  bool in_head = true;
  for (std::size_t at = 0; at < n;) {
    const std::size_t len = std::min(split, n - at);
    std::size_t used = 0;
    const HttpParser::Stop stop = parser.feed(p + at, len, &used);
    if (used > len) std::abort();
    if (stop == HttpParser::Stop::error) return 0;
    if (in_head) head.append(p + at, used);
    at += used;
    if (stop == HttpParser::Stop::head_done) {
      check_request_head(head);
      in_head = false;
    } else if (stop == HttpParser::Stop::message_done) {
      head.clear();
      in_head = true;
    }
  }
  return 0;
}
