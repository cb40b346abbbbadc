// Fake upstream over real sockets, Ollama's native API: /, HEAD, /api/version and /api/tags and
// Gin's error bytes, the Host check, /api/generate and /api/chat streams and bodies (thinking,
// tools, load/unload), native errors before and during a stream, and embeddings. The golden
// strings come from wire-format.md, not from the fake's own output.
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

TEST_F(FakeUpstreamTest, RootHeadVersionTagsAndErrorsAreGinBytes) {
  const Response root = get("/");
  ASSERT_TRUE(root.ok()) << root.error;
  EXPECT_EQ(root.raw,
            std::string("HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n") +
                std::string(fixed_date) + "Content-Length: 17\r\n\r\nOllama is running");
  const Response head = test::roundtrip(port_, req("HEAD", "/"), {.head_request = true});
  ASSERT_TRUE(head.ok()) << head.error;
  EXPECT_EQ(head.header("Content-Length"), "17");  // Go sets it for a small write; no body
  EXPECT_EQ(head.raw, head.head);
  const Response version = get("/api/version");
  EXPECT_EQ(version.header("Content-Type"), "application/json; charset=utf-8");
  EXPECT_EQ(json_str(version.body, "/version"), "0.33.0-rc2");
  const Response tags = get("/api/tags");  // > 2 KiB: chunked, one chunk
  ASSERT_TRUE(tags.ok()) << tags.error;
  EXPECT_GT(tags.body.size(), 2048u);
  EXPECT_EQ(tags.chunks, std::vector<std::size_t>{tags.body.size()});
  EXPECT_FALSE(tags.header("Content-Length").has_value());
  EXPECT_TRUE(valid_json(tags.body));
  const Response missing = get("/api/nope");
  EXPECT_EQ(missing.raw, std::string("HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\n") +
                             std::string(fixed_date) +
                             "Content-Length: 18\r\n\r\n404 page not found");
  const Response wrong = get("/api/generate");
  EXPECT_EQ(wrong.status, 405);
  EXPECT_EQ(wrong.header_names(), strs({"Allow", "Content-Type", "Date", "Content-Length"}));
  EXPECT_EQ(wrong.header("Allow"), "POST");
  EXPECT_EQ(wrong.body, "405 method not allowed");
}

TEST_F(FakeUpstreamTest, HostCheckRejectsPublicNamesOnly) {
  const Response bad = get("/", {{"Host", "myproxy.example.com"}});
  EXPECT_EQ(bad.raw, std::string("HTTP/1.1 403 Forbidden\r\n") + std::string(fixed_date) +
                         "Content-Length: 0\r\n\r\n");
  EXPECT_EQ(post("/api/generate", R"({"model":"m"})", {{"Host", "8.8.8.8:11434"}}).status, 403);
  for (const char* ok : {"localhost:11434", "LOCALHOST", "10.1.2.3", "192.168.0.9:80", "[::1]:1",
                         "172.20.0.1", "ollama.internal", "box.local", "0.0.0.0"}) {
    EXPECT_EQ(get("/", {{"Host", ok}}).status, 200) << ok;
  }
}

TEST_F(FakeUpstreamTest, GenerateStreamIsOneLinePerChunk) {
  const Response r = post("/api/generate", R"({"model":"llama3.2","prompt":"Why?"})",
                          {{"X-Fake-Tokens", "3"}, {"X-Fake-Prompt-Tokens", "46"}});
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.head, std::string("HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\n") +
                        std::string(fixed_date) + "Transfer-Encoding: chunked\r\n\r\n");
  bool open = true;
  const auto lines = test::ndjson_lines(r.body, &open);
  ASSERT_FALSE(open);  // every NDJSON line ends in '\n'
  ASSERT_EQ(lines.size(), 4u);
  std::vector<std::string> payloads;
  for (const auto& l : lines) payloads.push_back(l + "\n");
  EXPECT_EQ(r.raw.substr(r.head.size()), framed(payloads));  // one chunk per line, hex sizes
  EXPECT_EQ(keys_of(lines[0]), strs({"model", "created_at", "response", "done"}));
  EXPECT_EQ(json_str(lines[0], "/created_at"), "2026-08-24T14:00:11.519610579Z");
  EXPECT_EQ(keys_of(lines[3]),
            strs({"model", "created_at", "response", "done", "done_reason", "context",
                  "total_duration", "load_duration", "prompt_eval_count", "prompt_eval_duration",
                  "eval_count", "eval_duration"}));
  EXPECT_EQ(json_int(lines[3], "/prompt_eval_count"), 46);
  EXPECT_EQ(json_int(lines[3], "/eval_count"), 3);
  EXPECT_EQ(json_str(lines[3], "/model"), "llama3.2");  // echoed verbatim, no :latest
  const Response raw = post("/api/generate", R"({"model":"m","prompt":"x","raw":true})");
  EXPECT_FALSE(has_key(test::ndjson_lines(raw.body).back(), "/context"));
}

