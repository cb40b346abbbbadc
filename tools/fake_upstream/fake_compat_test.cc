// Fake upstream over real sockets, the OpenAI- and Anthropic-compatible APIs: chat completions
// (finish, usage and [DONE] in the last chunk), completions and their mid-stream errors, the
// Responses API's one event per chunk, Anthropic messages' usage estimate then real usage; and
// that deterministic answers are byte-identical.
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

#include "fake_test_fixture.h"
#include "support/http_client.h"
#include "support/stream_parts.h"

namespace tokentap::fake {
namespace {

using test::Header;
using test::HttpClient;
using test::ReadOptions;
using test::Response;
using namespace std::chrono_literals;

TEST_F(FakeUpstreamTest, OpenAIChatStreamPutsFinishUsageAndDoneInTheLastChunk) {
  const std::vector<Header> h{{"X-Fake-Tokens", "3"}, {"X-Fake-Prompt-Tokens", "32"}};
  const Response r =
      post("/v1/chat/completions",
           R"({"model":"m","stream":true,"stream_options":{"include_usage":true}})", h);
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.header("Content-Type"), "text/event-stream");
  EXPECT_FALSE(r.header("Cache-Control").has_value());
  ASSERT_EQ(r.chunks.size(), 4u);  // 3 content chunks + one holding finish, usage and [DONE]
  const auto events = test::sse_events(r.body);
  ASSERT_EQ(events.size(), 6u);
  EXPECT_EQ(json_str(events[0].data, "/choices/0/delta/role"), "assistant");
  EXPECT_FALSE(has_key(events[1].data, "/choices/0/delta/role"));
  for (int i = 0; i < 4; ++i) EXPECT_FALSE(has_key(events[i].data, "/usage")) << i;
  EXPECT_EQ(json_str(events[3].data, "/choices/0/finish_reason"), "stop");
  EXPECT_EQ(keys_of(events[3].data, "/choices/0/delta"), strs({}));
  EXPECT_EQ(json_int(events[4].data, "/usage/prompt_tokens"), 32);
  EXPECT_EQ(json_int(events[4].data, "/usage/completion_tokens"), 3);
  EXPECT_EQ(events[5].data, "[DONE]");
  const auto last = test::sse_events(r.body.substr(r.body.size() - r.chunks.back()));
  EXPECT_EQ(last.size(), 3u);
  const Response plain = post("/v1/chat/completions", R"({"model":"m","stream":true})", h);
  const auto plain_events = test::sse_events(plain.body);
  EXPECT_EQ(plain_events.size(), 5u);  // no usage chunk without include_usage
  const Response ns = post("/v1/chat/completions", R"({"model":"m"})", h);  // default: no stream
  EXPECT_EQ(keys_of(ns.body),
            strs({"id", "object", "created", "model", "system_fingerprint", "choices", "usage"}));
  EXPECT_EQ(ns.body.back(), '\n');
  EXPECT_EQ(fake_->stats().completion_tokens_sent, 3u + 3u);  // the stream without usage: none
}

TEST_F(FakeUpstreamTest, OpenAICompletionsAndMidstreamErrors) {
  const Response r = post("/v1/completions",
                          R"({"model":"m","stream":true,"stream_options":{"include_usage":true}})",
                          {{"X-Fake-Tokens", "2"}, {"X-Fake-Prompt-Tokens", "5"}});
  ASSERT_TRUE(r.ok()) << r.error;
  const auto events = test::sse_events(r.body);
  ASSERT_EQ(events.size(), 5u);  // 2 pieces, done chunk, usage chunk, [DONE]
  EXPECT_EQ(r.chunks.size(), 3u);
  EXPECT_EQ(keys_of(events[0].data),
            strs({"id", "object", "created", "choices", "model", "system_fingerprint", "usage"}));
  for (int i = 0; i < 3; ++i) EXPECT_EQ(json_int(events[i].data, "/usage/total_tokens"), 0);
  EXPECT_EQ(json_str(events[2].data, "/choices/0/finish_reason"), "stop");
  EXPECT_EQ(json_int(events[3].data, "/usage/total_tokens"), 7);
  const Response mid = post("/v1/chat/completions", R"({"model":"m","stream":true})",
                            {{"X-Fake-Error", "midstream"}, {"X-Fake-Tokens", "4"}});
  const auto mid_events = test::sse_events(mid.body);
  ASSERT_EQ(mid_events.size(), 3u);
  EXPECT_EQ(json_str(mid_events[2].data, "/model"), "");
  EXPECT_EQ(json_str(mid_events[2].data, "/choices/0/delta/content"), "");
  EXPECT_TRUE(mid.terminator_seen);
  const Response before = post("/v1/chat/completions", R"({"model":"m","stream":true})",
                               {{"X-Fake-Error", "before"}, {"X-Fake-Status", "503"}});
  EXPECT_EQ(before.status, 503);
  EXPECT_TRUE(before.chunked);
  EXPECT_EQ(json_str(before.body, "/error/type"), "api_error");
  EXPECT_EQ(before.body.back(), '\n');
}

TEST_F(FakeUpstreamTest, ResponsesStreamOneEventPerChunk) {
  const Response r = post("/v1/responses", R"({"model":"m","stream":true})",
                          {{"X-Fake-Tokens", "3"}, {"X-Fake-Prompt-Tokens", "11"}});
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.header_names(),
            strs({"Cache-Control", "Connection", "Content-Type", "Date", "Transfer-Encoding"}));
  const auto events = test::sse_events(r.body);
  ASSERT_EQ(events.size(), r.chunks.size());
  std::vector<std::string> names;
  for (const auto& e : events) names.push_back(e.event);
  EXPECT_EQ(names, strs({"response.created", "response.in_progress", "response.output_item.added",
                         "response.content_part.added", "response.output_text.delta",
                         "response.output_text.delta", "response.output_text.delta",
                         "response.output_text.done", "response.content_part.done",
                         "response.output_item.done", "response.completed"}));
  for (std::size_t i = 0; i < events.size(); ++i) {
    EXPECT_EQ(json_int(events[i].data, "/sequence_number"), static_cast<std::int64_t>(i));
    const auto keys = keys_of(events[i].data);
    EXPECT_TRUE(std::is_sorted(keys.begin(), keys.end())) << events[i].data;
  }
  EXPECT_EQ(json_int(events.back().data, "/response/usage/input_tokens"), 11);
  EXPECT_EQ(json_int(events.back().data, "/response/usage/output_tokens"), 3);
  EXPECT_EQ(r.body.find("[DONE]"), std::string::npos);
  const Response ns = post("/v1/responses", R"({"model":"m"})");
  EXPECT_EQ(json_str(ns.body, "/output/0/content/0/text"), "The sky is blue because");
  EXPECT_EQ(ns.body.back(), '\n');
}

