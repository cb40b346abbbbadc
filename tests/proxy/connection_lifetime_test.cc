// How long client connections live: the connection limit, the head (slowloris) and idle
// timeouts that must not cut a slow stream, the graceful drain on stop, and a thousand concurrent
// streams sharing pooled upstream connections.

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "support/proxy_fixture.h"
#include "support/scripted_upstream.h"

namespace tokentap {
namespace {

using namespace std::chrono_literals;

using test::chunk;
using test::connect_loopback;
using test::dechunk;
using test::metric;
using test::ok_body;
using test::read_ok;
using test::read_to_close;
using test::read_until;
using test::ScriptedUpstream;
using test::send_all;

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

}  // namespace
}  // namespace tokentap
