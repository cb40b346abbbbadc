// UsageStrip: a stream produced with include_usage, filtered, equals byte for byte the stream the
// same upstream produces without it (Ollama chat and completions, OpenAI-style usage:null), for
// every split of the input; what it cannot remove safely passes through unchanged.
#include "tokentap/meter/usage_strip.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

namespace tokentap {
namespace {

std::string strip(const std::vector<std::string>& pieces, UsageStrip* out_state = nullptr) {
  UsageStrip s;
  std::string out;
  const auto sink = [&out](const char* p, std::size_t n) { out.append(p, n); };
  for (const std::string& piece : pieces) s.feed(piece.data(), piece.size(), sink);
  s.finish(sink);
  if (out_state != nullptr) *out_state = s;
  return out;
}

void expect_strips_to(const std::string& with, const std::string& without) {
  ASSERT_EQ(strip({with}), without);
  for (std::size_t cut = 0; cut <= with.size(); ++cut) {
    ASSERT_EQ(strip({with.substr(0, cut), with.substr(cut)}), without) << "cut " << cut;
  }
  std::vector<std::string> bytes;
  for (char c : with) bytes.emplace_back(1, c);
  ASSERT_EQ(strip(bytes), without) << "1-byte feeds";
  std::mt19937 rng(7);
  for (int round = 0; round < 40; ++round) {
    std::vector<std::string> pieces;
    for (std::size_t at = 0; at < with.size();) {
      const std::size_t n = std::min<std::size_t>(with.size() - at, 1 + rng() % 60);
      pieces.push_back(with.substr(at, n));
      at += n;
    }
    ASSERT_EQ(strip(pieces), without) << "round " << round;
  }
}

// Ollama /v1/chat/completions (middleware/openai.go ChatWriter): chunks never carry usage; with
// include_usage the done step also writes the finish chunk again with "choices":[] and usage.
std::string chat_chunk(const std::string& choices, const std::string& extra = "") {
  return R"(data: {"id":"chatcmpl-318","object":"chat.completion.chunk","created":1787580250,)"
         R"("model":"llama3.2","system_fingerprint":"fp_ollama","choices":)" +
         choices + extra + "}\n\n";
}
std::string chat_delta(const std::string& delta, const char* finish = "null") {
  return chat_chunk(R"([{"index":0,"delta":)" + delta + R"(,"finish_reason":)" + finish + "}]");
}
const std::string chat_body =
    chat_delta(R"({"role":"assistant","content":"The"})") +
    chat_delta(R"({"role":"assistant","content":" \"choices\":[],\"usage\":{} \\"})") +
    chat_delta(R"({"role":"assistant","content":"","tool_calls":[{"id":"call_1","index":0,)"
               R"("type":"function","function":{"name":"f","arguments":"{\"usage\":1}"}}]})") +
    chat_delta(R"({"role":"assistant","content":""})", R"("tool_calls")");
const std::string chat_usage =
    chat_chunk("[]", R"(,"usage":{"prompt_tokens":32,"completion_tokens":34,"total_tokens":66})");
const std::string done = "data: [DONE]\n\n";

// Ollama /v1/completions (CompleteWriter): with include_usage every chunk ends with a zero usage.
std::string cmpl_chunk(const std::string& text, const char* finish, bool usage) {
  return R"(data: {"id":"cmpl-42","object":"text_completion","created":1787580250,)"
         R"("choices":[{"text":")" +
         text + R"(","index":0,"finish_reason":)" + finish +
         R"(}],"model":"llama3.2","system_fingerprint":"fp_ollama")" +
         (usage ? R"(,"usage":{"prompt_tokens":0,"completion_tokens":0,"total_tokens":0})" : "") +
         "}\n\n";
}
const std::string cmpl_usage =
    R"(data: {"id":"cmpl-42","object":"text_completion","created":1787580250,"choices":[],)"
    R"("model":"llama3.2","system_fingerprint":"fp_ollama","usage":{"prompt_tokens":12,)"
    R"("completion_tokens":5,"total_tokens":17}})"
    "\n\n";
std::string cmpl_stream(bool usage) {
  return cmpl_chunk("Hello", "null", usage) + cmpl_chunk(" world", "null", usage) +
         cmpl_chunk("", R"("stop")", usage) + (usage ? cmpl_usage : "") + done;
}

TEST(UsageStrip, OllamaChatUsageChunkIsDropped) {
  expect_strips_to(chat_body + chat_usage + done, chat_body + done);
}

TEST(UsageStrip, OllamaCompletionsZeroUsageMembersAreRemoved) {
  expect_strips_to(cmpl_stream(true), cmpl_stream(false));
}

TEST(UsageStrip, CompletionsErrorChunkLosesItsZeroUsage) {
  const auto error_chunk = [](bool usage) {
    return std::string(R"(data: {"id":"cmpl-42","object":"text_completion","created":1,)") +
           R"("choices":[{"text":"","index":0,"finish_reason":null}],"model":"",)" +
           R"("system_fingerprint":"fp_ollama")" +
           (usage ? R"(,"usage":{"prompt_tokens":0,"completion_tokens":0,"total_tokens":0})" : "") +
           "}\n\n";
  };
  expect_strips_to(cmpl_chunk("Hi", "null", true) + error_chunk(true),
                   cmpl_chunk("Hi", "null", false) + error_chunk(false));
}

