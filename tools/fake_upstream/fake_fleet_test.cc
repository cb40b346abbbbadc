// Fake upstream as a fleet member, over real sockets: per-instance installed models (/api/tags,
// /v1/models, 404 for other models in every dialect), /api/ps, 503-busy mode, /api/version
// health (ok, fail, slow), abrupt closes (instance mode and X-Fake-Close), stop()/start() on
// the same port, per-path counters and the in-flight gauge, the fake_upstream binary's flags,
// and eight instances with different model sets in one process.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <climits>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "byte_buf.h"
#include "fake_test_fixture.h"
#include "support/http_client.h"

namespace tokentap::fake {
namespace {

using test::HttpClient;
using test::Response;
using namespace std::chrono_literals;

constexpr std::string_view busy_body =
    R"({"error":"server busy, please try again.  maximum pending requests exceeded"})";

std::vector<std::string> names_at(std::string_view json, std::string_view array,
                                  std::string_view key) {
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  std::vector<std::string> out;
  if (parser.parse(json.data(), json.size()).get(doc) != simdjson::SUCCESS) return {"<invalid>"};
  simdjson::dom::array items;
  if (doc.at_pointer(array).get_array().get(items) != simdjson::SUCCESS) return out;
  for (auto item : items) {
    std::string_view v;
    if (item[key].get_string().get(v) == simdjson::SUCCESS) out.emplace_back(v);
  }
  return out;
}

std::string single(int status, std::string_view reason, std::string_view type,
                   std::string_view body) {
  return "HTTP/1.1 " + std::to_string(status) + " " + std::string(reason) +
         "\r\nContent-Type: " + std::string(type) + "\r\n" + std::string(fixed_date) +
         "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + std::string(body);
}

// Polls `done` every 2 ms for up to 2 s (a loaded machine can be slow to serve).
template <typename Fn>
bool eventually(Fn&& done) {
  for (int i = 0; i < 1000; ++i) {
    if (done()) return true;
    std::this_thread::sleep_for(2ms);
  }
  return done();
}

Options with_models(std::vector<std::string> models) {
  Options o;
  o.models = std::move(models);
  return o;
}

TEST_F(FakeUpstreamTest, DefaultTagsAreTheFixedListByteForByte) {
  const Response tags = get("/api/tags");
  ASSERT_TRUE(tags.ok()) << tags.error;
  // The body the fake served before instances had options (length and FNV-1a 64).
  EXPECT_EQ(tags.body.size(), 2320u);
  EXPECT_EQ(fnv1a64(fnv1a64_init, tags.body), 0x42fa1684f9844ec0ull);
  EXPECT_EQ(names_at(tags.body, "/models", "name"), default_models());
  // Every model name is accepted when no list was given.
  EXPECT_EQ(post("/api/generate", R"({"model":"anything","stream":false})").status, 200);
  // The same seven given explicitly render the same bytes.
  start(with_models(default_models()));
  EXPECT_EQ(get("/api/tags").body, tags.body);
}

TEST_F(FakeUpstreamTest, InstalledModelsListedInTagsAndV1Models) {
  start(with_models({"alpha", "beta:7b", "team/gamma:q4", "qwen3:8b"}));
  const Response tags = get("/api/tags");
  ASSERT_TRUE(tags.ok()) << tags.error;
  EXPECT_EQ(names_at(tags.body, "/models", "name"),
            strs({"alpha:latest", "beta:7b", "team/gamma:q4", "qwen3:8b"}));
  EXPECT_EQ(names_at(tags.body, "/models", "model"), names_at(tags.body, "/models", "name"));
  EXPECT_EQ(keys_of(tags.body, "/models/0"),
            strs({"name", "model", "modified_at", "size", "digest", "details"}));
  EXPECT_EQ(keys_of(tags.body, "/models/0/details"),
            strs({"parent_model", "format", "family", "families", "parameter_size",
                  "quantization_level"}));
  EXPECT_EQ(json_str(tags.body, "/models/0/digest").size(), 64u);
  // A default model keeps its fixed entry; under 2 KiB the list goes with Content-Length.
  EXPECT_EQ(json_str(tags.body, "/models/3/modified_at"), "2026-08-20T10:11:11.123456789+02:00");
  EXPECT_TRUE(tags.header("Content-Length").has_value());
  EXPECT_EQ(tags.header("Content-Type"), "application/json; charset=utf-8");
  EXPECT_EQ(tags.body.back(), '}');  // gin c.JSON: no newline

  const Response v1 = get("/v1/models");
  ASSERT_TRUE(v1.ok()) << v1.error;
  EXPECT_EQ(v1.header("Content-Type"), "application/json");
  EXPECT_EQ(v1.body.back(), '\n');
  EXPECT_EQ(keys_of(v1.body), strs({"object", "data"}));
  EXPECT_EQ(json_str(v1.body, "/object"), "list");
  EXPECT_EQ(names_at(v1.body, "/data", "id"), names_at(tags.body, "/models", "name"));
  EXPECT_EQ(keys_of(v1.body, "/data/0"), strs({"id", "object", "created", "owned_by"}));
  EXPECT_EQ(names_at(v1.body, "/data", "owned_by"),
            strs({"library", "library", "team", "library"}));
  EXPECT_EQ(json_int(v1.body, "/data/3/created"), 1787213471);  // modified_at as Unix time

  // The same model looks the same on every instance that has it.
  const std::string alpha = json_str(tags.body, "/models/0/digest");
  start(with_models({"zeta", "alpha"}));
  EXPECT_EQ(json_str(get("/api/tags").body, "/models/1/digest"), alpha);

  start(with_models({}));
  EXPECT_EQ(get("/api/tags").body, R"({"models":[]})");
  EXPECT_EQ(get("/v1/models").body, "{\"object\":\"list\",\"data\":null}\n");
  EXPECT_EQ(post("/v1/models", "").status, 405);
}

TEST_F(FakeUpstreamTest, ModelNotInstalledIs404InEachDialect) {
  start(with_models({"alpha", "Beta:7B"}));
  const Response gen = post("/api/generate", R"({"model":"llama9"})");  // a stream request
  EXPECT_EQ(gen.raw, single(404, "Not Found", "application/json; charset=utf-8",
                            R"({"error":"model 'llama9' not found"})"));
  EXPECT_EQ(
      post("/api/chat", R"({"model":"llama9","messages":[{"role":"user","content":"x"}]})").body,
      R"({"error":"model 'llama9' not found"})");
  const Response embed = post("/api/embed", R"({"model":"x","input":"hi"})");
  EXPECT_EQ(embed.status, 404);
  EXPECT_EQ(embed.body, R"({"error":"model \"x\" not found, try pulling it first"})");
  EXPECT_EQ(post("/api/embeddings", R"({"model":"x","prompt":"hi"})").body, embed.body);

