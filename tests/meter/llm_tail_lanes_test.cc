// TailScanner's fast lanes (llm_tail_lanes.cc) change no number: a stream fed one event per feed
// (the lanes' case, as Ollama and OpenAI flush one chunk per write) gives the same Usage and the
// same unreadable count as the same bytes fed one at a time (the general path alone), for token
// chunks whose text the chunk memo must not misread, for the `event:` lines of Responses and
// Anthropic streams in every form the lexer reads, and for thousands of mutated streams.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "support/json_mutation.h"
#include "tokentap/meter/llm_tail.h"

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

// ---- Responses and Anthropic: an `event:` line, then one data line ----------------------------

std::string typed_event(const std::string& name, const std::string& json) {
  return (name.empty() ? "" : "event: " + name + "\n") + "data: " + json + "\n\n";
}
std::string anthropic_delta(const std::string& text) {
  return typed_event("content_block_delta",
                     R"({"type":"content_block_delta","index":0,"delta":{"type":"text_delta",)"
                     R"("text":")" + text + R"("}})");
}
const std::string anthropic_start = typed_event(
    "message_start",
    R"({"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant",)"
    R"("model":"qwen3:8b","content":[],"usage":{"input_tokens":16,"output_tokens":1}}})");
const std::string anthropic_message_delta =
    typed_event("message_delta", R"({"type":"message_delta","delta":{"stop_reason":"end_turn"},)"
                                 R"("usage":{"output_tokens":150}})");
const std::string anthropic_stop = typed_event("message_stop", R"({"type":"message_stop"})");

std::string responses_delta(const std::string& text, int seq) {
  return typed_event("response.output_text.delta",
                     R"({"type":"response.output_text.delta","item_id":"msg_1",)"
                     R"("output_index":0,"content_index":0,"delta":")" +
                         text + R"(","sequence_number":)" + std::to_string(seq) + "}");
}
std::string responses_end(const std::string& type) {
  return typed_event(type, R"({"type":")" + type + R"(","sequence_number":9,"response":{)"
                           R"("id":"resp_1","output":[],"usage":{"input_tokens":3,)"
                           R"("output_tokens":4}}})");
}

// Every way an `event:` line can name (or not name) the event, each dispatched as the lexer
// would: the name decides over "type", an empty or over-long name falls back or classifies as
// other, CR framing and lines in other orders stay with the general path.
TEST(TailLanes, TypedEventLinesClassifyAsTheLexerDoes) {
  const std::string delta_json = R"({"type":"content_block_delta","delta":{"text":"x"}})";
  const std::string usage_json = R"({"type":"message_delta","usage":{"output_tokens":7}})";
  const std::vector<std::string> variants = {
      typed_event("", delta_json),                 // no event line: "type" decides
      typed_event("message_delta", delta_json),    // the name wins over "type"
      typed_event("content_block_delta", usage_json),
      typed_event("ping", usage_json),
      "event: \ndata: " + usage_json + "\n\n",     // empty name: "type" decides
      "event:message_delta\ndata: " + usage_json + "\n\n",  // no space after the colon
      "event:  message_delta\ndata: " + usage_json + "\n\n",  // the second space is the name's
      typed_event(std::string(48, 'm'), usage_json),  // the longest name kept
      typed_event(std::string(49, 'm'), usage_json),  // too long: other
      "event: message_delta\r\ndata: " + usage_json + "\r\n\r\n",
      "event: message_delta\ndata: " + usage_json + "\r\n\r\n",
      "data: " + usage_json + "\nevent: message_delta\n\n",
      "event: content_block_delta\nevent: message_delta\ndata: " + usage_json + "\n\n",
      typed_event("message_delta", R"({ "type":"message_delta","usage":{"output_tokens":7}})"),
      typed_event("message_delta", R"({"type":"message_\u0064elta","usage":{"output_tokens":7}})"),
      typed_event("message_delta", R"({"type":"message_delta","usage":{"output_tokens":7})"),
      typed_event("error", R"({"type":"error","error":{"type":"overloaded_error"}})"),
      "event: message_delta\ndata: [DONE]\n\n",
  };
  for (std::size_t i = 0; i < variants.size(); ++i) {
    SCOPED_TRACE(i);
    expect_same(Route::v1_messages, {anthropic_start, anthropic_delta("a"), variants[i],
                                     anthropic_delta("b"), anthropic_stop});
    expect_same(Route::v1_responses, {responses_delta("a", 1), variants[i],
                                      responses_end("response.completed")});
  }
}

TEST(TailLanes, TypedStreamsReadTheSameWithAndWithoutTheLanes) {
  expect_same(Route::v1_messages, {anthropic_start, anthropic_delta("Hi"), anthropic_delta(""),
                                   anthropic_delta(R"(\"q\")"), anthropic_message_delta,
                                   anthropic_stop});
  for (const char* end : {"response.completed", "response.incomplete", "response.failed"}) {
    expect_same(Route::v1_responses,
                {responses_delta("Hi", 1), responses_delta("", 2), responses_end(end)});
  }
  std::mt19937 rng(13);
  for (int round = 0; round < 3000; ++round) {
    const bool anthropic = round % 2 == 0;
    std::vector<std::string> events =
        anthropic ? std::vector<std::string>{anthropic_start, anthropic_delta("The"),
                                             anthropic_delta(" fox"), anthropic_message_delta}
                  : std::vector<std::string>{responses_delta("The", 1), responses_delta(" fox", 2),
                                             responses_end("response.completed")};
    const std::size_t victim = rng() % events.size();
    events[victim] = test::mutate_json(events[victim], rng);
    events.push_back(anthropic ? anthropic_stop : responses_delta(" late", 3));
    expect_same(anthropic ? Route::v1_messages : Route::v1_responses, events);
  }
}

}  // namespace
}  // namespace tokentap
