// One tokentap in front of several Ollama instances (issue 16), over real sockets: fake
// upstreams with their own installed models, a killed backend, the spread of concurrent streams,
// and the per-backend metrics.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "fake_upstream.h"
#include "support/fake_fleet.h"
#include "support/http_client.h"
#include "support/proxy_fixture.h"

namespace tokentap {
namespace {

using namespace std::chrono_literals;

using Fleet = test::FakeFleet;
using test::generate;
using test::wait_for_tags;

TEST(FleetRouting, AModelInstalledOnlyOnOneBackendAlwaysGoesThere) {
  Fleet fleet({{"llama3.2"}, {"qwen3:8b"}, {"llama3.2"}});
  const std::string log_path = ::testing::TempDir() + "fleet_routing_access.log";
  std::remove(log_path.c_str());
  TT_START_PROXY(proxy, fleet.instances[0]->port(), 2, fleet.args({"--access-log", log_path}));
  wait_for_tags(fleet);
  const std::uint64_t before = fleet.inference(1);
  for (int i = 0; i < 40; ++i) {
    const test::Response r = generate(proxy.port(), "qwen3:8b");
    ASSERT_EQ(r.status, 200) << r.raw;
  }
  EXPECT_EQ(fleet.inference(1) - before, 40u);
  // The other model spreads over the two backends that have it, never the one that does not.
  const std::uint64_t b1 = fleet.inference(1);
  for (int i = 0; i < 40; ++i) ASSERT_EQ(generate(proxy.port(), "llama3.2").status, 200);
  EXPECT_EQ(fleet.inference(1), b1);
  EXPECT_GT(fleet.inference(0), 5u);
  EXPECT_GT(fleet.inference(2), 5u);
  const std::string m = proxy.scrape();
  EXPECT_EQ(test::metric(m, "tokentap_backend_up{backend=\"gpu1\"}"), 1) << m;
  EXPECT_GE(test::metric_sum(m, "tokentap_backend_requests_total", "backend=\"gpu1\""), 40);
  // The access log names the backend of every line, and the backends tried.
  std::string log;
  for (int i = 0; i < 50 && log.find("\"qwen3:8b\"") == std::string::npos; ++i) {
    std::this_thread::sleep_for(50ms);
    std::ifstream in(log_path);
    log.assign(std::istreambuf_iterator<char>(in), {});
  }
  EXPECT_NE(log.find("\"model\":\"qwen3:8b\""), std::string::npos) << log.substr(0, 400);
  EXPECT_NE(log.find("\"backend\":\"gpu1\",\"attempts\":1}"), std::string::npos);
}

TEST(FleetRouting, XTokentapBackendPinsARequestToOneBackend) {
  Fleet fleet({{"llama3.2"}, {"llama3.2"}, {"llama3.2"}});
  TT_START_PROXY(proxy, fleet.instances[0]->port(), 1, fleet.args());
  wait_for_tags(fleet);
  const std::uint64_t before = fleet.inference(2);
  for (int i = 0; i < 10; ++i) {
    ASSERT_EQ(generate(proxy.port(), "llama3.2", "X-Tokentap-Backend: gpu2\r\n").status, 200);
  }
  EXPECT_EQ(fleet.inference(2) - before, 10u);
  const test::Response unknown = generate(proxy.port(), "llama3.2", "X-Tokentap-Backend: nope\r\n");
  EXPECT_EQ(unknown.status, 400) << unknown.raw;
}

TEST(FleetRouting, BusyOrLostBeforeTheHeadIsSentAgainElsewhere) {
  Fleet fleet({{"llama3.2"}, {"llama3.2"}, {"llama3.2"}});
  fleet.instances[1]->set_busy(true);                       // Ollama's 503 server busy
  fleet.instances[2]->set_close(fake::CloseMode::before_head);  // RST before any byte
  TT_START_PROXY(proxy, fleet.instances[0]->port(), 1, fleet.args());
  wait_for_tags(fleet);
  for (int i = 0; i < 12; ++i) {
    const test::Response r = generate(proxy.port(), "llama3.2");
    ASSERT_EQ(r.status, 200) << "request " << i << ": " << r.raw;
    EXPECT_TRUE(r.ok());
  }
  const std::string m = proxy.scrape();
  EXPECT_GE(test::metric(m, "tokentap_retries_total{reason=\"busy\"}"), 1) << m;
  EXPECT_GE(test::metric(m, "tokentap_retries_total{reason=\"reset\"}"), 1) << m;
  EXPECT_GE(fleet.instances[1]->stats().busy_answers, 1u);
  EXPECT_EQ(fleet.inference(0), 12u) << "every request was finally answered by gpu0";
}

TEST(FleetRouting, ALossAfterTheFirstByteIsTruncatedAndNeverReplayed) {
  Fleet fleet({{"llama3.2"}, {"llama3.2"}});
  for (auto& f : fleet.instances) f->set_close(fake::CloseMode::mid_body);
  TT_START_PROXY(proxy, fleet.instances[0]->port(), 1, fleet.args());
  wait_for_tags(fleet);
  for (int i = 0; i < 5; ++i) {
    const test::Response r = generate(proxy.port(), "llama3.2");
    EXPECT_FALSE(r.ok()) << "a cut response must never look complete: " << r.raw;
  }
  EXPECT_EQ(fleet.inference(0) + fleet.inference(1), 5u) << "one attempt per request";
  EXPECT_EQ(test::metric_sum(proxy.scrape(), "tokentap_retries_total"), 0);
}

TEST(FleetRouting, TagsAndModelsListTheUnionOfTheBackendsInRotation) {
  Fleet fleet({{"llama3.2"}, {"qwen3:8b", "llama3.2"}, {"phi4"}});
  fleet.instances[0]->set_resident({"llama3.2"});
  fleet.instances[1]->set_resident({"qwen3:8b", "llama3.2"});
  TT_START_PROXY(proxy, fleet.instances[0]->port(), 1, fleet.args({"--health-interval", "200"}));
  wait_for_tags(fleet);
  std::this_thread::sleep_for(200ms);  // the /v1/models polls after the tags
  auto get = [&](const std::string& path) {
    test::HttpClient c;
    EXPECT_TRUE(c.connect(proxy.port()));
    EXPECT_TRUE(c.send("GET " + path + " HTTP/1.1\r\nHost: x\r\n\r\n"));
    return c.read_response();
  };
  auto count = [](const std::string& text, const std::string& what) {
    std::size_t n = 0;
    for (std::size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) {
      ++n;
    }
    return n;
  };
  const test::Response tags = get("/api/tags");
  ASSERT_EQ(tags.status, 200) << tags.raw;
  EXPECT_EQ(tags.body.rfind("{\"models\":[", 0), 0u) << tags.body;
  EXPECT_EQ(count(tags.body, "\"name\":\"llama3.2:latest\""), 1u) << tags.body;
  EXPECT_EQ(count(tags.body, "\"name\":\"qwen3:8b\""), 1u);
  EXPECT_EQ(count(tags.body, "\"name\":\"phi4:latest\""), 1u);
  const test::Response models = get("/v1/models");
  ASSERT_EQ(models.status, 200) << models.raw;
  EXPECT_EQ(count(models.body, "\"id\":\"qwen3:8b\""), 1u) << models.body;
  EXPECT_EQ(count(models.body, "\"id\":\"llama3.2:latest\""), 1u);
  const test::Response ps = get("/api/ps");
  ASSERT_EQ(ps.status, 200) << ps.raw;
  EXPECT_EQ(count(ps.body, "\"name\":\"llama3.2:latest\""), 1u) << ps.body;
  EXPECT_EQ(count(ps.body, "\"name\":\"qwen3:8b\""), 1u) << ps.body;
  EXPECT_EQ(count(ps.body, "phi4"), 0u) << "resident nowhere";
  // A backend out of rotation leaves the union.
  fleet.instances[2]->stop();
  (void)generate(proxy.port(), "phi4");  // its connect fails: down at once
  std::this_thread::sleep_for(100ms);
  bool gone = false;
  for (int i = 0; i < 60 && !gone; ++i) {
    gone = count(get("/api/tags").body, "phi4") == 0;
    if (!gone) std::this_thread::sleep_for(100ms);
  }
  EXPECT_TRUE(gone);
}

TEST(FleetRouting, AKilledBackendFailsOverBeforeAnyByteAndLeavesTheRotation) {
  Fleet fleet({{"llama3.2"}, {"llama3.2"}});
  TT_START_PROXY(proxy, fleet.instances[0]->port(), 1,
                 fleet.args({"--health-interval", "200"}));
  // Until gpu1's /api/tags is known, only gpu0 is known to have the model and takes everything.
  wait_for_tags(fleet);
  ASSERT_EQ(generate(proxy.port(), "llama3.2").status, 200);
  fleet.instances[1]->stop();  // connection refused from now on
  for (int i = 0; i < 30; ++i) {
    const test::Response r = generate(proxy.port(), "llama3.2");
    ASSERT_EQ(r.status, 200) << "request " << i << ": " << r.raw;
  }
  const std::string m = proxy.scrape();
  EXPECT_EQ(test::metric(m, "tokentap_backend_up{backend=\"gpu1\"}"), 0) << m;
  // At most the requests in flight when it died needed a second backend.
  EXPECT_GE(test::metric(m, "tokentap_retries_total{reason=\"connect\"}"), 1) << m;
  EXPECT_LE(test::metric(m, "tokentap_retries_total{reason=\"connect\"}"), 2) << m;
  // Back: the active checks bring it into rotation again.
  std::string error;
  ASSERT_TRUE(fleet.instances[1]->start(&error)) << error;
  bool up = false;
  for (int i = 0; i < 100 && !up; ++i) {
    std::this_thread::sleep_for(50ms);
    up = test::metric(proxy.scrape(), "tokentap_backend_up{backend=\"gpu1\"}") == 1;
  }
  EXPECT_TRUE(up);
}

TEST(FleetRouting, NoHealthyBackendIsA502InTheClientsDialect) {
  Fleet fleet({{"llama3.2"}, {"llama3.2"}});
  TT_START_PROXY(proxy, fleet.instances[0]->port(), 1, fleet.args());
  fleet.instances[0]->stop();
  fleet.instances[1]->stop();
  const test::Response r = generate(proxy.port(), "llama3.2");
  EXPECT_EQ(r.status, 502) << r.raw;
  EXPECT_EQ(r.body.rfind("{\"error\":\"tokentap: ", 0), 0u) << r.body;
}

TEST(FleetRouting, ConcurrentStreamsSpreadEvenlyOverEightBackends) {
  std::vector<std::vector<std::string>> models(8, std::vector<std::string>{"llama3.2"});
  Fleet fleet(models);
  TT_START_PROXY(proxy, fleet.instances[0]->port(), 2, fleet.args());
  wait_for_tags(fleet);
  std::vector<test::HttpClient> clients(64);
  const std::string body = R"({"model":"llama3.2","prompt":"hi"})";
  for (auto& c : clients) {
    ASSERT_TRUE(c.connect(proxy.port()));
    ASSERT_TRUE(c.send("POST /api/generate HTTP/1.1\r\nHost: x\r\nX-Fake-Tokens: 20\r\n"
                       "X-Fake-Delay-Ms: 100\r\nContent-Length: " +
                       std::to_string(body.size()) + "\r\n\r\n" + body));
    std::this_thread::sleep_for(2ms);  // each routed with the others' in-flight counted
  }
  std::this_thread::sleep_for(300ms);
  std::int64_t lo = 1 << 30, hi = 0;
  for (const auto& f : fleet.instances) {
    lo = std::min(lo, f->stats().inference_in_flight);
    hi = std::max(hi, f->stats().inference_in_flight);
  }
  EXPECT_LE(hi - lo, 1) << "min " << lo << " max " << hi;
  EXPECT_EQ(lo, 8);
  for (auto& c : clients) c.abort();
}

}  // namespace
}  // namespace tokentap

