// Fake upstream's model-management routes over real sockets (issue 16 "Fleet endpoints";
// wire-format.md §6): POST /api/pull streams NDJSON progress (one chunk per line) ending in
// success and installs the model; stream:false answers the last object; pull_fail ends with
// Ollama's manifest error; DELETE /api/delete and POST /api/copy answer an empty 200 or Ollama's
// 404; the per-route counters; pull_delay_ms spreads a pull over time.
#include <algorithm>
#include <chrono>
#include <string>
#include <vector>

#include "fake_test_fixture.h"
#include "plan.h"
#include "support/http_client.h"

namespace tokentap::fake {
namespace {

using test::Response;

std::vector<std::string> lines_of(const std::string& body) {
  std::vector<std::string> lines;
  std::size_t start = 0;
  while (start < body.size()) {
    const std::size_t nl = body.find('\n', start);
    if (nl == std::string::npos) {
      lines.push_back(body.substr(start));
      break;
    }
    lines.push_back(body.substr(start, nl - start));
    start = nl + 1;
  }
  return lines;
}

class FakeAdminTest : public FakeUpstreamTest {
 protected:
  void SetUp() override {
    Options o;
    o.models = strs({"llama3.2"});
    start(std::move(o));
  }
  Response del(std::string_view body) {
    return test::roundtrip(port_, req("DELETE", "/api/delete", body));
  }
  bool installed(std::string_view name) {
    const std::vector<std::string> m = fake_->installed_models();
    return std::find(m.begin(), m.end(), name) != m.end();
  }
};

TEST_F(FakeAdminTest, StreamingPullSendsProgressLinesAndInstallsTheModel) {
  const Response r = post("/api/pull", R"({"model":"qwen3:8b"})");
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.header("Content-Type").value_or(""), "application/x-ndjson");
  EXPECT_TRUE(r.chunked);
  const std::vector<std::string> lines = lines_of(r.body);
  ASSERT_EQ(lines.size(), 1 + pull_layers * pull_layer_updates + 3);
  EXPECT_EQ(r.chunks.size(), lines.size());  // one chunk per line
  EXPECT_EQ(lines.front(), R"({"status":"pulling manifest"})");
  // A layer: "pulling <digest[7:19]>", total only, then completed.
  const std::string digest = json_str(lines[1], "/digest");
  ASSERT_EQ(digest.size(), 7u + 64u);
  EXPECT_EQ(json_str(lines[1], "/status"), "pulling " + digest.substr(7, 12));
  EXPECT_EQ(keys_of(lines[1]), strs({"status", "digest", "total"}));
  EXPECT_EQ(keys_of(lines[3]), strs({"status", "digest", "total", "completed"}));
  EXPECT_EQ(json_int(lines[3], "/completed"), json_int(lines[3], "/total"));
  EXPECT_EQ(lines[lines.size() - 3], R"({"status":"verifying sha256 digest"})");
  EXPECT_EQ(lines[lines.size() - 2], R"({"status":"writing manifest"})");
  EXPECT_EQ(lines.back(), R"({"status":"success"})");
  EXPECT_TRUE(installed("qwen3:8b"));
  EXPECT_NE(get("/api/tags").body.find(R"("name":"qwen3:8b")"), std::string::npos);
  EXPECT_EQ(fake_->stats().pull_requests, 1u);
  EXPECT_EQ(fake_->requests_for("/api/pull"), 1u);
}

TEST_F(FakeAdminTest, PullDigestsAreTheSameOnEveryInstance) {
  FakeUpstream other(Options{});
  std::string error;
  ASSERT_TRUE(other.start(&error)) << error;
  const std::string body = R"({"model":"gemma3:4b"})";
  const Response a = post("/api/pull", body);
  const Response b = test::roundtrip(other.port(), test::request("POST", "/api/pull", body, {},
                                                                 other.port()));
  EXPECT_EQ(a.body, b.body);
}

TEST_F(FakeAdminTest, NonStreamPullAnswersTheLastObject) {
  const Response r = post("/api/pull", R"({"name":"phi4","stream":false})");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.header("Content-Type").value_or(""), "application/json");
  EXPECT_EQ(r.body, R"({"status":"success"})");
  EXPECT_TRUE(installed("phi4:latest"));
}

