// compact_skim: whenever it answers, its captures are JsonSkim's, capture for capture (slot,
// type, emptiness, offsets, kept bytes), for real OpenAI, Responses and Anthropic stream chunks
// and for thousands of mutated ones; and it answers for the chunks a stream is made of.
#include "tokentap/meter/compact_skim.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "support/json_mutation.h"
#include "tokentap/meter/llm_tail.h"

namespace tokentap {
namespace {

// The scanner's own specs: OpenAI's (a bytes path, usage, among its paths) and the typed one of
// Responses and Anthropic (bytes paths for "type", a string, and three usage objects).
const SkimSpec& openai = tail_spec(Dialect::openai_chat);
const SkimSpec& typed = tail_spec(Dialect::anthropic);

std::string describe(const SkimSpec& spec, const SkimCapture& c) {
  const bool keep = spec.paths[c.slot].kind == SkimKind::bytes;
  return std::to_string(c.slot) + ":" + std::to_string(static_cast<int>(c.type)) +
         (c.nonempty ? "+" : "-") + "@" + std::to_string(c.begin) + "-" + std::to_string(c.end) +
         (keep ? "[" + std::string(c.bytes) + (c.truncated ? "...]" : "]") : "");
}

// JsonSkim's captures for one document fed whole, or "failed" / "unfinished".
std::string skim(std::string_view doc, const SkimSpec& spec = openai) {
  JsonSkim s;
  s.init(spec, false);
  std::string out;
  bool ended = false;
  for (std::size_t at = 0; at < doc.size();) {
    at += s.feed(doc.data() + at, doc.size() - at);
    if (s.event() == JsonSkim::Event::captured) out += describe(spec, s.capture()) + " ";
    if (s.event() == JsonSkim::Event::failed) return "failed";
    if (s.event() == JsonSkim::Event::document_end) ended = true;
  }
  return ended ? out : "unfinished";
}

// compact_skim's captures, or "" when it leaves the document to JsonSkim.
bool compact(std::string_view doc, std::string* out, const SkimSpec& spec = openai) {
  CompactCaptures caps;
  if (!compact_skim(doc, spec, &caps)) return false;
  out->clear();
  for (std::uint8_t i = 0; i < caps.count; ++i) *out += describe(spec, caps.at(i)) + " ";
  return true;
}

const std::string chat =
    R"({"id":"chatcmpl-1","object":"chat.completion.chunk","created":1756044000,)"
    R"("model":"llama3.2","system_fingerprint":"fp_ollama","choices":[{"index":0,)"
    R"("delta":{"role":"assistant","content":"Hi \"you\"\n"},"finish_reason":null}]})";
const std::string tool =
    R"({"id":"c","choices":[{"index":0,"delta":{"tool_calls":[{"id":"t","function":)"
    R"({"name":"f","arguments":"{\"a\":[1]}"}}]},"finish_reason":null}],"model":""})";
const std::string completions =
    R"({"id":"cmpl-1","object":"text_completion","created":1,"choices":[{"text":"x",)"
    R"("index":0,"logprobs":null,"finish_reason":null}],"model":"m"})";
const std::string empty_delta =
    R"({"id":"c","choices":[{"index":0,"delta":{"content":""},"finish_reason":"stop"}]})";
const std::string usage_chunk =
    R"({"id":"c","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":5}})";
const std::string error_chunk = R"({"error":{"message":"boom"}})";
// OpenAI's own chunks carry "usage":null in every chunk once include_usage is set.
const std::string openai_null_usage =
    R"({"id":"chatcmpl-9","object":"chat.completion.chunk","created":1,"model":"gpt-4o",)"
    R"("choices":[{"index":0,"delta":{"content":"Hi"},"logprobs":null,"finish_reason":null}],)"
    R"("usage":null})";
// A usage object longer than the path's 512-byte cap: kept cut, marked truncated.
const std::string long_usage =
    R"({"choices":[],"usage":{"pad":")" + std::string(600, 'x') + R"(","prompt_tokens":1}})";
// Flag targets that are scalars and skipped containers, empty with and without whitespace.
const std::string odd_values =
    R"({"model":null,"choices":[{"delta":{"content":null,"tool_calls":[ ],"refusal":7,)"
    R"("function_call":{},"reasoning":[{"x":[]}]},"text":true}],"error":false})";

// Anthropic and Responses events: "type" is kept as a string, usage objects as raw text.
const std::string anthropic_start =
    R"({"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant",)"
    R"("model":"qwen3:8b","content":[],"usage":{"input_tokens":16,"output_tokens":0}}})";
const std::string anthropic_delta =
    R"({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi \"x\""}})";
