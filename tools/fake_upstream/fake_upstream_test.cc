// Fake upstream: pure parts (request head, chunked decoding, request JSON, Go framing, stream
// scripts) and real-socket tests of every endpoint family through tests/support/http_client.
// The golden strings here come from wire-format.md, not from the fake's own output.
#include "fake_upstream.h"

#include <gtest/gtest.h>
#include <simdjson.h>
#include <sys/resource.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "plan.h"
#include "request_head.h"
#include "request_json.h"
#include "support/http_client.h"
#include "support/stream_parts.h"
#include "wire.h"

namespace tokentap::fake {
namespace {

using test::Header;
using test::HttpClient;
using test::ReadOptions;
using test::Response;
using namespace std::chrono_literals;

constexpr std::string_view fixed_date = "Date: Mon, 24 Aug 2026 14:00:11 GMT\r\n";

// ---------------------------------------------------------------------------------------------
// JSON helpers (simdjson DOM: keeps key order, so key-order assertions are possible).

std::vector<std::string> keys_of(std::string_view json, std::string_view pointer = "") {
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (parser.parse(json.data(), json.size()).get(doc) != simdjson::SUCCESS) return {"<invalid>"};
  simdjson::dom::object obj;
  if (doc.at_pointer(pointer).get_object().get(obj) != simdjson::SUCCESS) return {"<not object>"};
  std::vector<std::string> keys;
  for (auto field : obj) keys.emplace_back(field.key);
  return keys;
}

bool valid_json(std::string_view json) {
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  return parser.parse(json.data(), json.size()).get(doc) == simdjson::SUCCESS;
}

std::int64_t json_int(std::string_view json, std::string_view pointer) {
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  std::int64_t v = -1;
  if (parser.parse(json.data(), json.size()).get(doc) != simdjson::SUCCESS) return -2;
  if (doc.at_pointer(pointer).get_int64().get(v) != simdjson::SUCCESS) return -3;
  return v;
}

std::string json_str(std::string_view json, std::string_view pointer) {
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  std::string_view v;
  if (parser.parse(json.data(), json.size()).get(doc) != simdjson::SUCCESS) return "<invalid>";
  if (doc.at_pointer(pointer).get_string().get(v) != simdjson::SUCCESS) return "<missing>";
  return std::string(v);
}

bool has_key(std::string_view json, std::string_view pointer) {
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (parser.parse(json.data(), json.size()).get(doc) != simdjson::SUCCESS) return false;
  return doc.at_pointer(pointer).error() == simdjson::SUCCESS;
}

std::vector<std::string> strs(std::initializer_list<const char*> list) {
  return {list.begin(), list.end()};
}

// The chunked framing Go writes for these payloads: lowercase hex sizes, then "0\r\n\r\n".
std::string framed(const std::vector<std::string>& payloads) {
  std::string out;
  char hex[32];
  for (const auto& p : payloads) {
    std::snprintf(hex, sizeof(hex), "%zx\r\n", p.size());
    out += hex + p + "\r\n";
  }
  return out + "0\r\n\r\n";
}

// Raises the soft descriptor limit to the hard one; returns the soft limit now in force.
int raise_fd_limit() {
  rlimit lim{};
  getrlimit(RLIMIT_NOFILE, &lim);
  if (lim.rlim_cur < lim.rlim_max) {
    lim.rlim_cur = lim.rlim_max;
    setrlimit(RLIMIT_NOFILE, &lim);
    getrlimit(RLIMIT_NOFILE, &lim);
  }
  return lim.rlim_cur > 1'000'000 ? 1'000'000 : static_cast<int>(lim.rlim_cur);
}

std::uint64_t monotonic_now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ull +
         static_cast<std::uint64_t>(ts.tv_nsec);
}

// ---------------------------------------------------------------------------------------------
// Pure parts.

TEST(RequestHead, ParsesRequestLineHeadersAndControls) {
  const std::string head =
      "POST /api/chat?x=1 HTTP/1.1\r\nHost: 127.0.0.1:9\r\ncontent-length: 12\r\n"
      "Connection: keep-alive, Close\r\nExpect: 100-continue\r\nX-Fake-Tokens: 7\r\n"
      "x-fake-error: midstream\r\nX-Fake-Abort-After: 3\r\nX-Fake-Think: 1\r\n\r\n";
  ASSERT_EQ(find_head_end(head), head.size());
  ASSERT_EQ(find_head_end(head.substr(0, head.size() - 1)), 0u);
  RequestHead r;
  ASSERT_EQ(parse_request_head(head, &r), HeadStatus::ok);
  EXPECT_EQ(r.method, "POST");
  EXPECT_EQ(r.target, "/api/chat?x=1");
  EXPECT_EQ(r.path, "/api/chat");
  EXPECT_EQ(r.query, "x=1");
  EXPECT_EQ(r.host, "127.0.0.1:9");
  EXPECT_EQ(r.content_length, 12);
  EXPECT_TRUE(r.connection_close);
  EXPECT_TRUE(r.expect_continue);
  EXPECT_EQ(r.controls.tokens, 7u);
  EXPECT_EQ(r.controls.error, FakeError::midstream);
  EXPECT_EQ(r.controls.abort_after, 3);
  EXPECT_TRUE(r.controls.think);
  EXPECT_FALSE(r.controls.tools);
}

TEST(RequestHead, RejectsWhatGoRejects) {
  RequestHead r;
  EXPECT_EQ(parse_request_head("GET / HTTP/1.1\r\n\r\n", &r), HeadStatus::missing_host);
  EXPECT_EQ(parse_request_head("GET / HTTP/1.0\r\n\r\n", &r), HeadStatus::ok);
  EXPECT_TRUE(r.http10());
  EXPECT_EQ(parse_request_head("GET / HTTP/2.0\r\nHost: a\r\n\r\n", &r), HeadStatus::bad_version);
  EXPECT_EQ(parse_request_head("GET /\r\nHost: a\r\n\r\n", &r), HeadStatus::bad_request);
  EXPECT_EQ(parse_request_head("GET / HTTP/1.1\r\nHost a\r\n\r\n", &r), HeadStatus::bad_request);
  EXPECT_EQ(parse_request_head("GET / HTTP/1.1\r\nHost: a\r\n fold\r\n\r\n", &r),
            HeadStatus::bad_request);
  EXPECT_EQ(parse_request_head("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n"
                               "Content-Length: 2\r\n\r\n",
                               &r),
            HeadStatus::bad_request);
  EXPECT_EQ(parse_request_head("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", &r),
            HeadStatus::unsupported_te);
  ASSERT_EQ(parse_request_head("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
                               "Transfer-Encoding: chunked\r\n\r\n",
                               &r),
            HeadStatus::ok);
  EXPECT_TRUE(r.chunked);
  EXPECT_EQ(r.content_length, -1);  // chunked wins
}

// Feeds `wire` to a ChunkedDecoder `step` bytes at a time; returns the body or "<error>".
std::string decode_chunked(std::string_view wire, std::size_t step, std::size_t* left) {
  ChunkedDecoder d;
  std::string body;
  std::string pending;
  for (std::size_t at = 0; at < wire.size(); at += step) {
    pending += wire.substr(at, step);
    for (;;) {
      const auto s = d.step(pending);
      if (s.error) return "<error>";
      body += s.data;
      pending.erase(0, s.consumed);
      if (s.done) {
        *left = pending.size() + (wire.size() - std::min(wire.size(), at + step));
        return body;
      }
      if (s.consumed == 0) break;
    }
  }
  return "<incomplete>";
}

TEST(ChunkedDecoder, DecodesAtEveryReadSize) {
  const std::string wire = "5\r\nhello\r\nA;ext=1\r\n0123456789\r\n0\r\nTrailer: x\r\n\r\nNEXT";
  for (std::size_t step = 1; step <= wire.size(); ++step) {
    std::size_t left = 0;
    EXPECT_EQ(decode_chunked(wire, step, &left), "hello0123456789") << "step " << step;
    EXPECT_EQ(left, 4u) << "step " << step;  // the pipelined "NEXT" is not consumed
  }
  std::size_t left = 0;
  EXPECT_EQ(decode_chunked("zz\r\n", 1, &left), "<error>");
  EXPECT_EQ(decode_chunked("3\r\nabcX\r\n", 1, &left), "<error>");
  EXPECT_EQ(decode_chunked("1111111111111111\r\n", 1, &left), "<error>");  // too large
  EXPECT_EQ(decode_chunked("3\r\nab", 1, &left), "<incomplete>");
}

TEST(RequestJson, ExtractsTheFieldsThatShapeTheAnswer) {
  RequestFields f;
  ASSERT_TRUE(scan_request_json(
      R"({"options":{"a":[1,{"b":"}"}]},"model":"llama3.2","stream":false,)"
      R"("stream_options":{"x":null,"include_usage":true},"prompt":"","raw":true,)"
      R"("keep_alive":"0s","tools":[{}],"messages":[1,[2],{"c":3}],"input":["a","b"]})",
      &f));
  EXPECT_EQ(f.model, "llama3.2");
  EXPECT_EQ(f.stream, 0);
  EXPECT_TRUE(f.include_usage);
  EXPECT_TRUE(f.prompt_empty);
  EXPECT_TRUE(f.raw);
  EXPECT_TRUE(f.keep_alive_zero);
  EXPECT_TRUE(f.has_tools);
  EXPECT_EQ(f.messages, 3);
  EXPECT_EQ(f.inputs, 2);
  ASSERT_TRUE(
      scan_request_json(R"( {"prompt":"hi","keep_alive":0.0,"messages":[],"tools":[]} )", &f));
  EXPECT_FALSE(f.has_model);
  EXPECT_EQ(f.stream, -1);
  EXPECT_FALSE(f.prompt_empty);
  EXPECT_TRUE(f.keep_alive_zero);
  EXPECT_EQ(f.messages, 0);
  EXPECT_FALSE(f.has_tools);
  ASSERT_TRUE(scan_request_json(R"({"keep_alive":"5m","input":""})", &f));
  EXPECT_FALSE(f.keep_alive_zero);
  EXPECT_EQ(f.inputs, 0);
  for (const char* bad : {"", "[]", "{", R"({"a":})", R"({"a":1,})", R"({"a":"\x"})",
                          R"({"stream":"yes"})", R"({"a":01})", R"({} {})", "{\"a\":\"\x01\"}"}) {
    EXPECT_FALSE(scan_request_json(bad, &f)) << bad;
  }
  std::string deep(200, '[');
  EXPECT_FALSE(scan_request_json(R"({"a":)" + deep, &f));  // bounded nesting, no crash
}

