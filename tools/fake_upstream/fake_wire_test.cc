// Fake upstream, wire: Go's framing choice (the 2 KiB single-write rule, HTTP/1.0, HEAD) and the
// exact header order it writes.
#include <gtest/gtest.h>

#include <string>

#include "byte_buf.h"
#include "wire.h"

namespace tokentap::fake {
namespace {

TEST(Wire, TwoKibRuleAndHeaderOrder) {
  const ReplyMeta keep{};
  EXPECT_EQ(single_write_framing(keep, 0), Framing::content_length);
  EXPECT_EQ(single_write_framing(keep, 2048), Framing::content_length);
  EXPECT_EQ(single_write_framing(keep, 2049), Framing::chunked);
  EXPECT_EQ(single_write_framing({.http10 = true}, 2049), Framing::close_delimited);
  EXPECT_EQ(single_write_framing({.head_method = true}, 17), Framing::content_length);
  EXPECT_EQ(single_write_framing({.head_method = true}, 0), Framing::head_only);
  EXPECT_EQ(single_write_framing({.head_method = true}, 2049), Framing::head_only);

  ByteBuf out;
  HandlerHeaders h;
  h.stream_headers = true;
  h.content_type = "text/event-stream";
  write_head(out, {.close = true}, 200, h, Framing::chunked, 0, "D");
  EXPECT_EQ(out.view(),  // Go drops the handler's Connection and writes close after Date
            "HTTP/1.1 200 OK\r\nCache-Control: no-cache\r\nContent-Type: text/event-stream\r\n"
            "Date: D\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n");
  out.clear();
  write_head(out, {}, 499, HandlerHeaders{}, Framing::content_length, 12, "D");
  EXPECT_EQ(out.view(), "HTTP/1.1 499 status code 499\r\nDate: D\r\nContent-Length: 12\r\n\r\n");
  out.clear();
  write_chunk(out, std::string(0x3c8, 'x'));
  EXPECT_EQ(out.view().substr(0, 5), "3c8\r\n");
}

}  // namespace
}  // namespace tokentap::fake