const std::string anthropic_message_delta =
    R"({"type":"message_delta","delta":{"stop_reason":"end_turn"},)"
    R"("usage":{"input_tokens":27,"output_tokens":150}})";
const std::string responses_delta =
    R"({"type":"response.output_text.delta","item_id":"msg_1","output_index":0,)"
    R"("content_index":0,"delta":"Hi","sequence_number":5})";
const std::string responses_completed =
    R"({"type":"response.completed","sequence_number":9,"response":{"id":"resp_1",)"
    R"("status":"completed","output":[],"usage":{"input_tokens":3,"output_tokens":4}}})";
// A "type" longer than its 48-byte cap: kept cut, marked truncated.
const std::string long_type = R"({"type":")" + std::string(60, 't') + R"("})";

TEST(CompactSkim, ReadsStreamChunksAsJsonSkimDoes) {
  for (const std::string& doc :
       {chat, tool, completions, empty_delta, error_chunk, odd_values, usage_chunk,
        openai_null_usage, long_usage, std::string(R"({"choices":[]})"), std::string("{}"),
        std::string(R"({"choices":[],"usage":"3"})"),  // a bytes path's string, escape-free
        std::string(R"({"choices":[],"usage":""})"),
        // "*" stands for array elements, never for a key named "*"
        std::string(R"({"choices":{"*":{"delta":{"content":"x"}}}})")}) {
    std::string got;
    ASSERT_TRUE(compact(doc, &got)) << doc;
    EXPECT_EQ(got, skim(doc)) << doc;
  }
  for (const std::string& doc : {anthropic_start, anthropic_delta, anthropic_message_delta,
                                 responses_delta, responses_completed, long_type,
                                 std::string(R"({"type":""})"), std::string("{}")}) {
    std::string got;
    ASSERT_TRUE(compact(doc, &got, typed)) << doc;
    EXPECT_EQ(got, skim(doc, typed)) << doc;
  }
}

TEST(CompactSkim, LeavesWhatItDoesNotReadTheSameToJsonSkim) {
  const char* no[] = {
      R"({"choices":[],"usage":"a\u0033"})",  // a bytes path's string with an escape
      "{\"choices\":[],\"usage\":\"a\tb\"}",   // ... or a raw control byte (JsonSkim fails)
      R"({ "model":"m"})",              // whitespace on a matched path
      R"({"model": "m"})",
      R"({"choices":[ {}]})",
      R"({"mo\u0064el":"m"})",  // escape in a key
      R"({"choices":[1]})",     // scalar element on a matched path
      R"({"model":"m"} )",      // anything after the root
      R"({"model":"m"}{})",
      R"("text")",        // not a container
      R"({"model":01})",  // malformed
      R"({"a":[}]})",
      R"({"a":{"b":1})",
      R"({"model":"m",})",
      R"({"model":"m""id":1})",
      "",
  };
  for (const char* doc : no) {
    std::string got;
    EXPECT_FALSE(compact(doc, &got)) << doc;
  }
  for (const char* doc : {R"({"type":"content_block_\u0064elta"})", R"({"type":"a\"b"})",
                          "{\"type\":\"a\nb\"}", R"({"type":"open)"}) {
    std::string got;
    EXPECT_FALSE(compact(doc, &got, typed)) << doc;
  }
}

TEST(CompactSkim, AgreesWithJsonSkimOnMutatedChunks) {
  std::mt19937 rng(7);
  const std::string seeds[] = {chat,        tool,        completions, empty_delta,
                               usage_chunk, error_chunk, odd_values,  openai_null_usage};
  const std::string typed_seeds[] = {anthropic_start, anthropic_delta, anthropic_message_delta,
                                     responses_delta, responses_completed};
  int answered = 0;
  for (int round = 0; round < 20000; ++round) {
    const bool is_typed = round % 2 == 1;
    const SkimSpec& spec = is_typed ? typed : openai;
    const std::string doc =
        is_typed ? test::mutate_json(typed_seeds[rng() % std::size(typed_seeds)], rng)
                 : test::mutate_json(seeds[rng() % std::size(seeds)], rng);
    std::string got;
    if (!compact(doc, &got, spec)) continue;
    ++answered;
    ASSERT_EQ(got, skim(doc, spec)) << doc;
  }
  EXPECT_GT(answered, 2000) << "the mutations must reach the compact reader's answers too";
}

}  // namespace
}  // namespace tokentap
