// Forwarding through the proxy against a scripted upstream: what reaches the upstream (Host
// rewritten, head and body in one segment), keep-alive reuse, pipelining, HEAD and bodyless
// responses, HTTP/1.0 and Expect: 100-continue. Real sockets, real rings.

#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "support/proxy_fixture.h"
#include "support/scripted_upstream.h"
#include "support/tcp_segments.h"

namespace tokentap {
namespace {

using namespace std::chrono_literals;

using test::connect_loopback;
using test::has_head;
using test::ok_body;
using test::read_ok;
using test::read_to_close;
using test::read_until;
using test::ScriptedUpstream;
using test::send_all;

TEST(ProxyScripted, ForwardsAndRewritesHost) {
  ScriptedUpstream up([](int fd, ScriptedUpstream& self) {
    self.read_request(fd);
    send_all(fd, ok_body);
    read_to_close(fd, 2000ms);
  });
  TT_START_PROXY(proxy, up.port());
  const int c = connect_loopback(proxy.port());
  send_all(c, "GET /api/tags HTTP/1.1\r\nHost: proxy.example.com\r\nX-Keep: yes\r\n\r\n");
  const std::string resp = read_ok(c);
  EXPECT_EQ(resp, ok_body);
  close(c);
  const auto reqs = up.requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0], "GET /api/tags HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(up.port()) +
                         "\r\nX-Keep: yes\r\nVia: 1.1 tokentap\r\n\r\n");
}

