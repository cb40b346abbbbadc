// FanOutService over real sockets (issue 16 "Fleet endpoints"): three fake Ollamas behind one
// service, reached through its abstract AF_UNIX socket as the proxy will reach it. Pull
// (streaming and not), delete and copy on every backend, a failing and an unreachable backend
// named in the answer, no backend, other routes, the body limit, the job limit, a progress line
// split across reads, and a client that gives up mid-pull (and stop()) cutting every backend.
#include "tokentap/app/fan_out.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "fake_upstream.h"
#include "support/http_client.h"
#include "support/scripted_upstream.h"

namespace tokentap {
namespace {

using namespace std::chrono_literals;
using test::HttpClient;
using test::Response;

constexpr std::size_t fleet_size = 3;
constexpr int read_timeout_ms = 10'000;

template <typename Fn>
bool eventually(Fn&& done) {
  for (int i = 0; i < 2500; ++i) {
    if (done()) return true;
    std::this_thread::sleep_for(2ms);
  }
  return done();
}

FanOutTarget loopback_target(std::string name, std::uint16_t port) {
  FanOutTarget t;
  t.name = std::move(name);
  auto* in = reinterpret_cast<sockaddr_in*>(&t.endpoint.addr);
  in->sin_family = AF_INET;
  in->sin_port = htons(port);
  in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  t.endpoint.addr_len = sizeof(sockaddr_in);
  t.endpoint.text = "127.0.0.1:" + std::to_string(port);
  t.host_header = t.endpoint.text;
  return t;
}

std::vector<std::string> lines_of(const std::string& body) {
  std::vector<std::string> lines;
  std::size_t start = 0;
  while (start < body.size()) {
    std::size_t nl = body.find('\n', start);
    if (nl == std::string::npos) nl = body.size();
    lines.push_back(body.substr(start, nl - start));
    start = nl + 1;
  }
  return lines;
}

std::size_t count_of(const std::vector<std::string>& lines, std::string_view line) {
  return static_cast<std::size_t>(std::count(lines.begin(), lines.end(), line));
}

class FanOutTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (std::size_t i = 0; i < fleet_size; ++i) {
      fake::Options o;
      o.models = std::vector<std::string>{"llama3.2"};
      fakes_.push_back(std::make_unique<fake::FakeUpstream>(o));
      std::string error;
      ASSERT_TRUE(fakes_.back()->start(&error)) << error;
      targets_.push_back(loopback_target("gpu" + std::to_string(i), fakes_.back()->port()));
    }
    service_ = std::make_unique<FanOutService>([this] {
      const std::lock_guard lock(mu_);
      return targets_;
    });
    std::string error;
    ASSERT_TRUE(service_->start(&error)) << error;
  }
  void TearDown() override { service_->stop(); }

  void set_targets(std::vector<FanOutTarget> t) {
    const std::lock_guard lock(mu_);
    targets_ = std::move(t);
  }
  [[nodiscard]] bool connect(HttpClient& c) {
    const Endpoint& ep = service_->endpoint();
    return c.connect_to(reinterpret_cast<const sockaddr*>(&ep.addr), ep.addr_len);
  }
  Response ask(std::string_view method, std::string_view path, std::string_view body) {
    HttpClient c;
    Response failed;
    failed.error = "connect or send";
    if (!connect(c) || !c.send(test::request(method, path, body))) return failed;
    test::ReadOptions options;
    options.timeout_ms = read_timeout_ms;
    return c.read_response(options);
  }
  bool everywhere(std::string_view model) {
    for (const auto& f : fakes_) {
      const std::vector<std::string> m = f->installed_models();
      if (std::find(m.begin(), m.end(), model) == m.end()) return false;
    }
    return true;
  }
  bool nowhere(std::string_view model) {
    for (const auto& f : fakes_) {
      const std::vector<std::string> m = f->installed_models();
      if (std::find(m.begin(), m.end(), model) != m.end()) return false;
    }
    return true;
  }