TEST(Wire, TwoKibRuleAndHeaderOrder) {
  const ReplyMeta keep{};
  EXPECT_EQ(single_write_framing(keep, 0), Framing::content_length);
  EXPECT_EQ(single_write_framing(keep, 2048), Framing::content_length);
  EXPECT_EQ(single_write_framing(keep, 2049), Framing::chunked);
  EXPECT_EQ(single_write_framing({.http10 = true}, 2049), Framing::close_delimited);
  EXPECT_EQ(single_write_framing({.head_method = true}, 17), Framing::content_length);
  EXPECT_EQ(single_write_framing({.head_method = true}, 0), Framing::head_only);
  EXPECT_EQ(single_write_framing({.head_method = true}, 2049), Framing::head_only);

  ByteBuf out;
  HandlerHeaders h;
  h.stream_headers = true;
  h.content_type = "text/event-stream";
  write_head(out, {.close = true}, 200, h, Framing::chunked, 0, "D");
  EXPECT_EQ(out.view(),  // Go drops the handler's Connection and writes close after Date
            "HTTP/1.1 200 OK\r\nCache-Control: no-cache\r\nContent-Type: text/event-stream\r\n"
            "Date: D\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n");
  out.clear();
  write_head(out, {}, 499, HandlerHeaders{}, Framing::content_length, 12, "D");
  EXPECT_EQ(out.view(), "HTTP/1.1 499 status code 499\r\nDate: D\r\nContent-Length: 12\r\n\r\n");
  out.clear();
  write_chunk(out, std::string(0x3c8, 'x'));
  EXPECT_EQ(out.view().substr(0, 5), "3c8\r\n");
}

