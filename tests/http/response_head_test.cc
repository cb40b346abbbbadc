// response_head: the client's response head (our own version, hop-by-hop fields removed, every
// other field byte for byte, Connection for close and 1.0 keep-alive, the de-chunk decision for
// HTTP/1.0 clients) and its limits, string in → string or enum out.
#include <gtest/gtest.h>

#include <string>

#include "tokentap/http/http1.h"

namespace tokentap {
namespace {

struct Result {
  std::string out;
  RewriteError err = RewriteError::ok;
  ResponseFacts facts;
};

Result rewrite(std::string_view raw, const ResponseRewriteOptions& opt = {}) {
  static char out[response_head_bytes_max + 512];
  std::size_t len = 0;
  Result r;
  r.err = rewrite_response_head(raw, opt, out, sizeof(out), &len, &r.facts);
  if (r.err == RewriteError::ok) r.out.assign(out, len);
  return r;
}

TEST(ResponseHead, KeepsEveryEndToEndFieldByteForByte) {
  // SDK clients see Ollama's fields exactly: names' case, spacing, order, duplicates.
  const std::string raw =
      "HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\ndate:  Fri, 04 Dec 2026 \r\n"
      "Set-Cookie: a=1\r\nSet-Cookie: b=2\r\nX-Empty:\r\nContent-Length: 5\r\n\r\n";
  const Result r = rewrite(raw);
  EXPECT_EQ(r.out, raw);
  EXPECT_EQ(r.facts.status, 200);
  EXPECT_FALSE(r.facts.dechunk);
}

TEST(ResponseHead, SendsOurOwnVersionAndTheUpstreamsReason) {
  EXPECT_EQ(rewrite("HTTP/1.0 404 Not  Found here\r\nContent-Length: 0\r\n\r\n").out,
            "HTTP/1.1 404 Not  Found here\r\nContent-Length: 0\r\n\r\n");
  EXPECT_EQ(rewrite("HTTP/1.2 204 \r\n\r\n").out, "HTTP/1.1 204 \r\n\r\n");
  EXPECT_EQ(rewrite("HTTP/2.0 200 OK\r\n\r\n").err, RewriteError::bad_version);
  EXPECT_EQ(rewrite("HTTP/0.9 200 OK\r\n\r\n").err, RewriteError::bad_version);
}

TEST(ResponseHead, RemovesHopByHopAndNominatedFields) {
  const Result r = rewrite(
      "HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Hop\r\nKeep-Alive: timeout=5\r\n"
      "X-Hop: 1\r\nProxy-Connection: close\r\nTE: trailers\r\nUpgrade: h2c\r\n"
      "Transfer-Encoding: chunked\r\nX-End: 2\r\n\r\n");
  // The Connection field becomes our own options in its place: the client connection is kept
  // alive, so `keep-alive` (the upstream's own spelling of the field name) without X-Hop.
  EXPECT_EQ(r.out,
            "HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n"
            "X-End: 2\r\n\r\n");
  const Result other = rewrite("HTTP/1.1 200 OK\r\nconnection: X-Hop\r\nX-Hop: 1\r\n\r\n");
  EXPECT_EQ(other.out, "HTTP/1.1 200 OK\r\n\r\n");  // nothing of ours to say: no field
}

TEST(ResponseHead, ConnectionOptionsOverTheLimitAreRefused) {
  std::string list;
  for (std::size_t i = 0; i <= connection_tokens_max; ++i) {
    list += (i ? ", X-T" : "X-T") + std::to_string(i);
  }
  EXPECT_EQ(rewrite("HTTP/1.1 200 OK\r\nConnection: " + list + "\r\n\r\n").err,
            RewriteError::too_many_connection_options);
  EXPECT_EQ(
      rewrite("HTTP/1.1 200 OK\r\nConnection: Content-Length\r\nContent-Length: 2\r\n\r\n").err,
      RewriteError::bad_framing);
}

TEST(ResponseHead, CloseAndHttp10KeepAlive) {
  const std::string raw = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\n";
  ResponseRewriteOptions opt;
  opt.close = true;
  EXPECT_EQ(rewrite(raw, opt).out,
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\n");
  opt = {};
  opt.client_http10 = true;
  opt.keep_alive_10 = true;
  EXPECT_EQ(rewrite(raw, opt).out,
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\n");
  opt.close = true;  // closing wins over keep-alive
  EXPECT_EQ(rewrite(raw, opt).out,
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\n");
}

TEST(ResponseHead, ChunkedToAnHttp10ClientIsDechunkedAndCloseDelimited) {
  // RFC 9112 §6.1: no Transfer-Encoding to a 1.0 recipient; §6.3 rule 8: length by close.
  const std::string raw =
      "HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n"
      "Date: x\r\n\r\n";
  ResponseRewriteOptions opt;
  opt.client_http10 = true;
  opt.keep_alive_10 = true;
  const Result r = rewrite(raw, opt);
  EXPECT_TRUE(r.facts.dechunk);
  EXPECT_EQ(r.out,
            "HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\nDate: x\r\n"
            "Connection: close\r\n\r\n");
  // A 1.1 client keeps the chunked framing.
  const Result same = rewrite(raw);
  EXPECT_FALSE(same.facts.dechunk);
  EXPECT_EQ(same.out, raw);
  // Codings other than chunked cannot be undone for a 1.0 client.
  EXPECT_EQ(rewrite("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", opt).err,
            RewriteError::bad_framing);
  EXPECT_EQ(rewrite("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", opt).err,
            RewriteError::bad_framing);
}

TEST(ResponseHead, InformationalHeads) {
  const Result r = rewrite("HTTP/1.1 103 Early Hints\r\nLink: </a>; rel=preload\r\n\r\n");
  EXPECT_EQ(r.facts.status, 103);
  EXPECT_EQ(r.out, "HTTP/1.1 103 Early Hints\r\nLink: </a>; rel=preload\r\n\r\n");
  EXPECT_EQ(rewrite("HTTP/1.1 100 Continue\r\n\r\n").out, "HTTP/1.1 100 Continue\r\n\r\n");
}

TEST(ResponseHead, LimitsAndSyntax) {
  // Issue 20: a 74 KiB upstream head was forwarded; beyond the limit the caller answers 502.
  std::string big = "HTTP/1.1 200 OK\r\n";
  while (big.size() <= response_head_bytes_max) big += "X-Filler: aaaaaaaaaaaaaaaaaaaaaaaa\r\n";
  big += "\r\n";
  EXPECT_EQ(rewrite(big).err, RewriteError::too_large);
  char small[20];
  std::size_t len = 0;
  ResponseFacts facts;
  EXPECT_EQ(rewrite_response_head("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", {}, small,
                                  sizeof(small), &len, &facts),
            RewriteError::too_large);
  EXPECT_EQ(rewrite("HTTP/1.1 200 OK\r\nX-A : b\r\n\r\n").err, RewriteError::bad_head);
  EXPECT_EQ(rewrite("HTTP/1.1 200 OK\r\nX-A: b\r\n c\r\n\r\n").err, RewriteError::bad_head);
  EXPECT_EQ(rewrite("HTTP/1.1 200 OK\r\nX-A: b\r\n").err, RewriteError::bad_head);  // no end
  EXPECT_EQ(rewrite("HTTP/1.1 2x0 OK\r\n\r\n").err, RewriteError::bad_head);
}

}  // namespace
}  // namespace tokentap

namespace tokentap {
namespace {

// The fast path's promise: whenever it says "as is", the rewrite would give the same bytes.
TEST(ResponseHead, AsIsExactlyWhenTheRewriteChangesNothing) {
  ResponseRewriteOptions keep;
  ResponseRewriteOptions close;
  close.close = true;
  ResponseRewriteOptions http10;
  http10.client_http10 = true;
  const std::string heads[] = {
      "HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\nDate: Fri, 04 Dec 2026 "
      "14:00:11 GMT\r\nTransfer-Encoding: chunked\r\n\r\n",
      "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 18\r\n\r\n",
      "HTTP/1.1 100 Continue\r\n\r\n",
      "HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n",
      "HTTP/1.1 200 OK\r\nkeep-alive: timeout=5\r\nContent-Length: 0\r\n\r\n",
      "HTTP/1.1 200 OK\r\nTE: trailers\r\nTrailer: X\r\nContent-Length: 0\r\n\r\n",
      "HTTP/1.1 200 OK\r\nUpgrade: h2c\r\nContent-Length: 0\r\n\r\n",
      "HTTP/1.1 200 OK\r\nProxy-Connection: close\r\nContent-Length: 0\r\n\r\n",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nCache-Control: no-cache\r\n\r\n",
      "HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n",
  };
  int as_is = 0;
  for (const std::string& h : heads) {
    for (const ResponseRewriteOptions& o : {keep, close, http10}) {
      if (!response_head_as_is(h, o)) continue;
      ++as_is;
      const Result r = rewrite(h, o);
      ASSERT_EQ(r.err, RewriteError::ok) << h;
      EXPECT_EQ(r.out, h) << "as_is must mean unchanged";
    }
  }
  EXPECT_EQ(as_is, 4);  // the four plain 1.1 heads, kept alive, to a 1.1 client
  EXPECT_FALSE(response_head_as_is(heads[0], close));
  EXPECT_FALSE(response_head_as_is(heads[0], http10));
  EXPECT_FALSE(response_head_as_is(heads[3], keep));  // Connection: ours replaces theirs
  EXPECT_FALSE(response_head_as_is(heads[9], keep));  // our own version on the status line
}

}  // namespace
}  // namespace tokentap
