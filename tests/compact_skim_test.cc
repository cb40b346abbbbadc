// compact_skim: whenever it answers, its captures are JsonSkim's, capture for capture (slot,
// type, emptiness, offsets), for real OpenAI stream chunks and for thousands of mutated ones;
// and it answers for the chunks a stream is made of.
#include "tokentap/compact_skim.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "support/json_mutation.h"
#include "tokentap/llm_tail.h"

namespace tokentap {
namespace {

// The scanner's own OpenAI spec (a bytes path, usage, among its paths).
const SkimSpec& spec = tail_spec(Dialect::openai_chat);

std::string describe(const SkimCapture& c) {
  const bool keep = spec.paths[c.slot].kind == SkimKind::bytes;
  return std::to_string(c.slot) + ":" + std::to_string(static_cast<int>(c.type)) +
         (c.nonempty ? "+" : "-") + "@" + std::to_string(c.begin) + "-" + std::to_string(c.end) +
         (keep ? "[" + std::string(c.bytes) + (c.truncated ? "...]" : "]") : "");
}

// JsonSkim's captures for one document fed whole, or "failed" / "unfinished".
std::string skim(std::string_view doc) {
  JsonSkim s;
  s.init(spec, false);
  std::string out;
  bool ended = false;
  for (std::size_t at = 0; at < doc.size();) {
    at += s.feed(doc.data() + at, doc.size() - at);
    if (s.event() == JsonSkim::Event::captured) out += describe(s.capture()) + " ";
    if (s.event() == JsonSkim::Event::failed) return "failed";
    if (s.event() == JsonSkim::Event::document_end) ended = true;
  }
  return ended ? out : "unfinished";
}

// compact_skim's captures, or "" when it leaves the document to JsonSkim.
bool compact(std::string_view doc, std::string* out) {
  CompactCaptures caps;
  if (!compact_skim(doc, spec, &caps)) return false;
  out->clear();
  for (std::uint8_t i = 0; i < caps.count; ++i) *out += describe(caps.at[i]) + " ";
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

TEST(CompactSkim, ReadsStreamChunksAsJsonSkimDoes) {
  for (const std::string& doc :
       {chat, tool, completions, empty_delta, error_chunk, odd_values, usage_chunk,
        openai_null_usage, long_usage, std::string(R"({"choices":[]})"), std::string("{}"),
        // "*" stands for array elements, never for a key named "*"
        std::string(R"({"choices":{"*":{"delta":{"content":"x"}}}})")}) {
    std::string got;
    ASSERT_TRUE(compact(doc, &got)) << doc;
    EXPECT_EQ(got, skim(doc)) << doc;
  }
}

TEST(CompactSkim, LeavesWhatItDoesNotReadTheSameToJsonSkim) {
  const char* no[] = {
      R"({"choices":[],"usage":"3"})",  // a bytes path's string: JsonSkim unescapes it
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
}

TEST(CompactSkim, AgreesWithJsonSkimOnMutatedChunks) {
  std::mt19937 rng(7);
  const std::string seeds[] = {chat,        tool,        completions, empty_delta,
                               usage_chunk, error_chunk, odd_values,  openai_null_usage};
  int answered = 0;
  for (int round = 0; round < 20000; ++round) {
    const std::string doc = test::mutate_json(seeds[rng() % std::size(seeds)], rng);
    std::string got;
    if (!compact(doc, &got)) continue;
    ++answered;
    ASSERT_EQ(got, skim(doc)) << doc;
  }
  EXPECT_GT(answered, 2000) << "the mutations must reach the compact reader's answers too";
}

}  // namespace
}  // namespace tokentap