  const Response oa = post("/v1/chat/completions", R"({"model":"llama9","stream":true})");
  EXPECT_EQ(oa.raw, single(404, "Not Found", "application/json",
                           "{\"error\":{\"message\":\"model 'llama9' not found\",\"type\":"
                           "\"not_found_error\",\"param\":null,\"code\":null}}\n"));
  EXPECT_EQ(json_str(post("/v1/embeddings", R"({"model":"x","input":"a"})").body, "/error/message"),
            R"(model "x" not found, try pulling it first)");
  EXPECT_EQ(post("/v1/completions", R"({"model":"llama9"})").status, 404);
  EXPECT_EQ(post("/v1/responses", R"({"model":"llama9","input":"x"})").status, 404);
  const Response an = post("/v1/messages", R"({"model":"llama9","max_tokens":5,"messages":[]})");
  EXPECT_EQ(an.status, 404);
  EXPECT_EQ(json_str(an.body, "/error/type"), "not_found_error");
  EXPECT_EQ(json_str(an.body, "/error/message"), "model 'llama9' not found");

  // Installed: without its ":latest", or in another case.
  EXPECT_EQ(post("/api/generate", R"({"model":"alpha","stream":false})").status, 200);
  EXPECT_EQ(post("/api/generate", R"({"model":"ALPHA:latest","stream":false})").status, 200);
  EXPECT_EQ(post("/api/generate", R"({"model":"beta:7b","stream":false})").status, 200);
  EXPECT_EQ(post("/api/generate", R"({"model":"beta","stream":false})").status, 404);
  EXPECT_EQ(fake_->stats().model_not_found_answers, 10u);