TEST_F(FakeUpstreamTest, AnthropicMessagesEstimateThenRealUsage) {
  const std::string body = R"({"model":"m","max_tokens":9,"stream":true,"messages":[{}]})";
  const Response r =
      post("/v1/messages", body, {{"X-Fake-Tokens", "3"}, {"X-Fake-Prompt-Tokens", "196"}});
  ASSERT_TRUE(r.ok()) << r.error;
  const auto events = test::sse_events(r.body);
  ASSERT_EQ(events.size(), r.chunks.size());  // one event per chunk
  ASSERT_EQ(events.size(), 8u);
  EXPECT_EQ(events.front().event, "message_start");
  EXPECT_EQ(json_int(events[0].data, "/message/usage/input_tokens"),
            static_cast<std::int64_t>(body.size() / 4));  // the len/4 estimate
  EXPECT_EQ(events[6].event, "message_delta");
  EXPECT_EQ(json_int(events[6].data, "/usage/input_tokens"), 196);
  EXPECT_EQ(json_int(events[6].data, "/usage/output_tokens"), 3);
  EXPECT_EQ(events[7].data, R"({"type":"message_stop"})");
  EXPECT_EQ(r.header("Connection"), "keep-alive");
  const Response mid = post("/v1/messages", body, {{"X-Fake-Error", "midstream"}});
  const auto mid_events = test::sse_events(mid.body);
  EXPECT_EQ(mid_events.back().event, "content_block_delta");  // just stops, no error event
  EXPECT_TRUE(mid.terminator_seen);
  const Response before = post("/v1/messages", body, {{"X-Fake-Error", "before"}});
  EXPECT_EQ(before.status, 500);
  EXPECT_EQ(before.header("Cache-Control"), "no-cache");  // set before the failure, so kept
  EXPECT_EQ(json_str(before.body, "/error/type"), "api_error");
  EXPECT_EQ(json_str(before.body, "/request_id").substr(0, 4), "req_");
  const Response ns = post("/v1/messages", R"({"model":"m","max_tokens":9,"messages":[{}]})",
                           {{"X-Fake-Tools", "1"}});
  EXPECT_EQ(json_str(ns.body, "/stop_reason"), "tool_use");
  EXPECT_EQ(json_str(ns.body, "/content/1/input/unit"), "celsius");
}

TEST_F(FakeUpstreamTest, DeterministicAnswersAreByteIdentical) {
  for (const char* path : {"/api/generate", "/api/chat", "/v1/chat/completions", "/v1/completions",
                           "/v1/responses", "/v1/messages"}) {
    const std::string body = R"({"model":"m","prompt":"p","messages":[{}],"stream":true})";
    const Response a = post(path, body, {{"X-Fake-Think", "1"}});
    const Response b = post(path, body, {{"X-Fake-Think", "1"}});
    ASSERT_TRUE(a.ok()) << path << a.error;
    EXPECT_EQ(a.raw, b.raw) << path;
  }
  start(Options{.deterministic = false});
  const std::string body = R"({"model":"m","prompt":"p"})";
  const Response a = post("/api/generate", body);
  const Response b = post("/api/generate", body);
  EXPECT_NE(json_str(test::ndjson_lines(a.body)[0], "/created_at"),
            json_str(test::ndjson_lines(b.body)[0], "/created_at"));
  EXPECT_EQ(a.header("Date")->size(), 29u);
}

}  // namespace
}  // namespace tokentap::fake