namespace tokentap {
namespace {

int upload_blob(std::uint16_t port) {
  test::HttpClient c;
  if (!c.connect(port)) return 0;
  const std::string body = "layer bytes";
  if (!c.send("POST /api/blobs/sha256:abc HTTP/1.1\r\nHost: x\r\nContent-Length: " +
              std::to_string(body.size()) + "\r\n\r\n" + body)) {
    return 0;
  }
  return c.read_response().status;
}

// A model built from blobs lives where its blobs went: the model-store routes ignore the load
// and go to the first backend in rotation, then to the next one in order if it is gone.
TEST(FleetRouting, BlobUploadsGoToTheFirstBackendInOrderWhateverTheLoad) {
  Fleet fleet({{"llama3.2"}, {"llama3.2"}, {"llama3.2"}});
  TT_START_PROXY(proxy, fleet.instances[0]->port(), 2, fleet.args());
  for (int i = 0; i < 6; ++i) ASSERT_EQ(upload_blob(proxy.port()), 201);
  EXPECT_EQ(fleet.instances[0]->requests_for("/api/blobs/sha256:abc"), 6u);
  EXPECT_EQ(fleet.instances[1]->requests_for("/api/blobs/sha256:abc"), 0u);
  fleet.instances[0]->stop();
  for (int i = 0; i < 4; ++i) ASSERT_EQ(upload_blob(proxy.port()), 201);
  EXPECT_EQ(fleet.instances[1]->requests_for("/api/blobs/sha256:abc"), 4u) << "the next one in order";
  EXPECT_EQ(fleet.instances[2]->requests_for("/api/blobs/sha256:abc"), 0u);
}

}  // namespace
}  // namespace tokentap

