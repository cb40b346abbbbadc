// Metering through the proxy: request, byte and connection counters; token usage read from an
// Ollama NDJSON stream and an OpenAI SSE stream (include_usage injected, and its chunk stripped
// from what the client sees); usage_missing on a truncated stream; exact token sums over 100k
// requests on every shard.

#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "support/proxy_fixture.h"
#include "support/scripted_upstream.h"

namespace tokentap {
namespace {

using namespace std::chrono_literals;

using test::chunk;
using test::connect_loopback;
using test::dechunk;
using test::listen_loopback;
using test::metric;
using test::metric_sum;
using test::ok_body;
using test::read_ok;
using test::read_to_close;
using test::read_until;
using test::ScriptedUpstream;
using test::send_all;

const std::string sse_prefix =
    "data: {\"id\":\"chatcmpl-318\",\"object\":\"chat.completion.chunk\",\"created\":1787580250,"
    "\"model\":\"llama3.2\",\"system_fingerprint\":\"fp_ollama\",";
const std::string sse_first = sse_prefix +
    "\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"The\"},"
    "\"finish_reason\":null}]}\n\n";
const std::string sse_second =
    sse_prefix +
    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\" sky\"},\"finish_reason\":null}]}\n\n";
const std::string sse_finish =
    sse_prefix + "\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n";
const std::string sse_usage =
    sse_prefix +
    "\"choices\":[],\"usage\":{\"prompt_tokens\":32,\"completion_tokens\":34,"
    "\"total_tokens\":66}}\n\n";
const std::string sse_done = "data: [DONE]\n\n";

void serve_openai_stream(int fd, ScriptedUpstream& self) {
  const std::string req = self.read_request(fd);
  const bool usage = req.find("\"include_usage\":true") != std::string::npos;
  send_all(fd, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
               "Date: Mon, 24 Aug 2026 14:00:11 GMT\r\nTransfer-Encoding: chunked\r\n\r\n");
  send_all(fd, chunk(sse_first));
  send_all(fd, chunk(sse_second));
  send_all(fd, chunk(sse_finish + (usage ? sse_usage : "") + sse_done) + "0\r\n\r\n");
  read_to_close(fd, 500ms);
}

TEST(ProxyScripted, MetricsCountRequestsBytesAndFailures) {
  ScriptedUpstream up(ScriptedUpstream::answer_each(ok_body, 3));
  TT_START_PROXY(proxy, up.port());
  const int c = connect_loopback(proxy.port());
  const std::string req = "GET /api/tags HTTP/1.1\r\nHost: x\r\n\r\n";
  for (int i = 0; i < 3; ++i) {
    send_all(c, req);
    read_ok(c);
  }
  close(c);
  std::this_thread::sleep_for(50ms);
  const std::string m = proxy.scrape();
  EXPECT_EQ(metric(m, "tokentap_requests_total{endpoint=\"other\",model=\"unknown\",status=\"200\","
                      "stream=\"false\"}"), 3) << m;
  EXPECT_EQ(metric(m, "tokentap_request_bytes_total{endpoint=\"other\"}"), 3.0 * req.size());
  EXPECT_EQ(metric(m, "tokentap_response_bytes_total{endpoint=\"other\"}"),
            3.0 * std::strlen(ok_body));
  EXPECT_EQ(metric(m, "tokentap_connections_total"), 1);
  EXPECT_EQ(metric(m, "tokentap_connections_open"), 0);
}

TEST(ProxyScripted, MetricsCountUpstreamConnectErrorsAnd502) {
  std::uint16_t dead_port = 0;
  close(listen_loopback(&dead_port));
  TT_START_PROXY(proxy, dead_port);
  const int c = connect_loopback(proxy.port());
  send_all(c, "POST /api/generate HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}");
  read_to_close(c, 3000ms);
  close(c);
  const std::string m = proxy.scrape();
  EXPECT_EQ(metric(m, "tokentap_upstream_errors_total{kind=\"connect\"}"), 1) << m;
  EXPECT_EQ(metric(m, "tokentap_requests_total{endpoint=\"/api/generate\",model=\"unknown\","
                      "status=\"502\",stream=\"true\"}"), 1) << m;
  EXPECT_EQ(metric(m, "tokentap_active_requests{endpoint=\"/api/generate\",model=\"unknown\"}"), 0);
}

TEST(ProxyScripted, MetersAnOllamaStream) {
  ScriptedUpstream up([](int fd, ScriptedUpstream& self) {
    self.read_request(fd);
    send_all(fd, "HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\n"
                 "Date: Mon, 24 Aug 2026 14:00:11 GMT\r\nTransfer-Encoding: chunked\r\n\r\n");
    const std::string prefix = "{\"model\":\"llama3.2\",\"created_at\":\"2026-08-24T14:00:11.5Z\",";
    send_all(fd, chunk(prefix + "\"response\":\"The\",\"done\":false}\n"));
    std::this_thread::sleep_for(20ms);
    send_all(fd, chunk(prefix + "\"response\":\" sky\",\"done\":false}\n"));
    send_all(fd, chunk(prefix + "\"response\":\"\",\"done\":true,\"done_reason\":\"stop\","
                                "\"context\":[1,2,3],\"total_duration\":557637585,"
                                "\"load_duration\":14213406,\"prompt_eval_count\":46,"
                                "\"prompt_eval_duration\":21418000,\"eval_count\":75,"
                                "\"eval_duration\":519493000}\n") +
                     "0\r\n\r\n");
    read_to_close(fd, 1000ms);
  });
  TT_START_PROXY(proxy, up.port());
  const int c = connect_loopback(proxy.port());
  const std::string body = "{\"prompt\":\"Why is the sky blue?\",\"model\":\"llama3.2\"}";
  send_all(c, "POST /api/generate HTTP/1.1\r\nHost: x\r\nContent-Length: " +
                  std::to_string(body.size()) + "\r\n\r\n" + body);
  const std::string resp =
      read_until(c, [](const std::string& d) { return d.find("0\r\n\r\n") != std::string::npos; });
  EXPECT_NE(resp.find("\"eval_count\":75"), std::string::npos);
  close(c);
  std::this_thread::sleep_for(50ms);
  const std::string m = proxy.scrape();
  const std::string labels = "{endpoint=\"/api/generate\",model=\"llama3.2\"}";
  EXPECT_EQ(metric(m, "tokentap_prompt_tokens_total" + labels), 46) << m;
  EXPECT_EQ(metric(m, "tokentap_completion_tokens_total" + labels), 75);
  EXPECT_EQ(metric(m, "tokentap_requests_total{endpoint=\"/api/generate\",model=\"llama3.2\","
                      "status=\"200\",stream=\"true\"}"), 1);
  EXPECT_EQ(metric(m, "tokentap_time_to_first_token_seconds_count" + labels), 1);
  EXPECT_EQ(metric(m, "tokentap_time_per_output_token_seconds_count" + labels), 1);
  EXPECT_NEAR(metric(m, "tokentap_model_load_seconds_total{model=\"llama3.2\"}"), 0.014213406,
              1e-9);
  EXPECT_NEAR(metric(m, "tokentap_generation_seconds_total{model=\"llama3.2\"}"), 0.519493, 1e-9);
  EXPECT_EQ(metric(m, "tokentap_active_requests" + labels), 0);
}

TEST(ProxyScripted, TruncatedStreamCountsUsageMissing) {
  ScriptedUpstream up([](int fd, ScriptedUpstream& self) {
    self.read_request(fd);
    send_all(fd, "HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\n"
                 "Transfer-Encoding: chunked\r\n\r\n" +
                     chunk("{\"model\":\"m1\",\"response\":\"The\",\"done\":false}\n"));
    std::this_thread::sleep_for(30ms);
  });
  TT_START_PROXY(proxy, up.port());
  const int c = connect_loopback(proxy.port());
  const std::string body = "{\"model\":\"m1\",\"prompt\":\"x\"}";
  send_all(c, "POST /api/chat HTTP/1.1\r\nHost: x\r\nContent-Length: " +
                  std::to_string(body.size()) + "\r\n\r\n" + body);
  read_to_close(c, 2000ms);
  close(c);
  std::this_thread::sleep_for(50ms);
  const std::string m = proxy.scrape();
  EXPECT_EQ(metric(m, "tokentap_usage_missing_total{endpoint=\"/api/chat\"}"), 1) << m;
  // The upstream closed cleanly inside a chunked body: a response shorter than its framing.
  EXPECT_EQ(metric(m, "tokentap_upstream_errors_total{kind=\"malformed\"}"), 1);
  EXPECT_EQ(metric(m, "tokentap_upstream_errors_total{kind=\"reset\"}"), 0);
}

TEST(ProxyScripted, InjectsIncludeUsageAndStripsItFromTheStream) {
  ScriptedUpstream up(serve_openai_stream);
  TT_START_PROXY(proxy, up.port());
  const int c = connect_loopback(proxy.port());
  const std::string body =
      "{\"model\":\"llama3.2\",\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],"
      "\"stream\":true}";
  send_all(c, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body);
  const std::string resp = read_until(
      c, [](const std::string& d) { return d.find("\r\n0\r\n\r\n") != std::string::npos; });
  close(c);
  EXPECT_EQ(dechunk(resp), sse_first + sse_second + sse_finish + sse_done) << resp;
  EXPECT_EQ(resp.rfind("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n", 0), 0u);
  // The upstream got the same body with include_usage added, and a matching Content-Length.
  const std::string injected =
      "{\"stream_options\":{\"include_usage\":true},\"model\":\"llama3.2\",\"messages\":"
      "[{\"role\":\"user\",\"content\":\"Hi\"}],\"stream\":true}";
  const auto reqs = up.requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_NE(reqs[0].find("Content-Length: " + std::to_string(injected.size()) + "\r\n"),
            std::string::npos) << reqs[0];
  EXPECT_EQ(reqs[0].substr(reqs[0].find("\r\n\r\n") + 4), injected);
  std::this_thread::sleep_for(50ms);
  const std::string m = proxy.scrape();
  const std::string labels = "{endpoint=\"/v1/chat/completions\",model=\"llama3.2\"}";
  EXPECT_EQ(metric(m, "tokentap_prompt_tokens_total" + labels), 32) << m;
  EXPECT_EQ(metric(m, "tokentap_completion_tokens_total" + labels), 34);
  EXPECT_EQ(metric(m, "tokentap_usage_missing_total{endpoint=\"/v1/chat/completions\"}"), -1);
}

TEST(ProxyScripted, ClientAskedForUsageGetsItUntouched) {
  ScriptedUpstream up(serve_openai_stream);
  TT_START_PROXY(proxy, up.port());
  const int c = connect_loopback(proxy.port());
  const std::string body = "{\"model\":\"llama3.2\",\"messages\":[],\"stream\":true,"
                           "\"stream_options\":{\"include_usage\":true}}";
  send_all(c, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: " +
                  std::to_string(body.size()) + "\r\n\r\n" + body);
  const std::string resp = read_until(
      c, [](const std::string& d) { return d.find("\r\n0\r\n\r\n") != std::string::npos; });
  close(c);
  EXPECT_EQ(dechunk(resp), sse_first + sse_second + sse_finish + sse_usage + sse_done);
  const auto reqs = up.requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].substr(reqs[0].find("\r\n\r\n") + 4), body);
}