std::vector<Ev> events_of(const Plan& plan) {
  Script script;
  script.build(plan);
  Script::Cursor cursor;
  Script::Event e{};
  std::vector<Ev> evs;
  while (script.next(&cursor, &e)) evs.push_back(e.ev);
  return evs;
}

TEST(Script, MidstreamErrorCutsWhereOllamaStops) {
  Plan p;
  p.endpoint = Endpoint::v1_messages;
  p.tokens = 4;
  p.think_n = 2;
  EXPECT_EQ(events_of(p).size(), 1u + 4 + 4 + 2);  // start, 2 blocks × (start,2,stop), delta, stop
  p.error = FakeError::midstream;
  p.error_at = 2;  // after the thinking deltas: no content_block_stop, no message_delta
  EXPECT_EQ(events_of(p), (std::vector<Ev>{Ev::an_message_start, Ev::an_think_start,
                                           Ev::an_think_delta, Ev::an_think_delta}));
  p.endpoint = Endpoint::generate;
  EXPECT_EQ(events_of(p), (std::vector<Ev>{Ev::ol_piece, Ev::ol_piece, Ev::ol_error}));
  p.endpoint = Endpoint::v1_responses;
  p.error = FakeError::none;
  p.tool = true;  // text deltas, then the function call; no text "done" events
  const auto evs = events_of(p);
  EXPECT_EQ(std::count(evs.begin(), evs.end(), Ev::rs_text_done), 0);
  EXPECT_EQ(evs.back(), Ev::rs_completed);
}