TEST(UsageStrip, OpenAiStyleNullUsageAndFirstMemberUsage) {
  const std::string with = R"(data: {"usage":null,"id":"c1","choices":[{"delta":{"content":"a"}}]})"
                           "\n\n"
                           R"(data: {"id":"c1","choices":[{"delta":{}}], "usage" : null })"
                           "\n\n"
                           R"(data: {"usage":{"prompt_tokens":1},"choices":[],"id":"c1"})"
                           "\n\n" +
                           done;
  const std::string without = R"(data: {"id":"c1","choices":[{"delta":{"content":"a"}}]})"
                              "\n\n"
                              R"(data: {"id":"c1","choices":[{"delta":{}}]})"  // member ws goes too
                              "\n\n" +
                              done;
  expect_strips_to(with, without);
}

TEST(UsageStrip, ChoicesEmptyWithoutUsageIsKept) {
  // Azure's prompt-filter chunk has "choices":[] and no usage: not the usage chunk.
  const std::string body =
      R"(data: {"choices":[],"prompt_filter_results":[{"prompt_index":0}],"usage":null})"
      "\n\n" +
      chat_body + done;
  const std::string want = R"(data: {"choices":[],"prompt_filter_results":[{"prompt_index":0}]})"
                           "\n\n" +
                           chat_body + done;
  expect_strips_to(body, want);
}

TEST(UsageStrip, CrlfAndCommentsKeepTheirBytes) {
  const auto crlf = [](std::string s) {
    for (std::size_t at = 0; (at = s.find('\n', at)) != std::string::npos; at += 2) {
      s.replace(at, 1, "\r\n");
    }
    return s;
  };
  expect_strips_to(": ping\n\n" + crlf(cmpl_stream(true)), ": ping\n\n" + crlf(cmpl_stream(false)));
  expect_strips_to(crlf(chat_body + chat_usage + done), crlf(chat_body + done));
}

TEST(UsageStrip, PassesBytesOnAsSoonAsTheirFateIsKnown) {
  UsageStrip s;
  std::string out;
  const auto sink = [&out](const char* p, std::size_t n) { out.append(p, n); };
  const std::string first = chat_delta(R"({"role":"assistant","content":"The"})");
  const std::size_t choices_at = first.find("[{") + 2;
  s.feed(first.data(), choices_at, sink);
  EXPECT_EQ(out, first.substr(0, choices_at));  // choices is non-empty: released
  s.feed(first.data() + choices_at, first.size() - choices_at, sink);
  EXPECT_EQ(out, first);
  out.clear();
  const std::string chunk = cmpl_chunk("x", "null", true);
  const std::size_t usage_at = chunk.find(",\"usage\"");
  s.feed(chunk.data(), usage_at + 3, sink);
  EXPECT_EQ(out, chunk.substr(0, usage_at));  // only the pending member is held
  s.feed(chunk.data() + usage_at + 3, chunk.size() - usage_at - 3, sink);
  EXPECT_EQ(out, cmpl_chunk("x", "null", false));
  EXPECT_EQ(s.members_removed(), 1u);
  EXPECT_EQ(s.events_dropped(), 0u);
}

// Strings and nested values are skimmed 16 bytes at a time: put escapes, quotes and brackets at
// every offset of a block, in a root string, in choices and in the removed usage member.
TEST(UsageStrip, BlockScansFindSpecialBytesAtEveryOffset) {
  for (std::size_t k = 0; k <= 34; ++k) {
    SCOPED_TRACE(k);
    const std::string pad(k, 'a');
    const std::string text = pad + R"(\"}]{[)" + pad + R"(\\)";
    const auto chunk = [&](bool usage) {
      return R"(data: {"id":")" + pad + R"(\"x","choices":[{"text":")" + text +
             R"(","index":0}],"model":"m")" +
             (usage ? R"(,"usage":{"k":")" + text + R"(","n":[0,{"a":[]}]})" : "") + "}\n\n";
    };
    expect_strips_to(chunk(true) + chunk(true) + done, chunk(false) + chunk(false) + done);
  }
}

// Bytes that pass in a row reach the sink as one span. A whole LF-framed event without a
// "usage" token goes out at once; a CRLF-framed one takes the byte-wise tracker: held up to its
// choices value, then released as the held bytes plus one span for all the rest of the event.
TEST(UsageStrip, AdjacentPassedBytesReachTheSinkAsOneSpan) {
  const auto spans_of = [](const std::string& chunk) {
    UsageStrip s;
    std::vector<std::string> spans;
    const auto sink = [&spans](const char* p, std::size_t n) { spans.emplace_back(p, n); };
    s.feed(chunk.data(), chunk.size(), sink);
    s.finish(sink);
    return spans;
  };
  const std::string chunk = chat_delta(R"({"role":"assistant","content":"a \"quoted\" [word]"})");
  EXPECT_EQ(spans_of(chunk), std::vector<std::string>{chunk});
  std::string crlf = chunk;
  crlf.replace(crlf.size() - 2, 2, "\r\n\r\n");
  const auto spans = spans_of(crlf);
  const std::size_t choices_at = crlf.find("\"choices\":[") + 11;
  ASSERT_EQ(spans.size(), 2u);
  EXPECT_EQ(spans[0], crlf.substr(0, choices_at));
  EXPECT_EQ(spans[1], crlf.substr(choices_at));
}