  std::vector<std::unique_ptr<fake::FakeUpstream>> fakes_;
  std::mutex mu_;
  std::vector<FanOutTarget> targets_;
  std::unique_ptr<FanOutService> service_;
};

TEST_F(FanOutTest, EndpointIsAnAbstractUnixSocket) {
  const Endpoint& ep = service_->endpoint();
  EXPECT_EQ(ep.addr.ss_family, AF_UNIX);
  EXPECT_EQ(ep.text.rfind("@tokentap-fanout-", 0), 0u);
}

TEST_F(FanOutTest, StreamingPullReachesEveryBackendAndEndsWithOneSuccess) {
  const Response r = ask("POST", "/api/pull", R"({"model":"qwen3:8b"})");
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.status, 200);
  EXPECT_TRUE(r.chunked);
  EXPECT_EQ(r.header("Content-Type").value_or(""), "application/x-ndjson");
  EXPECT_EQ(r.header("Connection").value_or(""), "close");
  const std::vector<std::string> lines = lines_of(r.body);
  ASSERT_FALSE(lines.empty());
  EXPECT_EQ(lines.front(), R"({"status":"pulling manifest"})");
  EXPECT_EQ(lines.back(), R"({"status":"success"})");
  EXPECT_EQ(count_of(lines, R"({"status":"success"})"), 1u);
  // The lead's progress only: manifest, 3 layers x 3 updates, verify, write; then ours.
  EXPECT_EQ(lines.size(), 13u);
  EXPECT_EQ(count_of(lines, R"({"status":"pulling manifest"})"), 1u);
  EXPECT_EQ(r.chunks.size(), lines.size());  // each line its own chunk
  for (const auto& f : fakes_) {
    EXPECT_EQ(f->stats().pull_requests, 1u);
    const Response tags = test::roundtrip(f->port(), test::request("GET", "/api/tags"));
    EXPECT_NE(tags.body.find(R"("name":"qwen3:8b")"), std::string::npos);
  }
  EXPECT_TRUE(everywhere("qwen3:8b"));
}

TEST_F(FanOutTest, PullFailingOnOneBackendEndsWithItsNamedError) {
  fakes_[1]->set_pull_fail(true);
  const Response r = ask("POST", "/api/pull", R"({"model":"qwen3:8b"})");
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.status, 200);
  const std::vector<std::string> lines = lines_of(r.body);
  EXPECT_EQ(lines.back(), R"({"error":"gpu1: pull model manifest: file does not exist"})");
  EXPECT_EQ(count_of(lines, R"({"status":"success"})"), 0u);
  EXPECT_EQ(lines.size(), 13u);  // the lead's 12 progress lines (it succeeded), then the error
}

TEST_F(FanOutTest, PullFailingOnTheLeadForwardsNoErrorLineOfItsOwn) {
  fakes_[0]->set_pull_fail(true);
  const Response r = ask("POST", "/api/pull", R"({"model":"qwen3:8b"})");
  ASSERT_TRUE(r.ok()) << r.error;
  const std::vector<std::string> lines = lines_of(r.body);
  EXPECT_EQ(lines.back(), R"({"error":"gpu0: pull model manifest: file does not exist"})");
  EXPECT_EQ(count_of(lines, R"({"error":"pull model manifest: file does not exist"})"), 0u);
  EXPECT_FALSE(everywhere("qwen3:8b"));
}

TEST_F(FanOutTest, NonStreamPull) {
  const Response ok = ask("POST", "/api/pull", R"({"model":"qwen3:8b","stream":false})");
  EXPECT_EQ(ok.status, 200);
  EXPECT_EQ(ok.body, R"({"status":"success"})");
  EXPECT_EQ(ok.header("Content-Type").value_or(""), "application/json; charset=utf-8");
  EXPECT_EQ(ok.content_length, static_cast<std::int64_t>(ok.body.size()));
  EXPECT_TRUE(everywhere("qwen3:8b"));
  fakes_[2]->set_pull_fail(true);
  const Response bad = ask("POST", "/api/pull", R"({"model":"phi4","stream":false})");
  EXPECT_EQ(bad.status, 500);
  EXPECT_EQ(bad.body, R"({"error":"gpu2: pull model manifest: file does not exist"})");
}