// ---------------------------------------------------------------------------------------------
// Real sockets.

class FakeUpstreamTest : public ::testing::Test {
 protected:
  void SetUp() override { start(Options{}); }
  void start(Options options) {
    fake_.reset();
    fake_ = std::make_unique<FakeUpstream>(std::move(options));
    std::string error;
    ASSERT_TRUE(fake_->start(&error)) << error;
    port_ = fake_->port();
  }
  std::string req(std::string_view method, std::string_view path, std::string_view body = {},
                  std::vector<Header> headers = {}) const {
    return test::request(method, path, body, headers, port_);
  }
  Response post(std::string_view path, std::string_view body, std::vector<Header> headers = {}) {
    return test::roundtrip(port_, req("POST", path, body, std::move(headers)));
  }
  Response get(std::string_view path, std::vector<Header> headers = {}) {
    return test::roundtrip(port_, req("GET", path, {}, std::move(headers)));
  }

  std::unique_ptr<FakeUpstream> fake_;
  std::uint16_t port_ = 0;
};

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

TEST_F(FakeUpstreamTest, KeepAlivePipeliningAndExpectContinue) {
  HttpClient c;
  ASSERT_TRUE(c.connect(port_));
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(c.send(req("GET", "/api/version")));
    EXPECT_EQ(c.read_response().status, 200);
  }
  // Three requests in one write, a stream among them: answers come back in order.
  const std::string batch = req("POST", "/api/generate", R"({"model":"a","prompt":"x"})") +
                            req("GET", "/") + req("POST", "/api/chat", R"({"model":"b"})");
  ASSERT_TRUE(c.send(batch));
  const Response first = c.read_response();
  EXPECT_EQ(test::ndjson_lines(first.body).size(), 6u);
  EXPECT_EQ(c.read_response().body, "Ollama is running");
  EXPECT_EQ(json_str(c.read_response().body, "/done_reason"), "load");
  EXPECT_TRUE(c.buffered().empty());
  // Expect: 100-continue: the interim answer comes before the body is sent.
  const std::string body = R"({"model":"m","prompt":"x","stream":false})";
  ASSERT_TRUE(
      c.send(req("POST", "/api/generate", {},
                 {{"Content-Length", std::to_string(body.size())}, {"Expect", "100-continue"}})));
  const Response interim = c.read_response({.skip_interim = false});
  EXPECT_EQ(interim.raw, "HTTP/1.1 100 Continue\r\n\r\n");
  ASSERT_TRUE(c.send(body));
  const Response final_answer = c.read_response();
  EXPECT_EQ(final_answer.status, 200);
  EXPECT_TRUE(final_answer.interim.empty());
  EXPECT_EQ(fake_->stats().connections_accepted, 1u);
  EXPECT_EQ(fake_->stats().requests, 7u);
}

TEST_F(FakeUpstreamTest, ChunkedRequestBodiesAndMalformedRequests) {
  const std::string body = R"({"model":"m","prompt":"x","stream":false})";
  std::string raw = req("POST", "/api/generate", {}, {{"Transfer-Encoding", "chunked"}});
  char size_line[16];
  std::snprintf(size_line, sizeof(size_line), "%zx;ext\r\n", body.size() - 5);
  raw += "5\r\n" + body.substr(0, 5) + "\r\n" + size_line + body.substr(5) + "\r\n0\r\n\r\n";
  const Response r = test::roundtrip(port_, raw);
  EXPECT_EQ(r.status, 200) << r.body;
  HttpClient c;
  ASSERT_TRUE(c.connect(port_));
  ASSERT_TRUE(c.send("GARBAGE\r\n\r\n"));
  const Response bad = c.read_response();
  EXPECT_EQ(bad.raw,
            "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n"
            "Connection: close\r\n\r\n400 Bad Request");
  EXPECT_EQ(bad.close, test::CloseKind::eof);
}

