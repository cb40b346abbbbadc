// http1: llhttp glue (pauses at head and message end, pipelining, chunked, EOF framing, lenient
// versions, Upgrade and CONNECT). The head rewrites: request_head_test.cc, response_head_test.cc.
#include "tokentap/http/http1.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

namespace tokentap {
namespace {

TEST(HttpParser, PausesAtHeadAndMessageEndWithPipelining) {
  const std::string two =
      "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabcGET /b HTTP/1.1\r\nHost: x\r\n\r\n";
  HttpParser p;
  p.init_request();
  std::size_t used = 0;
  EXPECT_EQ(p.feed(two.data(), two.size(), &used), HttpParser::Stop::head_done);
  const std::size_t head1 = two.find("abc");
  EXPECT_EQ(used, head1);
  EXPECT_EQ(p.content_length(), 3u);
  std::size_t off = used;
  EXPECT_EQ(p.feed(two.data() + off, two.size() - off, &used), HttpParser::Stop::message_done);
  EXPECT_EQ(off + used, head1 + 3);
  off += used;
  EXPECT_EQ(p.feed(two.data() + off, two.size() - off, &used), HttpParser::Stop::head_done);
  off += used;
  EXPECT_EQ(off, two.size());
  // A bodyless message completes on an empty feed.
  EXPECT_EQ(p.feed(two.data() + off, 0, &used), HttpParser::Stop::message_done);
}

TEST(HttpParser, ChunkedResponseByteByByte) {
  const std::string resp =
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
  HttpParser p;
  p.init_response();
  bool head = false, done = false;
  for (std::size_t i = 0; i < resp.size();) {
    std::size_t used = 0;
    const auto stop = p.feed(resp.data() + i, 1, &used);
    ASSERT_NE(stop, HttpParser::Stop::error);
    head |= stop == HttpParser::Stop::head_done;
    done |= stop == HttpParser::Stop::message_done;
    i += used;
    if (stop == HttpParser::Stop::need_more) {
      ASSERT_EQ(used, 1u);
    }
  }
  EXPECT_TRUE(head);
  EXPECT_TRUE(done);
  EXPECT_TRUE(p.chunked());
  EXPECT_TRUE(p.keep_alive());
}

TEST(HttpParser, CloseDelimitedEndsAtEof) {
  const std::string resp = "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nbody";
  HttpParser p;
  p.init_response();
  std::size_t used = 0;
  EXPECT_EQ(p.feed(resp.data(), resp.size(), &used), HttpParser::Stop::head_done);
  EXPECT_EQ(p.feed(resp.data() + used, resp.size() - used, &used), HttpParser::Stop::need_more);
  EXPECT_EQ(p.finish(), HttpParser::Stop::message_done);
  EXPECT_FALSE(p.keep_alive());
}

TEST(HttpParser, TruncatedContentLengthIsAnErrorAtEof) {
  const std::string resp = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc";
  HttpParser p;
  p.init_response();
  std::size_t used = 0;
  EXPECT_EQ(p.feed(resp.data(), resp.size(), &used), HttpParser::Stop::head_done);
  EXPECT_EQ(p.feed(resp.data() + used, resp.size() - used, &used), HttpParser::Stop::need_more);
  EXPECT_EQ(p.finish(), HttpParser::Stop::error);
}

TEST(HttpParser, HeadResponseHasNoBody) {
  const std::string resp = "HTTP/1.1 200 OK\r\nContent-Length: 17\r\n\r\n";
  HttpParser p;
  p.init_response();
  p.set_no_body(true);
  std::size_t used = 0;
  EXPECT_EQ(p.feed(resp.data(), resp.size(), &used), HttpParser::Stop::message_done);
  EXPECT_EQ(used, resp.size());
}

TEST(HttpParser, InformationalThenFinal) {
  const std::string resp =
      "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n";
  HttpParser p;
  p.init_response();
  std::size_t off = 0, used = 0;
  EXPECT_EQ(p.feed(resp.data(), resp.size(), &used), HttpParser::Stop::head_done);
  EXPECT_EQ(p.status(), 100);
  off += used;
  EXPECT_EQ(p.feed(resp.data() + off, resp.size() - off, &used), HttpParser::Stop::message_done);
  off += used;
  EXPECT_EQ(p.feed(resp.data() + off, resp.size() - off, &used), HttpParser::Stop::head_done);
  EXPECT_EQ(p.status(), 201);
}

TEST(HttpParser, ChunkDataMustEndWithCrlfBothWays) {
  // llhttp is built in strict mode: without it, the two bytes after chunk data are skipped
  // unchecked, so "helloXX" would frame differently here than in Go's net/http.
  const std::string bodies[] = {"5\r\nhelloXX0\r\n\r\n", "5\r\nhello\n0\r\n\r\n",
                                "5\r\nhello\r0\r\n\r\n"};
  for (const std::string& body : bodies) {
    for (const bool response : {false, true}) {
      const std::string msg =
          (response ? "HTTP/1.1 200 OK\r\n" : "POST / HTTP/1.1\r\nHost: x\r\n") +
          std::string("Transfer-Encoding: chunked\r\n\r\n") + body;
      HttpParser p;
      if (response) {
        p.init_response();
      } else {
        p.init_request();
      }
      std::size_t used = 0;
      ASSERT_EQ(p.feed(msg.data(), msg.size(), &used), HttpParser::Stop::head_done);
      EXPECT_EQ(p.feed(msg.data() + used, msg.size() - used, &used), HttpParser::Stop::error)
          << (response ? "response " : "request ") << body;
    }
  }
}

TEST(HttpParser, GarbageIsAnError) {
  HttpParser p;
  p.init_response();
  std::size_t used = 0;
  const std::string junk = "NOT HTTP AT ALL\r\n\r\n";
  EXPECT_EQ(p.feed(junk.data(), junk.size(), &used), HttpParser::Stop::error);
}

// Feeds `msg` in pieces of `step` bytes (as receive buffers cut it) and records every stop.
std::vector<HttpParser::Stop> stops_of(HttpParser& p, const std::string& msg, std::size_t step,
                                       std::vector<std::string>* targets_done = nullptr) {
  std::vector<HttpParser::Stop> stops;
  std::size_t off = 0;
  std::size_t end = 0;
  for (int guard = 0; guard < 100000; ++guard) {
    end = std::max(end, std::min(msg.size(), off + step));
    std::size_t used = 0;
    const HttpParser::Stop stop = p.feed(msg.data() + off, end - off, &used);
    off += used;
    if (stop != HttpParser::Stop::need_more) stops.push_back(stop);
    if (stop == HttpParser::Stop::error) break;
    if (stop == HttpParser::Stop::need_more && off == msg.size()) break;
  }
  return stops;
}

TEST(HttpParser, AnySingleDigitVersionParsesForTheRewriteToJudge) {
  // llhttp alone answers 400 to HTTP/1.2 and HTTP/3.0; with LENIENT_VERSION the rewrite decides
  // (1.2 read as 1.1, other majors 505).
  for (const char* v : {"1.2", "1.9", "2.0", "3.0", "0.9"}) {
    const std::string msg = std::string("GET / HTTP/") + v + "\r\nHost: x\r\n\r\n";
    HttpParser p;
    p.init_request();
    std::size_t used = 0;
    EXPECT_EQ(p.feed(msg.data(), msg.size(), &used), HttpParser::Stop::head_done) << v;
    EXPECT_EQ(p.http_major(), v[0] - '0');
    EXPECT_EQ(p.http_minor(), v[2] - '0');
  }
  HttpParser p;
  p.init_request();
  const std::string two_digits = "GET / HTTP/11.1\r\nHost: x\r\n\r\n";
  std::size_t used = 0;
  EXPECT_EQ(p.feed(two_digits.data(), two_digits.size(), &used), HttpParser::Stop::error);
}

TEST(HttpParser, UpgradeRequestEndsNormallyAndTheNextRequestParses) {
  // Issue 20: the request after an Upgrade one got 400 "Pause on CONNECT/Upgrade".
  const std::string next = "GET /api/tags HTTP/1.1\r\nHost: x\r\n\r\n";
  const std::string firsts[] = {
      "GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n"
      "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n",
      "POST /api/chat HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, Upgrade\r\n"
      "Upgrade: websocket\r\nContent-Length: 3\r\n\r\nabc",
      "POST /api/chat HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n"
      "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
  };
  using S = HttpParser::Stop;
  for (const std::string& first : firsts) {
    for (const std::size_t step : {std::size_t{1}, std::size_t{7}, std::size_t{4096}}) {
      HttpParser p;
      p.init_request();
      const auto stops = stops_of(p, first + next + next, step);
      const std::vector<S> want = {S::head_done, S::message_done, S::head_done,
                                   S::message_done, S::head_done, S::message_done};
      EXPECT_EQ(stops, want) << first << " step " << step;
      EXPECT_FALSE(p.upgrade());  // the last head did not ask
    }
  }
  HttpParser p;
  p.init_request();
  const std::string first = firsts[0];
  std::size_t used = 0;
  ASSERT_EQ(p.feed(first.data(), first.size(), &used), S::head_done);
  EXPECT_TRUE(p.upgrade());
  EXPECT_FALSE(p.connect());
}

TEST(HttpParser, ConnectEndsInACleanStop) {
  // CONNECT is refused by the rewrite; the parser must still end in a Stop, never an assert,
  // and never parse the tunnel bytes after the head as HTTP.
  const std::string msg =
      "CONNECT ollama.example:443 HTTP/1.1\r\nHost: ollama.example:443\r\n\r\n"
      "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  for (const std::size_t step : {std::size_t{1}, std::size_t{4096}}) {
    HttpParser p;
    p.init_request();
    const auto stops = stops_of(p, msg, step);
    using S = HttpParser::Stop;
    const std::vector<S> want = {S::head_done, S::message_done, S::error};
    EXPECT_EQ(stops, want) << step;
    EXPECT_TRUE(p.connect());
    EXPECT_TRUE(p.upgrade());
    EXPECT_EQ(p.error_code(), HPE_PAUSED_UPGRADE);
  }
}

TEST(HttpParser, SwitchingProtocolsIsReportedAsAFinalStatus) {
  // A 101 answers an upgrade the proxy never asks for: the caller sees status 101 at the head
  // and treats it as malformed; the bytes after it are never parsed as HTTP.
  const std::string resp =
      "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\nPRI *";
  HttpParser p;
  p.init_response();
  std::size_t used = 0;
  EXPECT_EQ(p.feed(resp.data(), resp.size(), &used), HttpParser::Stop::head_done);
  EXPECT_EQ(p.status(), 101);
  EXPECT_TRUE(p.upgrade());
  std::size_t off = used;
  EXPECT_EQ(p.feed(resp.data() + off, resp.size() - off, &used), HttpParser::Stop::message_done);
  off += used;
  EXPECT_EQ(p.feed(resp.data() + off, resp.size() - off, &used), HttpParser::Stop::error);
}

TEST(HttpParser, FramingConflictsAreErrors) {
  // RFC 9112 §6.3: CL with TE, two Content-Lengths, a bad length or chunk size.
  const char* bad[] = {
      "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
      "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3, 3\r\n\r\nabc",
      "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
      "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n",
      "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
  };
  for (const char* raw : bad) {
    HttpParser p;
    p.init_request();
    const auto stops = stops_of(p, raw, 4096);
    ASSERT_FALSE(stops.empty()) << raw;
    EXPECT_EQ(stops.back(), HttpParser::Stop::error) << raw;
  }
}

TEST(HttpParser, BodylessStatusesEndAtTheirHead) {
  // RFC 9112 §6.3 rule 1: 1xx, 204 and 304 end at the empty line whatever their Content-Length
  // or Transfer-Encoding say; llhttp 8 alone read the next response's bytes as their body.
  const std::string next = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
  const char* heads[] = {
      "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n",
      "HTTP/1.1 304 Not Modified\r\nContent-Length: 100000\r\n\r\n",
      "HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n",
      "HTTP/1.1 103 Early Hints\r\nContent-Length: 5\r\n\r\n",
  };
  using S = HttpParser::Stop;
  for (const char* head : heads) {
    HttpParser p;
    p.init_response();
    const std::string msg = head + next;
    std::size_t used = 0;
    ASSERT_EQ(p.feed(msg.data(), msg.size(), &used), S::head_done) << head;
    EXPECT_EQ(used, std::strlen(head));
    EXPECT_TRUE(p.bodyless());
    EXPECT_EQ(p.content_length(), 0u);
    EXPECT_EQ(p.body_remaining(), 0u);
    std::size_t off = used;
    ASSERT_EQ(p.feed(msg.data() + off, msg.size() - off, &used), S::message_done) << head;
    EXPECT_EQ(used, 0u);
    if (p.status() >= 200) p.init_response();
    ASSERT_EQ(p.feed(msg.data() + off, msg.size() - off, &used), S::head_done) << head;
    EXPECT_EQ(p.status(), 200);
    EXPECT_FALSE(p.bodyless());
    EXPECT_EQ(p.content_length(), 2u);
  }
}

}  // namespace
}  // namespace tokentap
