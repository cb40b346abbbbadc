// The proxy in front of the fake Ollama: for every endpoint family of the wire-format spec,
// stream and not, a request through tokentap gets exactly the bytes the upstream gives a direct
// request, and /metrics moves by exactly what the upstream reported.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "fake_upstream.h"
#include "support/http_client.h"
#include "support/proxy_fixture.h"
#include "tokentap/base/route.h"
#include "tokentap/upstream/upstream_pool.h"

namespace tokentap {
namespace {

using test::Header;
using test::metric;
using test::metric_sum;

struct Scenario {
  const char* name;
  const char* method;
  const char* path;
  std::string body;
  std::vector<Header> headers;
  const char* model;      // label expected on /metrics ("" when not an inference)
  const char* stream;     // effective stream label
  int status;
  bool reframed = false;  // include_usage injected: same body, chunk boundaries may differ
  bool usage_missing = false;
};

const std::string chat_messages = R"("messages":[{"role":"user","content":"Why is the sky blue?"}])";

std::vector<Scenario> scenarios() {
  return {
      {"generate_stream", "POST", "/api/generate",
       R"({"model":"llama3.2","prompt":"Why is the sky blue?"})", {}, "llama3.2", "true", 200},
      {"generate_nonstream", "POST", "/api/generate",
       R"({"model":"llama3.2","prompt":"Why is the sky blue?","stream":false})", {}, "llama3.2",
       "false", 200},
      {"chat_stream", "POST", "/api/chat", R"({"model":"qwen3:8b",)" + chat_messages + "}", {},
       "qwen3:8b", "true", 200},
      {"chat_nonstream", "POST", "/api/chat",
       R"({"model":"qwen3:8b","stream":false,)" + chat_messages + "}", {}, "qwen3:8b", "false",
       200},
      {"chat_thinking", "POST", "/api/chat", R"({"model":"qwen3:8b",)" + chat_messages + "}",
       {{"X-Fake-Think", "1"}}, "qwen3:8b", "true", 200},
      {"chat_tools", "POST", "/api/chat",
       R"({"model":"qwen3:8b","tools":[{"type":"function"}],)" + chat_messages + "}",
       {{"X-Fake-Tools", "1"}}, "qwen3:8b", "true", 200},
      {"generate_load", "POST", "/api/generate", R"({"model":"llama3.2"})", {}, "llama3.2",
       "true", 200},
      {"generate_unload", "POST", "/api/generate", R"({"model":"llama3.2","keep_alive":0})", {},
       "llama3.2", "true", 200},
      {"embed", "POST", "/api/embed", R"({"model":"all-minilm","input":["a","b"]})", {},
       "all-minilm", "false", 200},
      {"embeddings_legacy", "POST", "/api/embeddings", R"({"model":"all-minilm","prompt":"a"})",
       {}, "all-minilm", "false", 200},
      {"openai_chat_stream_no_usage", "POST", "/v1/chat/completions",
       R"({"model":"llama3.2","stream":true,)" + chat_messages + "}", {}, "llama3.2", "true", 200,
       /*reframed=*/true},
      {"openai_chat_stream_usage", "POST", "/v1/chat/completions",
       R"({"model":"llama3.2","stream":true,"stream_options":{"include_usage":true},)" +
           chat_messages + "}",
       {}, "llama3.2", "true", 200},
      {"openai_chat_nonstream", "POST", "/v1/chat/completions",
       R"({"model":"llama3.2",)" + chat_messages + "}", {}, "llama3.2", "false", 200},
      {"openai_completions_stream_no_usage", "POST", "/v1/completions",
       R"({"model":"llama3.2","prompt":"Say hi","stream":true})", {}, "llama3.2", "true", 200,
       /*reframed=*/true},
      {"openai_completions_stream_usage", "POST", "/v1/completions",
       R"({"model":"llama3.2","prompt":"Say hi","stream":true,"stream_options":{"include_usage":true}})",
       {}, "llama3.2", "true", 200},
      {"openai_embeddings", "POST", "/v1/embeddings", R"({"model":"all-minilm","input":"hi"})",
       {}, "all-minilm", "false", 200},
      {"responses_stream", "POST", "/v1/responses",
       R"({"model":"llama3.2","input":"hi","stream":true})", {}, "llama3.2", "true", 200},
      {"responses_nonstream", "POST", "/v1/responses", R"({"model":"llama3.2","input":"hi"})", {},
       "llama3.2", "false", 200},
      {"anthropic_stream", "POST", "/v1/messages",
       R"({"model":"qwen3:8b","max_tokens":64,"stream":true,)" + chat_messages + "}", {},
       "qwen3:8b", "true", 200},
      {"anthropic_nonstream", "POST", "/v1/messages",
       R"({"model":"qwen3:8b","max_tokens":64,)" + chat_messages + "}", {}, "qwen3:8b", "false",
       200},
      {"error_before_output", "POST", "/api/chat", R"({"model":"qwen3:8b",)" + chat_messages + "}",
       {{"X-Fake-Error", "before"}}, "qwen3:8b", "true", 500},
      {"error_midstream", "POST", "/api/chat", R"({"model":"qwen3:8b",)" + chat_messages + "}",
       {{"X-Fake-Error", "midstream"}}, "qwen3:8b", "true", 200, false, /*usage_missing=*/true},
      {"openai_error_midstream", "POST", "/v1/chat/completions",
       R"({"model":"llama3.2","stream":true,"stream_options":{"include_usage":true},)" +
           chat_messages + "}",
       {{"X-Fake-Error", "midstream"}}, "llama3.2", "true", 200, false, true},
      {"root", "GET", "/", "", {}, "", "false", 200},
      {"head_root", "HEAD", "/", "", {}, "", "false", 200},
      {"tags", "GET", "/api/tags", "", {}, "", "false", 200},
      {"version", "GET", "/api/version", "", {}, "", "false", 200},
      {"not_found", "GET", "/api/nope", "", {}, "", "false", 404},
  };
}

class ProxyFake : public ::testing::Test {
 protected:
  void SetUp() override {
    fake::Options options;
    options.threads = 1;
    upstream_ = std::make_unique<fake::FakeUpstream>(options);
    std::string error;
    ASSERT_TRUE(upstream_->start(&error)) << error;
  }
  std::unique_ptr<fake::FakeUpstream> upstream_;
};

TEST_F(ProxyFake, EveryEndpointFamilyIsByteExactAndMeteredExactly) {
  TT_START_PROXY(proxy, upstream_->port());
  for (const Scenario& s : scenarios()) {
    SCOPED_TRACE(s.name);
    const std::uint16_t up = upstream_->port();
    test::ReadOptions read;
    read.head_request = std::string_view(s.method) == "HEAD";
    const auto direct =
        test::roundtrip(up, test::request(s.method, s.path, s.body, s.headers, up), read);
    const std::string before = proxy.scrape();
    const fake::Stats stats_before = upstream_->stats();
    // Through the proxy, the client names the proxy as Host, as a real client would.
    const auto proxied = test::roundtrip(
        proxy.port(), test::request(s.method, s.path, s.body, s.headers, proxy.port()), read);
    const fake::Stats stats_after = upstream_->stats();
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    const std::string after = proxy.scrape();
    ASSERT_TRUE(direct.error.empty()) << direct.error;
    ASSERT_TRUE(proxied.error.empty()) << proxied.error;
    EXPECT_EQ(direct.status, s.status);
    if (s.reframed) {
      EXPECT_EQ(proxied.head, direct.head);
      EXPECT_EQ(proxied.body, direct.body);
    } else {
      EXPECT_EQ(proxied.raw, direct.raw);
    }
    const std::string endpoint = is_inference(route_of(s.path)) ? s.path : "other";
    const std::string model = *s.model != '\0' ? s.model : "unknown";
    const std::string req = "tokentap_requests_total{endpoint=\"" + endpoint + "\",model=\"" +
                            model + "\",status=\"" + std::to_string(s.status) + "\",stream=\"" +
                            s.stream + "\"}";
    EXPECT_EQ(std::max(0.0, metric(after, req)) - std::max(0.0, metric(before, req)), 1) << req;
    const double prompt = metric_sum(after, "tokentap_prompt_tokens_total") -
                          metric_sum(before, "tokentap_prompt_tokens_total");
    const double completion = metric_sum(after, "tokentap_completion_tokens_total") -
                              metric_sum(before, "tokentap_completion_tokens_total");
    EXPECT_EQ(prompt, static_cast<double>(stats_after.prompt_tokens_sent -
                                          stats_before.prompt_tokens_sent));
    EXPECT_EQ(completion, static_cast<double>(stats_after.completion_tokens_sent -
                                              stats_before.completion_tokens_sent));
    const double missing = metric_sum(after, "tokentap_usage_missing_total") -
                           metric_sum(before, "tokentap_usage_missing_total");
    EXPECT_EQ(missing, s.usage_missing ? 1 : 0);
  }
  const std::string final_scrape = proxy.scrape();
  EXPECT_EQ(metric_sum(final_scrape, "tokentap_active_requests"), 0);
  // TOKENTAP_PRINT_SCRAPE=1 shows what a scrape looks like after one request of each kind.
  if (std::getenv("TOKENTAP_PRINT_SCRAPE") != nullptr) {
    std::printf("%s\n", final_scrape.substr(final_scrape.find("\r\n\r\n") + 4).c_str());
  }
}

TEST_F(ProxyFake, HostIsTheUpstreamsUnlessPreserved) {
  // A loopback Ollama answers 403 to a foreign Host (wire-format §1.6).
  const std::vector<Header> foreign = {{"Host", "proxy.example.com"}};
  const auto direct = test::roundtrip(upstream_->port(), test::request("GET", "/api/version", "",
                                                                       foreign));
  EXPECT_EQ(direct.status, 403);
  {
    TT_START_PROXY(proxy, upstream_->port());
    const auto via = test::roundtrip(proxy.port(), test::request("GET", "/api/version", "", foreign));
    EXPECT_EQ(via.status, 200) << via.raw;
  }
  TT_START_PROXY(preserving, upstream_->port(), 1, {"--preserve-host"});
  const auto kept = test::roundtrip(preserving.port(),
                                    test::request("GET", "/api/version", "", foreign));
  EXPECT_EQ(kept.status, 403) << "--preserve-host forwards the client's Host";
}

TEST_F(ProxyFake, StreamLinesArriveAsTheyAreGenerated) {
  TT_START_PROXY(proxy, upstream_->port());
  const std::vector<Header> paced = {{"X-Fake-Delay-Ms", "40"}, {"X-Fake-Tokens", "5"}};
  const auto r = test::roundtrip(
      proxy.port(), test::request("POST", "/api/generate",
                                  R"({"model":"llama3.2","prompt":"hi"})", paced));
  ASSERT_TRUE(r.error.empty()) << r.error;
  ASSERT_GE(r.chunk_arrivals.size(), 6u);  // 5 tokens + the done line
  // Each line is forwarded when it arrives: consecutive lines are ~40 ms apart at the client,
  // never bunched together by buffering in the proxy (bunched lines would be < 1 ms apart;
  // a loaded machine may shorten one gap by delivering the previous line late).
  for (std::size_t i = 1; i < r.chunk_arrivals.size(); ++i) {
    const auto gap = r.chunk_arrivals[i] - r.chunk_arrivals[i - 1];
    EXPECT_GT(gap, std::chrono::milliseconds(10)) << "line " << i;
  }
  EXPECT_GE(r.chunk_arrivals.back() - r.chunk_arrivals.front(), std::chrono::milliseconds(190));
}

TEST_F(ProxyFake, ConnectionCloseIsHonouredEndToEnd) {
  TT_START_PROXY(proxy, upstream_->port());
  const std::vector<Header> close_hdr = {{"Connection", "close"}};
  const std::string req = test::request("GET", "/api/version", "", close_hdr, upstream_->port());
  test::HttpClient direct;
  ASSERT_TRUE(direct.connect(upstream_->port()));
  ASSERT_TRUE(direct.send(req));
  const auto want = direct.read_response();
  test::HttpClient via;
  ASSERT_TRUE(via.connect(proxy.port()));
  ASSERT_TRUE(via.send(req));
  const auto got = via.read_response();
  EXPECT_EQ(got.raw, want.raw);
  EXPECT_EQ(got.header("Connection").value_or(""), "close");
  EXPECT_NE(via.wait_close(2000), test::CloseKind::none) << "the proxy closes after the response";
}

// Sends `req` on `n` fresh client connections at once (one thread each); how many got a 200.
int parallel_200s(std::uint16_t port, const std::string& req, int n) {
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < n; ++t) {
    threads.emplace_back([&] {
      test::HttpClient c;
      if (!c.connect(port) || !c.send(req)) return;
      const auto r = c.read_response();
      if (r.ok() && r.status == 200) ++ok;
    });
  }
  for (auto& t : threads) t.join();
  return ok.load();
}

TEST_F(ProxyFake, UpstreamRestartWithPooledConnectionsLosesNoLaterRequest) {
  // Eight keep-alive exchanges at once fill the proxy's upstream pool; then the upstream
  // restarts (every socket closed, a new server on the same port). Requests after that must all
  // succeed on fresh upstream connections: the pooled ones were retired when their EOF arrived.
  TT_START_PROXY(proxy, upstream_->port(), 1);
  const std::uint16_t port = upstream_->port();
  const std::string req = test::request(
      "POST", "/api/generate", R"({"model":"llama3.2","prompt":"hi","stream":false})", {},
      proxy.port());
  constexpr int parallel = 8;
  constexpr int restarts = 5;
  int ok = 0;
  auto burst = [&] { ok += parallel_200s(proxy.port(), req, parallel); };
  for (int round = 0; round < restarts; ++round) {
    burst();
    const std::uint64_t accepted_before = upstream_->stats().connections_accepted;
    EXPECT_GE(accepted_before, 1u);
    upstream_->stop();
    fake::Options options;
    options.port = port;
    upstream_ = std::make_unique<fake::FakeUpstream>(options);
    std::string error;
    ASSERT_TRUE(upstream_->start(&error)) << error;
    // The FINs of the old server reach the proxy's armed idle receives within microseconds.
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    burst();
    EXPECT_GE(upstream_->stats().connections_accepted, 1u) << "fresh connections after restart";
  }
  EXPECT_EQ(ok, 2 * parallel * restarts);
  const std::string m = proxy.scrape();
  EXPECT_EQ(test::metric_sum(m, "tokentap_upstream_errors_total"), 0);
  EXPECT_EQ(test::metric_sum(m, "tokentap_requests_total", "status=\"502\""), 0);
}

TEST_F(ProxyFake, UpstreamPoolKeepsWhatTheLoadNeedsAndShrinksAfterIt) {
  // 160 requests at once on one shard need 160 upstream connections. A second wave of 160 must
  // reuse every one of them (no connect + close churn above a fixed idle cap), and once the
  // load is gone the pool closes its surplus within seconds, down to upstream_idle_keep.
  TT_START_PROXY(proxy, upstream_->port(), 1);
  constexpr int parallel = 160;
  static_assert(parallel > 2 * upstream_idle_keep);
  const std::vector<Header> slow = {{"X-Fake-Delay-Ms", "300"}};
  const std::string req = test::request(
      "POST", "/api/generate", R"({"model":"llama3.2","prompt":"hi","stream":false})", slow,
      proxy.port());
  int ok = 0;
  auto wave = [&] { ok += parallel_200s(proxy.port(), req, parallel); };
  wave();
  const std::uint64_t after_first = upstream_->stats().connections_accepted;
  EXPECT_EQ(after_first, static_cast<std::uint64_t>(parallel));
  wave();
  EXPECT_EQ(upstream_->stats().connections_accepted, after_first) << "the second wave reused";
  EXPECT_EQ(ok, 2 * parallel);
  // Idle: each second half of the surplus goes (160 -> 16 in about ten purges).
  const std::uint64_t want_closed = parallel - upstream_idle_keep;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (upstream_->stats().connections_closed_by_peer < want_closed &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(upstream_->stats().connections_closed_by_peer, want_closed);
  // The connections kept still serve, the closed ones are never handed out.
  ok = 0;
  wave();
  EXPECT_EQ(ok, parallel);
  EXPECT_EQ(test::metric_sum(proxy.scrape(), "tokentap_upstream_errors_total"), 0);
}

TEST_F(ProxyFake, MetricsOnProxyAnswersScrapesOnTheProxyPortOnlyWhenAsked) {
  const std::string scrape = test::request("GET", "/metrics", "", {});
  {
    // Default: /metrics is the upstream's path like any other (the fake has none: 404).
    TT_START_PROXY(proxy, upstream_->port(), 1);
    const auto r = test::roundtrip(proxy.port(), scrape);
    EXPECT_EQ(r.status, 404) << r.raw;
  }
  TT_START_PROXY(proxy, upstream_->port(), 2,
                 {"--metrics-on-proxy", "--metrics-token", "s3cret"});
  EXPECT_EQ(test::roundtrip(proxy.port(), scrape).status, 401);
  const std::vector<Header> auth = {{"Authorization", "Bearer s3cret"}};
  // Keep-alive: a scrape, then an inference, then a scrape on the same client connection.
  test::HttpClient c;
  ASSERT_TRUE(c.connect(proxy.port()));
  ASSERT_TRUE(c.send(test::request("GET", "/metrics?x=1", "", auth)));
  auto first = c.read_response();
  ASSERT_TRUE(first.ok()) << first.error;
  EXPECT_EQ(first.status, 200);
  EXPECT_NE(first.body.find("tokentap_build_info"), std::string::npos);
  ASSERT_TRUE(c.send(test::request(
      "POST", "/api/generate", R"({"model":"llama3.2","prompt":"hi","stream":false})")));
  const auto gen = c.read_response();
  ASSERT_TRUE(gen.ok()) << gen.error;
  EXPECT_EQ(gen.status, 200);
  ASSERT_TRUE(c.send(test::request("GET", "/metrics", "", auth)));
  const auto second = c.read_response();
  ASSERT_TRUE(second.ok()) << second.error;
  EXPECT_EQ(test::metric(second.body, "tokentap_completion_tokens_total{endpoint=\"/api/generate\","
                                      "model=\"llama3.2\"}"),
            5);
  // The scrapes never reached the upstream.
  EXPECT_EQ(upstream_->stats().requests, 2u);  // the 404 above and the generate
}

TEST_F(ProxyFake, UnmeteredRequestWithABodyAfterAnInferenceOnOneConnection) {
  // The Ollama CLI sends /api/show before /api/chat on one connection. A body of an unmetered
  // request after a metered one must be forwarded, not fed to the previous request's probe.
  TT_START_PROXY(proxy, upstream_->port(), 1);
  test::HttpClient c;
  ASSERT_TRUE(c.connect(proxy.port()));
  const std::string blob(100 * 1024, 'b');  // large enough for the splice path too
  const std::string digest = "sha256:" + std::string(64, 'a');
  for (int round = 0; round < 3; ++round) {
    ASSERT_TRUE(c.send(test::request(
        "POST", "/api/generate", R"({"model":"llama3.2","prompt":"hi","stream":false})")));
    EXPECT_EQ(c.read_response().status, 200);
    ASSERT_TRUE(c.send(test::request("POST", "/api/show", R"({"model":"llama3.2"})")));
    const auto show = c.read_response();
    ASSERT_TRUE(show.ok()) << show.error;
    EXPECT_EQ(show.status, 404);  // the fake has no /api/show; what matters is the answer
    ASSERT_TRUE(c.send(test::request("POST", "/api/blobs/" + digest, blob)));
    const auto upload = c.read_response();
    ASSERT_TRUE(upload.ok()) << upload.error;
    EXPECT_EQ(upload.status, 201);
    EXPECT_EQ(upload.header("X-Fake-Bytes").value_or(""), std::to_string(blob.size()));
  }
}

// The part of a /fake/echo answer that describes the body (its size and FNV-1a), which must
// be the same through the proxy; the headers part differs (Host is rewritten).
std::string echo_digest(const std::string& echo) {
  const auto at = echo.find("\"body_bytes\"");
  return at == std::string::npos ? "missing" : echo.substr(at);
}

TEST_F(ProxyFake, TinyBufferRingAndSubmissionQueueAreBackpressureNotErrors) {
  // 4 receive buffers and an 8-entry SQ for 16 concurrent clients: every recv runs into
  // ENOBUFS and the SQ fills within a loop turn. Everything must still arrive intact.
  TT_START_PROXY(proxy, upstream_->port(), 1, {"--buffers", "4", "--sq-entries", "8"});
  const std::vector<Header> long_stream = {{"X-Fake-Tokens", "400"}};
  const std::string stream_req =
      test::request("POST", "/api/generate", R"({"model":"llama3.2","prompt":"hi"})", long_stream);
  const auto want = test::roundtrip(upstream_->port(), stream_req);
  ASSERT_TRUE(want.error.empty());
  std::string big(300 * 1024, 'x');
  for (std::size_t i = 0; i < big.size(); i += 97) big[i] = static_cast<char>('a' + i % 26);
  // A chunked upload (never spliced) of 300 KiB, echoed back as its size and FNV-1a.
  std::string chunked = "POST /fake/echo HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n";
  for (std::size_t at = 0; at < big.size(); at += 10000) {
    const std::size_t n = std::min<std::size_t>(10000, big.size() - at);
    char size[16];
    std::snprintf(size, sizeof(size), "%zx\r\n", n);
    chunked += size + big.substr(at, n) + "\r\n";
  }
  chunked += "0\r\n\r\n";
  const auto echo_want = test::roundtrip(upstream_->port(), chunked);
  ASSERT_TRUE(echo_want.error.empty());
  std::atomic<int> ok{0};
  std::vector<std::thread> clients;
  for (int t = 0; t < 16; ++t) {
    clients.emplace_back([&] {
      for (int i = 0; i < 3; ++i) {
        const auto s = test::roundtrip(proxy.port(), stream_req);
        const auto e = test::roundtrip(proxy.port(), chunked);
        if (s.raw == want.raw && echo_digest(e.body) == echo_digest(echo_want.body)) {
          ++ok;
        } else if (i == 0) {
          std::printf("stream: %s %zu/%zu | echo: %s %d %zu/%zu\n", s.error.c_str(), s.raw.size(),
                      want.raw.size(), e.error.c_str(), e.status, e.body.size(),
                      echo_want.body.size());
        }
      }
    });
  }
  for (auto& c : clients) c.join();
  EXPECT_EQ(ok.load(), 16 * 3);
}

}  // namespace
}  // namespace tokentap
