// Fake upstream over real sockets, connection behaviour: keep-alive, pipelining and
// Expect: 100-continue, chunked and malformed request bodies, HTTP/1.0 and Connection: close,
// half-close, X-Fake-Abort-After resets, per-chunk delays that block no one, 64 MiB blob upload
// and download, /fake/echo, and the stats counters.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "fake_test_fixture.h"
#include "support/http_client.h"
#include "support/stream_parts.h"

namespace tokentap::fake {
namespace {

using test::Header;
using test::HttpClient;
using test::ReadOptions;
using test::Response;
using namespace std::chrono_literals;

TEST_F(FakeUpstreamTest, KeepAlivePipeliningAndExpectContinue) {
  HttpClient c;
  ASSERT_TRUE(c.connect(port_));
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(c.send(req("GET", "/api/version")));
    EXPECT_EQ(c.read_response().status, 200);
  }
  // Three requests in one write, a stream among them: answers come back in order.
  const std::string batch = req("POST", "/api/generate", R"({"model":"a","prompt":"x"})") +
                            req("GET", "/") + req("POST", "/api/chat", R"({"model":"b"})");
  ASSERT_TRUE(c.send(batch));
  const Response first = c.read_response();
  EXPECT_EQ(test::ndjson_lines(first.body).size(), 6u);
  EXPECT_EQ(c.read_response().body, "Ollama is running");
  EXPECT_EQ(json_str(c.read_response().body, "/done_reason"), "load");
  EXPECT_TRUE(c.buffered().empty());
  // Expect: 100-continue: the interim answer comes before the body is sent.
  const std::string body = R"({"model":"m","prompt":"x","stream":false})";
  ASSERT_TRUE(
      c.send(req("POST", "/api/generate", {},
                 {{"Content-Length", std::to_string(body.size())}, {"Expect", "100-continue"}})));
  const Response interim = c.read_response({.skip_interim = false});
  EXPECT_EQ(interim.raw, "HTTP/1.1 100 Continue\r\n\r\n");
  ASSERT_TRUE(c.send(body));
  const Response final_answer = c.read_response();
  EXPECT_EQ(final_answer.status, 200);
  EXPECT_TRUE(final_answer.interim.empty());
  EXPECT_EQ(fake_->stats().connections_accepted, 1u);
  EXPECT_EQ(fake_->stats().requests, 7u);
}

TEST_F(FakeUpstreamTest, ChunkedRequestBodiesAndMalformedRequests) {
  const std::string body = R"({"model":"m","prompt":"x","stream":false})";
  std::string raw = req("POST", "/api/generate", {}, {{"Transfer-Encoding", "chunked"}});
  char size_line[16];
  std::snprintf(size_line, sizeof(size_line), "%zx;ext\r\n", body.size() - 5);
  raw += "5\r\n" + body.substr(0, 5) + "\r\n" + size_line + body.substr(5) + "\r\n0\r\n\r\n";
  const Response r = test::roundtrip(port_, raw);
  EXPECT_EQ(r.status, 200) << r.body;
  HttpClient c;
  ASSERT_TRUE(c.connect(port_));
  ASSERT_TRUE(c.send("GARBAGE\r\n\r\n"));
  const Response bad = c.read_response();
  EXPECT_EQ(bad.raw,
            "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n"
            "Connection: close\r\n\r\n400 Bad Request");
  EXPECT_EQ(bad.close, test::CloseKind::eof);
}

TEST_F(FakeUpstreamTest, Http10AndConnectionClose) {
  HttpClient c;
  ASSERT_TRUE(c.connect(port_));
  const std::string body = R"({"model":"m","prompt":"x"})";
  ASSERT_TRUE(c.send("POST /api/generate HTTP/1.0\r\nContent-Length: " +
                     std::to_string(body.size()) + "\r\n\r\n" + body));
  const Response stream = c.read_response();  // close-delimited, no chunking
  ASSERT_TRUE(stream.ok()) << stream.error;
  EXPECT_EQ(stream.head.substr(0, 17), "HTTP/1.0 200 OK\r\n");
  EXPECT_EQ(stream.header_names(), strs({"Content-Type", "Date"}));
  EXPECT_EQ(stream.close, test::CloseKind::eof);
  EXPECT_EQ(test::ndjson_lines(stream.body).size(), 6u);
  const Response small = test::roundtrip(port_, "GET / HTTP/1.0\r\n\r\n");
  EXPECT_EQ(small.header("Content-Length"), "17");
  HttpClient k;
  ASSERT_TRUE(k.connect(port_));
  ASSERT_TRUE(k.send(
      req("POST", "/v1/messages", R"({"model":"m","stream":true})", {{"Connection", "close"}})));
  const Response closing = k.read_response();
  ASSERT_TRUE(closing.ok()) << closing.error;
  EXPECT_EQ(closing.header_names(),
            strs({"Cache-Control", "Content-Type", "Date", "Connection", "Transfer-Encoding"}));
  EXPECT_EQ(closing.header("Connection"), "close");
  EXPECT_EQ(k.wait_close(), test::CloseKind::eof);
}

// A client that half-closes right after its request (FIN in the same segment burst) still gets
// a finished answer, then EOF; a stream is cancelled as Go cancels the request context.
TEST_F(FakeUpstreamTest, HalfCloseAnswersThenClosesAndCancelsStreams) {
  HttpClient c;
  ASSERT_TRUE(c.connect(port_));
  ASSERT_TRUE(c.send(req("GET", "/")));
  c.shutdown_write();
  const Response r = c.read_response();
  EXPECT_EQ(r.body, "Ollama is running");
  EXPECT_EQ(c.wait_close(), test::CloseKind::eof);
  HttpClient s;
  ASSERT_TRUE(s.connect(port_));
  ASSERT_TRUE(s.send(
      req("POST", "/api/generate", R"({"model":"m","prompt":"x"})", {{"X-Fake-Delay-Ms", "300"}})));
  s.shutdown_write();
  std::string data;
  EXPECT_EQ(s.wait_close(1000, &data), test::CloseKind::eof);
  EXPECT_TRUE(data.empty());
  EXPECT_EQ(fake_->stats().connections_closed_by_peer, 2u);
}

TEST_F(FakeUpstreamTest, AbortAfterResetsWithoutTerminator) {
  const std::string body = R"({"model":"m","prompt":"x"})";
  const Response r =
      test::roundtrip(port_, req("POST", "/api/generate", body, {{"X-Fake-Abort-After", "2"}}));
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.chunks.size(), 2u);
  EXPECT_FALSE(r.terminator_seen);
  EXPECT_EQ(r.close, test::CloseKind::reset);
  const Response none =
      test::roundtrip(port_, req("POST", "/api/generate", body, {{"X-Fake-Abort-After", "0"}}));
  EXPECT_EQ(none.status, 0);
  EXPECT_TRUE(none.raw.empty());
  EXPECT_EQ(none.close, test::CloseKind::reset);
  const Response blob = test::roundtrip(
      port_, req("GET", "/fake/blob?size=100000", {}, {{"X-Fake-Abort-After", "1000"}}));
  EXPECT_EQ(blob.body.size(), 1000u);  // a truncated Content-Length body
  EXPECT_EQ(blob.close, test::CloseKind::reset);
  HttpClient c;
  ASSERT_TRUE(c.connect(port_));
  ASSERT_TRUE(c.send(req("GET", "/", {}, {{"X-Fake-Close-After-Response", "1"}})));
  const Response closed = c.read_response();
  EXPECT_TRUE(closed.ok());
  EXPECT_FALSE(closed.header("Connection").has_value());  // a silent close
  EXPECT_EQ(c.wait_close(), test::CloseKind::eof);
}