  // Installed models change at run time.
  fake_->set_models(std::vector<std::string>{"llama9"});
  EXPECT_EQ(post("/api/generate", R"({"model":"llama9","stream":false})").status, 200);
  EXPECT_EQ(post("/api/generate", R"({"model":"alpha","stream":false})").status, 404);
  EXPECT_EQ(names_at(get("/api/tags").body, "/models", "name"), strs({"llama9:latest"}));
  fake_->set_models(std::nullopt);
  EXPECT_EQ(post("/api/generate", R"({"model":"whatever","stream":false})").status, 200);
  EXPECT_EQ(get("/api/tags").body.size(), 2320u);
}

TEST_F(FakeUpstreamTest, PsListsResidentModels) {
  const Response empty = get("/api/ps");
  EXPECT_EQ(empty.raw, single(200, "OK", "application/json; charset=utf-8", R"({"models":[]})"));
  EXPECT_EQ(post("/api/ps", "").status, 405);
  Options o = with_models({"alpha", "llama3.2"});
  o.resident = {"llama3.2"};
  start(o);
  const Response ps = get("/api/ps");
  ASSERT_TRUE(ps.ok()) << ps.error;
  EXPECT_EQ(names_at(ps.body, "/models", "name"), strs({"llama3.2:latest"}));
  EXPECT_EQ(keys_of(ps.body, "/models/0"), strs({"name", "model", "size", "digest", "details",
                                                 "expires_at", "size_vram", "context_length"}));
  EXPECT_EQ(json_int(ps.body, "/models/0/size"), 3411653120);
  EXPECT_EQ(json_int(ps.body, "/models/0/size_vram"), 3411653120);
  EXPECT_EQ(json_str(ps.body, "/models/0/digest"),
            json_str(get("/api/tags").body, "/models/1/digest"));
  fake_->set_resident({"alpha", "llama3.2"});
  EXPECT_EQ(names_at(get("/api/ps").body, "/models", "name"),
            strs({"alpha:latest", "llama3.2:latest"}));
}

TEST_F(FakeUpstreamTest, BusyAnswersOllama503UntilCleared) {
  Options o;
  o.busy = true;
  start(o);
  EXPECT_TRUE(fake_->busy());
  const std::string expected =
      single(503, "Service Unavailable", "application/json; charset=utf-8", busy_body);
  EXPECT_EQ(post("/api/generate", R"({"model":"m","prompt":"hi","stream":false})").raw, expected);
  EXPECT_EQ(post("/api/chat", R"({"model":"m","messages":[{"role":"user","content":"x"}]})").raw,
            expected);  // a stream request: refused before the stream, one write
  EXPECT_EQ(post("/api/embed", R"({"model":"m","input":"x"})").raw, expected);
  const Response oa = post("/v1/chat/completions", R"({"model":"m","stream":true})");
  EXPECT_EQ(oa.status, 503);
  EXPECT_EQ(oa.header("Content-Type"), "application/json");
  EXPECT_EQ(json_str(oa.body, "/error/type"), "api_error");
  EXPECT_EQ(json_str(oa.body, "/error/message"),
            "server busy, please try again.  maximum pending requests exceeded");
  const Response an = post("/v1/messages", R"({"model":"m","max_tokens":5,"messages":[]})");
  EXPECT_EQ(an.status, 503);
  EXPECT_EQ(json_str(an.body, "/error/type"), "overloaded_error");
  // Everything else is served.
  EXPECT_EQ(get("/api/tags").status, 200);
  EXPECT_EQ(get("/api/version").status, 200);
  EXPECT_EQ(fake_->stats().busy_answers, 5u);
  EXPECT_EQ(fake_->stats().inference_requests, 5u);

  fake_->set_busy(false);
  EXPECT_EQ(post("/api/generate", R"({"model":"m","prompt":"hi","stream":false})").status, 200);
  fake_->set_busy(true);
  EXPECT_EQ(post("/api/generate", R"({"model":"m","prompt":"hi","stream":false})").raw, expected);

  // A model that is not installed is 404 before busy, as in Ollama.
  fake_->set_models(std::vector<std::string>{"alpha"});
  EXPECT_EQ(post("/api/generate", R"({"model":"m","prompt":"hi","stream":false})").status, 404);
}

TEST_F(FakeUpstreamTest, HealthOkFailSlow) {
  const std::string ok =
      single(200, "OK", "application/json; charset=utf-8", R"({"version":"0.33.0-rc2"})");
  EXPECT_EQ(get("/api/version").raw, ok);
  fake_->set_health(Health::fail);
  EXPECT_EQ(get("/api/version").raw,
            single(500, "Internal Server Error", "application/json; charset=utf-8",
                   R"({"error":"fake health check failure"})"));
  EXPECT_EQ(get("/").status, 200);  // only /api/version is the health check
  EXPECT_EQ(post("/api/generate", R"({"model":"m","prompt":"hi","stream":false})").status, 200);

  fake_->set_health(Health::slow);
  EXPECT_EQ(fake_->health(), Health::slow);
  // A 1 s client timeout gives up first...
  HttpClient c;
  ASSERT_TRUE(c.connect(port_));
  ASSERT_TRUE(c.send(req("GET", "/api/version")));
  const Response timed_out = c.read_response({.timeout_ms = 1000});
  EXPECT_EQ(timed_out.error, "timeout");
  EXPECT_TRUE(timed_out.raw.empty());
  // ...and a patient one gets the normal answer after 1.5 s.
  const auto t0 = std::chrono::steady_clock::now();
  const Response slow = get("/api/version");
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 1400ms);
  EXPECT_EQ(slow.raw, ok);

