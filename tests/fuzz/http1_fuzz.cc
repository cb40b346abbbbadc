// libFuzzer target: request framing (and response framing when the first byte's top bit is
// set). Arbitrary bytes go through HttpParser (any split, as
// receive buffers would cut them) and every head it accepts through rewrite_request_head.
// Checks: no crash or sanitizer finding, `used` never exceeds the input, a rewritten head
// always ends with an empty line and never carries a Host other than the upstream's.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "tokentap/http/http1.h"

using tokentap::HttpParser;

namespace {

// Response framing (Content-Length, chunked, close-delimited, 1xx, bodyless HEAD answers) as the
// upstream side parses it: every stop within the input, a fresh parser per response as the
// proxy does, and finish() at EOF.
void fuzz_responses(const char* p, std::size_t n, std::size_t split, bool head_request) {
  HttpParser parser;
  parser.init_response();
  parser.set_no_body(head_request);
  for (std::size_t at = 0; at < n;) {
    const std::size_t len = std::min(split, n - at);
    std::size_t used = 0;
    const HttpParser::Stop stop = parser.feed(p + at, len, &used);
    if (used > len) std::abort();
    if (stop == HttpParser::Stop::error) return;
    at += used;
    if (stop == HttpParser::Stop::message_done && parser.status() >= 200) {
      parser.init_response();
      parser.set_no_body(head_request);
    }
  }
  (void)parser.finish();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  if ((data[0] & 0x80) != 0) {
    fuzz_responses(reinterpret_cast<const char*>(data + 1), size - 1, data[0] % 17 + 1,
                   (data[0] & 0x40) != 0);
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
      char out[tokentap::head_bytes_max + 512];
      std::size_t out_len = 0;
      tokentap::HeadFacts facts;
      const auto err = tokentap::rewrite_request_head(head, {"127.0.0.1:11434", false}, out,
                                                      sizeof(out), &out_len, &facts);
      if (err == tokentap::RewriteError::ok) {
        const std::string_view rewritten(out, out_len);
        if (rewritten.size() < 4 || rewritten.substr(rewritten.size() - 4) != "\r\n\r\n") std::abort();
        const auto host = rewritten.find("\r\nHost: ");
        if (host == std::string_view::npos) std::abort();
        if (rewritten.substr(host + 8, 15) != "127.0.0.1:11434") std::abort();
      }
      in_head = false;
    } else if (stop == HttpParser::Stop::message_done) {
      head.clear();
      in_head = true;
    }
  }
  return 0;
}
