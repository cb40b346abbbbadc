// Proxy against a scripted upstream: real sockets, real rings. Each test scripts the upstream's
// exact bytes (including broken ones) and checks what the client and the upstream observe.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <chrono>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "tokentap/base/clock.h"
#include "tokentap/base/config.h"
#include "support/proxy_fixture.h"
#include "support/scripted_upstream.h"
#include "support/stream_parts.h"
#include "support/tcp_segments.h"
#include "tokentap/app/server.h"
#include "tokentap/upstream/upstream_pool.h"

namespace tokentap {
namespace {

using namespace std::chrono_literals;

using test::ScriptedUpstream;
using test::chunk;
using test::connect_loopback;
using test::dechunk;
using test::has_head;
using test::listen_loopback;
using test::ok_body;
using test::read_ok;
using test::read_to_close;
using test::read_until;
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
                         "\r\nX-Keep: yes\r\n\r\n");
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
    EXPECT_EQ(*segments[i], 1u) << "request " << i << (i == 0 ? " (fresh connection)" : " (pooled)");
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

TEST(ProxyScripted, BadRequestGets400AndClose) {
  ScriptedUpstream up([](int fd, ScriptedUpstream& self) { self.read_request(fd); });
  TT_START_PROXY(proxy, up.port());
  const int c = connect_loopback(proxy.port());
  send_all(c, "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab");
  bool closed = false;
  const std::string resp = read_to_close(c, 3000ms, &closed);
  EXPECT_EQ(resp.rfind("HTTP/1.1 400 Bad Request\r\n", 0), 0u) << resp;
  EXPECT_TRUE(closed);
  close(c);
  EXPECT_EQ(up.accepted.load(), 0);
}

TEST(ProxyScripted, OversizedHeadGets431) {
  ScriptedUpstream up([](int fd, ScriptedUpstream& self) { self.read_request(fd); });
  TT_START_PROXY(proxy, up.port());
  const int c = connect_loopback(proxy.port());
  send_all(c, "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(20000, 'a') + "\r\n\r\n");
  const std::string resp = read_until(c, has_head);
  EXPECT_EQ(resp.rfind("HTTP/1.1 431 Request Header Fields Too Large\r\n", 0), 0u) << resp;
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
  EXPECT_EQ(resp, "HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n{\"ok\":true}");
  close(c);
  const auto reqs = up.requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].rfind("GET /api/version HTTP/1.0\r\n", 0), 0u);
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

// The upstream-side and client-side checksums of a spliced body, chunk by chunk.
std::uint64_t fnv1a(std::uint64_t h, const char* p, std::size_t n) {
  return test::fnv1a64(std::string_view(p, n), h);
}
constexpr std::uint64_t fnv_basis = 14695981039346656037ull;

TEST(ProxyScripted, LargeUploadIsSplicedIntact) {
  constexpr std::size_t total = 256u << 20;  // 256 MiB
  std::atomic<std::uint64_t> upstream_hash{0};
  std::atomic<std::uint64_t> upstream_bytes{0};
  ScriptedUpstream up([&](int fd, ScriptedUpstream& self) {
    const std::string head = read_until(fd, has_head);
    const auto end = head.find("\r\n\r\n") + 4;
    std::uint64_t h = fnv1a(fnv_basis, head.data() + end, head.size() - end);
    std::uint64_t got = head.size() - end;
    std::vector<char> buf(1 << 20);
    while (got < total) {
      const ssize_t n = recv(fd, buf.data(), buf.size(), 0);
      if (n <= 0) break;
      h = fnv1a(h, buf.data(), static_cast<std::size_t>(n));
      got += static_cast<std::uint64_t>(n);
    }
    upstream_hash = h;
    upstream_bytes = got;
    send_all(fd, "HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n");
  });
  TT_START_PROXY(proxy, up.port());
  const int c = connect_loopback(proxy.port());
  send_all(c, "POST /api/blobs/sha256:big HTTP/1.1\r\nHost: x\r\nContent-Length: " +
                  std::to_string(total) + "\r\n\r\n");
  std::vector<char> chunk(1 << 20);
  std::uint64_t h = fnv_basis;
  for (std::size_t sent = 0; sent < total; sent += chunk.size()) {
    for (std::size_t i = 0; i < chunk.size(); ++i) chunk[i] = static_cast<char>((sent + i) * 31 + 7);
    h = fnv1a(h, chunk.data(), chunk.size());
    send_all(c, std::string_view(chunk.data(), chunk.size()));
  }
  bool closed = false;
  const std::string resp = read_until(c, has_head, 20000ms, &closed);
  EXPECT_EQ(resp, "HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n")
      << "closed=" << closed << "\n" << proxy.scrape();
  EXPECT_EQ(upstream_bytes.load(), total);
  EXPECT_EQ(upstream_hash.load(), h);
  close(c);
}

TEST(ProxyScripted, LargeDownloadIsSplicedIntact) {
  constexpr std::size_t total = 256u << 20;
  ScriptedUpstream up([&](int fd, ScriptedUpstream& self) {
    self.read_request(fd);
    send_all(fd, "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: " +
                     std::to_string(total) + "\r\n\r\n");
    std::vector<char> chunk(1 << 20);
    for (std::size_t sent = 0; sent < total; sent += chunk.size()) {
      for (std::size_t i = 0; i < chunk.size(); ++i) chunk[i] = static_cast<char>((sent + i) * 13 + 1);
      send_all(fd, std::string_view(chunk.data(), chunk.size()));
    }
    read_to_close(fd, 2000ms);
  });
  TT_START_PROXY(proxy, up.port());
  const int c = connect_loopback(proxy.port());
  send_all(c, "GET /model.bin HTTP/1.1\r\nHost: x\r\n\r\n");
  std::string head = read_until(c, has_head);
  const auto end = head.find("\r\n\r\n") + 4;
  std::uint64_t got = head.size() - end;
  std::uint64_t h = fnv1a(fnv_basis, head.data() + end, got);
  std::vector<char> buf(1 << 20);
  while (got < total) {
    const ssize_t n = recv(c, buf.data(), buf.size(), 0);
    if (n <= 0) break;
    h = fnv1a(h, buf.data(), static_cast<std::size_t>(n));
    got += static_cast<std::uint64_t>(n);
  }
  std::uint64_t want = fnv_basis;
  std::vector<char> chunk(1 << 20);
  for (std::size_t sent = 0; sent < total; sent += chunk.size()) {
    for (std::size_t i = 0; i < chunk.size(); ++i) chunk[i] = static_cast<char>((sent + i) * 13 + 1);
    want = fnv1a(want, chunk.data(), chunk.size());
  }
  EXPECT_EQ(got, total);
  EXPECT_EQ(h, want);
  close(c);
}


using test::metric;
using test::metric_sum;

TEST(ProxyScripted, MetricsCountRequestsBytesAndFailures) {
  ScriptedUpstream up(ScriptedUpstream::answer_each(ok_body, 3));
  TT_START_PROXY(proxy, up.port());
  const int c = connect_loopback(proxy.port());
  const std::string req = "GET /api/tags HTTP/1.1\r\nHost: x\r\n\r\n";
  for (int i = 0; i < 3; ++i) {
    send_all(c, req);
    read_ok(c);
  }
  close(c);
  std::this_thread::sleep_for(50ms);
  const std::string m = proxy.scrape();
  EXPECT_EQ(metric(m, "tokentap_requests_total{endpoint=\"other\",model=\"unknown\",status=\"200\","
                      "stream=\"false\"}"), 3) << m;
  EXPECT_EQ(metric(m, "tokentap_request_bytes_total{endpoint=\"other\"}"), 3.0 * req.size());
  EXPECT_EQ(metric(m, "tokentap_response_bytes_total{endpoint=\"other\"}"),
            3.0 * std::strlen(ok_body));
  EXPECT_EQ(metric(m, "tokentap_connections_total"), 1);
  EXPECT_EQ(metric(m, "tokentap_connections_open"), 0);
}

TEST(ProxyScripted, MetricsCountUpstreamConnectErrorsAnd502) {
  std::uint16_t dead_port = 0;
  close(listen_loopback(&dead_port));
  TT_START_PROXY(proxy, dead_port);
  const int c = connect_loopback(proxy.port());
  send_all(c, "POST /api/generate HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}");
  read_to_close(c, 3000ms);
  close(c);
  const std::string m = proxy.scrape();
  EXPECT_EQ(metric(m, "tokentap_upstream_errors_total{kind=\"connect\"}"), 1) << m;
  EXPECT_EQ(metric(m, "tokentap_requests_total{endpoint=\"/api/generate\",model=\"unknown\","
                      "status=\"502\",stream=\"true\"}"), 1) << m;
  EXPECT_EQ(metric(m, "tokentap_active_requests{endpoint=\"/api/generate\",model=\"unknown\"}"), 0);
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

TEST(ProxyScripted, SlowlorisHeadGets408) {
  ScriptedUpstream up([](int fd, ScriptedUpstream& self) { self.read_request(fd); });
  TT_START_PROXY(proxy, up.port(), 1, {"--head-timeout", "200"});
  const int c = connect_loopback(proxy.port());
  send_all(c, "GET / HTTP/1.1\r\nHost: x\r\n");  // never finished
  const auto t0 = std::chrono::steady_clock::now();
  bool closed = false;
  const std::string resp = read_to_close(c, 3000ms, &closed);
  const auto waited = std::chrono::steady_clock::now() - t0;
  EXPECT_EQ(resp.rfind("HTTP/1.1 408 Request Timeout\r\n", 0), 0u) << resp;
  EXPECT_TRUE(closed);
  EXPECT_GE(waited, 150ms);
  EXPECT_LT(waited, 2000ms);
  close(c);
  EXPECT_EQ(metric(proxy.scrape(), "tokentap_connections_rejected_total{reason=\"timeout\"}"), 1);
}

TEST(ProxyScripted, IdleKeepAliveIsClosedButStreamsAreNot) {
  ScriptedUpstream up([](int fd, ScriptedUpstream& self) {
    self.read_request(fd);
    // A stream slower than the idle timeout between lines must not be cut.
    send_all(fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
    for (int i = 0; i < 3; ++i) {
      std::this_thread::sleep_for(250ms);
      send_all(fd, "2\r\na\n\r\n");
    }
    send_all(fd, "0\r\n\r\n");
    read_to_close(fd, 3000ms);
  });
  TT_START_PROXY(proxy, up.port(), 1, {"--idle-timeout", "200", "--head-timeout", "200"});
  const int c = connect_loopback(proxy.port());
  send_all(c, "POST /api/generate HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}");
  const std::string resp = read_until(c, [](const std::string& d) {
    return d.find("0\r\n\r\n") != std::string::npos;
  });
  EXPECT_NE(resp.find("0\r\n\r\n"), std::string::npos) << "stream was cut: " << resp;
  // Now idle: closed after the idle timeout, without a response.
  bool closed = false;
  const std::string rest = read_to_close(c, 2000ms, &closed);
  EXPECT_TRUE(closed);
  EXPECT_EQ(rest, "");
  close(c);
}


TEST(ProxyScripted, MetersAnOllamaStream) {
  ScriptedUpstream up([](int fd, ScriptedUpstream& self) {
    self.read_request(fd);
    send_all(fd, "HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\n"
                 "Date: Mon, 24 Aug 2026 14:00:11 GMT\r\nTransfer-Encoding: chunked\r\n\r\n");
    const std::string prefix = "{\"model\":\"llama3.2\",\"created_at\":\"2026-08-24T14:00:11.5Z\",";
    send_all(fd, chunk(prefix + "\"response\":\"The\",\"done\":false}\n"));
    std::this_thread::sleep_for(20ms);
    send_all(fd, chunk(prefix + "\"response\":\" sky\",\"done\":false}\n"));
    send_all(fd, chunk(prefix + "\"response\":\"\",\"done\":true,\"done_reason\":\"stop\","
                                "\"context\":[1,2,3],\"total_duration\":557637585,"
                                "\"load_duration\":14213406,\"prompt_eval_count\":46,"
                                "\"prompt_eval_duration\":21418000,\"eval_count\":75,"
                                "\"eval_duration\":519493000}\n") +
                     "0\r\n\r\n");
    read_to_close(fd, 1000ms);
  });
  TT_START_PROXY(proxy, up.port());
  const int c = connect_loopback(proxy.port());
  const std::string body = "{\"prompt\":\"Why is the sky blue?\",\"model\":\"llama3.2\"}";
  send_all(c, "POST /api/generate HTTP/1.1\r\nHost: x\r\nContent-Length: " +
                  std::to_string(body.size()) + "\r\n\r\n" + body);
  const std::string resp =
      read_until(c, [](const std::string& d) { return d.find("0\r\n\r\n") != std::string::npos; });
  EXPECT_NE(resp.find("\"eval_count\":75"), std::string::npos);
  close(c);
  std::this_thread::sleep_for(50ms);
  const std::string m = proxy.scrape();
  const std::string labels = "{endpoint=\"/api/generate\",model=\"llama3.2\"}";
  EXPECT_EQ(metric(m, "tokentap_prompt_tokens_total" + labels), 46) << m;
  EXPECT_EQ(metric(m, "tokentap_completion_tokens_total" + labels), 75);
  EXPECT_EQ(metric(m, "tokentap_requests_total{endpoint=\"/api/generate\",model=\"llama3.2\","
                      "status=\"200\",stream=\"true\"}"), 1);
  EXPECT_EQ(metric(m, "tokentap_time_to_first_token_seconds_count" + labels), 1);
  EXPECT_EQ(metric(m, "tokentap_time_per_output_token_seconds_count" + labels), 1);
  EXPECT_NEAR(metric(m, "tokentap_model_load_seconds_total{model=\"llama3.2\"}"), 0.014213406, 1e-9);
  EXPECT_NEAR(metric(m, "tokentap_generation_seconds_total{model=\"llama3.2\"}"), 0.519493, 1e-9);
  EXPECT_EQ(metric(m, "tokentap_active_requests" + labels), 0);
}

TEST(ProxyScripted, TruncatedStreamCountsUsageMissing) {
  ScriptedUpstream up([](int fd, ScriptedUpstream& self) {
    self.read_request(fd);
    send_all(fd, "HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\n"
                 "Transfer-Encoding: chunked\r\n\r\n" +
                     chunk("{\"model\":\"m1\",\"response\":\"The\",\"done\":false}\n"));
    std::this_thread::sleep_for(30ms);
  });
  TT_START_PROXY(proxy, up.port());
  const int c = connect_loopback(proxy.port());
  const std::string body = "{\"model\":\"m1\",\"prompt\":\"x\"}";
  send_all(c, "POST /api/chat HTTP/1.1\r\nHost: x\r\nContent-Length: " +
                  std::to_string(body.size()) + "\r\n\r\n" + body);
  read_to_close(c, 2000ms);
  close(c);
  std::this_thread::sleep_for(50ms);
  const std::string m = proxy.scrape();
  EXPECT_EQ(metric(m, "tokentap_usage_missing_total{endpoint=\"/api/chat\"}"), 1) << m;
  // The upstream closed cleanly inside a chunked body: a response shorter than its framing.
  EXPECT_EQ(metric(m, "tokentap_upstream_errors_total{kind=\"malformed\"}"), 1);
  EXPECT_EQ(metric(m, "tokentap_upstream_errors_total{kind=\"reset\"}"), 0);
}


const std::string sse_prefix =
    "data: {\"id\":\"chatcmpl-318\",\"object\":\"chat.completion.chunk\",\"created\":1787580250,"
    "\"model\":\"llama3.2\",\"system_fingerprint\":\"fp_ollama\",";
const std::string sse_first = sse_prefix +
    "\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"The\"},"
    "\"finish_reason\":null}]}\n\n";
const std::string sse_second =
    sse_prefix + "\"choices\":[{\"index\":0,\"delta\":{\"content\":\" sky\"},\"finish_reason\":null}]}\n\n";
const std::string sse_finish =
    sse_prefix + "\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n";
const std::string sse_usage = sse_prefix +
    "\"choices\":[],\"usage\":{\"prompt_tokens\":32,\"completion_tokens\":34,\"total_tokens\":66}}\n\n";
const std::string sse_done = "data: [DONE]\n\n";

void serve_openai_stream(int fd, ScriptedUpstream& self) {
  const std::string req = self.read_request(fd);
  const bool usage = req.find("\"include_usage\":true") != std::string::npos;
  send_all(fd, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
               "Date: Mon, 24 Aug 2026 14:00:11 GMT\r\nTransfer-Encoding: chunked\r\n\r\n");
  send_all(fd, chunk(sse_first));
  send_all(fd, chunk(sse_second));
  send_all(fd, chunk(sse_finish + (usage ? sse_usage : "") + sse_done) + "0\r\n\r\n");
  read_to_close(fd, 500ms);
}

TEST(ProxyScripted, InjectsIncludeUsageAndStripsItFromTheStream) {
  ScriptedUpstream up(serve_openai_stream);
  TT_START_PROXY(proxy, up.port());
  const int c = connect_loopback(proxy.port());
  const std::string body =
      "{\"model\":\"llama3.2\",\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],\"stream\":true}";
  send_all(c, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body);
  const std::string resp =
      read_until(c, [](const std::string& d) { return d.find("\r\n0\r\n\r\n") != std::string::npos; });
  close(c);
  EXPECT_EQ(dechunk(resp), sse_first + sse_second + sse_finish + sse_done) << resp;
  EXPECT_EQ(resp.rfind("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n", 0), 0u);
  // The upstream got the same body with include_usage added, and a matching Content-Length.
  const std::string injected =
      "{\"stream_options\":{\"include_usage\":true},\"model\":\"llama3.2\",\"messages\":"
      "[{\"role\":\"user\",\"content\":\"Hi\"}],\"stream\":true}";
  const auto reqs = up.requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_NE(reqs[0].find("Content-Length: " + std::to_string(injected.size()) + "\r\n"),
            std::string::npos) << reqs[0];
  EXPECT_EQ(reqs[0].substr(reqs[0].find("\r\n\r\n") + 4), injected);
  std::this_thread::sleep_for(50ms);
  const std::string m = proxy.scrape();
  const std::string labels = "{endpoint=\"/v1/chat/completions\",model=\"llama3.2\"}";
  EXPECT_EQ(metric(m, "tokentap_prompt_tokens_total" + labels), 32) << m;
  EXPECT_EQ(metric(m, "tokentap_completion_tokens_total" + labels), 34);
  EXPECT_EQ(metric(m, "tokentap_usage_missing_total{endpoint=\"/v1/chat/completions\"}"), -1);
}

TEST(ProxyScripted, ClientAskedForUsageGetsItUntouched) {
  ScriptedUpstream up(serve_openai_stream);
  TT_START_PROXY(proxy, up.port());
  const int c = connect_loopback(proxy.port());
  const std::string body = "{\"model\":\"llama3.2\",\"messages\":[],\"stream\":true,"
                           "\"stream_options\":{\"include_usage\":true}}";
  send_all(c, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: " +
                  std::to_string(body.size()) + "\r\n\r\n" + body);
  const std::string resp =
      read_until(c, [](const std::string& d) { return d.find("\r\n0\r\n\r\n") != std::string::npos; });
  close(c);
  EXPECT_EQ(dechunk(resp), sse_first + sse_second + sse_finish + sse_usage + sse_done);
  const auto reqs = up.requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].substr(reqs[0].find("\r\n\r\n") + 4), body);
}


TEST(ProxyScripted, ThousandConcurrentStreams) {
  constexpr int clients = 1000;
  constexpr int lines = 5;
  // A keep-alive upstream: connections the proxy pooled after one stream carry the next.
  ScriptedUpstream up([](int fd, ScriptedUpstream& self) {
    for (;;) {
      const std::string req = self.read_request(fd);
      if (req.empty()) return;
      const auto at = req.find("\"id\":");
      const std::string id =
          at == std::string::npos ? "?" : req.substr(at + 5, req.find('}', at) - at - 5);
      send_all(fd, "HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\n"
                   "Transfer-Encoding: chunked\r\n\r\n");
      for (int i = 0; i < lines; ++i) {
        std::this_thread::sleep_for(20ms);
        send_all(fd, chunk("{\"id\":" + id + ",\"line\":" + std::to_string(i) + "}\n"));
      }
      send_all(fd, "0\r\n\r\n");
    }
  });
  TT_START_PROXY(proxy, up.port());
  std::vector<int> fds;
  std::unordered_map<int, std::string> got;
  for (int i = 0; i < clients; ++i) {
    const int c = connect_loopback(proxy.port());
    ASSERT_GE(c, 0) << "connect " << i;
    const std::string body = "{\"id\":" + std::to_string(i) + "}";
    send_all(c, "POST /api/generate HTTP/1.1\r\nHost: x\r\nContent-Length: " +
                    std::to_string(body.size()) + "\r\n\r\n" + body);
    fds.push_back(c);
  }
  int complete = 0;
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  std::vector<pollfd> pfds;
  for (int c : fds) pfds.push_back({c, POLLIN, 0});
  while (complete < clients && std::chrono::steady_clock::now() < deadline) {
    if (poll(pfds.data(), pfds.size(), 1000) <= 0) continue;
    for (auto& p : pfds) {
      if ((p.revents & POLLIN) == 0 || p.fd < 0) continue;
      char buf[8192];
      const ssize_t n = recv(p.fd, buf, sizeof(buf), 0);
      if (n <= 0) {
        p.fd = -p.fd - 1;  // stop polling a closed socket
        continue;
      }
      std::string& g = got[p.fd];
      g.append(buf, static_cast<std::size_t>(n));
      if (g.find("\r\n0\r\n\r\n") != std::string::npos) {
        ++complete;
        p.fd = -p.fd - 1;
      }
    }
  }
  EXPECT_EQ(complete, clients) << "upstream accepted " << up.accepted.load() << ", read "
                               << up.requests().size() << " requests\n" << proxy.scrape();
  for (int i = 0; i < clients; ++i) {
    std::string want;
    for (int l = 0; l < lines; ++l) {
      want += "{\"id\":" + std::to_string(i) + ",\"line\":" + std::to_string(l) + "}\n";
    }
    ASSERT_EQ(dechunk(got[fds[i]]), want) << "client " << i;
  }
  for (int c : fds) close(c);
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


TEST(ProxyScripted, DrainLetsStreamsFinishAndRefusesNewConnections) {
  ScriptedUpstream up([](int fd, ScriptedUpstream& self) {
    self.read_request(fd);
    send_all(fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
    for (int i = 0; i < 4; ++i) {
      std::this_thread::sleep_for(100ms);
      send_all(fd, chunk("line\n"));
    }
    send_all(fd, "0\r\n\r\n");
    read_to_close(fd, 2000ms);
  });
  TT_START_PROXY(proxy, up.port());
  const int streaming = connect_loopback(proxy.port());
  const int idle = connect_loopback(proxy.port());
  send_all(streaming, "POST /api/generate HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}");
  read_until(streaming, [](const std::string& d) { return d.find("line") != std::string::npos; });
  std::thread stopper([&] { proxy.stop(5000); });
  std::this_thread::sleep_for(50ms);
  EXPECT_LT(connect_loopback(proxy.port()), 0) << "new connections must be refused";
  bool closed = false;
  const std::string rest = read_to_close(streaming, 3000ms, &closed);
  EXPECT_NE(rest.find("0\r\n\r\n"), std::string::npos) << "the stream was cut: " << rest;
  EXPECT_TRUE(closed);
  bool idle_closed = false;
  read_to_close(idle, 1000ms, &idle_closed);
  EXPECT_TRUE(idle_closed) << "an idle connection is closed by the drain";
  close(streaming);
  close(idle);
  const auto t0 = std::chrono::steady_clock::now();
  stopper.join();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 2000ms) << "the drain ends when work does";
}


TEST(ProxyScripted, BodyLargerThanMaxBodyGets413) {
  ScriptedUpstream up([](int fd, ScriptedUpstream& self) { self.read_request(fd); });
  TT_START_PROXY(proxy, up.port(), 1, {"--max-body", "1000"});
  const int c = connect_loopback(proxy.port());
  send_all(c, "POST /api/chat HTTP/1.1\r\nHost: x\r\nContent-Length: 1001\r\n\r\n");
  const std::string resp = read_until(c, has_head);
  EXPECT_EQ(resp.rfind("HTTP/1.1 413 Request Entity Too Large\r\n", 0), 0u) << resp;
  close(c);
  EXPECT_EQ(up.accepted.load(), 0);
}



TEST(ProxyScripted, TokenSumsAreExactOver100kRequestsOnAllShards) {
  constexpr int connections = 8;
  constexpr int per_connection = 12'500;
  std::atomic<std::uint64_t> prompt_sent{0}, completion_sent{0};
  ScriptedUpstream up([&](int fd, ScriptedUpstream&) {
    std::string in;
    char buf[65536];
    for (;;) {
      std::size_t end;
      while ((end = in.find("}")) == std::string::npos) {
        const ssize_t n = recv(fd, buf, sizeof(buf), 0);
        if (n <= 0) return;
        in.append(buf, static_cast<std::size_t>(n));
      }
      const std::size_t at = in.rfind("\"n\":", end);
      const std::uint64_t n = std::stoull(in.substr(at + 4, end - at - 4));
      in.erase(0, end + 1);
      const std::uint64_t p = n % 97 + 1, c = n % 89 + 1;
      prompt_sent += p;
      completion_sent += c;
      const std::string body = "{\"model\":\"m" + std::to_string(n % 3) +
                               "\",\"response\":\"x\",\"done\":true,\"prompt_eval_count\":" +
                               std::to_string(p) + ",\"eval_count\":" + std::to_string(c) + "}";
      send_all(fd, "HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=utf-8\r\n"
                   "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body);
    }
  });
  TT_START_PROXY(proxy, up.port());
  std::vector<std::thread> clients;
  std::atomic<int> ok{0};
  for (int t = 0; t < connections; ++t) {
    clients.emplace_back([&, t] {
      const int c = connect_loopback(proxy.port());
      std::string in;
      char buf[65536];
      for (int i = 0; i < per_connection; ++i) {
        const std::uint64_t n = static_cast<std::uint64_t>(t) * per_connection + i;
        const std::string body = "{\"model\":\"m" + std::to_string(n % 3) +
                                 "\",\"stream\":false,\"n\":" + std::to_string(n) + "}";
        send_all(c, "POST /api/generate HTTP/1.1\r\nHost: x\r\nContent-Length: " +
                        std::to_string(body.size()) + "\r\n\r\n" + body);
        std::size_t end;
        while ((end = in.find("}")) == std::string::npos) {
          const ssize_t got = recv(c, buf, sizeof(buf), 0);
          if (got <= 0) {
            close(c);
            return;
          }
          in.append(buf, static_cast<std::size_t>(got));
        }
        in.erase(0, end + 1);
        ++ok;
      }
      close(c);
    });
  }
  for (auto& t : clients) t.join();
  ASSERT_EQ(ok.load(), connections * per_connection);
  std::this_thread::sleep_for(100ms);
  const std::string m = proxy.scrape();
  EXPECT_EQ(metric_sum(m, "tokentap_requests_total", "endpoint=\"/api/generate\""),
            connections * per_connection);
  EXPECT_EQ(metric_sum(m, "tokentap_prompt_tokens_total", ""),
            static_cast<double>(prompt_sent.load()));
  EXPECT_EQ(metric_sum(m, "tokentap_completion_tokens_total", ""),
            static_cast<double>(completion_sent.load()));
  EXPECT_GT(metric_sum(m, "tokentap_prompt_tokens_total", "model=\"m2\""), 0);
}


TEST(ProxyScripted, SmugglingCorpusIsRefusedAndNeverReachesTheUpstream) {
  struct Case {
    std::string raw;
    const char* status;
  };
  const std::vector<Case> cases = {
      {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
       "0\r\n\r\n", "400"},
      {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello", "400"},
      {"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", "501"},
      {"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", "501"},
      {"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
       "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "501"},
      {"GET / HTTP/1.1\nHost: x\n\n", "400"},
      {"GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n", "400"},
      {std::string("GET / HTTP/1.1\r\nHost: x\r\nX: a\0b\r\n\r\n", 32), "400"},
      {"GET http://evil.example/ HTTP/1.1\r\nHost: x\r\n\r\n", "400"},
      {"GET / HTTP/1.1\r\nHost : x\r\n\r\n", "400"},
      {"GET /" + std::string(9000, 'a') + " HTTP/1.1\r\nHost: x\r\n\r\n", "400"},
  };
  ScriptedUpstream up([](int fd, ScriptedUpstream& self) { self.read_request(fd); });
  TT_START_PROXY(proxy, up.port());
  for (const Case& c : cases) {
    const int fd = connect_loopback(proxy.port());
    send_all(fd, c.raw);
    bool closed = false;
    const std::string resp = read_to_close(fd, 3000ms, &closed);
    EXPECT_EQ(resp.substr(0, 12), std::string("HTTP/1.1 ") + c.status) << c.raw;
    EXPECT_TRUE(closed) << c.raw;
    close(fd);
  }
  EXPECT_EQ(up.accepted.load(), 0) << "a refused request must not reach the upstream";
}


TEST(ProxyScripted, BrokenChunkedRequestBodyGets400AndCutsTheUpstream) {
  // A chunked request body is streamed as it arrives, so its head has reached the upstream by
  // the time a bad chunk shows up. The proxy must stop there: 400 to the client, both
  // connections closed, and the upstream never sees a complete (smuggled) message.
  const std::vector<std::string> bodies = {
      "5\r\nhello\r\nzz\r\nabc\r\n0\r\n\r\n",                  // size not hex
      "5\r\nhello\r\n3;e\x01x\r\nabc\r\n0\r\n\r\n",            // control byte in an extension
      "5\r\nhello\r\nfffffffffffffffffff\r\nabc\r\n0\r\n\r\n",   // size overflows 64 bits
      "5\r\nhelloXX3\r\nabc\r\n0\r\n\r\n",                      // data not followed by CRLF
      "5\r\nhello\r\n-3\r\nabc\r\n0\r\n\r\n",                   // negative size
  };
  std::atomic<int> complete_bodies{0};
  ScriptedUpstream up([&](int fd, ScriptedUpstream& self) {
    const std::string got = read_to_close(fd, 3000ms);
    if (got.find("0\r\n\r\n") != std::string::npos) ++complete_bodies;
  });
  TT_START_PROXY(proxy, up.port());
  for (const std::string& body : bodies) {
    const int c = connect_loopback(proxy.port());
    send_all(c, "POST /api/generate HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
    std::this_thread::sleep_for(20ms);  // the head is forwarded before the body is seen
    send_all(c, body);
    bool closed = false;
    const std::string resp = read_to_close(c, 3000ms, &closed);
    EXPECT_EQ(resp.substr(0, 12), "HTTP/1.1 400") << body;
    EXPECT_TRUE(closed) << body;
    close(c);
  }
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(complete_bodies.load(), 0);
  const std::string m = proxy.scrape();
  EXPECT_EQ(metric_sum(m, "tokentap_requests_total", "status=\"400\""),
            static_cast<double>(bodies.size())) << m;
}

TEST(ProxyScripted, ConnectionLimitRefusesNewOnesAndKeepsExistingOnes) {
  ScriptedUpstream up(ScriptedUpstream::answer_each(ok_body));
  TT_START_PROXY(proxy, up.port(), 1, {"--max-connections", "3"});
  std::vector<int> held;
  for (int i = 0; i < 3; ++i) held.push_back(connect_loopback(proxy.port()));
  std::this_thread::sleep_for(50ms);  // let the shard accept them
  const int extra = connect_loopback(proxy.port());
  bool closed = false;
  read_to_close(extra, 2000ms, &closed);
  EXPECT_TRUE(closed) << "a connection past the limit is closed at once";
  close(extra);
  for (int c : held) {
    send_all(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    EXPECT_EQ(read_ok(c), ok_body);
  }
  for (int c : held) close(c);
  EXPECT_EQ(metric(proxy.scrape(), "tokentap_connections_rejected_total{reason=\"limit\"}"), 1);
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