  fake_->set_health(Health::ok);
  const auto t1 = std::chrono::steady_clock::now();
  EXPECT_EQ(get("/api/version").raw, ok);
  EXPECT_LT(std::chrono::steady_clock::now() - t1, 1000ms);
  EXPECT_EQ(fake_->stats().health_checks, 5u);

  Options o;
  o.health = Health::slow;
  o.health_slow_ms = 50;
  start(o);
  const auto t2 = std::chrono::steady_clock::now();
  EXPECT_EQ(get("/api/version").raw, ok);
  EXPECT_GE(std::chrono::steady_clock::now() - t2, 45ms);
}

TEST_F(FakeUpstreamTest, InstanceCloseModeResetsEveryInferenceAnswer) {
  const std::string body = R"({"model":"m","prompt":"hi"})";  // streams by default
  const std::string single_body = R"({"model":"m","prompt":"hi","stream":false})";
  fake_->set_close(CloseMode::before_head);
  Response r = post("/api/generate", body);
  EXPECT_TRUE(r.raw.empty());
  EXPECT_EQ(r.close, test::CloseKind::reset);
  r = post("/v1/chat/completions", single_body);
  EXPECT_TRUE(r.raw.empty());
  EXPECT_EQ(r.close, test::CloseKind::reset);
  EXPECT_EQ(get("/api/tags").status, 200);  // only inference answers are cut
  EXPECT_EQ(get("/api/version").status, 200);

  fake_->set_close(CloseMode::after_head);
  r = post("/api/generate", body);
  EXPECT_EQ(r.status, 200);
  EXPECT_TRUE(r.chunks.empty());
  EXPECT_EQ(r.raw, r.head);  // the head and nothing else
  EXPECT_EQ(r.close, test::CloseKind::reset);
  r = post("/api/generate", single_body);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.raw, r.head);
  EXPECT_EQ(r.close, test::CloseKind::reset);

  fake_->set_close(CloseMode::mid_body);
  r = post("/api/generate", body);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.chunks.size(), 1u);
  EXPECT_FALSE(r.terminator_seen);
  EXPECT_EQ(r.close, test::CloseKind::reset);
  r = post("/api/chat",
           R"({"model":"m","stream":false,"messages":[{"role":"user","content":"x"}]})");
  EXPECT_EQ(r.status, 200);
  EXPECT_FALSE(r.complete);
  EXPECT_GT(r.raw.size(), r.head.size());
  EXPECT_EQ(r.close, test::CloseKind::reset);

  // The request's own X-Fake-Close wins over the instance's mode.
  r = post("/api/generate", body, {{"X-Fake-Close", "before-head"}});
  EXPECT_TRUE(r.raw.empty());
  fake_->set_close(CloseMode::none);
  EXPECT_TRUE(post("/api/generate", body).ok());
  // Each reset request reached the fake once: a client can count replays.
  EXPECT_EQ(fake_->requests_for("/api/generate"), 6u);
}

