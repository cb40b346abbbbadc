// HTTP conformance, response side and connections: one test per row of docs/http-conformance.md
// that concerns what the upstream sends and how connections persist (RFC 9112 §4–§9, RFC 9110
// §7.6, §15.2), over real sockets: a real tokentap Server (TestProxy) in front of a
// ScriptedUpstream that misbehaves exactly as each row needs. Request rows:
// http_conformance_test.cc.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "support/proxy_fixture.h"
#include "support/scripted_upstream.h"

namespace tokentap {
namespace {

using namespace std::chrono_literals;

using test::chunk;
using test::connect_loopback;
using test::has_head;
using test::metric;
using test::ok_body;
using test::read_ok;
using test::read_to_close;
using test::read_until;
using test::ScriptedUpstream;
using test::send_all;
using test::send_and_read_to_close;
using test::status_of;
using test::Outcome;

constexpr const char* get_tags = "GET /api/tags HTTP/1.1\r\nHost: x\r\n\r\n";
constexpr const char* malformed = "tokentap_upstream_errors_total{kind=\"malformed\"}";

std::string head_of(const std::string& raw) { return raw.substr(0, raw.find("\r\n\r\n") + 4); }

bool has_field(const std::string& raw, std::string_view name) {
  return head_of(raw).find("\r\n" + std::string(name) + ":") != std::string::npos;
}

// The value of `series` once it reaches `want` (metrics are counted as exchanges finish, a
// moment after the client has read), or its last value after 2 s.
double metric_eventually(const test::TestProxy& proxy, const std::string& series, double want) {
  double v = metric(proxy.scrape(), series);
  for (int i = 0; i < 100 && v < want; ++i) {
    std::this_thread::sleep_for(20ms);
    v = metric(proxy.scrape(), series);
  }
  return v;
}

// An upstream that answers one request with `response`, then records whether the proxy closed
// the connection (a broken upstream connection must never be pooled).
struct BrokenUpstream {
  explicit BrokenUpstream(std::string response)
      : up([this, response = std::move(response)](int fd, ScriptedUpstream& self) {
          self.read_request(fd);
          send_all(fd, response);
          bool closed = false;
          read_to_close(fd, 2000ms, &closed);
          proxy_closed = closed;
        }) {}
  std::atomic<bool> proxy_closed{false};
  ScriptedUpstream up;
};

// The upstream answers with `response`; the client must get a clean 502 (never a part of the
// broken head), the malformed counter must rise and the upstream connection must be closed.
void expect_502(const std::string& response) {
  BrokenUpstream broken(response);
  TT_START_PROXY(proxy, broken.up.port(), 1);
  const Outcome o = send_and_read_to_close(proxy.port(), get_tags);
  EXPECT_EQ(o.response.rfind("HTTP/1.1 502 Bad Gateway\r\n", 0), 0u) << o.response;
  EXPECT_EQ(o.response.find("HTTP/1.1 502", 1), std::string::npos) << o.response;
  std::this_thread::sleep_for(100ms);
  EXPECT_TRUE(broken.proxy_closed.load()) << "the broken upstream connection was kept";
  EXPECT_EQ(metric_eventually(proxy, malformed, 1), 1);
}

// ---- §4, RFC 9110 §2.5 and §7.6.1: the forwarded response head -----------------------------

TEST(HttpConformanceResponse, ResponseCarriesOurVersionAndTheUpstreamsReason) {
  ScriptedUpstream up(ScriptedUpstream::answer_each(
      "HTTP/1.0 404 Not  Found here\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\nnope!"));
  TT_START_PROXY(proxy, up.port(), 1);
  const int fd = connect_loopback(proxy.port());
  send_all(fd, get_tags);
  const std::string resp = read_until(fd, [](const std::string& d) { return d.ends_with("!"); });
  close(fd);
  EXPECT_EQ(resp.rfind("HTTP/1.1 404 Not  Found here\r\n", 0), 0u) << resp;
}

TEST(HttpConformanceResponse, EndToEndFieldsAreForwardedByteForByte) {
  const std::string response =
      "HTTP/1.1 200 OK\r\ncontent-type: application/json; charset=utf-8\r\n"
      "Date:  Fri, 04 Dec 2026 18:00:00 GMT \r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n"
      "X-Empty:\r\nContent-Length: 2\r\n\r\n{}";
  ScriptedUpstream up(ScriptedUpstream::answer_each(response));
  TT_START_PROXY(proxy, up.port(), 1);
  const int fd = connect_loopback(proxy.port());
  send_all(fd, get_tags);
  const std::string resp =
      read_until(fd, [&](const std::string& d) { return d.size() >= response.size(); });
  close(fd);
  EXPECT_EQ(resp, response);
}

TEST(HttpConformanceResponse, HopByHopResponseFieldsAreRemoved) {
  ScriptedUpstream up(ScriptedUpstream::answer_each(
      "HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Hop\r\nKeep-Alive: timeout=5\r\nX-Hop: 1\r\n"
      "Proxy-Connection: keep-alive\r\nUpgrade: h2c\r\nTE: trailers\r\nX-End: 2\r\n"
      "Content-Length: 5\r\n\r\nhello"));
  TT_START_PROXY(proxy, up.port(), 1);
  const int fd = connect_loopback(proxy.port());
  send_all(fd, get_tags);
  const std::string resp =
      read_until(fd, [](const std::string& d) { return d.ends_with("hello"); });
  close(fd);
  // The upstream's Connection is replaced where it stood by our own options for the client
  // connection (RFC 9110 §7.6.1 allows exactly that): keep-alive, never X-Hop.
  EXPECT_EQ(resp,
            "HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nX-End: 2\r\nContent-Length: 5\r\n\r\n"
            "hello");
}

TEST(HttpConformanceResponse, ViaIsNotAddedToResponses) {
  // RFC 9110 §7.6.3: a gateway MAY add Via to responses; tokentap does not (byte-exact heads).
  ScriptedUpstream up(ScriptedUpstream::answer_each(ok_body));
  TT_START_PROXY(proxy, up.port(), 1);
  const int fd = connect_loopback(proxy.port());
  send_all(fd, get_tags);
  EXPECT_EQ(read_ok(fd), ok_body);
  close(fd);
}

// ---- §5, §6.3, issue 20: responses the proxy must not forward -------------------------------

TEST(HttpConformanceResponse, TooManyConnectionOptionsInAResponseGets502) {
  std::string list = "X-T0";
  for (int i = 1; i <= 32; ++i) list += ", X-T" + std::to_string(i);
  expect_502("HTTP/1.1 200 OK\r\nConnection: " + list + "\r\nContent-Length: 0\r\n\r\n");
}

TEST(HttpConformanceResponse, ObsFoldInAResponseGets502) {
  expect_502("HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 0\r\n\r\n");
}

TEST(HttpConformanceResponse, WhitespaceBeforeTheColonInAResponseGets502) {
  expect_502("HTTP/1.1 200 OK\r\nContent-Length : 0\r\n\r\n");
}

TEST(HttpConformanceResponse, ControlCharacterInAResponseFieldGets502) {
  expect_502(
      "HTTP/1.1 200 OK\r\nX-A: a\x01"
      "b\r\nContent-Length: 0\r\n\r\n");
  expect_502("HTTP/1.1 200 OK\r\nX-A: a\rb\r\nContent-Length: 0\r\n\r\n");
}

TEST(HttpConformanceResponse, NominatingAFramingFieldInAResponseGets502) {
  expect_502("HTTP/1.1 200 OK\r\nConnection: Content-Length\r\nContent-Length: 5\r\n\r\nhello");
}

TEST(HttpConformanceResponse, InvalidStatusLineGets502) {
  expect_502("HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n");
  expect_502("HTTP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n");
  expect_502("THIS IS NOT HTTP\r\n\r\n");
}

TEST(HttpConformanceResponse, ContentLengthWithTransferEncodingGets502) {
  expect_502("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
}

TEST(HttpConformanceResponse, InvalidContentLengthGets502) {
  expect_502("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd");
  expect_502("HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\nabc");
}

TEST(HttpConformanceResponse, ResponseHeadOverTheLimitGets502) {
  // Issue 20: a 74 KiB head (700 fields) was forwarded with its 200.
  std::string big = "HTTP/1.1 200 OK\r\n";
  for (int i = 0; i < 700; ++i)
    big += "X-Field-" + std::to_string(i) + ": " + std::string(90, 'v') + "\r\n";
  big += "Content-Length: 5\r\n\r\nhello";
  expect_502(big);
}

TEST(HttpConformanceResponse, BrokenHeadInPiecesIsNeverForwardedInPart) {
  // Issue 20: the first lines reached the client, then EOF; a head is held until complete.
  std::atomic<bool> proxy_closed{false};
  ScriptedUpstream up([&](int fd, ScriptedUpstream& self) {
    self.read_request(fd);
    send_all(fd, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n");
    std::this_thread::sleep_for(100ms);
    send_all(fd, "X-Bad\x01: \r\n\r\n");
    bool closed = false;
    read_to_close(fd, 2000ms, &closed);
    proxy_closed = closed;
  });
  TT_START_PROXY(proxy, up.port(), 1);
  const Outcome o = send_and_read_to_close(proxy.port(), get_tags);
  EXPECT_EQ(o.response.rfind("HTTP/1.1 502 Bad Gateway\r\n", 0), 0u) << o.response;
  EXPECT_EQ(o.response.find("text/plain"), std::string::npos) << o.response;
  std::this_thread::sleep_for(100ms);
  EXPECT_TRUE(proxy_closed.load());
  EXPECT_EQ(metric_eventually(proxy, malformed, 1), 1);
}

TEST(HttpConformanceResponse, UnsolicitedSwitchingProtocolsGets502) {
  // RFC 9110 §15.2.2: a server MUST NOT switch to a protocol the client did not ask for, and
  // the proxy strips Upgrade, so a 101 is always unsolicited.
  expect_502("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n");
}

// ---- §6.3: message body length ---------------------------------------------------------------

TEST(HttpConformanceResponse, ResponseToHeadHasNoBody) {
  ScriptedUpstream up(ScriptedUpstream::answer_each(
      "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"));
  TT_START_PROXY(proxy, up.port(), 1);
  const int fd = connect_loopback(proxy.port());
  send_all(fd, "HEAD /api/tags HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(read_until(fd, has_head),
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n");
  send_all(fd, "HEAD /api/tags HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(status_of(read_until(fd, has_head)), 200) << "the connection stays in sync";
  close(fd);
  EXPECT_EQ(up.accepted.load(), 1);
}

TEST(HttpConformanceResponse, NoContentAndNotModifiedEndAtTheirHead) {
  // Rule 1: 204 and 304 end at the empty line whatever Content-Length / Transfer-Encoding say.
  const char* heads[] = {"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n",
                         "HTTP/1.1 304 Not Modified\r\nContent-Length: 100000\r\n\r\n",
                         "HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n"};
  for (const char* head : heads) {
    ScriptedUpstream up([head](int fd, ScriptedUpstream& self) {
      self.read_request(fd);
      send_all(fd, head);
      self.read_request(fd);
      send_all(fd, ok_body);
    });
    TT_START_PROXY(proxy, up.port(), 1);
    const int fd = connect_loopback(proxy.port());
    send_all(fd, "GET /api/tags HTTP/1.1\r\nHost: x\r\nIf-None-Match: \"a\"\r\n\r\n");
    EXPECT_EQ(status_of(read_until(fd, has_head)), status_of(head));
    send_all(fd, get_tags);
    EXPECT_EQ(read_ok(fd), ok_body) << head;
    close(fd);
    EXPECT_EQ(up.accepted.load(), 1) << head;
  }
}

TEST(HttpConformanceResponse, CloseDelimitedResponseEndsWithTheConnection) {
  // Rule 8 (and rule 4 for a final coding other than chunked): the body runs to the close.
  for (const char* response : {"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end",
                               "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nuntil the end"}) {
    ScriptedUpstream up([response](int fd, ScriptedUpstream& self) {
      self.read_request(fd);
      send_all(fd, response);
    });
    TT_START_PROXY(proxy, up.port(), 1);
    const Outcome o = send_and_read_to_close(proxy.port(), get_tags);
    EXPECT_TRUE(o.closed);
    EXPECT_TRUE(o.response.ends_with("\r\n\r\nuntil the end")) << o.response;
    EXPECT_EQ(status_of(o.response), 200);
  }
}

TEST(HttpConformanceResponse, TruncatedBodyIsNeverCompleted) {
  // §8: a Content-Length body cut short, or a chunked one without its last chunk, is
  // incomplete: the client sees the cut (a close), never a completed message.
  const char* responses[] = {"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part",
                             "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"};
  for (const char* response : responses) {
    ScriptedUpstream up([response](int fd, ScriptedUpstream& self) {
      self.read_request(fd);
      send_all(fd, response);
    });
    TT_START_PROXY(proxy, up.port(), 1);
    const Outcome o = send_and_read_to_close(proxy.port(), get_tags);
    EXPECT_TRUE(o.closed);
    EXPECT_EQ(o.response, response);
    std::this_thread::sleep_for(50ms);
    EXPECT_EQ(metric_eventually(proxy, malformed, 1), 1) << response;
  }
}

// ---- §6.1, §9.3: HTTP/1.0 clients ------------------------------------------------------------

TEST(HttpConformanceResponse, Http10ClientGetsADechunkedCloseDelimitedBody) {
  // §6.1: no Transfer-Encoding to a 1.0 recipient (issue 15: it received chunked framing);
  // §7.1.2: removing the chunked coding, the trailer section is discarded.
  ScriptedUpstream up(ScriptedUpstream::answer_each(
      "HTTP/1.1 200 OK\r\nContent-Type: "
      "application/x-ndjson\r\nTransfer-Encoding: chunked\r\n\r\n" +
      chunk("{\"a\":1}\n") + chunk("{\"b\":2}\n") + "0\r\nX-Trailer: t\r\n\r\n"));
  TT_START_PROXY(proxy, up.port(), 1);
  const Outcome o = send_and_read_to_close(
      proxy.port(), "GET /api/tags HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
  EXPECT_TRUE(o.closed);
  EXPECT_EQ(o.response,
            "HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\nConnection: close\r\n\r\n"
            "{\"a\":1}\n{\"b\":2}\n");
}

TEST(HttpConformanceResponse, Http10ClientWithoutKeepAliveIsClosed) {
  ScriptedUpstream up(ScriptedUpstream::answer_each(ok_body));
  TT_START_PROXY(proxy, up.port(), 1);
  const Outcome o = send_and_read_to_close(proxy.port(), "GET /api/tags HTTP/1.0\r\n\r\n");
  EXPECT_TRUE(o.closed);
  EXPECT_TRUE(o.response.ends_with("\r\n\r\nhello")) << o.response;
  EXPECT_EQ(status_of(o.response), 200);
}

TEST(HttpConformanceResponse, Http10KeepAliveClientIsKeptAlive) {
  ScriptedUpstream up(ScriptedUpstream::answer_each(ok_body));
  TT_START_PROXY(proxy, up.port(), 1);
  const int fd = connect_loopback(proxy.port());
  for (int i = 0; i < 2; ++i) {
    send_all(fd, "GET /api/tags HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    const std::string resp =
        read_until(fd, [](const std::string& d) { return d.ends_with("hello"); });
    EXPECT_NE(head_of(resp).find("\r\nConnection: keep-alive\r\n"), std::string::npos) << resp;
    EXPECT_EQ(status_of(resp), 200) << "request " << i;
  }
  close(fd);
}

// ---- RFC 9110 §15.2: informational responses -------------------------------------------------

std::string early_hints_then_ok() {
  return std::string("HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n") +
         ok_body;
}

TEST(HttpConformanceResponse, InformationalResponsesAreForwardedToHttp11Clients) {
  ScriptedUpstream up(ScriptedUpstream::answer_each(early_hints_then_ok()));
  TT_START_PROXY(proxy, up.port(), 1);
  const int fd = connect_loopback(proxy.port());
  send_all(fd, get_tags);
  const std::string resp =
      read_until(fd, [](const std::string& d) { return d.ends_with("hello"); });
  close(fd);
  EXPECT_EQ(resp, early_hints_then_ok());
}

TEST(HttpConformanceResponse, NoInformationalResponseToAnHttp10Client) {
  // Issue 20: a 103 reached a 1.0 client, which took it as the final response.
  ScriptedUpstream up(ScriptedUpstream::answer_each(early_hints_then_ok()));
  TT_START_PROXY(proxy, up.port(), 1);
  const Outcome o = send_and_read_to_close(proxy.port(), "GET /api/tags HTTP/1.0\r\n\r\n");
  EXPECT_EQ(status_of(o.response), 200) << o.response;
  EXPECT_EQ(o.response.find("103"), std::string::npos) << o.response;
  EXPECT_TRUE(o.response.ends_with("hello"));
}

// ---- §9: connection management ---------------------------------------------------------------

TEST(HttpConformanceResponse, Http11IsPersistentByDefault) {
  ScriptedUpstream up(ScriptedUpstream::answer_each(ok_body));
  TT_START_PROXY(proxy, up.port(), 1);
  const int fd = connect_loopback(proxy.port());
  for (int i = 0; i < 3; ++i) {
    send_all(fd, get_tags);
    EXPECT_EQ(read_ok(fd), ok_body) << "request " << i;
  }
  close(fd);
  EXPECT_EQ(up.accepted.load(), 1);
}

TEST(HttpConformanceResponse, ClientCloseEndsTheConnectionAfterItsResponse) {
  // §9.6: answer the request carrying close, say close, process nothing after it.
  ScriptedUpstream up(ScriptedUpstream::answer_each(ok_body));
  TT_START_PROXY(proxy, up.port(), 1);
  const Outcome o =
      send_and_read_to_close(proxy.port(),
                             "GET /api/tags HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                             "GET /api/ps HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_TRUE(o.closed);
  EXPECT_EQ(status_of(o.response), 200);
  EXPECT_TRUE(has_field(o.response, "Connection")) << o.response;
  EXPECT_NE(head_of(o.response).find("\r\nConnection: close\r\n"), std::string::npos);
  EXPECT_EQ(o.response.find("HTTP/1.1", 1), std::string::npos) << "a second response";
  EXPECT_EQ(up.nonempty_requests().size(), 1u);
}

TEST(HttpConformanceResponse, UpstreamCloseIsNotReused) {
  ScriptedUpstream up(ScriptedUpstream::answer_each(
      "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 5\r\n\r\nhello", 1));
  TT_START_PROXY(proxy, up.port(), 1);
  for (int i = 0; i < 2; ++i) {
    const int fd = connect_loopback(proxy.port());
    send_all(fd, get_tags);
    const std::string resp =
        read_until(fd, [](const std::string& d) { return d.ends_with("hello"); });
    EXPECT_EQ(status_of(resp), 200) << "request " << i;
    close(fd);
  }
  EXPECT_EQ(up.accepted.load(), 2);
}

TEST(HttpConformanceResponse, PipelinedRequestsAreAnsweredInOrder) {
  // §9.3.2: responses in the order the requests arrived, however the upstream paces them.
  ScriptedUpstream up([](int fd, ScriptedUpstream& self) {
    for (int i = 0; i < 3; ++i) {
      const std::string req = self.read_request(fd);
      if (req.empty()) return;
      if (i == 0) std::this_thread::sleep_for(50ms);
      const std::string body = req.substr(4, req.find(' ', 4) - 4);  // the path
      send_all(fd, "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(body.size()) +
                       "\r\n\r\n" + body);
    }
  });
  TT_START_PROXY(proxy, up.port(), 1);
  const int fd = connect_loopback(proxy.port());
  send_all(fd,
           "GET /one HTTP/1.1\r\nHost: x\r\n\r\nGET /two HTTP/1.1\r\nHost: x\r\n\r\n"
           "GET /three HTTP/1.1\r\nHost: x\r\n\r\n");
  const std::string resp =
      read_until(fd, [](const std::string& d) { return d.ends_with("three"); });
  close(fd);
  EXPECT_EQ(resp,
            "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n/one"
            "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n/two"
            "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\n/three");
}

TEST(HttpConformanceResponse, IncompleteRequestHeadTimesOutWith408) {
  // §9.5: a server may close an idle or stalled connection; a head that trickles past the
  // deadline gets 408 and a close.
  ScriptedUpstream up(ScriptedUpstream::answer_each(ok_body));
  TT_START_PROXY(proxy, up.port(), 1, {"--head-timeout", "200"});
  const int fd = connect_loopback(proxy.port());
  send_all(fd, "GET /api/tags HTTP/1.1\r\nHost: x\r\n");
  bool closed = false;
  const std::string resp = read_to_close(fd, 3000ms, &closed);
  close(fd);
  EXPECT_EQ(status_of(resp), 408) << resp;
  EXPECT_TRUE(closed);
  EXPECT_EQ(up.accepted.load(), 0);
}

}  // namespace
}  // namespace tokentap