TEST_F(FakeUpstreamTest, Http10AndConnectionClose) {
  HttpClient c;
  ASSERT_TRUE(c.connect(port_));
  const std::string body = R"({"model":"m","prompt":"x"})";
  ASSERT_TRUE(c.send("POST /api/generate HTTP/1.0\r\nContent-Length: " +
                     std::to_string(body.size()) + "\r\n\r\n" + body));
  const Response stream = c.read_response();  // close-delimited, no chunking
  ASSERT_TRUE(stream.ok()) << stream.error;
  EXPECT_EQ(stream.head.substr(0, 17), "HTTP/1.0 200 OK\r\n");
  EXPECT_EQ(stream.header_names(), strs({"Content-Type", "Date"}));
  EXPECT_EQ(stream.close, test::CloseKind::eof);
  EXPECT_EQ(test::ndjson_lines(stream.body).size(), 6u);
  const Response small = test::roundtrip(port_, "GET / HTTP/1.0\r\n\r\n");
  EXPECT_EQ(small.header("Content-Length"), "17");
  HttpClient k;
  ASSERT_TRUE(k.connect(port_));
  ASSERT_TRUE(k.send(
      req("POST", "/v1/messages", R"({"model":"m","stream":true})", {{"Connection", "close"}})));
  const Response closing = k.read_response();
  ASSERT_TRUE(closing.ok()) << closing.error;
  EXPECT_EQ(closing.header_names(),
            strs({"Cache-Control", "Content-Type", "Date", "Connection", "Transfer-Encoding"}));
  EXPECT_EQ(closing.header("Connection"), "close");
  EXPECT_EQ(k.wait_close(), test::CloseKind::eof);
}

// A client that half-closes right after its request (FIN in the same segment burst) still gets
// a finished answer, then EOF; a stream is cancelled as Go cancels the request context.
TEST_F(FakeUpstreamTest, HalfCloseAnswersThenClosesAndCancelsStreams) {
  HttpClient c;
  ASSERT_TRUE(c.connect(port_));
  ASSERT_TRUE(c.send(req("GET", "/")));
  c.shutdown_write();
  const Response r = c.read_response();
  EXPECT_EQ(r.body, "Ollama is running");
  EXPECT_EQ(c.wait_close(), test::CloseKind::eof);
  HttpClient s;
  ASSERT_TRUE(s.connect(port_));
  ASSERT_TRUE(s.send(
      req("POST", "/api/generate", R"({"model":"m","prompt":"x"})", {{"X-Fake-Delay-Ms", "300"}})));
  s.shutdown_write();
  std::string data;
  EXPECT_EQ(s.wait_close(1000, &data), test::CloseKind::eof);
  EXPECT_TRUE(data.empty());
  EXPECT_EQ(fake_->stats().connections_closed_by_peer, 2u);
}

TEST_F(FakeUpstreamTest, AbortAfterResetsWithoutTerminator) {
  const std::string body = R"({"model":"m","prompt":"x"})";
  const Response r =
      test::roundtrip(port_, req("POST", "/api/generate", body, {{"X-Fake-Abort-After", "2"}}));
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.chunks.size(), 2u);
  EXPECT_FALSE(r.terminator_seen);
  EXPECT_EQ(r.close, test::CloseKind::reset);
  const Response none =
      test::roundtrip(port_, req("POST", "/api/generate", body, {{"X-Fake-Abort-After", "0"}}));
  EXPECT_EQ(none.status, 0);
  EXPECT_TRUE(none.raw.empty());
  EXPECT_EQ(none.close, test::CloseKind::reset);
  const Response blob = test::roundtrip(
      port_, req("GET", "/fake/blob?size=100000", {}, {{"X-Fake-Abort-After", "1000"}}));
  EXPECT_EQ(blob.body.size(), 1000u);  // a truncated Content-Length body
  EXPECT_EQ(blob.close, test::CloseKind::reset);
  HttpClient c;
  ASSERT_TRUE(c.connect(port_));
  ASSERT_TRUE(c.send(req("GET", "/", {}, {{"X-Fake-Close-After-Response", "1"}})));
  const Response closed = c.read_response();
  EXPECT_TRUE(closed.ok());
  EXPECT_FALSE(closed.header("Connection").has_value());  // a silent close
  EXPECT_EQ(c.wait_close(), test::CloseKind::eof);
}

