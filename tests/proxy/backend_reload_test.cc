// A reload of the backends while tokentap serves (issue 16 "SIGHUP"), over real sockets: a
// backend added and one removed during 20 live streams (none cut, new requests only to the
// configured ones within 1 s, the removed one's pooled connections closed), a moved URL, one
// backend becoming a fleet, and an invalid file refused with the running fleet kept.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
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

// n instances installing llama3.2.
struct Instances : test::FakeFleet {
  explicit Instances(std::size_t n) : FakeFleet(n, "llama3.2") {}
};

// tokentap's pooled connections still open on an instance. The prober's are not counted: each
// asks one question with Connection: close, and the fake closes those itself.
std::int64_t open_connections(const fake::FakeUpstream& f) {
  const fake::Stats s = f.stats();
  std::uint64_t probes = 0;
  for (const char* path : {"/api/version", "/api/tags", "/v1/models", "/api/ps"}) {
    probes += f.requests_for(path);
  }
  return static_cast<std::int64_t>(s.connections_accepted - s.connections_closed_by_peer) -
         static_cast<std::int64_t>(probes);
}

// A --config file naming backends name=instance.
class ConfigFile {
 public:
  explicit ConfigFile(const std::string& name) : path_(::testing::TempDir() + name) {}
  ~ConfigFile() { std::remove(path_.c_str()); }
  void write(const Instances& in, const std::vector<std::pair<std::string, std::size_t>>& backends,
             const std::string& extra = "") const {
    std::ofstream out(path_, std::ios::trunc);
    out << "health_interval = 200\n" << extra;
    for (const auto& [name, i] : backends) {
      out << "[[backend]]\nname = \"" << name << "\"\nurl = \"http://127.0.0.1:"
          << in.instances[i]->port() << "\"\n";
    }
  }
  void write_raw(const std::string& text) const { std::ofstream(path_, std::ios::trunc) << text; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

int generate_status(std::uint16_t port) { return test::generate(port, "llama3.2").status; }

// Every instance's inference count, to compare before and after.
std::vector<std::uint64_t> counts(const Instances& in) {
  std::vector<std::uint64_t> v;
  for (std::size_t i = 0; i < in.instances.size(); ++i) v.push_back(in.inference(i));
  return v;
}

TEST(BackendReload, AddsAndRemovesABackendDuring20LiveStreamsWithoutCuttingAny) {
  Instances in(3);
  ConfigFile file("fleet_reload_live.toml");
  file.write(in, {{"a", 0}, {"b", 1}});
  TT_START_PROXY(proxy, 0, 2, {"--config", file.path()});
  // 20 streams of 20 pieces, 100 ms apart: each lasts about 2 s, across the reload.
  constexpr int streams = 20;
  std::atomic<int> whole{0};
  std::vector<std::thread> clients;
  for (int s = 0; s < streams; ++s) {
    clients.emplace_back([&] {
      test::HttpClient c;
      if (!c.connect(proxy.port()) ||
          !c.send(test::generate_request("llama3.2", true,
                                         "X-Fake-Tokens: 20\r\nX-Fake-Delay-Ms: 100\r\n"))) {
        return;
      }
      const test::Response r = c.read_response({.timeout_ms = 10000});
      if (r.status == 200 && r.ok() && r.body.find("\"done\":true") != std::string::npos) {
        whole.fetch_add(1);
      }
    });
  }
  std::this_thread::sleep_for(500ms);  // every stream started, none finished
  EXPECT_GT(in.inference(0), 0u);
  file.write(in, {{"b", 1}, {"c", 2}});
  std::string message;
  ASSERT_TRUE(proxy.reload(&message)) << message;
  EXPECT_NE(message.find("added c"), std::string::npos) << message;
  EXPECT_NE(message.find("removed a"), std::string::npos) << message;
  std::this_thread::sleep_for(1s);  // "within 1 s"
  const std::vector<std::uint64_t> before = counts(in);
  for (int i = 0; i < 30; ++i) ASSERT_EQ(generate_status(proxy.port()), 200);
  const std::vector<std::uint64_t> after = counts(in);
  EXPECT_EQ(after[0], before[0]) << "nothing new goes to the removed backend";
  EXPECT_GT(after[2], before[2]) << "the added backend takes requests";
  EXPECT_EQ(after[1] + after[2] - before[1] - before[2], 30u);
  for (std::thread& t : clients) t.join();
  EXPECT_EQ(whole.load(), streams) << "no stream in flight was cut";
  // The removed backend's connections close once its streams ended (pooled ones are not kept).
  for (int i = 0; i < 100 && open_connections(*in.instances[0]) > 0; ++i) std::this_thread::sleep_for(20ms);
  EXPECT_EQ(open_connections(*in.instances[0]), 0);
  const std::string m = proxy.scrape();
  EXPECT_EQ(test::metric(m, "tokentap_backend_up{backend=\"c\"}"), 1) << m;
  EXPECT_EQ(test::metric(m, "tokentap_backend_up{backend=\"a\"}"), -1) << "a's series end";
}

TEST(BackendReload, AnInvalidFileIsRefusedAndTheRunningBackendsStay) {
  Instances in(2);
  ConfigFile file("fleet_reload_invalid.toml");
  file.write(in, {{"a", 0}, {"b", 1}});
  TT_START_PROXY(proxy, 0, 1, {"--config", file.path()});
  file.write_raw("[[backend]]\nname = \"a\"\nurl = \"http://127.0.0.1:1\"\nweight = \"heavy\"\n");
  std::string message;
  EXPECT_FALSE(proxy.reload(&message));
  EXPECT_NE(message.find("weight"), std::string::npos) << message;
  EXPECT_NE(message.find("running configuration stays"), std::string::npos) << message;
  EXPECT_EQ(message.find('\n'), std::string::npos) << "one line";
  file.write_raw("this is = = not toml");
  EXPECT_FALSE(proxy.reload(&message));
  const std::vector<std::uint64_t> before = counts(in);
  for (int i = 0; i < 20; ++i) ASSERT_EQ(generate_status(proxy.port()), 200);
  const std::vector<std::uint64_t> after = counts(in);
  EXPECT_GT(after[0], before[0]);
  EXPECT_GT(after[1], before[1]);
}

TEST(BackendReload, AMovedUrlTakesNewRequestsAndClosesTheOldPool) {
  Instances in(2);
  ConfigFile file("fleet_reload_moved.toml");
  file.write(in, {{"gpu0", 0}});
  TT_START_PROXY(proxy, 0, 1, {"--config", file.path()});
  for (int i = 0; i < 5; ++i) ASSERT_EQ(generate_status(proxy.port()), 200);
  EXPECT_EQ(in.inference(0), 5u);
  EXPECT_GT(open_connections(*in.instances[0]), 0) << "a pooled keep-alive connection";
  file.write(in, {{"gpu0", 1}});
  std::string message;
  ASSERT_TRUE(proxy.reload(&message)) << message;
  EXPECT_NE(message.find("changed gpu0"), std::string::npos) << message;
  for (int i = 0; i < 100 && open_connections(*in.instances[0]) > 0; ++i) std::this_thread::sleep_for(10ms);
  EXPECT_EQ(open_connections(*in.instances[0]), 0) << "idle connections to the old address closed";
  for (int i = 0; i < 5; ++i) ASSERT_EQ(generate_status(proxy.port()), 200);
  EXPECT_EQ(in.inference(0), 5u);
  EXPECT_EQ(in.inference(1), 5u);
}

TEST(BackendReload, OneBackendBecomesAFleetAndBackAgain) {
  Instances in(2);
  in.instances[1]->set_models(std::vector<std::string>{"qwen3:8b"});
  ConfigFile file("fleet_reload_grow.toml");
  file.write(in, {{"a", 0}});
  TT_START_PROXY(proxy, 0, 2, {"--config", file.path()});
  EXPECT_EQ(test::metric_sum(proxy.scrape(), "tokentap_backend_up"), 0) << "one upstream";
  file.write(in, {{"a", 0}, {"b", 1}});
  std::string message;
  ASSERT_TRUE(proxy.reload(&message)) << message;
  // The prober polls b's /api/tags as it starts; then qwen3 goes to b only.
  test::wait_for_tags({in.instances[1].get()});
  for (int i = 0; i < 10; ++i) ASSERT_EQ(test::generate(proxy.port(), "qwen3:8b").status, 200);
  EXPECT_EQ(in.inference(1), 10u);
  EXPECT_EQ(test::metric(proxy.scrape(), "tokentap_backend_up{backend=\"b\"}"), 1);
  file.write(in, {{"b", 1}});
  ASSERT_TRUE(proxy.reload(&message)) << message;
  const std::uint64_t before = in.inference(1);
  for (int i = 0; i < 5; ++i) ASSERT_EQ(generate_status(proxy.port()), 404) << "b lacks llama3.2";
  EXPECT_EQ(in.inference(1) - before, 5u) << "the one backend left serves everything";
  EXPECT_EQ(test::metric_sum(proxy.scrape(), "tokentap_backend_up"), 0) << "one upstream again";
}

TEST(BackendReload, WithoutAConfigFileOrWithUpstreamFlagsNothingIsReloaded) {
  Instances in(1);
  TT_START_PROXY(plain, in.instances[0]->port(), 1);
  std::string message;
  EXPECT_FALSE(plain.reload(&message));
  EXPECT_NE(message.find("no --config"), std::string::npos) << message;
  ConfigFile file("fleet_reload_flags.toml");
  file.write(in, {{"a", 0}});
  TT_START_PROXY(flagged, in.instances[0]->port(), 1, {"--config", file.path()});
  EXPECT_FALSE(flagged.reload(&message));
  EXPECT_NE(message.find("--upstream"), std::string::npos) << message;
  EXPECT_EQ(generate_status(flagged.port()), 200);
}

}  // namespace
}  // namespace tokentap