TEST_F(FakeUpstreamTest, XFakeCloseHeaderOnAnyAnswer) {
  Response r =
      post("/api/generate", R"({"model":"m","prompt":"hi"})", {{"X-Fake-Close", "after-head"}});
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.raw, r.head);
  EXPECT_EQ(r.close, test::CloseKind::reset);
  r = get("/api/tags", {{"X-Fake-Close", "mid-body"}});
  EXPECT_EQ(r.status, 200);
  EXPECT_GT(r.raw.size(), r.head.size());
  EXPECT_FALSE(r.complete);
  EXPECT_EQ(r.close, test::CloseKind::reset);
  r = get("/fake/blob?size=100000", {{"X-Fake-Close", "before-head"}});
  EXPECT_TRUE(r.raw.empty());
  EXPECT_EQ(r.close, test::CloseKind::reset);
  r = get("/fake/blob?size=100000", {{"X-Fake-Close", "after-head"}});
  EXPECT_EQ(r.raw, r.head);
  EXPECT_EQ(r.close, test::CloseKind::reset);
  r = get("/fake/blob?size=100000", {{"X-Fake-Close", "mid-body"}});
  EXPECT_EQ(r.body.size(), 50000u);
  EXPECT_EQ(r.close, test::CloseKind::reset);
  EXPECT_TRUE(
      post("/api/generate", R"({"model":"m","prompt":"hi"})", {{"X-Fake-Close", "bogus"}}).ok());
}

TEST_F(FakeUpstreamTest, StopAndStartOnTheSamePort) {
  EXPECT_EQ(get("/api/version").status, 200);
  const std::uint16_t port = port_;
  fake_->stop();
  EXPECT_FALSE(fake_->running());
  HttpClient c;
  EXPECT_FALSE(c.connect(port, 500));  // connection refused
  std::string error;
  ASSERT_TRUE(fake_->start(&error)) << error;
  EXPECT_EQ(fake_->port(), port);
  EXPECT_EQ(get("/api/version").status, 200);
  EXPECT_EQ(fake_->requests_for("/api/version"), 2u);  // counters carry on
  EXPECT_EQ(fake_->stats().health_checks, 2u);
}

TEST_F(FakeUpstreamTest, PerPathCountersAndInFlightGauge) {
  EXPECT_EQ(get("/api/tags").status, 200);
  EXPECT_EQ(post("/api/tags", "").status, 405);
  EXPECT_EQ(get("/nope").status, 404);
  EXPECT_EQ(get("/other").status, 404);
  EXPECT_EQ(fake_->requests_for("/api/tags"), 2u);
  EXPECT_EQ(fake_->requests_for("/unknown"), 2u);  // all unknown paths
  EXPECT_EQ(fake_->requests_for("/api/chat"), 0u);

  const auto in_flight = [&] { return fake_->stats().inference_in_flight; };
  HttpClient c;
  ASSERT_TRUE(c.connect(port_));
  ASSERT_TRUE(c.send(req("POST", "/api/generate", R"({"model":"m","prompt":"hi"})",
                         {{"X-Fake-Tokens", "3"}, {"X-Fake-Delay-Ms", "100"}})));
  EXPECT_TRUE(eventually([&] { return in_flight() == 1; }));
  EXPECT_EQ(fake_->requests_for("/api/generate"), 1u);
  const Response r = c.read_response();
  EXPECT_TRUE(r.ok()) << r.error;
  EXPECT_TRUE(eventually([&] { return in_flight() == 0; }));
  // A client that goes away mid-stream ends its answer too.
  ASSERT_TRUE(c.send(req("POST", "/api/generate", R"({"model":"m","prompt":"hi"})",
                         {{"X-Fake-Tokens", "100"}, {"X-Fake-Delay-Ms", "50"}})));
  EXPECT_TRUE(eventually([&] { return in_flight() == 1; }));
  c.abort();
  EXPECT_TRUE(eventually([&] { return in_flight() == 0; }));
  EXPECT_EQ(fake_->stats().inference_requests, 2u);
  fake_->reset_stats();
  EXPECT_EQ(fake_->requests_for("/api/generate"), 0u);
}