namespace tokentap {
namespace {

using namespace std::chrono_literals;

// "Within 6 s on active checks alone": no request touches the dead backend, only the prober's
// GET /api/version every --health-interval (default 2 s); down after 3 failed checks.
TEST(FleetRouting, AKilledBackendLeavesTheRotationWithin6sOnActiveChecksAlone) {
  test::FakeFleet fleet({{"llama3.2"}, {"llama3.2"}});
  TT_START_PROXY(proxy, fleet.instances[0]->port(), 1, fleet.args());
  ASSERT_EQ(test::metric(proxy.scrape(), "tokentap_backend_up{backend=\"gpu1\"}"), 1);
  fleet.instances[1]->stop();
  const auto killed = std::chrono::steady_clock::now();
  bool down = false;
  while (!down && std::chrono::steady_clock::now() - killed < 8s) {
    std::this_thread::sleep_for(100ms);
    down = test::metric(proxy.scrape(), "tokentap_backend_up{backend=\"gpu1\"}") == 0;
  }
  const auto took = std::chrono::steady_clock::now() - killed;
  ASSERT_TRUE(down);
  EXPECT_LE(took, 6500ms) << "three checks two seconds apart, each refused at once";
  const std::string m = proxy.scrape();
  EXPECT_EQ(test::metric(m, "tokentap_backend_ejections_total{backend=\"gpu1\","
                            "reason=\"health_check\"}"), 1) << m;
  EXPECT_EQ(test::generate(proxy.port(), "llama3.2").status, 200);
}

// Live traffic never takes out the last backend in rotation, however many 5xx it answers.
TEST(FleetRouting, TheLastHealthyBackendIsNeverEjectedBy5xxAnswers) {
  test::FakeFleet fleet({{"llama3.2"}, {"llama3.2"}});
  TT_START_PROXY(proxy, fleet.instances[0]->port(), 1, fleet.args({"--health-interval", "200"}));
  fleet.instances[1]->stop();
  for (int i = 0; i < 50; ++i) {
    std::this_thread::sleep_for(50ms);
    if (test::metric(proxy.scrape(), "tokentap_backend_up{backend=\"gpu1\"}") == 0) break;
  }
  ASSERT_EQ(test::metric(proxy.scrape(), "tokentap_backend_up{backend=\"gpu1\"}"), 0);
  for (int i = 0; i < 12; ++i) {
    EXPECT_EQ(test::generate(proxy.port(), "llama3.2", "X-Fake-Error: before\r\n").status, 500);
  }
  // The first backend is the one TestProxy names by its address.
  const std::string gpu0 = "backend=\"127.0.0.1:" + std::to_string(fleet.instances[0]->port()) +
                           "\"";
  const std::string m = proxy.scrape();
  EXPECT_EQ(test::metric(m, "tokentap_backend_up{" + gpu0 + "}"), 1) << m;
  EXPECT_EQ(test::metric_sum(m, "tokentap_backend_requests_total", gpu0 + ",status=\"500\""), 12);
  EXPECT_EQ(test::metric_sum(m, "tokentap_backend_ejections_total", gpu0), 0) << m;
  EXPECT_EQ(test::generate(proxy.port(), "llama3.2").status, 200) << "still served";
}

}  // namespace
}  // namespace tokentap
