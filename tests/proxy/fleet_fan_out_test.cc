// Pull, delete and copy through tokentap in front of a fleet (issue 16 "Fleet endpoints"), over
// real sockets: the request reaches every backend in rotation through the fan-out service, the
// client sees one Ollama answer (a progress stream ending in one success line, or Ollama's error
// shape naming the backend that failed), and with one backend nothing changes.
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "fake_upstream.h"
#include "support/fake_fleet.h"
#include "support/http_client.h"
#include "support/proxy_fixture.h"

namespace tokentap {
namespace {

// n instances installing llama3.2.
struct Instances : test::FakeFleet {
  explicit Instances(std::size_t n) : FakeFleet(n, "llama3.2") {}
  bool all_have(const std::string& model) const {
    return std::all_of(instances.begin(), instances.end(), [&](const auto& f) {
      const std::vector<std::string> m = f->installed_models();
      return std::find(m.begin(), m.end(), model) != m.end();
    });
  }
};

test::Response call(std::uint16_t port, const std::string& method, const std::string& path,
                    const std::string& body) {
  test::HttpClient c;
  if (!c.connect(port)) return {};
  EXPECT_TRUE(c.send(method + " " + path + " HTTP/1.1\r\nHost: x\r\n" +
                     "Content-Type: application/json\r\nContent-Length: " +
                     std::to_string(body.size()) + "\r\n\r\n" + body));
  return c.read_response({.timeout_ms = 15000});
}

std::size_t count(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (std::size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

TEST(FleetFanOut, APullReachesEveryBackendAndEndsWithOneSuccessLine) {
  Instances in(3);
  TT_START_PROXY(proxy, in.instances[0]->port(), 2, in.args());
  const test::Response r = call(proxy.port(), "POST", "/api/pull", R"({"model":"qwen3:8b"})");
  ASSERT_EQ(r.status, 200) << r.raw;
  EXPECT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(count(r.body, "\"status\":\"success\""), 1u) << r.body;
  EXPECT_NE(r.body.find("pulling manifest"), std::string::npos) << "the lead's progress";
  EXPECT_EQ(r.body.find("\"error\""), std::string::npos) << r.body;
  for (const auto& f : in.instances) EXPECT_EQ(f->stats().pull_requests, 1u);
  EXPECT_TRUE(in.all_have("qwen3:8b:latest") || in.all_have("qwen3:8b"));
  // stream:false: one object, as Ollama answers it.
  const test::Response once =
      call(proxy.port(), "POST", "/api/pull", R"({"model":"phi4","stream":false})");
  ASSERT_EQ(once.status, 200) << once.raw;
  EXPECT_NE(once.body.find("\"status\":\"success\""), std::string::npos) << once.body;
  for (const auto& f : in.instances) EXPECT_EQ(f->stats().pull_requests, 2u);
}

TEST(FleetFanOut, AFailedPullOnOneBackendEndsTheStreamWithAnErrorNamingIt) {
  Instances in(3);
  in.instances[2]->set_pull_fail(true);
  TT_START_PROXY(proxy, in.instances[0]->port(), 1, in.args());
  const test::Response r = call(proxy.port(), "POST", "/api/pull", R"({"model":"qwen3:8b"})");
  ASSERT_EQ(r.status, 200) << r.raw;
  EXPECT_EQ(r.body.find("\"status\":\"success\""), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("{\"error\":\"gpu2: "), std::string::npos) << r.body;
}

TEST(FleetFanOut, DeleteAndCopyApplyToEveryBackend) {
  Instances in(3);
  TT_START_PROXY(proxy, in.instances[0]->port(), 1, in.args());
  const test::Response copied = call(proxy.port(), "POST", "/api/copy",
                                     R"({"source":"llama3.2","destination":"mine"})");
  ASSERT_EQ(copied.status, 200) << copied.raw;
  for (const auto& f : in.instances) EXPECT_EQ(f->stats().copy_requests, 1u);
  EXPECT_TRUE(in.all_have("mine:latest") || in.all_have("mine"));
  const test::Response deleted = call(proxy.port(), "DELETE", "/api/delete", R"({"model":"mine"})");
  ASSERT_EQ(deleted.status, 200) << deleted.raw;
  for (const auto& f : in.instances) EXPECT_EQ(f->stats().delete_requests, 1u);
  EXPECT_FALSE(in.all_have("mine:latest") || in.all_have("mine"));
  const test::Response missing =
      call(proxy.port(), "DELETE", "/api/delete", R"({"model":"never-there"})");
  EXPECT_EQ(missing.status, 404) << missing.raw;
  EXPECT_NE(missing.body.find("\"error\""), std::string::npos) << missing.body;
}

TEST(FleetFanOut, PinnedOrWithOneBackendAPullGoesToThatBackendOnly) {
  Instances in(2);
  TT_START_PROXY(proxy, in.instances[0]->port(), 1, in.args());
  test::HttpClient c;
  ASSERT_TRUE(c.connect(proxy.port()));
  const std::string body = R"({"model":"qwen3:8b","stream":false})";
  ASSERT_TRUE(c.send("POST /api/pull HTTP/1.1\r\nHost: x\r\nX-Tokentap-Backend: gpu1\r\n"
                     "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body));
  EXPECT_EQ(c.read_response().status, 200);
  EXPECT_EQ(in.instances[0]->stats().pull_requests, 0u);
  EXPECT_EQ(in.instances[1]->stats().pull_requests, 1u);
  Instances one(1);
  TT_START_PROXY(single, one.instances[0]->port(), 1);
  EXPECT_EQ(call(single.port(), "POST", "/api/pull", body).status, 200);
  EXPECT_EQ(one.instances[0]->stats().pull_requests, 1u);
}

}  // namespace
}  // namespace tokentap