TEST_F(FakeUpstreamTest, DelaysEveryChunkWithoutBlockingOthers) {
  const auto t0 = std::chrono::steady_clock::now();
  const Response r = post("/v1/chat/completions", R"({"model":"m","stream":true})",
                          {{"X-Fake-Tokens", "3"}, {"X-Fake-Delay-Ms", "40"}});
  const auto took = std::chrono::steady_clock::now() - t0;
  ASSERT_TRUE(r.ok()) << r.error;
  ASSERT_EQ(r.chunk_arrivals.size(), 4u);
  EXPECT_GE(r.time_to_first_body_byte, 38ms);
  // Each chunk is held back by its own delay: no two arrive together. A loaded machine can
  // deliver one chunk late and the next on time, so single gaps are bounded loosely; the
  // total below is the exact lower bound.
  for (std::size_t i = 1; i < r.chunk_arrivals.size(); ++i) {
    EXPECT_GE(r.chunk_arrivals[i] - r.chunk_arrivals[i - 1], 10ms) << i;
  }
  EXPECT_GE(r.chunk_arrivals.back() - r.chunk_arrivals.front(), 115ms);
  EXPECT_GE(took, 155ms);
  EXPECT_LT(took, 2s);
  // 2000 delayed streams at once on one worker: all finish in about one stream's time. Each
  // needs two descriptors in this process (client and server side).
  const int streams = std::min(2000, (raise_fd_limit() - 64) / 2);
  ASSERT_GE(streams, 400) << "RLIMIT_NOFILE too low for this test";
  std::vector<HttpClient> clients(streams);
  const std::string ask = req("POST", "/api/generate", R"({"model":"m","prompt":"x"})",
                              {{"X-Fake-Tokens", "2"}, {"X-Fake-Delay-Ms", "100"}});
  const auto t1 = std::chrono::steady_clock::now();
  for (auto& c : clients) ASSERT_TRUE(c.connect(port_) && c.send(ask));
  int complete = 0;
  for (auto& c : clients) complete += c.read_response({.timeout_ms = 10000}).ok() ? 1 : 0;
  EXPECT_EQ(complete, streams);
  EXPECT_LT(std::chrono::steady_clock::now() - t1, 20s);  // serialized would take ~320 s
}

