// Requests the proxy refuses itself, before or while forwarding: malformed and smuggling-shaped
// heads (400; chunked not final is 400 by RFC 9112 §6.3 rule 4), over-long targets (414),
// oversized heads (431) and bodies (413), a broken chunked request body after its head has gone
// upstream. A refused request must never reach the upstream whole.

#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "support/proxy_fixture.h"
#include "support/scripted_upstream.h"

namespace tokentap {
namespace {

using namespace std::chrono_literals;

using test::connect_loopback;
using test::has_head;
using test::metric_sum;
using test::read_to_close;
using test::read_until;
using test::ScriptedUpstream;
using test::send_all;

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

TEST(ProxyScripted, SmugglingCorpusIsRefusedAndNeverReachesTheUpstream) {
  struct Case {
    std::string raw;
    const char* status;
  };
  const std::vector<Case> cases = {
      {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
       "0\r\n\r\n", "400"},
      {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello", "400"},
      {"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", "400"},
      {"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", "400"},
      {"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
       "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "400"},
      {"GET / HTTP/1.1\nHost: x\n\n", "400"},
      {"GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n", "400"},
      {std::string("GET / HTTP/1.1\r\nHost: x\r\nX: a\0b\r\n\r\n", 32), "400"},
      // Absolute-form is accepted (RFC 9112 §3.2.2); authority-form CONNECT is refused, with a
      // 400 from the parser or a 405 from the head rules: only the class is checked.
      {"CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\n\r\n", "4"},
      {"GET / HTTP/1.1\r\nHost : x\r\n\r\n", "400"},
      {"GET /" + std::string(9000, 'a') + " HTTP/1.1\r\nHost: x\r\n\r\n", "414"},
  };
  ScriptedUpstream up([](int fd, ScriptedUpstream& self) { self.read_request(fd); });
  TT_START_PROXY(proxy, up.port());
  for (const Case& c : cases) {
    const int fd = connect_loopback(proxy.port());
    send_all(fd, c.raw);
    bool closed = false;
    const std::string resp = read_to_close(fd, 3000ms, &closed);
    const std::string want = std::string("HTTP/1.1 ") + c.status;
    EXPECT_EQ(resp.substr(0, want.size()), want) << c.raw;
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

}  // namespace
}  // namespace tokentap