TEST_F(FakeUpstreamTest, DelaysEveryChunkWithoutBlockingOthers) {
  const auto t0 = std::chrono::steady_clock::now();
  const Response r = post("/v1/chat/completions", R"({"model":"m","stream":true})",
                          {{"X-Fake-Tokens", "3"}, {"X-Fake-Delay-Ms", "40"}});
  const auto took = std::chrono::steady_clock::now() - t0;
  ASSERT_TRUE(r.ok()) << r.error;
  ASSERT_EQ(r.chunk_arrivals.size(), 4u);
  EXPECT_GE(r.time_to_first_body_byte, 38ms);
  // Each chunk is held back by its own delay: no two arrive together. A loaded machine can
  // deliver one chunk late and the next on time, so single gaps are bounded loosely; the
  // total below is the exact lower bound.
  for (std::size_t i = 1; i < r.chunk_arrivals.size(); ++i) {
    EXPECT_GE(r.chunk_arrivals[i] - r.chunk_arrivals[i - 1], 10ms) << i;
  }
  EXPECT_GE(r.chunk_arrivals.back() - r.chunk_arrivals.front(), 115ms);
  EXPECT_GE(took, 155ms);
  EXPECT_LT(took, 2s);
  // 2000 delayed streams at once on one worker: all finish in about one stream's time. Each
  // needs two descriptors in this process (client and server side).
  const int streams = std::min(2000, (raise_fd_limit() - 64) / 2);
  ASSERT_GE(streams, 400) << "RLIMIT_NOFILE too low for this test";
  std::vector<HttpClient> clients(streams);
  const std::string ask = req("POST", "/api/generate", R"({"model":"m","prompt":"x"})",
                              {{"X-Fake-Tokens", "2"}, {"X-Fake-Delay-Ms", "100"}});
  const auto t1 = std::chrono::steady_clock::now();
  for (auto& c : clients) ASSERT_TRUE(c.connect(port_) && c.send(ask));
  int complete = 0;
  for (auto& c : clients) complete += c.read_response({.timeout_ms = 10000}).ok() ? 1 : 0;
  EXPECT_EQ(complete, streams);
  EXPECT_LT(std::chrono::steady_clock::now() - t1, 20s);  // serialized would take ~320 s
}

TEST_F(FakeUpstreamTest, BlobUploadAndDownload64MiB) {
  constexpr std::size_t size = 64u << 20;
  std::string payload;
  test::blob_pattern(12345, size, &payload);
  HttpClient c;
  ASSERT_TRUE(c.connect(port_));
  ASSERT_TRUE(
      c.send(req("POST", "/api/blobs/sha256:abc", {}, {{"Content-Length", std::to_string(size)}})));
  ASSERT_TRUE(c.send(payload));
  const Response up = c.read_response({.timeout_ms = 20000});
  ASSERT_TRUE(up.ok()) << up.error;
  EXPECT_EQ(up.status, 201);
  EXPECT_EQ(up.reason, "Created");
  EXPECT_EQ(up.header_names(), strs({"X-Fake-Bytes", "X-Fake-Checksum", "Date", "Content-Length"}));
  EXPECT_EQ(up.header("X-Fake-Bytes"), std::to_string(size));
  char hex[32];
  std::snprintf(hex, sizeof(hex), "%llx", static_cast<unsigned long long>(test::fnv1a64(payload)));
  EXPECT_EQ(up.header("X-Fake-Checksum"), hex);
  EXPECT_EQ(fake_->stats().blob_checksum_last, test::fnv1a64(payload));
  EXPECT_EQ(fake_->stats().blob_bytes_received, size);
  payload.clear();
  ASSERT_TRUE(c.send(req("GET", "/fake/blob?size=" + std::to_string(size))));
  const Response down = c.read_response({.timeout_ms = 20000});
  ASSERT_TRUE(down.ok()) << down.error;
  EXPECT_EQ(down.header("Content-Type"), "application/octet-stream");
  EXPECT_EQ(down.body.size(), size);
  EXPECT_EQ(test::blob_mismatch(down.body), size);
  ASSERT_TRUE(c.send(req("HEAD", "/fake/blob?size=10")));
  const Response head = c.read_response({.head_request = true});
  EXPECT_EQ(head.header("Content-Length"), "10");
  ASSERT_TRUE(c.send(req("GET", "/")));  // the connection is still in sync
  EXPECT_EQ(c.read_response().body, "Ollama is running");
}