TEST_F(FakeAdminTest, PullFailEndsWithTheManifestError) {
  fake_->set_pull_fail(true);
  const Response r = post("/api/pull", R"({"model":"qwen3:8b"})");
  EXPECT_EQ(r.status, 200);
  const std::vector<std::string> lines = lines_of(r.body);
  ASSERT_EQ(lines.size(), 1 + pull_fail_layer_lines + 1);
  EXPECT_EQ(lines.back(), R"({"error":"pull model manifest: file does not exist"})");
  EXPECT_FALSE(installed("qwen3:8b"));
  const Response single = post("/api/pull", R"({"model":"qwen3:8b","stream":false})");
  EXPECT_EQ(single.status, 500);
  EXPECT_EQ(single.body, R"({"error":"pull model manifest: file does not exist"})");
  EXPECT_EQ(fake_->stats().pull_requests, 2u);
}

TEST_F(FakeAdminTest, PullDelaySpreadsTheLines) {
  fake_->set_pull_delay_ms(20);
  const auto t0 = std::chrono::steady_clock::now();
  const Response r = post("/api/pull", R"({"model":"qwen3:8b"})");
  EXPECT_TRUE(r.ok()) << r.error;
  EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(20 * 10));
}

TEST_F(FakeAdminTest, BadPullBodiesAre400) {
  EXPECT_EQ(post("/api/pull", "").body, R"({"error":"missing request body"})");
  EXPECT_EQ(post("/api/pull", "{").status, 400);
  EXPECT_EQ(post("/api/pull", "{}").body, R"({"error":"invalid model name"})");
}

TEST_F(FakeAdminTest, DeleteRemovesOrAnswers404) {
  const Response gone = del(R"({"model":"llama3.2"})");
  EXPECT_EQ(gone.status, 200);
  EXPECT_EQ(gone.content_length, 0);
  EXPECT_FALSE(gone.header("Content-Type").has_value());
  EXPECT_TRUE(fake_->installed_models().empty());
  const Response missing = del(R"({"model":"llama3.2"})");
  EXPECT_EQ(missing.status, 404);
  EXPECT_EQ(missing.header("Content-Type").value_or(""), "application/json; charset=utf-8");
  EXPECT_EQ(missing.body, R"({"error":"model 'llama3.2' not found"})");
  EXPECT_EQ(fake_->stats().delete_requests, 2u);
  EXPECT_EQ(post("/api/delete", R"({"model":"x"})").status, 405);  // DELETE only
}

TEST_F(FakeAdminTest, CopyAddsTheDestinationOrAnswers404) {
  const Response ok = post("/api/copy", R"({"source":"llama3.2","destination":"mine"})");
  EXPECT_EQ(ok.status, 200);
  EXPECT_EQ(ok.content_length, 0);
  EXPECT_TRUE(installed("mine:latest"));
  EXPECT_TRUE(installed("llama3.2:latest"));
  const Response missing = post("/api/copy", R"({"source":"nope","destination":"b"})");
  EXPECT_EQ(missing.status, 404);
  EXPECT_EQ(missing.body, R"({"error":"model \"nope\" not found"})");
  EXPECT_EQ(post("/api/copy", R"({"source":"llama3.2"})").status, 400);
  EXPECT_EQ(fake_->stats().copy_requests, 3u);
}

TEST_F(FakeUpstreamTest, WithoutAModelListPullKeepsAcceptingEveryModel) {
  EXPECT_EQ(post("/api/pull", R"({"model":"new-one","stream":false})").status, 200);
  const std::vector<std::string> m = fake_->installed_models();
  EXPECT_EQ(m.size(), default_models().size() + 1);
  EXPECT_EQ(post("/api/generate", R"({"model":"anything","stream":false})").status, 200);
}

}  // namespace
}  // namespace tokentap::fake
