// http1: llhttp glue (pauses at head and message end, pipelining, chunked, EOF framing) and the
// upstream head rewrite (Host, hop-by-hop headers, Connection: close).
#include "tokentap/http/http1.h"

#include <gtest/gtest.h>

#include <string>

namespace tokentap {
namespace {

std::string rewrite(std::string_view raw, bool preserve = false, HeadFacts* facts_out = nullptr,
                    RewriteError* err_out = nullptr) {
  char out[head_bytes_max + 512];
  std::size_t len = 0;
  HeadFacts facts;
  const RewriteError err =
      rewrite_request_head(raw, {"127.0.0.1:11434", preserve}, out, sizeof(out), &len, &facts);
  if (facts_out != nullptr) *facts_out = facts;
  if (err_out != nullptr) *err_out = err;
  return err == RewriteError::ok ? std::string(out, len) : std::string();
}

TEST(Http1Rewrite, ReplacesHostInPlace) {
  HeadFacts f;
  EXPECT_EQ(rewrite("POST /api/chat HTTP/1.1\r\nHost: proxy.example.com\r\nContent-Length: 2\r\n\r\n",
                    false, &f),
            "POST /api/chat HTTP/1.1\r\nHost: 127.0.0.1:11434\r\nContent-Length: 2\r\n\r\n");
  EXPECT_EQ(f.method, "POST");
  EXPECT_EQ(f.target, "/api/chat");
  EXPECT_TRUE(f.has_host);
}

TEST(Http1Rewrite, PreserveHostKeepsTheClients) {
  const std::string raw = "GET / HTTP/1.1\r\nHost: proxy.example.com\r\n\r\n";
  EXPECT_EQ(rewrite(raw, true), raw);
}

TEST(Http1Rewrite, AddsHostWhenAbsent) {
  EXPECT_EQ(rewrite("GET / HTTP/1.0\r\nAccept: */*\r\n\r\n"),
            "GET / HTTP/1.0\r\nAccept: */*\r\nHost: 127.0.0.1:11434\r\n\r\n");
}

TEST(Http1Rewrite, DropsHopByHopAndConnectionNamedHeaders) {
  HeadFacts f;
  const std::string out =
      rewrite("GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, X-Secret, Upgrade\r\n"
              "Keep-Alive: timeout=5\r\nX-Secret: 1\r\nUpgrade: websocket\r\nTE: trailers\r\n"
              "Proxy-Connection: keep-alive\r\nTransfer-Encoding: chunked\r\nX-Other: 2\r\n\r\n",
              false, &f);
  EXPECT_EQ(out,
            "GET / HTTP/1.1\r\nHost: 127.0.0.1:11434\r\nTransfer-Encoding: chunked\r\n"
            "X-Other: 2\r\n\r\n");
  EXPECT_FALSE(f.connection_close);
}

TEST(Http1Rewrite, KeepsConnectionClose) {
  HeadFacts f;
  EXPECT_EQ(rewrite("GET / HTTP/1.1\r\nConnection: Close\r\nHost: x\r\n\r\n", false, &f),
            "GET / HTTP/1.1\r\nHost: 127.0.0.1:11434\r\nConnection: close\r\n\r\n");
  EXPECT_TRUE(f.connection_close);
}

TEST(Http1Rewrite, NotesExpectAndEncoding) {
  HeadFacts f;
  rewrite("POST /api/blobs/x HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
          "Content-Encoding: zstd\r\nContent-Type: application/json\r\n\r\n",
          false, &f);
  EXPECT_TRUE(f.expect_continue);
  EXPECT_TRUE(f.content_encoded);
  EXPECT_EQ(f.content_type, "application/json");
}

TEST(Http1Rewrite, RejectsBareLfAndOversize) {
  RewriteError err;
  rewrite("GET / HTTP/1.1\nHost: x\r\n\r\n", false, nullptr, &err);
  EXPECT_EQ(err, RewriteError::bad_head);
  std::string big = "GET / HTTP/1.1\r\nX-Big: " + std::string(head_bytes_max, 'a') + "\r\n\r\n";
  rewrite(big, false, nullptr, &err);
  EXPECT_EQ(err, RewriteError::too_large);
}

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

TEST(Http1Rewrite, RejectsSmugglingShapes) {
  const char* bad[] = {
      "GET http://evil.example/ HTTP/1.1\r\nHost: x\r\n\r\n",   // absolute-form
      "GET evil HTTP/1.1\r\nHost: x\r\n\r\n",                   // not origin-form
      "GET / HTTP/1.1\r\nHost : x\r\n\r\n",                     // space before the colon
      "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n",      // obs-fold
      "GET / HTTP/1.1\r\nHost: x\r\n\tX-A: a\r\n\r\n",          // folded name
      "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x01" "b\r\n\r\n",    // control character
  };
  for (const char* raw : bad) {
    RewriteError err;
    rewrite(raw, false, nullptr, &err);
    EXPECT_EQ(err, RewriteError::bad_head) << raw;
  }
  RewriteError err;
  rewrite(std::string_view("GET / HTTP/1.1\r\nX-A: a\0b\r\n\r\n", 29), false, nullptr, &err);
  EXPECT_EQ(err, RewriteError::bad_head) << "NUL in a value";
  const std::string long_target = "GET /" + std::string(target_bytes_max, 'a') + " HTTP/1.1\r\n\r\n";
  rewrite(long_target, false, nullptr, &err);
  EXPECT_EQ(err, RewriteError::bad_head);
  EXPECT_EQ(rewrite("OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n"),
            "OPTIONS * HTTP/1.1\r\nHost: 127.0.0.1:11434\r\n\r\n");
}

}  // namespace
}  // namespace tokentap