TEST_F(FakeUpstreamTest, EchoShowsWhatArrived) {
  const Response r = post("/fake/echo?q=1", "hello", {{"X-Thing", "a\"b"}, {"X-Thing", "2"}});
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(json_str(r.body, "/method"), "POST");
  EXPECT_EQ(json_str(r.body, "/target"), "/fake/echo?q=1");
  EXPECT_EQ(json_str(r.body, "/headers/0/0"), "Host");
  EXPECT_EQ(json_str(r.body, "/headers/0/1"), "127.0.0.1:" + std::to_string(port_));
  EXPECT_EQ(json_str(r.body, "/headers/2/1"), "a\"b");
  EXPECT_EQ(json_str(r.body, "/headers/3/1"), "2");
  EXPECT_EQ(json_int(r.body, "/body_bytes"), 5);
  char hex[32];
  std::snprintf(hex, sizeof(hex), "%llx", static_cast<unsigned long long>(test::fnv1a64("hello")));
  EXPECT_EQ(json_str(r.body, "/body_fnv1a64"), hex);
}

TEST_F(FakeUpstreamTest, StatsCountPeerClosesPromptlyAndResetClearsThem) {
  start(Options{.threads = 3});
  std::uint64_t received = 0;
  for (int i = 0; i < 6; ++i) {
    const Response r = post("/api/generate", R"({"model":"m","prompt":"x","stream":false})",
                            {{"X-Fake-Prompt-Tokens", "10"}, {"X-Fake-Tokens", "4"}});
    ASSERT_TRUE(r.ok());
    received += r.raw.size();
  }
  // A worker counts bytes after send() returns, which can be just after the client read them.
  for (int i = 0; i < 2000 && fake_->stats().bytes_sent < received; ++i) {
    std::this_thread::sleep_for(1ms);
  }
  Stats s = fake_->stats();
  EXPECT_EQ(s.requests, 6u);
  EXPECT_EQ(s.connections_accepted, 6u);
  EXPECT_EQ(s.prompt_tokens_sent, 60u);
  EXPECT_EQ(s.completion_tokens_sent, 24u);
  EXPECT_EQ(s.bytes_sent, received);
  // The six clients above closed their connections; wait until the fake has seen all of them.
  for (int i = 0; i < 2000 && fake_->stats().connections_closed_by_peer < 6; ++i) {
    std::this_thread::sleep_for(1ms);
  }
  EXPECT_EQ(fake_->stats().connections_closed_by_peer, 6u);
  // A client that resets in the middle of a slow stream is seen at once.
  for (const bool reset : {true, false}) {
    fake_->reset_stats();
    HttpClient c;
    ASSERT_TRUE(c.connect(port_));
    ASSERT_TRUE(c.send(req("POST", "/api/chat", R"({"model":"m","messages":[{}]})",
                           {{"X-Fake-Delay-Ms", "500"}})));
    std::this_thread::sleep_for(20ms);
    const std::uint64_t t0 = monotonic_now_ns();
    if (reset) {
      c.abort();
    } else {
      c.close();
    }
    while (fake_->stats().connections_closed_by_peer == 0 && monotonic_now_ns() - t0 < 2e9) {
      std::this_thread::sleep_for(1ms);
    }
    s = fake_->stats();
    EXPECT_EQ(s.connections_closed_by_peer, 1u) << reset;
    EXPECT_GE(s.last_peer_close_ns, t0);
    EXPECT_LT(s.last_peer_close_ns - t0, 50'000'000u) << reset;
    EXPECT_EQ(s.completion_tokens_sent, 0u);
  }
  fake_->reset_stats();
  s = fake_->stats();
  EXPECT_EQ(s.requests + s.connections_accepted + s.bytes_sent + s.last_peer_close_ns, 0u);
  fake_->stop();
  fake_->stop();  // idempotent
}

}  // namespace
}  // namespace tokentap::fake
