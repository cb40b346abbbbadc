// Fake upstream, request_head: the request line, headers and X-Fake-* controls parsed the way Go's
// net/http does (and rejected where it rejects), and the chunked request-body decoder at every
// read size.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <string_view>

#include "request_head.h"

namespace tokentap::fake {
namespace {

// Feeds `wire` to a ChunkedDecoder `step` bytes at a time; returns the body or "<error>".
std::string decode_chunked(std::string_view wire, std::size_t step, std::size_t* left) {
  ChunkedDecoder d;
  std::string body;
  std::string pending;
  for (std::size_t at = 0; at < wire.size(); at += step) {
    pending += wire.substr(at, step);
    for (;;) {
      const auto s = d.step(pending);
      if (s.error) return "<error>";
      body += s.data;
      pending.erase(0, s.consumed);
      if (s.done) {
        *left = pending.size() + (wire.size() - std::min(wire.size(), at + step));
        return body;
      }
      if (s.consumed == 0) break;
    }
  }
  return "<incomplete>";
}

TEST(RequestHead, ParsesRequestLineHeadersAndControls) {
  const std::string head =
      "POST /api/chat?x=1 HTTP/1.1\r\nHost: 127.0.0.1:9\r\ncontent-length: 12\r\n"
      "Connection: keep-alive, Close\r\nExpect: 100-continue\r\nX-Fake-Tokens: 7\r\n"
      "x-fake-error: midstream\r\nX-Fake-Abort-After: 3\r\nX-Fake-Think: 1\r\n\r\n";
  ASSERT_EQ(find_head_end(head), head.size());
  ASSERT_EQ(find_head_end(head.substr(0, head.size() - 1)), 0u);
  RequestHead r;
  ASSERT_EQ(parse_request_head(head, &r), HeadStatus::ok);
  EXPECT_EQ(r.method, "POST");
  EXPECT_EQ(r.target, "/api/chat?x=1");
  EXPECT_EQ(r.path, "/api/chat");
  EXPECT_EQ(r.query, "x=1");
  EXPECT_EQ(r.host, "127.0.0.1:9");
  EXPECT_EQ(r.content_length, 12);
  EXPECT_TRUE(r.connection_close);
  EXPECT_TRUE(r.expect_continue);
  EXPECT_EQ(r.controls.tokens, 7u);
  EXPECT_EQ(r.controls.error, FakeError::midstream);
  EXPECT_EQ(r.controls.abort_after, 3);
  EXPECT_TRUE(r.controls.think);
  EXPECT_FALSE(r.controls.tools);
  EXPECT_EQ(r.controls.close, CloseMode::none);
}

TEST(RequestHead, FakeCloseHeader) {
  for (const auto& [value, mode] : {std::pair{"before-head", CloseMode::before_head},
                                    {"after-head", CloseMode::after_head},
                                    {"mid-body", CloseMode::mid_body},
                                    {"sideways", CloseMode::none}}) {
    const std::string head = std::string("GET / HTTP/1.1\r\nHost: h\r\nX-Fake-Close: ") + value +
                             "\r\nX-Fake-Close-After-Response: 1\r\n\r\n";
    RequestHead r;
    ASSERT_EQ(parse_request_head(head, &r), HeadStatus::ok) << value;
    EXPECT_EQ(r.controls.close, mode) << value;
    EXPECT_TRUE(r.controls.close_after) << value;  // a different header
  }
}

TEST(RequestHead, RejectsWhatGoRejects) {
  RequestHead r;
  EXPECT_EQ(parse_request_head("GET / HTTP/1.1\r\n\r\n", &r), HeadStatus::missing_host);
  EXPECT_EQ(parse_request_head("GET / HTTP/1.0\r\n\r\n", &r), HeadStatus::ok);
  EXPECT_TRUE(r.http10());
  EXPECT_EQ(parse_request_head("GET / HTTP/2.0\r\nHost: a\r\n\r\n", &r), HeadStatus::bad_version);
  EXPECT_EQ(parse_request_head("GET /\r\nHost: a\r\n\r\n", &r), HeadStatus::bad_request);
  EXPECT_EQ(parse_request_head("GET / HTTP/1.1\r\nHost a\r\n\r\n", &r), HeadStatus::bad_request);
  EXPECT_EQ(parse_request_head("GET / HTTP/1.1\r\nHost: a\r\n fold\r\n\r\n", &r),
            HeadStatus::bad_request);
  EXPECT_EQ(parse_request_head("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n"
                               "Content-Length: 2\r\n\r\n",
                               &r),
            HeadStatus::bad_request);
  EXPECT_EQ(parse_request_head("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", &r),
            HeadStatus::unsupported_te);
  ASSERT_EQ(parse_request_head("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
                               "Transfer-Encoding: chunked\r\n\r\n",
                               &r),
            HeadStatus::ok);
  EXPECT_TRUE(r.chunked);
  EXPECT_EQ(r.content_length, -1);  // chunked wins
}

TEST(ChunkedDecoder, DecodesAtEveryReadSize) {
  const std::string wire = "5\r\nhello\r\nA;ext=1\r\n0123456789\r\n0\r\nTrailer: x\r\n\r\nNEXT";
  for (std::size_t step = 1; step <= wire.size(); ++step) {
    std::size_t left = 0;
    EXPECT_EQ(decode_chunked(wire, step, &left), "hello0123456789") << "step " << step;
    EXPECT_EQ(left, 4u) << "step " << step;  // the pipelined "NEXT" is not consumed
  }
  std::size_t left = 0;
  EXPECT_EQ(decode_chunked("zz\r\n", 1, &left), "<error>");
  EXPECT_EQ(decode_chunked("3\r\nabcX\r\n", 1, &left), "<error>");
  EXPECT_EQ(decode_chunked("1111111111111111\r\n", 1, &left), "<error>");  // too large
  EXPECT_EQ(decode_chunked("3\r\nab", 1, &left), "<incomplete>");
}

}  // namespace
}  // namespace tokentap::fake
