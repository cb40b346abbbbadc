// HTTP conformance, request side: one test per row of docs/http-conformance.md that concerns
// what a client sends (RFC 9112 §2–§7, RFC 9110 §7.6, §10.1.1), over real sockets: a real
// tokentap Server (TestProxy) in front of a ScriptedUpstream that records the bytes it receives.
// The response side, persistence and 1xx are in http_conformance_response_test.cc.
//
// Each refusal is checked three ways: the status, the connection closed after it, and nothing
// of the request reaching the upstream (no connection accepted).
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "support/http_client.h"
#include "support/proxy_fixture.h"
#include "support/scripted_upstream.h"

namespace tokentap {
namespace {

using namespace std::chrono_literals;

using test::connect_loopback;
using test::has_head;
using test::metric_sum;
using test::ok_body;
using test::read_to_close;
using test::read_until;
using test::ScriptedUpstream;
using test::send_all;
using test::send_and_read_to_close;
using test::status_of;
using test::Outcome;

// The value of the first field `name` (case-sensitive, "Name: ") in the head of `raw`.
std::string field_of(std::string_view raw, std::string_view name) {
  const std::string_view head = raw.substr(0, raw.find("\r\n\r\n") + 2);
  const auto at = head.find("\r\n" + std::string(name) + ": ");
  if (at == std::string_view::npos) return "";
  const auto start = at + 4 + name.size();
  return std::string(head.substr(start, head.find("\r\n", start) - start));
}

// `raw` is refused with `status`, the connection is closed, and the upstream never hears of it.
void expect_refused(std::string_view raw, int status, std::vector<std::string> extra_args = {}) {
  ScriptedUpstream up(ScriptedUpstream::answer_each(ok_body));
  TT_START_PROXY(proxy, up.port(), 1, extra_args);
  const Outcome o = send_and_read_to_close(proxy.port(), raw);
  EXPECT_EQ(status_of(o.response), status) << raw << "\n→ " << o.response;
  EXPECT_TRUE(o.closed) << raw;
  EXPECT_EQ(up.accepted.load(), 0) << "reached the upstream: " << raw;
}

// Sends `raw` on a fresh connection, expects one 200 back, and returns what the upstream got.
std::string forwarded(std::string_view raw, std::vector<std::string> extra_args = {}) {
  ScriptedUpstream up(ScriptedUpstream::answer_each(ok_body));
  test::TestProxy proxy(up.port(), 1, extra_args);
  if (!proxy.started()) return "(proxy did not start: " + proxy.error() + ")";
  const int fd = connect_loopback(proxy.port());
  send_all(fd, raw);
  const std::string resp = test::read_ok(fd);
  close(fd);
  EXPECT_EQ(status_of(resp), 200) << raw << "\n→ " << resp;
  const auto reqs = up.nonempty_requests();
  return reqs.empty() ? std::string() : reqs.front();
}

// ---- §2: message format and version ----------------------------------------------------------

TEST(HttpConformance, EmptyLineBeforeTheRequestLineIsIgnored) {
  EXPECT_EQ(forwarded("\r\nGET /api/tags HTTP/1.1\r\nHost: x\r\n\r\n").rfind("GET /api/tags ", 0),
            0u);
}

TEST(HttpConformance, WhitespaceBeforeTheFirstFieldIsRejected) {
  expect_refused("GET /api/tags HTTP/1.1\r\n Host: x\r\n\r\n", 400);
}

TEST(HttpConformance, BareCrAndBareLfAreRejected) {
  expect_refused("GET /api/tags HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n", 400);
  expect_refused("GET /api/tags HTTP/1.1\nHost: x\n\n", 400);
  expect_refused("GET /api/tags HTTP/1.1\r\nHost: x\nX-A: b\r\n\r\n", 400);
}

TEST(HttpConformance, HigherMinorVersionIsServedAsHttp11) {
  const std::string got = forwarded("GET /api/tags HTTP/1.2\r\nHost: x\r\n\r\n");
  EXPECT_EQ(got.rfind("GET /api/tags HTTP/1.1\r\n", 0), 0u) << got;
}

TEST(HttpConformance, UpstreamGetsOurVersionForAnHttp10Client) {
  // RFC 9110 §2.5: an intermediary sends its own version; a 1.1 request line needs a Host.
  const std::string got = forwarded("GET /api/version HTTP/1.0\r\n\r\n");
  EXPECT_EQ(got.rfind("GET /api/version HTTP/1.1\r\n", 0), 0u) << got;
  EXPECT_NE(got.find("\r\nHost: 127.0.0.1:"), std::string::npos) << got;
}

TEST(HttpConformance, UnsupportedMajorVersionGets505) {
  for (const char* v : {"2.0", "3.0", "0.9"}) {
    expect_refused(std::string("GET /api/tags HTTP/") + v + "\r\nHost: x\r\n\r\n", 505);
  }
}

// ---- §3: request line, target forms, Host ---------------------------------------------------

TEST(HttpConformance, InvalidRequestLineGets400) {
  expect_refused("GET  /api/tags HTTP/1.1\r\nHost: x\r\n\r\n", 400);
  expect_refused("GET /api/tags\r\nHost: x\r\n\r\n", 400);
  expect_refused("GET /api/tags HTTP/1.1 extra\r\nHost: x\r\n\r\n", 400);
}

TEST(HttpConformance, UnknownMethodIsRefusedNotForwarded) {
  // llhttp knows a fixed method table; anything else is refused (400 today, 501 would be the
  // SHOULD of RFC 9110 §9.1 — see the table), never forwarded.
  for (const char* raw : {"BREW /api/tags HTTP/1.1\r\nHost: x\r\n\r\n",
                          "get /api/tags HTTP/1.1\r\nHost: x\r\n\r\n"}) {
    ScriptedUpstream up(ScriptedUpstream::answer_each(ok_body));
    TT_START_PROXY(proxy, up.port(), 1);
    const Outcome o = send_and_read_to_close(proxy.port(), raw);
    const int status = status_of(o.response);
    EXPECT_TRUE(status == 400 || status == 501) << o.response;
    EXPECT_TRUE(o.closed);
    EXPECT_EQ(up.accepted.load(), 0);
  }
}

TEST(HttpConformance, OverlongTargetGets414) {
  expect_refused("GET /" + std::string(9000, 'a') + " HTTP/1.1\r\nHost: x\r\n\r\n", 414);
}

TEST(HttpConformance, MissingHostInHttp11Gets400) {
  expect_refused("GET /api/tags HTTP/1.1\r\nAccept: */*\r\n\r\n", 400);
}

TEST(HttpConformance, TwoHostLinesGet400) {
  expect_refused("GET /api/tags HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400);
  expect_refused("GET /api/tags HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", 400);
}

TEST(HttpConformance, InvalidHostValueGets400) {
  expect_refused("GET /api/tags HTTP/1.1\r\nHost: user@evil.example\r\n\r\n", 400);
  expect_refused("GET /api/tags HTTP/1.1\r\nHost: a/b\r\n\r\n", 400);
  expect_refused("GET /api/tags HTTP/1.1\r\nHost: h:port\r\n\r\n", 400);
}

TEST(HttpConformance, Http10WithoutHostIsServed) {
  const std::string got = forwarded("GET /api/tags HTTP/1.0\r\n\r\n");
  EXPECT_NE(got.find("\r\nHost: 127.0.0.1:"), std::string::npos) << got;
}

TEST(HttpConformance, FragmentInTheTargetGets400) {
  expect_refused("GET /frag#section HTTP/1.1\r\nHost: x\r\n\r\n", 400);
}

TEST(HttpConformance, AbsoluteFormIsAcceptedAndForwardedInOriginForm) {
  ScriptedUpstream up(ScriptedUpstream::answer_each(ok_body));
  TT_START_PROXY(proxy, up.port(), 1);
  const int fd = connect_loopback(proxy.port());
  send_all(fd,
           "POST http://ollama.example:11434/api/chat HTTP/1.1\r\nHost: other.example\r\n"
           "Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}");
  EXPECT_EQ(status_of(test::read_ok(fd)), 200);
  close(fd);
  const auto reqs = up.nonempty_requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].rfind("POST /api/chat HTTP/1.1\r\n", 0), 0u) << reqs[0];
  EXPECT_NE(reqs[0].find("\r\nHost: 127.0.0.1:"), std::string::npos) << reqs[0];
  EXPECT_EQ(reqs[0].find("other.example"), std::string::npos) << reqs[0];
  // Routing and metering see the origin-form path (counted once the exchange is finished, a
  // moment after the client has its response).
  double counted = 0;
  for (int i = 0; i < 100 && counted < 1; ++i) {
    counted = metric_sum(proxy.scrape(), "tokentap_requests_total", "endpoint=\"/api/chat\"");
    if (counted < 1) std::this_thread::sleep_for(20ms);
  }
  EXPECT_EQ(counted, 1);
}

TEST(HttpConformance, AbsoluteFormAuthorityIsTheHostWhenPreserved) {
  // RFC 9112 §3.2.2 / RFC 9110 §7.2: the received Host is ignored and replaced by the target's.
  const std::string got =
      forwarded("GET http://ollama.example/api/tags?x=1 HTTP/1.1\r\nHost: other.example\r\n\r\n",
                {"--preserve-host"});
  EXPECT_EQ(got.rfind("GET /api/tags?x=1 HTTP/1.1\r\n", 0), 0u) << got;
  EXPECT_NE(got.find("\r\nHost: ollama.example\r\n"), std::string::npos) << got;
  EXPECT_EQ(got.find("other.example"), std::string::npos) << got;
}

TEST(HttpConformance, BadAbsoluteFormGets400) {
  expect_refused("GET ftp://ollama.example/api/tags HTTP/1.1\r\nHost: x\r\n\r\n", 400);
  expect_refused("GET http://user:pw@ollama.example/api/tags HTTP/1.1\r\nHost: x\r\n\r\n", 400);
  expect_refused("GET http:///api/tags HTTP/1.1\r\nHost: x\r\n\r\n", 400);
  // An empty path is refused too (a deliberate deviation, see the table).
  expect_refused("GET http://ollama.example HTTP/1.1\r\nHost: x\r\n\r\n", 400);
}

TEST(HttpConformance, AsteriskFormOnlyForOptions) {
  EXPECT_EQ(forwarded("OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n").rfind("OPTIONS * HTTP/1.1\r\n", 0),
            0u);
  expect_refused("GET * HTTP/1.1\r\nHost: x\r\n\r\n", 400);
}

TEST(HttpConformance, ConnectGets405WithAllowAndClose) {
  ScriptedUpstream up(ScriptedUpstream::answer_each(ok_body));
  TT_START_PROXY(proxy, up.port(), 1);
  const Outcome o = send_and_read_to_close(
      proxy.port(),
      "CONNECT ollama.example:443 HTTP/1.1\r\nHost: ollama.example:443\r\n\r\n"
      "GET /api/tags HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(status_of(o.response), 405) << o.response;
  const std::string allow = field_of(o.response, "Allow");
  EXPECT_NE(allow.find("GET"), std::string::npos) << o.response;
  EXPECT_EQ(allow.find("CONNECT"), std::string::npos) << o.response;
  EXPECT_TRUE(o.closed);
  EXPECT_EQ(o.response.find("HTTP/1.1", 10), std::string::npos) << "tunnel bytes parsed as HTTP";
  EXPECT_EQ(up.accepted.load(), 0);
}

TEST(HttpConformance, AuthorityFormForAnotherMethodGets400) {
  // §3.2.3: authority-form is for CONNECT only; llhttp refuses it as an invalid request line.
  expect_refused("GET ollama.example:443 HTTP/1.1\r\nHost: x\r\n\r\n", 400);
}

// ---- §5: field syntax ------------------------------------------------------------------------

TEST(HttpConformance, WhitespaceBeforeTheColonGets400) {
  expect_refused("GET /api/tags HTTP/1.1\r\nHost : x\r\n\r\n", 400);
}

TEST(HttpConformance, ObsFoldInARequestGets400) {
  expect_refused("GET /api/tags HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n", 400);
}

TEST(HttpConformance, ControlCharacterInAFieldValueGets400) {
  expect_refused(std::string("GET /api/tags HTTP/1.1\r\nHost: x\r\nX-A: a\0b\r\n\r\n", 45), 400);
  expect_refused(
      "GET /api/tags HTTP/1.1\r\nHost: x\r\nX-A: a\x01"
      "b\r\n\r\n",
      400);
}

// ---- §6, §7: message body length and transfer codings ----------------------------------------

TEST(HttpConformance, ChunkedNotFinalGets400AndClose) {
  // §6.3 rule 4: a request whose final transfer coding is not chunked MUST get a 400 + close.
  expect_refused("POST /api/tags HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 400);
  expect_refused("POST /api/tags HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
                 400);
  expect_refused(
      "POST /api/tags HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
      "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
      400);
}

TEST(HttpConformance, UnknownCodingBeforeChunkedIsForwarded) {
  // The body's length is known (chunked is final); the coding is the upstream's to judge.
  const std::string got = forwarded(
      "POST /api/tags HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n");
  EXPECT_NE(got.find("\r\nTransfer-Encoding: gzip, chunked\r\n"), std::string::npos) << got;
}

TEST(HttpConformance, TransferEncodingInHttp10Gets400AndClose) {
  expect_refused("POST /api/tags HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400);
}

TEST(HttpConformance, ContentLengthWithTransferEncodingGets400AndClose) {
  expect_refused(
      "POST /api/tags HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
      "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
      400);
}

TEST(HttpConformance, InvalidContentLengthGets400AndClose) {
  const char* bad[] = {"Content-Length: 5\r\nContent-Length: 6", "Content-Length: 5, 5",
                       "Content-Length: -1", "Content-Length: 0x10", "Content-Length: 1 2"};
  for (const char* cl : bad) {
    expect_refused(std::string("POST /api/tags HTTP/1.1\r\nHost: x\r\n") + cl + "\r\n\r\nhello",
                   400);
  }
}

TEST(HttpConformance, InvalidChunkSizeGets400AndClose) {
  for (const char* body : {"zz\r\nabc\r\n0\r\n\r\n", "fffffffffffffffffff\r\nabc\r\n0\r\n\r\n",
                           "-3\r\nabc\r\n0\r\n\r\n", "3\r\nabcXX0\r\n\r\n"}) {
    ScriptedUpstream up([](int fd, ScriptedUpstream&) { read_to_close(fd, 2000ms); });
    TT_START_PROXY(proxy, up.port(), 1);
    const Outcome o = send_and_read_to_close(
        proxy.port(),
        std::string("POST /api/tags HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n") +
            body);
    EXPECT_EQ(status_of(o.response), 400) << body << "\n→ " << o.response;
    EXPECT_TRUE(o.closed) << body;
  }
}

TEST(HttpConformance, RequestWithoutLengthHasNoBody) {
  // §6.3 rule 6: no Content-Length, no Transfer-Encoding: the body is empty and the bytes
  // that follow are the next request.
  ScriptedUpstream up(ScriptedUpstream::answer_each(ok_body));
  TT_START_PROXY(proxy, up.port(), 1);
  const int fd = connect_loopback(proxy.port());
  send_all(fd, "POST /api/tags HTTP/1.1\r\nHost: x\r\n\r\nGET /api/ps HTTP/1.1\r\nHost: x\r\n\r\n");
  const std::string two = read_until(
      fd, [](const std::string& d) { return d.size() >= 2 * std::string_view(ok_body).size(); });
  close(fd);
  EXPECT_EQ(two, std::string(ok_body) + ok_body);
  const auto reqs = up.nonempty_requests();
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_EQ(reqs[1].rfind("GET /api/ps HTTP/1.1\r\n", 0), 0u) << reqs[1];
}

TEST(HttpConformance, ChunkExtensionsAndTrailersAreForwardedWithTheBody) {
  const std::string body = "3;ext=\"v\"\r\nabc\r\n0\r\nX-Trailer: t\r\n\r\n";
  std::string got;
  ScriptedUpstream up([&](int fd, ScriptedUpstream&) {
    got = read_until(fd, [](const std::string& d) { return d.find("t\r\n\r\n") != d.npos; });
    send_all(fd, ok_body);
  });
  TT_START_PROXY(proxy, up.port(), 1);
  const int fd = connect_loopback(proxy.port());
  send_all(fd,
           "POST /api/blobs/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + body);
  EXPECT_EQ(status_of(test::read_ok(fd)), 200);
  close(fd);
  ASSERT_NE(got.find("\r\n\r\n"), std::string::npos);
  EXPECT_EQ(got.substr(got.find("\r\n\r\n") + 4), body);
}

// ---- RFC 9110 §7.6: intermediaries ------------------------------------------------------------

TEST(HttpConformance, HopByHopFieldsAreNotForwarded) {
  const std::string got = forwarded(
      "GET /api/tags HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, TE\r\nKeep-Alive: 5\r\n"
      "Proxy-Connection: keep-alive\r\nTE: trailers\r\nUpgrade: websocket\r\nX-End: 1\r\n\r\n");
  for (const char* name : {"Connection:", "Keep-Alive:", "Proxy-Connection:", "TE:", "Upgrade:"}) {
    EXPECT_EQ(got.find(std::string("\r\n") + name), std::string::npos) << name << "\n" << got;
  }
  EXPECT_NE(got.find("\r\nX-End: 1\r\n"), std::string::npos);
}

TEST(HttpConformance, EveryConnectionNominatedFieldIsRemoved) {
  // Issue 20: with eight slots, X-T8 and X-T9 reached the upstream.
  std::string list = "X-T0";
  std::string fields = "X-T0: v\r\n";
  for (int i = 1; i < 32; ++i) {
    list += ", X-T" + std::to_string(i);
    fields += "X-T" + std::to_string(i) + ": v\r\n";
  }
  const std::string got = forwarded("GET /api/tags HTTP/1.1\r\nHost: x\r\nConnection: " + list +
                                    "\r\n" + fields + "X-Kept: 1\r\n\r\n");
  EXPECT_EQ(got.find("X-T"), std::string::npos) << got;
  EXPECT_NE(got.find("\r\nX-Kept: 1\r\n"), std::string::npos) << got;
  // One more than the limit: refused, never forwarded with some left in.
  expect_refused("GET /api/tags HTTP/1.1\r\nHost: x\r\nConnection: " + list + ", X-T32\r\n" +
                     fields + "X-T32: v\r\n\r\n",
                 400);
}

TEST(HttpConformance, NominatingAFramingFieldGets400) {
  expect_refused(
      "POST /api/tags HTTP/1.1\r\nHost: x\r\nConnection: Content-Length\r\n"
      "Content-Length: 40\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
      400);
}

TEST(HttpConformance, ViaIsAppendedToTheForwardedRequest) {
  std::string got = forwarded("GET /api/tags HTTP/1.1\r\nHost: x\r\nVia: 1.1 edge\r\n\r\n");
  const auto edge = got.find("\r\nVia: 1.1 edge\r\n");
  const auto ours = got.find("\r\nVia: 1.1 tokentap\r\n");
  ASSERT_NE(edge, std::string::npos) << got;
  ASSERT_NE(ours, std::string::npos) << got;
  EXPECT_LT(edge, ours);
  got = forwarded("GET /api/tags HTTP/1.0\r\n\r\n");
  EXPECT_NE(got.find("\r\nVia: 1.0 tokentap\r\n"), std::string::npos) << got;
}

TEST(HttpConformance, MaxForwardsIsDecrementedForOptionsAndTrace) {
  std::string got = forwarded("OPTIONS /api/tags HTTP/1.1\r\nHost: x\r\nMax-Forwards: 3\r\n\r\n");
  EXPECT_NE(got.find("\r\nMax-Forwards: 2\r\n"), std::string::npos) << got;
  got = forwarded("GET /api/tags HTTP/1.1\r\nHost: x\r\nMax-Forwards: 3\r\n\r\n");
  EXPECT_NE(got.find("\r\nMax-Forwards: 3\r\n"), std::string::npos) << "other methods: untouched";
}

TEST(HttpConformance, MaxForwardsZeroIsAnsweredByTheProxy) {
  ScriptedUpstream up(ScriptedUpstream::answer_each(ok_body));
  TT_START_PROXY(proxy, up.port(), 1);
  test::HttpClient c;
  ASSERT_TRUE(c.connect(proxy.port()));
  ASSERT_TRUE(c.send("OPTIONS * HTTP/1.1\r\nHost: x\r\nMax-Forwards: 0\r\n\r\n"));
  const test::Response r = c.read_response();
  EXPECT_EQ(r.status, 200) << r.raw;
  EXPECT_TRUE(r.complete) << r.raw;
  EXPECT_EQ(up.accepted.load(), 0) << "a Max-Forwards: 0 request must not be forwarded";
}

TEST(HttpConformance, ExpectFromHttp10IsIgnored) {
  // RFC 9110 §10.1.1: no 100 to a 1.0 client, and the expectation is not forwarded.
  const std::string got = forwarded(
      "POST /api/blobs/x HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nab");
  EXPECT_EQ(got.find("Expect"), std::string::npos) << got;
  EXPECT_EQ(got.substr(got.size() - 2), "ab");
}

TEST(HttpConformance, OtherExpectationsAreForwarded) {
  // RFC 9110 §10.1.1: a server MAY answer 417 to an unknown expectation; the upstream decides.
  const std::string got = forwarded("GET /api/tags HTTP/1.1\r\nHost: x\r\nExpect: foo\r\n\r\n");
  EXPECT_NE(got.find("\r\nExpect: foo\r\n"), std::string::npos) << got;
}

TEST(HttpConformance, ExpectContinueIsForwardedAndThe100Relayed) {
  ScriptedUpstream up([](int fd, ScriptedUpstream&) {
    const std::string head = read_until(fd, has_head);
    if (head.find("\r\nExpect: 100-continue\r\n") == std::string::npos) return;
    send_all(fd, "HTTP/1.1 100 Continue\r\n\r\n");
    read_until(fd, [](const std::string& d) { return d.size() >= 4; });
    send_all(fd, "HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n");
  });
  TT_START_PROXY(proxy, up.port(), 1);
  const int fd = connect_loopback(proxy.port());
  send_all(fd,
           "PUT /api/blobs/sha256:ab HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
           "Content-Length: 4\r\n\r\n");
  EXPECT_EQ(read_until(fd, has_head), "HTTP/1.1 100 Continue\r\n\r\n");
  send_all(fd, "abcd");
  EXPECT_EQ(status_of(read_until(fd, has_head)), 201);
  close(fd);
}

TEST(HttpConformance, ExpectContinueIsAnsweredByTheProxyWhenItHoldsTheBody) {
  // An OpenAI-compatible request the proxy must read whole before forwarding (include_usage
  // injection): the proxy, as the server the client waits on, sends the 100 itself and the
  // upstream gets no expectation it would answer a second time.
  ScriptedUpstream up(ScriptedUpstream::answer_each(ok_body));
  TT_START_PROXY(proxy, up.port(), 1);
  const std::string body = R"({"model":"m","stream":true,"messages":[]})";
  const int fd = connect_loopback(proxy.port());
  send_all(fd,
           "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
           "Content-Type: application/json\r\nContent-Length: " +
               std::to_string(body.size()) + "\r\n\r\n");
  EXPECT_EQ(read_until(fd, has_head), "HTTP/1.1 100 Continue\r\n\r\n");
  send_all(fd, body);
  EXPECT_EQ(status_of(test::read_ok(fd)), 200);
  close(fd);
  const auto reqs = up.nonempty_requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].find("Expect"), std::string::npos) << reqs[0];
}

TEST(HttpConformance, UpgradeIsIgnoredAndTheNextRequestWorks) {
  // RFC 9110 §7.8: a server MAY ignore Upgrade. Issue 20: the next request got 400.
  ScriptedUpstream up(ScriptedUpstream::answer_each(ok_body));
  TT_START_PROXY(proxy, up.port(), 1);
  const int fd = connect_loopback(proxy.port());
  send_all(fd,
           "GET /api/tags HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\n"
           "Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n");
  EXPECT_EQ(test::read_ok(fd), ok_body);
  send_all(fd,
           "POST /api/show HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
           "Content-Length: 2\r\n\r\n{}");
  EXPECT_EQ(test::read_ok(fd), ok_body);
  send_all(fd, "GET /api/ps HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(test::read_ok(fd), ok_body) << "the connection is not wedged";
  close(fd);
  const auto reqs = up.nonempty_requests();
  ASSERT_EQ(reqs.size(), 3u);
  for (const std::string& r : reqs) {
    EXPECT_EQ(r.find("Upgrade"), std::string::npos) << r;
    EXPECT_EQ(r.find("HTTP2-Settings"), std::string::npos) << r;
  }
  // §7.8: a server MUST ignore Upgrade in an HTTP/1.0 request.
  const std::string got =
      forwarded("GET /api/tags HTTP/1.0\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n");
  EXPECT_EQ(got.find("Upgrade"), std::string::npos) << got;
}

TEST(HttpConformance, PathAndQueryAreForwardedUnchanged) {
  // RFC 9110 §7.7: a proxy MUST NOT modify the absolute-path and query.
  const std::string target = "/api/tags/%2e%2E/a%2Fb;p=1?q=%20x&&y=/..//#";
  const std::string sent = target.substr(0, target.size() - 1);  // without the '#'
  const std::string got = forwarded("GET " + sent + " HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(got.rfind("GET " + sent + " HTTP/1.1\r\n", 0), 0u) << got;
}

TEST(HttpConformance, RequestHeadOverTheLimitGets431) {
  expect_refused(
      "GET /api/tags HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(20000, 'a') + "\r\n\r\n", 431);
}

}  // namespace
}  // namespace tokentap
