// ollama_line: which lines the fast lane takes, and that taking them changes nothing: a stream
// fed whole (fast lane) and fed one byte at a time (JsonSkim alone) gives the same Usage and the
// same count of unreadable documents, for real lines and for thousands of mutated ones.
#include "tokentap/meter/ollama_line.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "support/json_mutation.h"
#include "tokentap/meter/llm_tail.h"

namespace tokentap {
namespace {

// The scanner's own Ollama spec, as TailScanner calls the fast lane.
const SkimSpec& spec = tail_spec(Dialect::ollama);

bool piece(std::string_view line) { return is_ollama_piece_line(line, spec); }

const std::string gen =
    R"({"model":"llama3.2","created_at":"2026-08-24T14:00:11.5Z","response":"The","done":false})";
const std::string chat =
    R"({"model":"llama3.2","created_at":"2026-08-24T14:00:11.5Z",)"
    R"("message":{"role":"assistant","content":"Hi \"there\" {[","images":null},"done":false})";
constexpr std::size_t nest_max = 64;  // byte_scan::skip_container_nest_max (src/ internal)

const std::string done_line =
    R"({"model":"llama3.2","created_at":"x","response":"","done":true,"done_reason":"stop",)"
    R"("context":[1,2,3],"total_duration":5,"load_duration":1,"prompt_eval_count":4,)"
    R"("prompt_eval_duration":2,"eval_count":3,"eval_duration":2})";

TEST(OllamaLine, TakesTheTokenLinesOfGenerateAndChat) {
  EXPECT_TRUE(piece(gen));
  EXPECT_TRUE(piece(chat));
  EXPECT_TRUE(piece(R"({"done":false})"));
  EXPECT_TRUE(piece(R"({"n":-1.5e3,"t":true,"z":null,"a":[],"o":{},"done":false})"));
  EXPECT_TRUE(piece(R"({"thinking":"a\\b\u00e9\n","done":false})"));
}

TEST(OllamaLine, LeavesEverythingElseToJsonSkim) {
  const char* no[] = {
      R"({"model":"x","done":true})",    // the final line
      R"({"model":"x","done":false} )",  // whitespace
      R"({"model": "x","done":false})",  // whitespace
      R"({"model":"x","done":false})"
      "\r",                                 // CR before the LF
      R"({"error":"boom","done":false})",   // a wanted key
      R"({"eval_count":3,"done":false})",   // a wanted key
      R"({"done":true,"done":false})",      // a second done
      R"({"mo\"del":"x","done":false})",    // escape in a key
      "{\"mo\x01\":\"x\",\"done\":false}",  // control byte in a key
      R"({"model":"x,"done":false})",       // string not closed before the tail
      R"({"model":01,"done":false})",       // bad number
      R"({"model":tru,"done":false})",      // bad literal
      R"({"m":{"a":[1}],"done":false})",    // mismatched brackets
      R"({"m":{"a":1,"done":false})",       // unbalanced
      R"({"model":"x""done":false})",       // missing comma
      R"({"model":"x",,"done":false})",     // empty member
      R"({"model""x","done":false})",       // missing colon
      R"({,"done":false})",                 // no member before the comma
      R"(["done":false})",                  // not an object
      R"("done":false})",
      R"({"a":"b"}{"done":false})",  // two documents
  };
  for (const char* line : no) EXPECT_FALSE(piece(line)) << line;
  EXPECT_FALSE(piece(done_line));
  std::string deep = R"({"m":)" + std::string(nest_max + 1, '[') + std::string(nest_max + 1, ']') +
                     R"(,"done":false})";
  EXPECT_FALSE(piece(deep));
  std::string ok_deep =
      R"({"m":)" + std::string(nest_max, '[') + std::string(nest_max, ']') + R"(,"done":false})";
  EXPECT_TRUE(piece(ok_deep));
}

PieceParser& parser() {
  static PieceParser p;
  return p;
}

struct Result {
  std::string usage;
  std::uint32_t unreadable;
  bool operator==(const Result&) const = default;
};

Result result(TailScanner& t) {
  const Usage& u = t.finish();
  std::string s;
  for (std::size_t i = 0; i < usage_field_count; ++i) {
    const auto v = u.get(static_cast<UsageField>(i));
    s += (v ? std::to_string(*v) : "-") + ",";
  }
  s += std::to_string(u.output_events) + (u.usage_found ? "F" : "") + (u.usage_missing ? "M" : "") +
       (u.error_seen ? "E" : "");
  return {s, t.unreadable()};
}

// Timestamps are per feed, so all feeds carry the same one and only the pieces' count differs.
Result scan(Route route, const std::vector<std::string>& pieces) {
  TailScanner t;
  t.init(route, 200, &parser());
  for (const std::string& p : pieces) t.feed(p.data(), p.size(), 1);
  return result(t);
}

// Each line in a feed of its own (Ollama sends one chunk per line: the fast lane's case) and
// the whole body in one feed, against one byte per feed (never the fast lane).
void expect_same(Route route, const std::vector<std::string>& lines) {
  std::string body;
  std::vector<std::string> per_line;
  for (const std::string& l : lines) {
    body += l + "\n";
    per_line.push_back(l + "\n");
  }
  std::vector<std::string> bytes;
  for (char c : body) bytes.emplace_back(1, c);
  const Result bytewise = scan(route, bytes);
  ASSERT_EQ(scan(route, per_line), bytewise) << body;
  ASSERT_EQ(scan(route, {body}), bytewise) << body;
}

TEST(OllamaLine, FastLaneAndJsonSkimAgreeOnRealAndMutatedLines) {
  expect_same(Route::api_generate, {gen, gen, done_line});
  expect_same(Route::api_chat, {chat, chat, chat, done_line});
  std::mt19937 rng(2026);
  const std::string seeds[] = {gen, chat, R"({"done":false})", done_line};
  int taken = 0;
  for (int round = 0; round < 6000; ++round) {
    const std::string line = test::mutate_json(seeds[rng() % 4], rng);
    if (line.find('\n') != std::string::npos) continue;  // one line per piece
    taken += piece(line) ? 1 : 0;
    expect_same(round % 2 ? Route::api_chat : Route::api_generate, {gen, line, chat, done_line});
  }
  EXPECT_GT(taken, 500) << "the mutations must exercise the fast lane too";
}

}  // namespace
}  // namespace tokentap