TEST(FakeFleetTest, EightInstancesOnEightPortsWithTheirOwnModels) {
  std::vector<std::unique_ptr<FakeUpstream>> fleet;
  std::vector<std::vector<std::string>> sets;
  for (int i = 0; i < 8; ++i) {
    std::vector<std::string> models{"shared:latest", "only" + std::to_string(i) + ":latest"};
    for (int k = 0; k < i; ++k) models.push_back("extra" + std::to_string(k) + ":latest");
    sets.push_back(models);
    Options o;
    o.models = models;
    o.busy = i == 3;
    fleet.push_back(std::make_unique<FakeUpstream>(o));
    std::string error;
    ASSERT_TRUE(fleet.back()->start(&error)) << error;
  }
  for (int i = 0; i < 8; ++i) {
    for (int j = i + 1; j < 8; ++j) EXPECT_NE(fleet[i]->port(), fleet[j]->port());
  }
  std::atomic<int> failures{0};
  std::vector<std::thread> clients;
  for (int i = 0; i < 8; ++i) {
    clients.emplace_back([&, i] {
      const std::uint16_t port = fleet[i]->port();
      for (int round = 0; round < 10; ++round) {
        const Response tags =
            test::roundtrip(port, test::request("GET", "/api/tags", {}, {}, port));
        if (!tags.ok() || names_at(tags.body, "/models", "name") != sets[i]) ++failures;
        const std::string own =
            R"({"model":"only)" + std::to_string(i) + R"(","prompt":"x","stream":false})";
        const Response mine =
            test::roundtrip(port, test::request("POST", "/api/generate", own, {}, port));
        if (mine.status != (i == 3 ? 503 : 200)) ++failures;
        const std::string other =
            R"({"model":"only)" + std::to_string((i + 1) % 8) + R"(","stream":false})";
        const Response theirs =
            test::roundtrip(port, test::request("POST", "/api/generate", other, {}, port));
        if (theirs.status != 404) ++failures;
      }
    });
  }
  for (auto& t : clients) t.join();
  EXPECT_EQ(failures.load(), 0);
  for (int i = 0; i < 8; ++i) {
    EXPECT_EQ(fleet[i]->requests_for("/api/tags"), 10u) << i;
    EXPECT_EQ(fleet[i]->stats().inference_requests, 20u) << i;
    EXPECT_EQ(fleet[i]->stats().busy_answers, i == 3 ? 10u : 0u) << i;
    EXPECT_EQ(fleet[i]->stats().model_not_found_answers, 10u) << i;
  }
  // One instance down: the others keep answering.
  fleet[5]->stop();
  HttpClient c;
  EXPECT_FALSE(c.connect(fleet[5]->port(), 500));
  EXPECT_EQ(
      test::roundtrip(fleet[6]->port(), test::request("GET", "/api/tags", {}, {}, fleet[6]->port()))
          .status,
      200);
}

