// Request head parsing and chunked request-body decoding for the fake upstream. Pure functions over
// bytes: no sockets, no allocation; unit-tested in tools/fake_upstream/fake_upstream_test.cc.
//
// The head parser takes a complete head (request line through the empty line) and fills a
// RequestHead whose views point into those bytes, so the caller keeps the bytes alive (Conn copies
// each head into its own buffer). It extracts what Go's net/http decides on (version, Host,
// Content-Length, Transfer-Encoding, Connection, Expect) and the X-Fake-* control headers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fake_upstream.h"

namespace tokentap::fake {

constexpr std::size_t request_head_bytes_max = 64 * 1024;
constexpr std::uint32_t fake_tokens_default = 5;
constexpr std::uint32_t fake_tokens_max = 10'000'000;
constexpr std::uint32_t fake_delay_ms_max = 600'000;

enum class FakeError : std::uint8_t { none, before, midstream };

// The X-Fake-* request headers: how the fake should answer this request.
struct Controls {
  std::uint32_t tokens = fake_tokens_default;  // X-Fake-Tokens: completion tokens / stream pieces
  std::int64_t prompt_tokens = -1;             // X-Fake-Prompt-Tokens; -1: derived from the body
  std::uint32_t delay_ms = 0;                  // X-Fake-Delay-Ms: before every chunk
  FakeError error = FakeError::none;           // X-Fake-Error: before | midstream
  std::int64_t abort_after = -1;               // X-Fake-Abort-After: chunks before an RST
  CloseMode close = CloseMode::none;           // X-Fake-Close: before-head|after-head|mid-body
  bool close_after = false;                    // X-Fake-Close-After-Response: 1
  std::uint16_t status = 0;                    // X-Fake-Status: override for non-stream answers
  bool think = false;                          // X-Fake-Think: 1
  bool tools = false;                          // X-Fake-Tools: 1
};

struct RequestHead {
  std::string_view method;
  std::string_view target;  // as sent: path plus query
  std::string_view path;    // target before '?'
  std::string_view query;   // after '?', empty if none
  int minor_version = 1;    // HTTP/1.<minor>
  std::string_view host;
  bool has_host = false;
  bool chunked = false;  // Transfer-Encoding: chunked
  std::int64_t content_length = -1;
  bool connection_close = false;  // a `close` token in Connection
  bool expect_continue = false;   // Expect: 100-continue
  std::string_view header_block;  // the header lines (after the request line), for /fake/echo
  Controls controls;

  [[nodiscard]] bool http10() const { return minor_version == 0; }
  [[nodiscard]] bool has_body() const { return chunked || content_length > 0; }
};

enum class HeadStatus : std::uint8_t {
  ok,
  bad_request,     // malformed: Go answers "400 Bad Request" and closes
  missing_host,    // HTTP/1.1 without Host: "400 Bad Request: missing required Host header"
  bad_version,     // not HTTP/1.0 or HTTP/1.1: "505 HTTP Version Not Supported"
  unsupported_te,  // Transfer-Encoding other than chunked: "501 Not Implemented"
};

// Finds the end of a head ("\r\n\r\n"); returns its length including that terminator, or 0.
[[nodiscard]] std::size_t find_head_end(std::string_view bytes);

// Parses a complete head as returned by find_head_end().
[[nodiscard]] HeadStatus parse_request_head(std::string_view head, RequestHead* out);

// Calls fn(name, value) for every header line of a RequestHead::header_block, in order.
template <typename Fn>
void for_each_header(std::string_view block, Fn&& fn) {
  while (!block.empty()) {
    const std::size_t eol = block.find("\r\n");
    const std::string_view line = block.substr(0, eol);
    block.remove_prefix(eol == std::string_view::npos ? block.size() : eol + 2);
    const std::size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) continue;
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t'))
      value.remove_prefix(1);
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
    fn(line.substr(0, colon), value);
  }
}

[[nodiscard]] bool iequals(std::string_view a, std::string_view b);

// Decodes a chunked request body incrementally. step() consumes a prefix of `in` and returns at
// most one span of body data; call it until it consumes nothing or reports done/error.
class ChunkedDecoder {
 public:
  struct Step {
    std::size_t consumed = 0;
    std::string_view data;  // body bytes found in this step (a view into `in`)
    bool done = false;      // the last chunk and the trailers were read
    bool error = false;
  };
  void reset() { *this = ChunkedDecoder{}; }
  [[nodiscard]] Step step(std::string_view in);

 private:
  enum class State : std::uint8_t {
    size,
    size_ext,
    size_lf,
    data,
    data_cr,
    data_lf,
    trailer,
    trailer_text,
    trailer_lf,
    final_lf,
    done
  };
  [[nodiscard]] Step step_size(std::string_view in);
  [[nodiscard]] Step step_trailer(std::string_view in);

  static constexpr int size_digits_max = 15;  // keeps the size below 2^60

  State state_ = State::size;
  std::uint64_t remaining_ = 0;
  int digits_ = 0;
};

}  // namespace tokentap::fake