// The whole-event fast lane only takes events the tracker would pass unchanged: any `"usage"`
// token sends the event through the tracker, wherever it is, and the output is the same for
// every split of the input (split events never take the fast lane).
TEST(UsageStrip, WholeEventFastLaneChangesNoOutput) {
  const std::string content_mentions_usage =
      chat_delta(R"({"content":"the \"usage\" key"})");  // escaped: not a token, passes
  const std::string usage_value = chat_delta(R"({"content":"usage"})");
  const std::string body = content_mentions_usage + usage_value + chat_delta(R"({"content":"x"})") +
                           R"(data: {"id":"c","choices":[],"usage":{"prompt_tokens":1}})" "\n\n" +
                           "data: [DONE]\n\n";
  const std::string want = content_mentions_usage + usage_value + chat_delta(R"({"content":"x"})") +
                           "data: [DONE]\n\n";
  expect_strips_to(body, want);
}

// The fast lane finds the blank line, a CR and a `"usage"` key 16 bytes at a time, comparing
// byte pairs across block edges: put each of them at every offset of a block.
TEST(UsageStrip, WholeEventFastLaneFindsMarksAtEveryOffset) {
  for (std::size_t k = 0; k <= 40; ++k) {
    SCOPED_TRACE(k);
    const std::string pad(k, 'u');
    const std::string plain = R"(data: {"id":")" + pad + R"(","u":"\"","choices":[]})" "\n\n";
    UsageStrip s;
    std::size_t spans = 0;
    s.feed(plain.data(), plain.size(), [&spans](const char*, std::size_t) { ++spans; });
    EXPECT_EQ(spans, 1u) << "a whole event without usage passes in one step";
    const std::string with_usage = R"(data: {"id":")" + pad + R"(","choices":[],"usage":{"a":1}})"
                                   "\n\n";
    expect_strips_to(plain + with_usage + plain, plain + plain);
    std::string crlf = plain;
    crlf.replace(crlf.size() - 2, 2, "\r\n\r\n");
    expect_strips_to(crlf + with_usage, crlf);
  }
}

TEST(UsageStrip, CountsWhatItRemoved) {
  UsageStrip state;
  (void)strip({cmpl_stream(true)}, &state);
  EXPECT_EQ(state.members_removed(), 3u);
  EXPECT_EQ(state.events_dropped(), 1u);
  EXPECT_EQ(state.gave_up(), 0u);
}

TEST(UsageStrip, GivesUpOpenWhenTheEventIsTooLongToHold) {
  const std::string model(strip_hold_bytes_max, 'm');
  const std::string big = R"(data: {"id":"x","model":")" + model +
                          R"(","choices":[],"usage":{"prompt_tokens":1}})"
                          "\n\n";
  UsageStrip state;
  EXPECT_EQ(strip({big + done}, &state), big + done);
  EXPECT_EQ(state.gave_up(), 1u);
  EXPECT_EQ(state.events_dropped(), 0u);
}

TEST(UsageStrip, MemberAcrossDataLinesPassesUnchanged) {
  const std::string body = "data: {\"choices\":[{\"text\":\"a\"}],\"usage\":\ndata: null}\n\n";
  UsageStrip state;
  EXPECT_EQ(strip({body}, &state), body);
  EXPECT_EQ(state.gave_up(), 1u);
}

TEST(UsageStrip, TruncatedEventIsPassedOnAtFinish) {
  const std::string cut = chat_usage.substr(0, 60);
  EXPECT_EQ(strip({chat_body + cut}), chat_body + cut);
  // Once known to be the usage event, a truncated one is dropped.
  EXPECT_EQ(strip({chat_body + chat_usage.substr(0, chat_usage.size() - 10)}), chat_body);
}

TEST(UsageStrip, JsonErrorBodyPassesAtOnce) {
  UsageStrip s;
  std::string out;
  const std::string body = R"({"error":{"message":"boom","type":"api_error","usage":null}})";
  s.feed(body.data(), body.size(), [&out](const char* p, std::size_t n) { out.append(p, n); });
  EXPECT_EQ(out, body);  // nothing held back until finish()
}

TEST(UsageStrip, NonJsonAndMalformedEventsPassUnchanged) {
  for (const std::string& body :
       {std::string("data: hello\n\n"), std::string("event: x\ndata: [1,2]\n\n"),
        std::string("data: {\"usage\" 1}\n\n"), std::string("data: {\"a\":1}}\n\n"),
        std::string("data: {}\n\n"), std::string("data: {\"choices\":[]}\n\n")}) {
    EXPECT_EQ(strip({body}), body);
  }
}

}  // namespace
}  // namespace tokentap