TEST_F(FanOutTest, DeleteOnEveryBackend) {
  const Response r = ask("DELETE", "/api/delete", R"({"model":"llama3.2"})");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.content_length, 0);
  EXPECT_TRUE(nowhere("llama3.2:latest"));
  for (const auto& f : fakes_) EXPECT_EQ(f->stats().delete_requests, 1u);
}

TEST_F(FanOutTest, DeleteWhereOnlySomeHaveTheModelSucceeds) {
  fakes_[1]->set_models(std::vector<std::string>{});
  const Response r = ask("DELETE", "/api/delete", R"({"model":"llama3.2"})");
  EXPECT_EQ(r.status, 200);
  EXPECT_TRUE(nowhere("llama3.2:latest"));
  const Response again = ask("DELETE", "/api/delete", R"({"model":"llama3.2"})");
  EXPECT_EQ(again.status, 404);  // nowhere: Ollama's own 404
  EXPECT_EQ(again.body, R"({"error":"model 'llama3.2' not found"})");
}

TEST_F(FanOutTest, Copy) {
  const Response r = ask("POST", "/api/copy", R"({"source":"llama3.2","destination":"mine"})");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.content_length, 0);
  EXPECT_TRUE(everywhere("mine:latest"));
  fakes_[2]->set_models(std::vector<std::string>{});
  const Response bad = ask("POST", "/api/copy", R"({"source":"llama3.2","destination":"b"})");
  EXPECT_EQ(bad.status, 404);
  EXPECT_EQ(bad.body, R"({"error":"gpu2: model \"llama3.2\" not found"})");
}

TEST_F(FanOutTest, UnreachableBackendIsNamed) {
  fakes_[2]->stop();
  const Response r = ask("POST", "/api/pull", R"({"model":"qwen3:8b"})");
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(lines_of(r.body).back(), R"({"error":"gpu2: tokentap: backend unreachable"})");
  EXPECT_EQ(fakes_[0]->stats().pull_requests, 1u);
  const Response single = ask("POST", "/api/pull", R"({"model":"qwen3:8b","stream":false})");
  EXPECT_EQ(single.status, 502);
  EXPECT_EQ(single.body, R"({"error":"gpu2: tokentap: backend unreachable"})");
  const Response del = ask("DELETE", "/api/delete", R"({"model":"llama3.2"})");
  EXPECT_EQ(del.status, 502);
}

TEST_F(FanOutTest, EveryBackendUnreachableIsA502) {
  for (auto& f : fakes_) f->stop();
  const Response r = ask("POST", "/api/pull", R"({"model":"qwen3:8b"})");
  EXPECT_EQ(r.status, 502);
  EXPECT_EQ(r.body, R"({"error":"gpu0: tokentap: backend unreachable"})");
}

TEST_F(FanOutTest, NoTargetIsA502) {
  set_targets({});
  const Response r = ask("POST", "/api/pull", R"({"model":"qwen3:8b"})");
  EXPECT_EQ(r.status, 502);
  EXPECT_EQ(r.body, R"({"error":"tokentap: no healthy backend"})");
  EXPECT_EQ(r.header("Content-Type").value_or(""), "application/json; charset=utf-8");
}

TEST_F(FanOutTest, OtherRoutesAre404) {
  const Response r = ask("GET", "/api/tags", "");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.body, R"({"error":"tokentap: not a fan-out route"})");
  EXPECT_EQ(ask("POST", "/api/generate", R"({"model":"x"})").status, 404);
  EXPECT_EQ(ask("GET", "/api/pull", "").status, 404);
  for (const auto& f : fakes_) EXPECT_EQ(f->stats().requests, 0u);
}

TEST_F(FanOutTest, BodyOverTheLimitIs413) {
  const std::string body =
      R"({"model":"x","pad":")" + std::string(fan_out_body_bytes_max, 'a') + R"("})";
  const Response r = ask("POST", "/api/pull", body);
  EXPECT_EQ(r.status, 413);
  EXPECT_NE(r.body.find("tokentap: request body too large"), std::string::npos);
  for (const auto& f : fakes_) EXPECT_EQ(f->stats().requests, 0u);
}