TEST(ProxyScripted, KeepAliveReusesTheUpstreamConnection) {
  ScriptedUpstream up(ScriptedUpstream::answer_each(ok_body, 3));
  TT_START_PROXY(proxy, up.port());
  const int c = connect_loopback(proxy.port());
  for (int i = 0; i < 3; ++i) {
    send_all(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    const std::string resp = read_ok(c);
    EXPECT_EQ(resp, ok_body) << "request " << i;
  }
  close(c);
  EXPECT_EQ(up.accepted.load(), 1);
}

// A request whose head and body arrive together leaves in one sendmsg, on a fresh upstream
// connection and on a pooled one alike: a head sent alone, with its body following after that
// send completed, cost a third send per request (and a second TCP segment upstream).
TEST(ProxyScripted, RequestHeadAndBodyLeaveInOneUpstreamSegment) {
  constexpr int requests = 3;
  std::vector<std::optional<std::uint32_t>> segments(requests);
  ScriptedUpstream up([&segments](int fd, ScriptedUpstream& self) {
    std::uint32_t before = 0;
    for (int i = 0; i < requests; ++i) {
      if (self.read_request(fd).empty()) return;
      const auto now = test::data_segments_in(fd);
      if (now) segments[i] = *now - before;
      before = now.value_or(0);
      send_all(fd, ok_body);
    }
  });
  TT_START_PROXY(proxy, up.port());
  const int c = connect_loopback(proxy.port());
  const std::string body = R"({"model":"m","prompt":"hi","stream":false})";
  for (int i = 0; i < requests; ++i) {
    send_all(c, "POST /api/generate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body);
    ASSERT_EQ(read_ok(c), ok_body) << "request " << i;
  }
  close(c);
  EXPECT_EQ(up.accepted.load(), 1);
  ASSERT_EQ(up.requests().size(), static_cast<std::size_t>(requests));
  if (!segments[0]) GTEST_SKIP() << "kernel reports no tcpi_data_segs_in";
  for (int i = 0; i < requests; ++i) {
    ASSERT_TRUE(segments[i].has_value()) << "request " << i;
    EXPECT_EQ(*segments[i], 1u) << "request " << i
                                << (i == 0 ? " (fresh connection)" : " (pooled)");
  }
}

TEST(ProxyScripted, PipelinedRequestsAnsweredInOrder) {
  ScriptedUpstream up([](int fd, ScriptedUpstream& self) {
    for (int i = 0; i < 2; ++i) {
      const std::string req = self.read_request(fd);
      if (req.empty()) return;
      const std::string body = req.find("/first") != std::string::npos ? "one" : "two";
      send_all(fd, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n" + body);
    }
  });
  TT_START_PROXY(proxy, up.port());
  const int c = connect_loopback(proxy.port());
  send_all(c, "GET /first HTTP/1.1\r\nHost: x\r\n\r\nGET /second HTTP/1.1\r\nHost: x\r\n\r\n");
  const std::string resp = read_until(c, [](const std::string& d) {
    return d.find("two") != std::string::npos;
  });
  EXPECT_EQ(resp, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\noneHTTP/1.1 200 OK\r\n"
                  "Content-Length: 3\r\n\r\ntwo");
  close(c);
}

TEST(ProxyScripted, HeadResponseHasNoBody) {
  ScriptedUpstream up([](int fd, ScriptedUpstream& self) {
    for (int i = 0; i < 2; ++i) {
      const std::string req = self.read_request(fd);
      if (req.empty()) return;
      if (req.rfind("HEAD", 0) == 0) {
        send_all(fd, "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n"
                     "Content-Length: 17\r\n\r\n");
      } else {
        send_all(fd, "HTTP/1.1 200 OK\r\nContent-Length: 17\r\n\r\nOllama is running");
      }
    }
  });
  TT_START_PROXY(proxy, up.port());
  const int c = connect_loopback(proxy.port());
  send_all(c, "HEAD / HTTP/1.1\r\nHost: x\r\n\r\n");
  const std::string head = read_until(c, has_head);
  EXPECT_EQ(head, "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n"
                  "Content-Length: 17\r\n\r\n");
  // The connection is still in sync: a GET on it gets its own full response.
  send_all(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  const std::string get = read_until(c, [](const std::string& d) {
    return d.find("running") != std::string::npos;
  });
  EXPECT_EQ(get, "HTTP/1.1 200 OK\r\nContent-Length: 17\r\n\r\nOllama is running");
  close(c);
}

TEST(ProxyScripted, Http10ClientGetsACloseDelimitedResponse) {
  ScriptedUpstream up([](int fd, ScriptedUpstream& self) {
    const std::string req = self.read_request(fd);
    // Go answers an HTTP/1.0 request without chunking and closes.
    send_all(fd, "HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n{\"ok\":true}");
  });
  TT_START_PROXY(proxy, up.port());
  const int c = connect_loopback(proxy.port());
  send_all(c, "GET /api/version HTTP/1.0\r\n\r\n");
  bool closed = false;
  const std::string resp = read_to_close(c, 5000ms, &closed);
  EXPECT_TRUE(closed);
  // Our own version on the status line (RFC 9110 §2.5) and `close`, since the body is
  // close-delimited (RFC 9112 §9.6); every other byte as the upstream sent it.
  EXPECT_EQ(resp, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n"
                  "{\"ok\":true}");
  close(c);
  const auto reqs = up.requests();
  ASSERT_EQ(reqs.size(), 1u);
  // Forwarded in the proxy's own version (RFC 9110 §2.5), with the client's in Via.
  EXPECT_EQ(reqs[0].rfind("GET /api/version HTTP/1.1\r\n", 0), 0u) << reqs[0];
  EXPECT_NE(reqs[0].find("\r\nVia: 1.0 tokentap\r\n"), std::string::npos) << reqs[0];
  EXPECT_NE(reqs[0].find("\r\nHost: 127.0.0.1:"), std::string::npos) << "Host added for 1.0";
}

TEST(ProxyScripted, ExpectContinueIsForwardedBothWays) {
  ScriptedUpstream up([](int fd, ScriptedUpstream& self) {
    const std::string head = read_until(fd, has_head);
    if (head.find("Expect: 100-continue") == std::string::npos) return;
    send_all(fd, "HTTP/1.1 100 Continue\r\n\r\n");
    const std::string body = read_until(fd, [](const std::string& d) { return d.size() >= 10; });
    send_all(fd, "HTTP/1.1 201 Created\r\nContent-Length: " + std::to_string(body.size()) +
                     "\r\n\r\n" + body);
  });
  TT_START_PROXY(proxy, up.port());
  const int c = connect_loopback(proxy.port());
  send_all(c, "POST /api/blobs/sha256:abc HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n"
              "Expect: 100-continue\r\n\r\n");
  const std::string interim = read_until(c, has_head);
  EXPECT_EQ(interim, "HTTP/1.1 100 Continue\r\n\r\n");
  send_all(c, "0123456789");
  const std::string final_resp = read_until(c, [](const std::string& d) {
    return d.find("0123456789") != std::string::npos;
  });
  EXPECT_EQ(final_resp, "HTTP/1.1 201 Created\r\nContent-Length: 10\r\n\r\n0123456789");
  close(c);
}

TEST(ProxyScripted, BodylessResponseEndsWithoutWaitingForMoreBytes) {
  // The upstream answers with an empty 204, then keeps the connection open and silent: the
  // proxy must see the response end at the head, deliver it, and reuse the connection.
  ScriptedUpstream up(ScriptedUpstream::answer_each(
      "HTTP/1.1 204 No Content\r\nDate: Mon, 24 Aug 2026 14:00:11 GMT\r\n\r\n", 2));
  TT_START_PROXY(proxy, up.port());
  const int c = connect_loopback(proxy.port());
  for (int i = 0; i < 2; ++i) {
    send_all(c, "OPTIONS /api/chat HTTP/1.1\r\nHost: x\r\n\r\n");
    EXPECT_EQ(read_until(c, has_head),
              "HTTP/1.1 204 No Content\r\nDate: Mon, 24 Aug 2026 14:00:11 GMT\r\n\r\n");
  }
  close(c);
  EXPECT_EQ(up.accepted.load(), 1);
}

}  // namespace
}  // namespace tokentap
