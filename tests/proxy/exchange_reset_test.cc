// Exchange reset: a request refused by tokentap (413, 431, 400, 408) after a metered inference on
// the same keep-alive connection is counted under its own labels, never the previous request's
// model or stream flag (issue 15's reproduction: the 413 was counted as `stale-model-x`).
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>

#include "support/proxy_fixture.h"
#include "support/scripted_upstream.h"

namespace tokentap {
namespace {

using namespace std::chrono_literals;
using test::connect_loopback;
using test::metric_sum;
using test::read_to_close;
using test::read_until;
using test::ScriptedUpstream;
using test::send_all;

constexpr const char* chat_answer =
    "HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: 156\r\n"
    "\r\n{\"model\":\"stale-model-x\",\"created_at\":\"2026-08-24T14:00:11Z\",\"message\":"
    "{\"role\":\"assistant\",\"content\":\"hi\"},\"done\":true,\"prompt_eval_count\":7,"
    "\"eval_count\":2}";

struct Refusal {
  const char* name;
  std::string request;  // sent on the connection after the metered chat
  const char* status;
};

// One metered chat, then `r` on the same connection; returns the scrape after both ended.
std::string chat_then(const Refusal& r) {
  ScriptedUpstream up(ScriptedUpstream::answer_each(chat_answer));
  test::TestProxy proxy(up.port(), 1, {"--head-timeout", "300"});
  if (!proxy.started()) return {};
  const int c = connect_loopback(proxy.port());
  const std::string body =
      "{\"model\":\"stale-model-x\",\"stream\":false,\"messages\":[{\"role\":\"user\","
      "\"content\":\"hi\"}]}";
  send_all(c, "POST /api/chat HTTP/1.1\r\nHost: x\r\nContent-Length: " +
                  std::to_string(body.size()) + "\r\n\r\n" + body);
  const std::string first = read_until(
      c, [](const std::string& d) { return d.find("\"eval_count\":2}") != std::string::npos; });
  EXPECT_EQ(first.substr(0, 12), "HTTP/1.1 200") << r.name;
  send_all(c, r.request);
  bool closed = false;
  const std::string second = read_to_close(c, 3000ms, &closed);
  EXPECT_EQ(second.substr(0, 12), std::string("HTTP/1.1 ") + r.status) << r.name << second;
  EXPECT_TRUE(closed) << r.name;
  close(c);
  std::this_thread::sleep_for(50ms);
  return proxy.scrape();
}

TEST(ExchangeReset, RefusalsAfterAMeteredRequestCarryTheirOwnLabels) {
  const Refusal cases[] = {
      {"413", "POST /api/chat HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999999\r\n\r\n", "413"},
      {"431", "POST /api/chat HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(20000, 'a') +
                  "\r\n\r\n", "431"},
      {"400", "POST /api/chat HTTP/1.1\r\nHost: x\r\nBad Header: 1\r\n\r\n", "400"},
      // Half a head: --head-timeout (300 ms) answers it.
      {"408", "POST /api/chat HTTP/1.1\r\nHost: x\r\n", "408"},
  };
  for (const Refusal& r : cases) {
    const std::string m = chat_then(r);
    if (m.empty()) GTEST_SKIP() << "proxy did not start (io_uring unavailable?)";
    const std::string refused = std::string("status=\"") + r.status + "\"";
    // The chat is the stale model's only request, and its only duration sample.
    EXPECT_EQ(metric_sum(m, "tokentap_requests_total", "stale-model-x"), 1) << r.name << "\n" << m;
    EXPECT_EQ(metric_sum(m, "tokentap_request_duration_seconds_count", "stale-model-x"), 1)
        << r.name;
    EXPECT_EQ(metric_sum(m, "tokentap_prompt_tokens_total", "stale-model-x"), 7) << r.name;
    // The refusal: counted once, under model="unknown".
    EXPECT_EQ(metric_sum(m, "tokentap_requests_total", refused), 1) << r.name << "\n" << m;
    EXPECT_EQ(metric_sum(m, "tokentap_requests_total", "model=\"unknown\"," + refused), 1)
        << r.name << "\n" << m;
    EXPECT_EQ(metric_sum(m, "tokentap_active_requests"), 0) << r.name;
  }
}

}  // namespace
}  // namespace tokentap