TEST_F(FakeUpstreamTest, NonStreamBodiesFollowTheTwoKibRuleExactly) {
  struct Case {
    const char* path;
    const char* body_fmt;  // %s: the model
    bool newline;          // json.Encoder adds '\n'; gin's c.JSON does not
  };
  const Case cases[] = {
      {"/api/generate", R"({"model":"%s","prompt":"x","stream":false,"raw":true})", false},
      {"/api/chat", R"({"model":"%s","messages":[{}],"stream":false})", false},
      {"/v1/chat/completions", R"({"model":"%s","messages":[{}]})", true},
  };
  for (const Case& c : cases) {
    const auto ask = [&](std::size_t model_len) {
      char body[4096];
      std::snprintf(body, sizeof(body), c.body_fmt, std::string(model_len, 'm').c_str());
      return post(c.path, body, {{"X-Fake-Prompt-Tokens", "9"}});
    };
    const Response probe = ask(1);
    ASSERT_TRUE(probe.ok()) << probe.error;
    ASSERT_LT(probe.body.size(), 2000u);
    EXPECT_EQ(probe.body.back() == '\n', c.newline) << c.path;
    const std::size_t at_limit = 1 + 2048 - probe.body.size();
    const Response small = ask(at_limit);  // exactly 2048 bytes: Content-Length
    ASSERT_EQ(small.body.size(), 2048u) << c.path;
    EXPECT_EQ(small.header("Content-Length"), "2048");
    EXPECT_FALSE(small.chunked);
    const Response big = ask(at_limit + 1);  // 2049 bytes: chunked, one chunk
    ASSERT_EQ(big.body.size(), 2049u) << c.path;
    EXPECT_TRUE(big.chunked);
    EXPECT_FALSE(big.header("Content-Length").has_value());
    EXPECT_EQ(big.chunks, std::vector<std::size_t>{2049});
    EXPECT_TRUE(big.terminator_seen);
    EXPECT_TRUE(valid_json(big.body));
  }
}

TEST_F(FakeUpstreamTest, LoadAndUnloadAnswerOneObjectEvenWhenStreaming) {
  const Response load = post("/api/generate", R"({"model":"m"})");
  EXPECT_EQ(load.body, R"({"model":"m","created_at":"2026-08-24T14:00:11.519610579Z",)"
                       R"("response":"","done":true,"done_reason":"load"})");
  EXPECT_TRUE(load.header("Content-Length").has_value());
  EXPECT_EQ(load.header("Content-Type"), "application/json; charset=utf-8");
  const Response unload = post("/api/chat", R"({"model":"m","messages":[],"keep_alive":0})");
  EXPECT_EQ(json_str(unload.body, "/done_reason"), "unload");
  EXPECT_EQ(json_str(unload.body, "/message/content"), "");
  EXPECT_FALSE(has_key(unload.body, "/eval_count"));
  EXPECT_EQ(fake_->stats().prompt_tokens_sent, 0u);  // no metrics, nothing reported
}

TEST_F(FakeUpstreamTest, ChatStreamWithThinkingAndToolsAndNonStream) {
  const std::vector<Header> h{{"X-Fake-Tokens", "4"},
                              {"X-Fake-Think", "1"},
                              {"X-Fake-Tools", "1"},
                              {"X-Fake-Prompt-Tokens", "208"}};
  const Response r = post("/api/chat", R"({"model":"qwen3:8b","messages":[{"role":"user"}]})", h);
  ASSERT_TRUE(r.ok()) << r.error;
  const auto lines = test::ndjson_lines(r.body);
  ASSERT_EQ(lines.size(), 5u);
  EXPECT_EQ(r.chunks.size(), 5u);
  EXPECT_EQ(keys_of(lines[0], "/message"), strs({"role", "content", "thinking"}));
  EXPECT_EQ(keys_of(lines[2], "/message"), strs({"role", "content"}));
  EXPECT_EQ(keys_of(lines[3], "/message"), strs({"role", "content", "tool_calls"}));
  EXPECT_EQ(json_str(lines[3], "/message/tool_calls/0/function/name"), "get_current_weather");
  EXPECT_EQ(json_str(lines[3], "/message/tool_calls/0/function/arguments/city"), "Paris");
  EXPECT_EQ(keys_of(lines[4]), strs({"model", "created_at", "message", "done", "done_reason",
                                     "total_duration", "load_duration", "prompt_eval_count",
                                     "prompt_eval_duration", "eval_count", "eval_duration"}));
  EXPECT_EQ(json_str(lines[4], "/done_reason"), "stop");  // stays stop with tool calls
  const Response ns = post("/api/chat", R"({"model":"m","messages":[{}],"stream":false})", h);
  EXPECT_EQ(keys_of(ns.body, "/message"), strs({"role", "content", "thinking", "tool_calls"}));
  EXPECT_EQ(json_str(ns.body, "/message/thinking"), "The sky");
  EXPECT_NE(ns.body.back(), '\n');
}

