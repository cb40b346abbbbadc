// Upstream failures seen through the proxy: an upstream that is down, never accepts, resets or
// closes mid-stream, sends garbage or a body shorter than its framing, or closes a pooled
// connection; and a client that aborts. The client must see a 502 or an honest truncation, never
// a faked complete response, and each failure is counted by kind.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "tokentap/base/clock.h"
#include "support/proxy_fixture.h"
#include "support/scripted_upstream.h"
#include "tokentap/upstream/upstream_pool.h"

namespace tokentap {
namespace {

using namespace std::chrono_literals;

using test::connect_loopback;
using test::has_head;
using test::listen_loopback;
using test::metric;
using test::ok_body;
using test::read_ok;
using test::read_to_close;
using test::read_until;
using test::ScriptedUpstream;
using test::send_all;

TEST(ProxyScripted, UpstreamDownGives502InOllamaShape) {
  std::uint16_t dead_port = 0;
  const int fd = listen_loopback(&dead_port);
  close(fd);  // nothing listens there now
  TT_START_PROXY(proxy, dead_port);
  const int c = connect_loopback(proxy.port());
  send_all(c, "POST /api/generate HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}");
  bool closed = false;
  const std::string resp = read_to_close(c, 5000ms, &closed);
  EXPECT_TRUE(closed);
  EXPECT_EQ(resp.rfind("HTTP/1.1 502 Bad Gateway\r\n", 0), 0u) << resp;
  EXPECT_NE(resp.find("Content-Type: application/json; charset=utf-8\r\n"), std::string::npos);
  EXPECT_NE(resp.find("\r\n\r\n{\"error\":\""), std::string::npos);
  close(c);
}

TEST(ProxyScripted, UpstreamThatNeverAcceptsGets502AfterTheConnectTimeout) {
  // A listener whose accept queue is full drops new SYNs: the upstream's connect neither
  // succeeds nor fails. The proxy must answer 502 after upstream_connect_timeout_ms, count a
  // connect error, and keep serving.
  std::uint16_t port = 0;
  const int full = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(full, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  ASSERT_EQ(listen(full, 0), 0);
  socklen_t len = sizeof(a);
  getsockname(full, reinterpret_cast<sockaddr*>(&a), &len);
  port = ntohs(a.sin_port);
  // Fill the accept queue (backlog 0 still queues one connection; a few more to be sure).
  std::vector<int> fillers;
  for (int i = 0; i < 4; ++i) {
    const int f = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    (void)connect(f, reinterpret_cast<sockaddr*>(&a), sizeof(a));
    fillers.push_back(f);
  }
  std::this_thread::sleep_for(100ms);
  TT_START_PROXY(proxy, port, 1);
  const int c = connect_loopback(proxy.port());
  const auto t0 = std::chrono::steady_clock::now();
  send_all(c, "POST /api/generate HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}");
  const std::string resp = read_until(c, has_head, 10000ms);
  const auto waited = std::chrono::steady_clock::now() - t0;
  EXPECT_EQ(resp.rfind("HTTP/1.1 502 Bad Gateway\r\n", 0), 0u) << resp;
  EXPECT_GE(waited, std::chrono::milliseconds(upstream_connect_timeout_ms - 100));
  EXPECT_LT(waited, std::chrono::milliseconds(upstream_connect_timeout_ms + 2000));
  close(c);
  const std::string m = proxy.scrape();
  EXPECT_EQ(metric(m, "tokentap_upstream_errors_total{kind=\"timeout\"}"), 1) << m;
  EXPECT_EQ(metric(m, "tokentap_upstream_errors_total{kind=\"connect\"}"), 0) << m;
  for (const int f : fillers) close(f);
  close(full);
}

TEST(ProxyScripted, UpstreamResetMidStreamTruncatesTheClient) {
  ScriptedUpstream up([](int fd, ScriptedUpstream& self) {
    self.read_request(fd);
    send_all(fd, "HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\n"
                 "Transfer-Encoding: chunked\r\n\r\n6\r\nline1\n\r\n");
    std::this_thread::sleep_for(50ms);
    linger l{1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));  // close() sends RST
  });
  TT_START_PROXY(proxy, up.port());
  const int c = connect_loopback(proxy.port());
  send_all(c, "POST /api/generate HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}");
  bool closed = false;
  const std::string resp = read_to_close(c, 5000ms, &closed);
  EXPECT_TRUE(closed);
  EXPECT_NE(resp.find("line1\n"), std::string::npos);
  EXPECT_EQ(resp.find("0\r\n\r\n"), std::string::npos) << "must not fake a complete response";
  close(c);
}

TEST(ProxyScripted, ClientAbortClosesTheUpstreamWithin50ms) {
  std::atomic<std::uint64_t> upstream_saw_close_ns{0};
  ScriptedUpstream up([&](int fd, ScriptedUpstream& self) {
    self.read_request(fd);
    send_all(fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\ntoken\n\r\n");
    // Keep "generating" until the proxy hangs up.
    read_to_close(fd, 5000ms);
    upstream_saw_close_ns = monotonic_ns();
  });
  TT_START_PROXY(proxy, up.port());
  const int c = connect_loopback(proxy.port());
  send_all(c, "POST /api/chat HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}");
  read_until(c, [](const std::string& d) { return d.find("token") != std::string::npos; });
  const std::uint64_t abort_ns = monotonic_ns();
  close(c);
  for (int i = 0; i < 200 && upstream_saw_close_ns == 0; ++i) std::this_thread::sleep_for(5ms);
  ASSERT_NE(upstream_saw_close_ns.load(), 0u);
  EXPECT_LT(upstream_saw_close_ns - abort_ns, 50'000'000u);
}

TEST(ProxyScripted, GarbageFromUpstreamGives502) {
  ScriptedUpstream up([](int fd, ScriptedUpstream& self) {
    self.read_request(fd);
    send_all(fd, "THIS IS NOT HTTP\r\n\r\n");
    read_to_close(fd, 1000ms);
  });
  TT_START_PROXY(proxy, up.port());
  const int c = connect_loopback(proxy.port());
  send_all(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  const std::string resp = read_until(c, has_head);
  EXPECT_EQ(resp.rfind("HTTP/1.1 502 Bad Gateway\r\n", 0), 0u) << resp;
  close(c);
}

TEST(ProxyScripted, UpstreamClosingAPooledConnectionIsNoticed) {
  ScriptedUpstream up([](int fd, ScriptedUpstream& self) {
    self.read_request(fd);
    send_all(fd, ok_body);
    // then close while the proxy holds this connection in its pool
  });
  TT_START_PROXY(proxy, up.port());
  for (int i = 0; i < 3; ++i) {
    const int c = connect_loopback(proxy.port());
    send_all(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    const std::string resp = read_ok(c);
    EXPECT_EQ(resp, ok_body) << "request " << i;
    close(c);
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_EQ(up.accepted.load(), 3);
}

TEST(ProxyScripted, BodyShorterThanContentLengthIsMalformedAndTruncated) {
  ScriptedUpstream up([](int fd, ScriptedUpstream& self) {
    self.read_request(fd);
    send_all(fd, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part");
  });  // then a clean close (FIN) 91 bytes early
  TT_START_PROXY(proxy, up.port());
  const int c = connect_loopback(proxy.port());
  send_all(c, "GET /api/version HTTP/1.1\r\nHost: x\r\n\r\n");
  bool closed = false;
  const std::string resp = read_to_close(c, 3000ms, &closed);
  close(c);
  EXPECT_TRUE(closed);
  EXPECT_EQ(resp, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part")
      << "the client sees the truncation, never a completed response";
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(metric(proxy.scrape(), "tokentap_upstream_errors_total{kind=\"malformed\"}"), 1);
}

TEST(ProxyScripted, MalformedChunkAfterOutputDeliversWhatCameThenCloses) {
  const std::string good = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nline1\n\r\n";
  ScriptedUpstream up([&](int fd, ScriptedUpstream& self) {
    self.read_request(fd);
    send_all(fd, good + "zz\r\n");  // not a chunk size
    read_to_close(fd, 1000ms);
  });
  TT_START_PROXY(proxy, up.port());
  const int c = connect_loopback(proxy.port());
  send_all(c, "POST /api/generate HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}");
  bool closed = false;
  const std::string resp = read_to_close(c, 3000ms, &closed);
  close(c);
  EXPECT_TRUE(closed);
  EXPECT_EQ(resp, good) << "the valid part arrives, the stream is cut, nothing is faked";
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(metric(proxy.scrape(), "tokentap_upstream_errors_total{kind=\"malformed\"}"), 1);
}

}  // namespace
}  // namespace tokentap