TEST(FakeFleetTest, ParsesModeNames) {
  Health h = Health::ok;
  EXPECT_TRUE(parse_health("slow", &h));
  EXPECT_EQ(h, Health::slow);
  EXPECT_TRUE(parse_health("fail", &h));
  EXPECT_EQ(h, Health::fail);
  EXPECT_FALSE(parse_health("sick", &h));
  CloseMode m = CloseMode::none;
  EXPECT_TRUE(parse_close_mode("mid-body", &m));
  EXPECT_EQ(m, CloseMode::mid_body);
  EXPECT_TRUE(parse_close_mode("after-head", &m));
  EXPECT_EQ(m, CloseMode::after_head);
  EXPECT_FALSE(parse_close_mode("after_head", &m));
}

// The fake_upstream binary (built beside this test) with the per-instance flags.
class FakeBinary {
 public:
  explicit FakeBinary(const std::vector<std::string>& args) {
    char self[PATH_MAX];
    const ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n <= 0) return;
    std::string path(self, static_cast<std::size_t>(n));
    path = path.substr(0, path.rfind('/')) + "/fake_upstream";
    if (access(path.c_str(), X_OK) != 0) return;
    int out[2];
    if (pipe2(out, O_CLOEXEC) != 0) return;
    pid_ = fork();
    if (pid_ == 0) {
      dup2(out[1], 1);
      std::vector<char*> argv{path.data()};
      std::vector<std::string> copy = args;
      for (auto& a : copy) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(path.c_str(), argv.data());
      _exit(127);
    }
    ::close(out[1]);
    std::string line;
    char ch = 0;
    while (::read(out[0], &ch, 1) == 1 && ch != '\n') line += ch;
    ::close(out[0]);
    const std::size_t colon = line.rfind(':');
    if (line.rfind("listening ", 0) == 0 && colon != std::string::npos) {
      port_ = static_cast<std::uint16_t>(std::stoi(line.substr(colon + 1)));
    }
  }
  ~FakeBinary() {
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      int status = 0;
      waitpid(pid_, &status, 0);
    }
  }
  [[nodiscard]] bool found() const { return pid_ > 0; }
  [[nodiscard]] std::uint16_t port() const { return port_; }
  Response get(std::string_view path) const {
    return test::roundtrip(port_, test::request("GET", path, {}, {}, port_));
  }
  Response post(std::string_view path, std::string_view body) const {
    return test::roundtrip(port_, test::request("POST", path, body, {}, port_));
  }

 private:
  pid_t pid_ = -1;
  std::uint16_t port_ = 0;
};

TEST(FakeFleetTest, BinaryFlags) {
  {
    const FakeBinary fake({"--listen", "127.0.0.1:0", "--models", "a,b:7b", "--resident", "a",
                           "--busy", "--health", "fail"});
    if (!fake.found()) GTEST_SKIP() << "fake_upstream binary not built beside the test";
    ASSERT_NE(fake.port(), 0);
    EXPECT_EQ(names_at(fake.get("/api/tags").body, "/models", "name"), strs({"a:latest", "b:7b"}));
    EXPECT_EQ(names_at(fake.get("/api/ps").body, "/models", "name"), strs({"a:latest"}));
    EXPECT_EQ(fake.post("/api/chat", R"({"model":"a"})").body, busy_body);
    EXPECT_EQ(fake.post("/api/chat", R"({"model":"c"})").status, 404);
    EXPECT_EQ(fake.get("/api/version").status, 500);
  }
  {
    const FakeBinary fake({"--listen", "127.0.0.1:0", "--health", "slow", "--health-slow-ms", "100",
                           "--close", "before-head"});
    ASSERT_NE(fake.port(), 0);
    const auto t0 = std::chrono::steady_clock::now();
    EXPECT_EQ(fake.get("/api/version").status, 200);
    EXPECT_GE(std::chrono::steady_clock::now() - t0, 90ms);
    const Response cut = fake.post("/api/generate", R"({"model":"m","prompt":"hi"})");
    EXPECT_TRUE(cut.raw.empty());
    EXPECT_EQ(cut.close, test::CloseKind::reset);
  }
  {
    const FakeBinary empty({"--listen", "127.0.0.1:0", "--models", ""});
    ASSERT_NE(empty.port(), 0);
    EXPECT_EQ(empty.get("/api/tags").body, R"({"models":[]})");
  }
}

}  // namespace
}  // namespace tokentap::fake