TEST_F(FakeUpstreamTest, BlobUploadAndDownload64MiB) {
  constexpr std::size_t size = 64u << 20;
  std::string payload;
  test::blob_pattern(12345, size, &payload);
  HttpClient c;
  ASSERT_TRUE(c.connect(port_));
  ASSERT_TRUE(
      c.send(req("POST", "/api/blobs/sha256:abc", {}, {{"Content-Length", std::to_string(size)}})));
  ASSERT_TRUE(c.send(payload));
  const Response up = c.read_response({.timeout_ms = 20000});
  ASSERT_TRUE(up.ok()) << up.error;
  EXPECT_EQ(up.status, 201);
  EXPECT_EQ(up.reason, "Created");
  EXPECT_EQ(up.header_names(), strs({"X-Fake-Bytes", "X-Fake-Checksum", "Date", "Content-Length"}));
  EXPECT_EQ(up.header("X-Fake-Bytes"), std::to_string(size));
  char hex[32];
  std::snprintf(hex, sizeof(hex), "%llx", static_cast<unsigned long long>(test::fnv1a64(payload)));
  EXPECT_EQ(up.header("X-Fake-Checksum"), hex);
  EXPECT_EQ(fake_->stats().blob_checksum_last, test::fnv1a64(payload));
  EXPECT_EQ(fake_->stats().blob_bytes_received, size);
  payload.clear();
  ASSERT_TRUE(c.send(req("GET", "/fake/blob?size=" + std::to_string(size))));
  const Response down = c.read_response({.timeout_ms = 20000});
  ASSERT_TRUE(down.ok()) << down.error;
  EXPECT_EQ(down.header("Content-Type"), "application/octet-stream");
  EXPECT_EQ(down.body.size(), size);
  EXPECT_EQ(test::blob_mismatch(down.body), size);
  ASSERT_TRUE(c.send(req("HEAD", "/fake/blob?size=10")));
  const Response head = c.read_response({.head_request = true});
  EXPECT_EQ(head.header("Content-Length"), "10");
  ASSERT_TRUE(c.send(req("GET", "/")));  // the connection is still in sync
  EXPECT_EQ(c.read_response().body, "Ollama is running");
}

