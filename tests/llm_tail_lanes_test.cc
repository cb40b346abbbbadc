// TailScanner's fast lanes (llm_tail_lanes.cc) change no number: a stream fed one event per feed
// (the lanes' case, as Ollama and OpenAI flush one chunk per write) gives the same Usage and the
// same unreadable count as the same bytes fed one at a time (the general path alone), for token
// chunks whose text the chunk memo must not misread and for thousands of mutated streams.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "support/json_mutation.h"
#include "tokentap/llm_tail.h"

namespace tokentap {
namespace {

PieceParser& parser() {
  static PieceParser p;
  return p;
}

std::string scan(Route route, const std::vector<std::string>& pieces) {
  TailScanner t;
  t.init(route, 200, &parser());
  for (const std::string& piece : pieces) t.feed(piece.data(), piece.size(), 1);
  const Usage& u = t.finish();
  std::string s;
  for (std::size_t i = 0; i < usage_field_count; ++i) {
    const auto v = u.get(static_cast<UsageField>(i));
    s += (v ? std::to_string(*v) : "-") + ",";
  }
  return s + "out=" + std::to_string(u.output_events) + (u.usage_found ? " found" : "") +
         (u.usage_missing ? " missing" : "") + (u.error_seen ? " error" : "") +
         " unreadable=" + std::to_string(t.unreadable());
}

void expect_same(Route route, const std::vector<std::string>& events) {
  std::string body;
  for (const std::string& e : events) body += e;
  std::vector<std::string> bytes;
  for (char c : body) bytes.emplace_back(1, c);
  const std::string bytewise = scan(route, bytes);
  ASSERT_EQ(scan(route, events), bytewise) << body;
  ASSERT_EQ(scan(route, {body}), bytewise) << body;
}

std::string chunk(const std::string& content, const std::string& extra = "",
                  const std::string& model = "llama3.2") {
  return R"(data: {"id":"chatcmpl-7","object":"chat.completion.chunk","created":1756044000,)"
         R"("model":")" +
         model +
         R"(","system_fingerprint":"fp_ollama","choices":[{"index":0,)"
         R"("delta":{"role":"assistant","content":")" +
         content + R"("},"finish_reason":null}])" + extra + "}\n\n";
}
const std::string usage_event =
    R"(data: {"id":"chatcmpl-7","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":9}})"
    "\n\n";
const std::string done_event = "data: [DONE]\n\n";

// Token texts that end the string early, escape its closing quote, or leave it empty must not
// pass for the remembered shape; each is read by the general path's rules.
TEST(TailLanes, ChunkMemoOnlyTakesTokensOfTheRememberedShape) {
  const std::vector<std::string> texts = {
      "Hello",
      R"( \"quoted\" )",
      R"(back\\)",
      R"(\u00e9\n)",
      "",                      // empty: no output piece
      R"(x","reasoning":"y)",  // a second output member, same bytes around
      R"(x"},"finish_reason":null}],"error":{"m":"e"},"z":[{"a":")",  // an error member inside
      R"(\)",  // escapes the closing quote: not one JSON document
      "tail",
  };
  std::vector<std::string> events;
  for (const std::string& t : texts) events.push_back(chunk(t));
  events.push_back(chunk("usage null", R"(,"usage":null)"));
  events.push_back(chunk("again", R"(,"usage":null)"));
  events.push_back(usage_event);
  events.push_back(done_event);
  expect_same(Route::v1_chat_completions, events);
  for (std::size_t i = 0; i < texts.size(); ++i) {
    SCOPED_TRACE(i);
    expect_same(Route::v1_chat_completions, {chunk("a"), chunk("b"), events[i], chunk("c")});
  }
}

// A chunk whose effect is more than one output piece (Ollama's mid-stream error chunk carries
// "model":"") is never remembered: the next chunk of its shape is read in full.
TEST(TailLanes, ChunkMemoRemembersOnlyChunksThatOnlyOutput) {
  expect_same(Route::v1_chat_completions,
              {chunk("a"), chunk("x", "", ""), chunk("y", "", ""), chunk("b"),
               chunk("z", R"(,"error":{"m":1})"), chunk("w", R"(,"error":{"m":1})"), done_event});
}

TEST(TailLanes, MutatedStreamsReadTheSameWithAndWithoutTheLanes) {
  std::mt19937 rng(11);
  for (int round = 0; round < 3000; ++round) {
    std::vector<std::string> events = {chunk("The"), chunk(" quick"), chunk(" fox")};
    const std::size_t victim = rng() % events.size();
    events[victim] = test::mutate_json(events[victim], rng);
    events.push_back(chunk(" jumps"));
    events.push_back(usage_event);
    events.push_back(done_event);
    expect_same(round % 2 ? Route::v1_chat_completions : Route::v1_completions, events);
  }
}

}  // namespace
}  // namespace tokentap
