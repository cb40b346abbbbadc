// MetricsServer over real loopback sockets: routes, auth, keep-alive, limits, concurrency, stop.
#include "tokentap/obs/metrics_server.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <optional>
#include <thread>

#include "prom_samples.h"
#include "tokentap/obs/prom_text.h"

namespace tokentap {
namespace {

using testing::parse_exposition;
using testing::value_of;

constexpr int client_timeout_s = 5;

Endpoint loopback(std::uint16_t port) {
  Endpoint e;
  auto* in = reinterpret_cast<sockaddr_in*>(&e.addr);
  in->sin_family = AF_INET;
  in->sin_port = htons(port);
  in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  e.addr_len = sizeof(sockaddr_in);
  e.text = "127.0.0.1:" + std::to_string(port);
  return e;
}

struct Response {
  int status = 0;
  std::string head;
  std::string body;
};

// A blocking HTTP/1.1 client connection with a receive timeout, enough to check the server.
class Client {
 public:
  explicit Client(std::uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    timeval tv{client_timeout_s, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    const Endpoint e = loopback(port);
    connected_ = ::connect(fd_, reinterpret_cast<const sockaddr*>(&e.addr), e.addr_len) == 0;
  }
  ~Client() { ::close(fd_); }
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  [[nodiscard]] bool connected() const { return connected_; }

  void send(std::string_view bytes) {
    ASSERT_EQ(::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(bytes.size()));
  }

  // Reads one response; nullopt when the server closed (or timed out) first.
  std::optional<Response> read(bool head_request = false) {
    std::size_t end;
    while ((end = buffer_.find("\r\n\r\n")) == std::string::npos) {
      if (!fill()) return std::nullopt;
    }
    Response r;
    r.head = buffer_.substr(0, end + 4);
    buffer_.erase(0, end + 4);
    r.status = std::atoi(r.head.c_str() + 9);
    const auto cl = r.head.find("Content-Length: ");
    const std::size_t length = cl == std::string::npos ? 0 : std::stoul(r.head.substr(cl + 16));
    if (!head_request) {
      while (buffer_.size() < length) {
        if (!fill()) return std::nullopt;
      }
      r.body = buffer_.substr(0, length);
      buffer_.erase(0, length);
    }
    return r;
  }

  std::optional<Response> get(std::string_view path, std::string_view extra_headers = {}) {
    send("GET " + std::string(path) + " HTTP/1.1\r\nHost: x\r\n" + std::string(extra_headers) +
         "\r\n");
    return read();
  }

  // True once the server has closed its side (EOF with nothing left buffered).
  bool closed_by_server() { return buffer_.empty() && !fill(); }

 private:
  bool fill() {
    char chunk[65536];
    const ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
    if (n <= 0) return false;
    buffer_.append(chunk, static_cast<std::size_t>(n));
    return true;
  }

  int fd_ = -1;
  bool connected_ = false;
  std::string buffer_;
};

class MetricsServerTest : public ::testing::Test {
 protected:
  void start(std::string token = {}) {
    server_ = std::make_unique<MetricsServer>(std::vector<const MetricsShard*>{&a_, &b_}, models_,
                                              MetricsServerOptions{loopback(0), token, "9.9.9"});
    std::string error;
    ASSERT_TRUE(server_->start(&error)) << error;
    ASSERT_NE(server_->port(), 0);
  }

  void finish(MetricsShard& s, Route route, const char* model, double duration_s) {
    RequestRecord r;
    r.route = route;
    r.model = models_.intern(model);
    r.status = 200;
    r.stream = true;
    r.duration_s = duration_s;
    s.request_started(r.route, r.model);
    s.request_finished(r);
  }