TEST_F(FanOutTest, ClientGivingUpMidPullCutsEveryBackend) {
  for (auto& f : fakes_) f->set_pull_delay_ms(100);  // about 1.4 s per pull
  HttpClient c;
  ASSERT_TRUE(connect(c));
  ASSERT_TRUE(c.send(test::request("POST", "/api/pull", R"({"model":"qwen3:8b"})")));
  ASSERT_TRUE(eventually([&] {
    for (const auto& f : fakes_) {
      if (f->stats().pull_requests != 1) return false;
    }
    return true;
  }));
  c.close();
  // Each fake sees its client (the service) go away before the pull could finish.
  EXPECT_TRUE(eventually([&] {
    for (const auto& f : fakes_) {
      if (f->stats().connections_closed_by_peer < 1) return false;
    }
    return true;
  }));
  std::this_thread::sleep_for(1500ms);
  EXPECT_TRUE(nowhere("qwen3:8b"));  // no pull ran to its success
}

TEST_F(FanOutTest, StopCutsPullsInFlight) {
  for (auto& f : fakes_) f->set_pull_delay_ms(200);
  HttpClient c;
  ASSERT_TRUE(connect(c));
  ASSERT_TRUE(c.send(test::request("POST", "/api/pull", R"({"model":"qwen3:8b"})")));
  ASSERT_TRUE(eventually([&] { return fakes_[2]->stats().pull_requests == 1; }));
  const auto t0 = std::chrono::steady_clock::now();
  service_->stop();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 1s);
  EXPECT_TRUE(eventually([&] { return fakes_[0]->stats().connections_closed_by_peer >= 1; }));
  std::string rest;
  EXPECT_NE(c.wait_close(2000, &rest), test::CloseKind::none);
}

TEST_F(FanOutTest, MoreJobsThanTheLimitAre503) {
  for (auto& f : fakes_) f->set_pull_delay_ms(300);
  std::vector<HttpClient> held(fan_out_jobs_max);
  for (HttpClient& c : held) {
    ASSERT_TRUE(connect(c));
    ASSERT_TRUE(c.send(test::request("POST", "/api/pull", R"({"model":"qwen3:8b"})")));
  }
  ASSERT_TRUE(eventually([&] { return fakes_[0]->stats().pull_requests == fan_out_jobs_max; }));
  const Response r = ask("POST", "/api/pull", R"({"model":"qwen3:8b"})");
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.body, R"({"error":"tokentap: too many fan-out requests at once"})");
  for (HttpClient& c : held) c.close();
}

// A progress line split across the backend's writes reaches the client whole, as one chunk.
TEST_F(FanOutTest, SplitProgressLineIsReassembled) {
  std::uint16_t port = 0;
  const int listener = test::listen_loopback(&port);
  ASSERT_GE(listener, 0);
  std::thread backend([listener] {
    const int fd = accept(listener, nullptr, nullptr);
    (void)test::read_until(fd, test::has_head);
    test::send_all(fd, "HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\n"
                       "Transfer-Encoding: chunked\r\n\r\n" +
                           test::chunk(R"({"status":"pull)"));
    std::this_thread::sleep_for(50ms);
    test::send_all(fd, test::chunk("ing manifest\"}\n{\"status\":\"succ") +
                           test::chunk("ess\"}\n") + "0\r\n\r\n");
    (void)test::read_to_close(fd, 2000ms);
    close(fd);
  });
  set_targets({loopback_target("solo", port)});
  const Response r = ask("POST", "/api/pull", R"({"model":"qwen3:8b"})");
  backend.join();
  close(listener);
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.body, "{\"status\":\"pulling manifest\"}\n{\"status\":\"success\"}\n");
  EXPECT_EQ(r.chunks.size(), 2u);
}

}  // namespace
}  // namespace tokentap