TEST(ProxyScripted, TokenSumsAreExactOver100kRequestsOnAllShards) {
  constexpr int connections = 8;
  constexpr int per_connection = 12'500;
  std::atomic<std::uint64_t> prompt_sent{0}, completion_sent{0};
  ScriptedUpstream up([&](int fd, ScriptedUpstream&) {
    std::string in;
    char buf[65536];
    for (;;) {
      std::size_t end;
      while ((end = in.find("}")) == std::string::npos) {
        const ssize_t n = recv(fd, buf, sizeof(buf), 0);
        if (n <= 0) return;
        in.append(buf, static_cast<std::size_t>(n));
      }
      const std::size_t at = in.rfind("\"n\":", end);
      const std::uint64_t n = std::stoull(in.substr(at + 4, end - at - 4));
      in.erase(0, end + 1);
      const std::uint64_t p = n % 97 + 1, c = n % 89 + 1;
      prompt_sent += p;
      completion_sent += c;
      const std::string body = "{\"model\":\"m" + std::to_string(n % 3) +
                               "\",\"response\":\"x\",\"done\":true,\"prompt_eval_count\":" +
                               std::to_string(p) + ",\"eval_count\":" + std::to_string(c) + "}";
      send_all(fd, "HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=utf-8\r\n"
                   "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body);
    }
  });
  TT_START_PROXY(proxy, up.port());
  std::vector<std::thread> clients;
  std::atomic<int> ok{0};
  for (int t = 0; t < connections; ++t) {
    clients.emplace_back([&, t] {
      const int c = connect_loopback(proxy.port());
      std::string in;
      char buf[65536];
      for (int i = 0; i < per_connection; ++i) {
        const std::uint64_t n = static_cast<std::uint64_t>(t) * per_connection + i;
        const std::string body = "{\"model\":\"m" + std::to_string(n % 3) +
                                 "\",\"stream\":false,\"n\":" + std::to_string(n) + "}";
        send_all(c, "POST /api/generate HTTP/1.1\r\nHost: x\r\nContent-Length: " +
                        std::to_string(body.size()) + "\r\n\r\n" + body);
        std::size_t end;
        while ((end = in.find("}")) == std::string::npos) {
          const ssize_t got = recv(c, buf, sizeof(buf), 0);
          if (got <= 0) {
            close(c);
            return;
          }
          in.append(buf, static_cast<std::size_t>(got));
        }
        in.erase(0, end + 1);
        ++ok;
      }
      close(c);
    });
  }
  for (auto& t : clients) t.join();
  ASSERT_EQ(ok.load(), connections * per_connection);
  std::this_thread::sleep_for(100ms);
  const std::string m = proxy.scrape();
  EXPECT_EQ(metric_sum(m, "tokentap_requests_total", "endpoint=\"/api/generate\""),
            connections * per_connection);
  EXPECT_EQ(metric_sum(m, "tokentap_prompt_tokens_total", ""),
            static_cast<double>(prompt_sent.load()));
  EXPECT_EQ(metric_sum(m, "tokentap_completion_tokens_total", ""),
            static_cast<double>(completion_sent.load()));
  EXPECT_GT(metric_sum(m, "tokentap_prompt_tokens_total", "model=\"m2\""), 0);
}

}  // namespace
}  // namespace tokentap