  ModelTable models_{16};
  MetricsShard a_, b_;
  std::unique_ptr<MetricsServer> server_;
};

TEST_F(MetricsServerTest, ServesMergedMetricsAndHealthz) {
  finish(a_, Route::api_chat, "llama3", 0.2);
  finish(b_, Route::api_chat, "llama3", 0.3);
  start();
  Client c(server_->port());
  ASSERT_TRUE(c.connected());
  const auto metrics = c.get("/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_EQ(metrics->status, 200);
  EXPECT_NE(metrics->head.find("Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"),
            std::string::npos);
  const auto e = parse_exposition(metrics->body);
  ASSERT_EQ(e.error, "");
  EXPECT_EQ(
      value_of(
          e, "tokentap_requests_total",
          {{"endpoint", "/api/chat"}, {"model", "llama3"}, {"status", "200"}, {"stream", "true"}}),
      2);
  EXPECT_EQ(value_of(e, "tokentap_build_info", {{"version", "9.9.9"}}), 1);
  EXPECT_TRUE(value_of(e, "process_resident_memory_bytes").has_value());
  const auto health = c.get("/healthz");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
  EXPECT_EQ(health->body, "ok");
  const auto query = c.get("/metrics?name[]=x");  // Prometheus may add params
  ASSERT_TRUE(query);
  EXPECT_EQ(query->status, 200);
}

TEST_F(MetricsServerTest, BackendSourceIsReadOnEveryScrape) {
  RequestRecord r;
  r.route = Route::api_chat;
  r.model = models_.intern("llama3");
  r.status = 200;
  r.backend = 1;
  a_.request_started(r.route, r.model);
  a_.request_finished(r);
  BackendCounters counters;
  counter_add(counters.health_checks[static_cast<std::size_t>(HealthResult::ok)], 3);
  std::atomic<std::uint32_t> in_flight{2};
  MetricsServerOptions options{loopback(0), {}, "9.9.9"};
  options.backends = [&](BackendGauge* out, const BackendCounters** c, std::size_t max) {
    EXPECT_EQ(max, backend_slots_max);
    out[0] = BackendGauge{"east", true, 0, 4};
    out[1] = BackendGauge{"west", true, in_flight.load(), 4};
    c[1] = &counters;
    return std::size_t{2};
  };
  server_ = std::make_unique<MetricsServer>(std::vector<const MetricsShard*>{&a_, &b_}, models_,
                                            std::move(options));
  std::string error;
  ASSERT_TRUE(server_->start(&error)) << error;
  Client c(server_->port());
  for (const std::uint32_t expected : {2u, 5u}) {
    in_flight = expected;
    const auto metrics = c.get("/metrics");
    ASSERT_TRUE(metrics);
    const auto e = parse_exposition(metrics->body);
    ASSERT_EQ(e.error, "");
    EXPECT_EQ(value_of(e, "tokentap_backend_in_flight", {{"backend", "west"}}), expected);
    EXPECT_EQ(value_of(e, "tokentap_backend_up", {{"backend", "east"}}), 1);
    EXPECT_EQ(value_of(e, "tokentap_backend_requests_total",
                       {{"backend", "west"}, {"status", "200"}}),
              1);
    EXPECT_EQ(value_of(e, "tokentap_health_checks_total", {{"backend", "west"}, {"result", "ok"}}),
              3);
  }
}

TEST_F(MetricsServerTest, NotFoundMethodNotAllowedAndHead) {
  start();
  Client c(server_->port());
  EXPECT_EQ(c.get("/api/chat")->status, 404);
  EXPECT_EQ(c.get("/metricsx")->status, 404);
  c.send("POST /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  const auto post = c.read();
  ASSERT_TRUE(post);
  EXPECT_EQ(post->status, 405);
  EXPECT_NE(post->head.find("Allow: GET, HEAD\r\n"), std::string::npos);
  c.send("HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  const auto head = c.read(/*head_request=*/true);
  ASSERT_TRUE(head);
  EXPECT_EQ(head->status, 200);
  EXPECT_EQ(head->head.find("Content-Length: 0\r\n"), std::string::npos);
  // No body followed the HEAD response: the next response starts right away.
  EXPECT_EQ(c.get("/healthz")->body, "ok");
}

TEST_F(MetricsServerTest, BearerTokenGuardsMetricsOnly) {
  start("s3cret-token");
  Client c(server_->port());
  const auto none = c.get("/metrics");
  ASSERT_TRUE(none);
  EXPECT_EQ(none->status, 401);
  EXPECT_NE(none->head.find("WWW-Authenticate: Bearer\r\n"), std::string::npos);
  for (const char* wrong :
       {"Authorization: Bearer s3cret-toke\r\n", "Authorization: Bearer s3cret-tokenX\r\n",
        "Authorization: Basic czNjcmV0LXRva2Vu\r\n", "Authorization: s3cret-token\r\n"}) {
    EXPECT_EQ(c.get("/metrics", wrong)->status, 401) << wrong;
  }
  EXPECT_EQ(c.get("/metrics", "Authorization: Bearer s3cret-token\r\n")->status, 200);
  EXPECT_EQ(c.get("/metrics", "authorization: bearer s3cret-token\r\n")->status, 200);
  EXPECT_EQ(c.get("/healthz")->status, 200);
}

TEST_F(MetricsServerTest, KeepAlivePipeliningAndConnectionClose) {
  start();
  Client c(server_->port());
  for (int i = 0; i < 5; ++i) EXPECT_EQ(c.get("/metrics")->status, 200);
  c.send("GET /healthz HTTP/1.1\r\n\r\nGET /nope HTTP/1.1\r\n\r\nGET /healthz HTTP/1.1\r\n\r\n");
  EXPECT_EQ(c.read()->status, 200);
  EXPECT_EQ(c.read()->status, 404);
  EXPECT_EQ(c.read()->status, 200);
  const auto last = c.get("/healthz", "Connection: close\r\n");
  ASSERT_TRUE(last);
  EXPECT_NE(last->head.find("Connection: close\r\n"), std::string::npos);
  EXPECT_TRUE(c.closed_by_server());
  Client old(server_->port());
  old.send("GET /healthz HTTP/1.0\r\n\r\n");
  EXPECT_EQ(old.read()->status, 200);
  EXPECT_TRUE(old.closed_by_server());  // HTTP/1.0 without keep-alive
}

TEST_F(MetricsServerTest, OversizedAndMalformedHeadsAreRefused) {
  start();
  Client big(server_->port());
  big.send("GET /metrics HTTP/1.1\r\nX-Fill: " + std::string(metrics_head_bytes_max, 'a') +
           "\r\n\r\n");
  EXPECT_EQ(big.read()->status, 431);
  EXPECT_TRUE(big.closed_by_server());
  Client bad(server_->port());
  bad.send("GARBAGE\r\n\r\n");
  EXPECT_EQ(bad.read()->status, 400);
  EXPECT_TRUE(bad.closed_by_server());
  Client body(server_->port());
  body.send("GET /healthz HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc");
  EXPECT_EQ(body.read()->status, 200);
  EXPECT_TRUE(body.closed_by_server());  // bodies are not read, so no reuse
}

TEST_F(MetricsServerTest, ConcurrentScrapesWhileAShardIsWritten) {
  start();
  // A client that sends half a head and stalls must not hold up anyone else.
  Client stalled(server_->port());
  stalled.send("GET /metr");
  std::atomic<bool> done{false};
  std::thread writer([&] {
    const ModelId m = models_.intern("busy");
    for (int i = 0; !done.load(std::memory_order_relaxed); ++i) {
      RequestRecord r;
      r.route = Route::v1_chat_completions;
      r.model = m;
      r.status = 200;
      r.duration_s = (i % 200) * 0.01;
      r.ttft_s = (i % 50) * 0.01;
      a_.request_started(r.route, m);
      a_.request_finished(r);
    }
  });
  std::atomic<int> scrapes{0};
  std::atomic<int> failures{0};
  std::vector<std::thread> scrapers;
  for (int t = 0; t < 4; ++t) {
    scrapers.emplace_back([&] {
      Client c(server_->port());
      for (int i = 0; i < 40; ++i) {
        const auto r = c.get("/metrics");
        const auto e = parse_exposition(r ? r->body : std::string());
        const testing::Labels l{
            {"endpoint", "/v1/chat/completions"}, {"model", "busy"}, {"stream", "false"}};
        testing::Labels inf = l;
        inf["le"] = "+Inf";
        const auto count = value_of(e, "tokentap_request_duration_seconds_count", l);
        const bool ok =
            r && r->status == 200 && e.error.empty() &&
            (!count || count == value_of(e, "tokentap_request_duration_seconds_bucket", inf));
        (ok ? scrapes : failures).fetch_add(1);
      }
    });
  }
  for (auto& t : scrapers) t.join();
  done = true;
  writer.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(scrapes.load(), 160);
}

TEST_F(MetricsServerTest, StopReturnsPromptlyWithConnectionsOpen) {
  start();
  Client idle(server_->port());
  Client partial(server_->port());
  partial.send("GET /metrics HTTP/1.1\r\n");
  EXPECT_EQ(idle.get("/healthz")->status, 200);
  const auto t0 = std::chrono::steady_clock::now();
  server_->stop();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(1));
  EXPECT_TRUE(idle.closed_by_server());
  EXPECT_TRUE(partial.closed_by_server());
}

TEST_F(MetricsServerTest, FullHouseEvictsTheLongestIdleConnection) {
  start();
  std::vector<std::unique_ptr<Client>> clients;
  for (std::size_t i = 0; i < metrics_connections_max; ++i) {
    clients.push_back(std::make_unique<Client>(server_->port()));
    ASSERT_EQ(clients.back()->get("/healthz")->status, 200);  // now idle, in order
  }
  Client extra(server_->port());
  EXPECT_EQ(extra.get("/healthz")->status, 200);
  EXPECT_TRUE(clients.front()->closed_by_server());  // the longest idle gave way
  EXPECT_EQ(clients.back()->get("/healthz")->status, 200);
}

TEST(MetricsServer, StartFailsWithOneLineWhenThePortIsTaken) {
  ModelTable models(4);
  MetricsShard shard;
  MetricsServer first({&shard}, models, {loopback(0), {}, "v"});
  std::string error;
  ASSERT_TRUE(first.start(&error)) << error;
  MetricsServer second({&shard}, models, {loopback(first.port()), {}, "v"});
  EXPECT_FALSE(second.start(&error));
  EXPECT_NE(error.find("bind"), std::string::npos) << error;
  EXPECT_EQ(error.find('\n'), std::string::npos);
}

}  // namespace
}  // namespace tokentap