TEST_F(FakeUpstreamTest, EchoShowsWhatArrived) {
  const Response r = post("/fake/echo?q=1", "hello", {{"X-Thing", "a\"b"}, {"X-Thing", "2"}});
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(json_str(r.body, "/method"), "POST");
  EXPECT_EQ(json_str(r.body, "/target"), "/fake/echo?q=1");
  EXPECT_EQ(json_str(r.body, "/headers/0/0"), "Host");
  EXPECT_EQ(json_str(r.body, "/headers/0/1"), "127.0.0.1:" + std::to_string(port_));
  EXPECT_EQ(json_str(r.body, "/headers/2/1"), "a\"b");
  EXPECT_EQ(json_str(r.body, "/headers/3/1"), "2");
  EXPECT_EQ(json_int(r.body, "/body_bytes"), 5);
  char hex[32];
  std::snprintf(hex, sizeof(hex), "%llx", static_cast<unsigned long long>(test::fnv1a64("hello")));
  EXPECT_EQ(json_str(r.body, "/body_fnv1a64"), hex);
}

TEST_F(FakeUpstreamTest, StatsCountPeerClosesPromptlyAndResetClearsThem) {
  start(Options{.threads = 3});
  std::uint64_t received = 0;
  for (int i = 0; i < 6; ++i) {
    const Response r = post("/api/generate", R"({"model":"m","prompt":"x","stream":false})",
                            {{"X-Fake-Prompt-Tokens", "10"}, {"X-Fake-Tokens", "4"}});
    ASSERT_TRUE(r.ok());
    received += r.raw.size();
  }
  // A worker counts bytes after send() returns, which can be just after the client read them.
  for (int i = 0; i < 2000 && fake_->stats().bytes_sent < received; ++i) {
    std::this_thread::sleep_for(1ms);
  }
  Stats s = fake_->stats();
  EXPECT_EQ(s.requests, 6u);
  EXPECT_EQ(s.connections_accepted, 6u);
  EXPECT_EQ(s.prompt_tokens_sent, 60u);
  EXPECT_EQ(s.completion_tokens_sent, 24u);
  EXPECT_EQ(s.bytes_sent, received);
  // The six clients above closed their connections; wait until the fake has seen all of them.
  for (int i = 0; i < 2000 && fake_->stats().connections_closed_by_peer < 6; ++i) {
    std::this_thread::sleep_for(1ms);
  }
  EXPECT_EQ(fake_->stats().connections_closed_by_peer, 6u);
  // A client that resets in the middle of a slow stream is seen at once.
  for (const bool reset : {true, false}) {
    fake_->reset_stats();
    HttpClient c;
    ASSERT_TRUE(c.connect(port_));
    ASSERT_TRUE(c.send(req("POST", "/api/chat", R"({"model":"m","messages":[{}]})",
                           {{"X-Fake-Delay-Ms", "500"}})));
    std::this_thread::sleep_for(20ms);
    const std::uint64_t t0 = monotonic_now_ns();
    if (reset) {
      c.abort();
    } else {
      c.close();
    }
    while (fake_->stats().connections_closed_by_peer == 0 && monotonic_now_ns() - t0 < 2e9) {
      std::this_thread::sleep_for(1ms);
    }
    s = fake_->stats();
    EXPECT_EQ(s.connections_closed_by_peer, 1u) << reset;
    EXPECT_GE(s.last_peer_close_ns, t0);
    EXPECT_LT(s.last_peer_close_ns - t0, 50'000'000u) << reset;
    EXPECT_EQ(s.completion_tokens_sent, 0u);
  }
  fake_->reset_stats();
  s = fake_->stats();
  EXPECT_EQ(s.requests + s.connections_accepted + s.bytes_sent + s.last_peer_close_ns, 0u);
  fake_->stop();
  fake_->stop();  // idempotent
}

}  // namespace
}  // namespace tokentap::fake