TEST_F(FakeUpstreamTest, NativeErrorsBeforeAndDuringTheStream) {
  const Response before =
      post("/api/generate", R"({"model":"m","prompt":"x"})", {{"X-Fake-Error", "before"}});
  ASSERT_TRUE(before.ok()) << before.error;
  EXPECT_EQ(before.status, 500);
  EXPECT_EQ(before.header("Content-Type"), "application/json");  // no charset
  EXPECT_TRUE(before.chunked);
  EXPECT_EQ(before.chunks.size(), 1u);
  EXPECT_EQ(before.body.substr(0, 41), R"({"error":"model runner has unexpectedly s)");
  EXPECT_NE(before.body.back(), '\n');
  const Response mid = post("/api/chat", R"({"model":"m","messages":[{}]})",
                            {{"X-Fake-Error", "midstream"}, {"X-Fake-Tokens", "4"}});
  ASSERT_TRUE(mid.ok()) << mid.error;
  EXPECT_EQ(mid.status, 200);
  const auto lines = test::ndjson_lines(mid.body);
  ASSERT_EQ(lines.size(), 3u);  // 2 pieces, then only the error key, then the normal terminator
  EXPECT_EQ(lines[2],
            R"({"error":"an error was encountered while running the model: unexpected EOF"})");
  EXPECT_TRUE(mid.terminator_seen);
  const Response ns = post("/api/generate", R"({"model":"m","prompt":"x","stream":false})",
                           {{"X-Fake-Error", "midstream"}});
  EXPECT_EQ(ns.status, 500);
  EXPECT_EQ(ns.header("Content-Type"), "application/json; charset=utf-8");
  EXPECT_TRUE(ns.header("Content-Length").has_value());
  const Response status = post("/api/generate", R"({"model":"llama9","prompt":"x","stream":false})",
                               {{"X-Fake-Status", "404"}});
  EXPECT_EQ(status.status, 404);
  EXPECT_EQ(status.body, R"({"error":"model 'llama9' not found"})");
  EXPECT_EQ(post("/api/generate", "").body, R"({"error":"missing request body"})");
}

TEST_F(FakeUpstreamTest, Embeddings) {
  const Response embed = post("/api/embed", R"({"model":"all-minilm","input":["a","b"]})",
                              {{"X-Fake-Prompt-Tokens", "22"}});
  ASSERT_TRUE(embed.ok()) << embed.error;
  EXPECT_TRUE(embed.chunked);  // far above 2048 bytes
  EXPECT_EQ(keys_of(embed.body),
            strs({"model", "embeddings", "total_duration", "load_duration", "prompt_eval_count"}));
  EXPECT_TRUE(has_key(embed.body, "/embeddings/1/383"));
  EXPECT_EQ(post("/api/embed", R"({"model":"m","input":[]})").body,
            R"({"model":"m","embeddings":[]})");
  const Response legacy = post("/api/embeddings", R"({"model":"m","prompt":"a"})");
  EXPECT_EQ(keys_of(legacy.body), strs({"embedding"}));
  const Response v1 =
      post("/v1/embeddings", R"({"model":"m","input":"a"})", {{"X-Fake-Prompt-Tokens", "13"}});
  EXPECT_EQ(keys_of(v1.body), strs({"object", "data", "model", "usage"}));
  EXPECT_EQ(json_int(v1.body, "/usage/total_tokens"), 13);
  EXPECT_EQ(v1.body.back(), '\n');
  EXPECT_EQ(fake_->stats().prompt_tokens_sent, 22u + 13u);
}

}  // namespace
}  // namespace tokentap::fake
