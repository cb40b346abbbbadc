// RequestProbe and inject_include_usage: Go decoding semantics for model/stream/include_usage
// (key order, escapes, Unicode, duplicates, nested keys, types, trailing bytes), every split, and
// injections that re-parse (simdjson DOM) to exactly the original plus stream_options.
#include "tokentap/meter/request_probe.h"

#include <gtest/gtest.h>
#include <simdjson.h>

#include <map>
#include <random>
#include <string>
#include <vector>

namespace tokentap {
namespace {

struct Facts {
  std::string model = "unknown";
  bool stream = false;
  bool include_usage = false;
  bool operator==(const Facts&) const = default;
};
std::ostream& operator<<(std::ostream& os, const Facts& f) {
  return os << "{model=" << f.model << " stream=" << f.stream << " iu=" << f.include_usage << "}";
}

Facts probe(Route route, const std::vector<std::string>& pieces, bool encoded = false) {
  RequestProbe p;
  p.init(route, encoded);
  for (const std::string& piece : pieces) p.feed(piece.data(), piece.size());
  p.finish();
  Facts f;
  if (const auto m = p.model()) f.model = std::string(*m);
  f.stream = p.stream();
  f.include_usage = p.include_usage();
  return f;
}
Facts probe(Route route, const std::string& body) { return probe(route, std::vector{body}); }

void expect_split_invariant(Route route, const std::string& body) {
  const Facts whole = probe(route, body);
  for (std::size_t cut = 0; cut <= body.size(); ++cut) {
    ASSERT_EQ(probe(route, {body.substr(0, cut), body.substr(cut)}), whole) << "cut " << cut;
  }
  std::vector<std::string> bytes;
  for (char c : body) bytes.emplace_back(1, c);
  ASSERT_EQ(probe(route, bytes), whole);
}

TEST(RequestProbe, SmallChatBody) {
  const std::string body =
      R"({"model":"llama3.2","messages":[{"role":"user","content":"hi"}],"stream":true,)"
      R"("stream_options":{"include_usage":true}})";
  EXPECT_EQ(probe(Route::v1_chat_completions, body), (Facts{"llama3.2", true, true}));
  EXPECT_EQ(probe(Route::api_chat, body), (Facts{"llama3.2", true, false}));
}

TEST(RequestProbe, StreamDefaultsPerRoute) {
  const std::string body = R"({"model":"m","prompt":"x"})";
  EXPECT_TRUE(probe(Route::api_generate, body).stream);
  EXPECT_TRUE(probe(Route::api_chat, body).stream);
  EXPECT_FALSE(probe(Route::v1_chat_completions, body).stream);
  EXPECT_FALSE(probe(Route::v1_messages, body).stream);
  EXPECT_FALSE(probe(Route::v1_responses, body).stream);
  // /api/embed and the embeddings routes have no stream field: Go ignores the key.
  const std::string streaming = R"({"model":"m","input":"x","stream":true})";
  EXPECT_FALSE(probe(Route::api_embed, streaming).stream);
  EXPECT_FALSE(probe(Route::api_embeddings, streaming).stream);
  EXPECT_FALSE(probe(Route::v1_embeddings, streaming).stream);
  EXPECT_EQ(probe(Route::api_embed, streaming).model, "m");
  EXPECT_FALSE(probe(Route::api_generate, R"({"model":"m","stream":false})").stream);
  // Non-inference paths (/api/pull, /api/show) are read too; they have no stream field here.
  EXPECT_EQ(probe(Route::other, R"({"model":"llama3.2","stream":true})"),
            (Facts{"llama3.2", false, false}));
  EXPECT_EQ(probe(Route::other, std::string("\x89PNG\r\n")), (Facts{"unknown", false, false}));
}

TEST(RequestProbe, ModelAfterAFiveMebibyteMessagesArrayIn4KiBPieces) {
  // The OpenAI Python SDK writes messages (base64 images) before model.
  std::string body = R"({"messages":[{"role":"user","content":[{"type":"image_url",)"
                     R"("image_url":{"url":"data:image/png;base64,)";
  while (body.size() < 5u * 1024 * 1024) body += "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJ";
  body += R"("}},{"type":"text","text":"what is \"model\": this?"}]}],)"
          R"("model":"llava:13b","stream":true})";
  std::vector<std::string> pieces;
  for (std::size_t at = 0; at < body.size(); at += 4096) pieces.push_back(body.substr(at, 4096));
  EXPECT_EQ(probe(Route::v1_chat_completions, pieces), (Facts{"llava:13b", true, false}));
}

TEST(RequestProbe, EscapesAndUnicodeInTheModelName) {
  EXPECT_EQ(probe(Route::api_chat, R"({"model":"llama\u00333.2"})").model, "llama33.2");
  EXPECT_EQ(probe(Route::api_chat, R"({"model":"qwen\/x:7b"})").model, "qwen/x:7b");
  EXPECT_EQ(probe(Route::api_chat, "{\"model\":\"\xE6\xA8\xA1\xE5\x9E\x8B:latest\"}").model,
            "\xE6\xA8\xA1\xE5\x9E\x8B:latest");
  EXPECT_EQ(probe(Route::api_chat, R"({"model":"m\ud83d\ude00"})").model, "m\xF0\x9F\x98\x80");
  EXPECT_EQ(probe(Route::api_chat, R"({"m\u006fdel":"x"})").model, "x");
}

TEST(RequestProbe, UnusableModelNamesAreUnknown) {
  for (const std::string& body :
       {std::string("{\"model\":\"a\xC3(b\"}"), std::string("{\"model\":\"a\xED\xA0\x80\"}"),
        std::string(R"({"model":"a\nb"})"), std::string(R"({"model":"a\u0000"})"),
        std::string(R"({"model":"a\u0085"})"), std::string(R"({"model":"a\u007f"})"),
        std::string(R"({"model":"a\ud800"})"), std::string(R"({"model":""})"),
        R"({"model":")" + std::string(model_bytes_max + 1, 'x') + R"("})"}) {
    EXPECT_EQ(probe(Route::api_generate, body).model, "unknown") << body;
  }
  const std::string longest(model_bytes_max, 'x');
  EXPECT_EQ(probe(Route::api_generate, R"({"model":")" + longest + R"("})").model, longest);
}

TEST(RequestProbe, DuplicateKeysFollowGoDecoding) {
  // encoding/json decodes every occurrence in order: the last one wins...
  EXPECT_EQ(probe(Route::api_chat, R"({"model":"a","model":"b"})").model, "b");
  EXPECT_EQ(probe(Route::api_chat, R"({"model":"a","MODEL":"b","Model":"c"})").model, "c");
  EXPECT_EQ(
      probe(Route::api_chat, R"({"model":"a","model":")" + std::string(300, 'x') + "\"}").model,
      "unknown");
  // ...null is a no-op for a string field and for a plain bool...
  EXPECT_EQ(probe(Route::api_chat, R"({"model":"a","model":null})").model, "a");
  EXPECT_TRUE(probe(Route::v1_chat_completions, R"({"stream":true,"stream":null})").stream);
  // ...but resets a *bool to its default.
  EXPECT_TRUE(probe(Route::api_chat, R"({"stream":false,"stream":null})").stream);
  EXPECT_FALSE(probe(Route::v1_responses, R"({"stream":true,"stream":null})").stream);
  // Go folds U+017F to 's': "ſtream" is the stream field.
  EXPECT_FALSE(probe(Route::api_chat, "{\"\xC5\xBFtream\":false}").stream);
  // *StreamOptions: null resets it, a later object merges into it.
  const Route chat = Route::v1_chat_completions;
  EXPECT_TRUE(probe(chat, R"({"stream_options":{"include_usage":true},"stream_options":{}})")
                  .include_usage);
  EXPECT_FALSE(probe(chat, R"({"stream_options":{"include_usage":true},"stream_options":null})")
                   .include_usage);
  EXPECT_TRUE(probe(chat, R"({"stream_options":{"include_usage":true,"include_usage":null}})")
                  .include_usage);
  EXPECT_TRUE(probe(chat, R"({"Stream_Options":{"Include_Usage":true}})").include_usage);
}

TEST(RequestProbe, NestedModelKeysAreNotTaken) {
  EXPECT_EQ(probe(Route::api_chat,
                  R"({"messages":[{"model":"x","stream":false}],"options":{"model":"y"},)"
                  R"("tools":[{"function":{"parameters":{"model":{"type":"string"}}}}]})"),
            (Facts{"unknown", true, false}));
}

TEST(RequestProbe, UnparsableBodies) {
  const Facts unparsable_chat{"unknown", true, false};
  for (const std::string& body :
       {std::string(R"({"model":5,"stream":false})"), std::string(R"({"model":"m","stream":"no"})"),
        std::string(R"(["model","m"])"), std::string(R"({"model":"m","stream":false)"),
        std::string(R"({"model":"m",,"stream":false})"), std::string(""),
        std::string("\xEF\xBB\xBF{\"model\":\"m\"}"), std::string(R"("m")"), std::string("null")}) {
    EXPECT_EQ(probe(Route::api_chat, body), unparsable_chat) << body;
  }
  EXPECT_EQ(probe(Route::v1_chat_completions,
                  R"({"model":"m","stream":true,"stream_options":{"include_usage":"yes"}})"),
            (Facts{"unknown", false, false}));
  // Content-Encoding: opaque.
  EXPECT_EQ(probe(Route::api_chat, {R"({"model":"m","stream":false})"}, true),
            (Facts{"unknown", true, false}));
}

TEST(RequestProbe, StopsAtTheEndOfTheRootValue) {
  RequestProbe p;
  p.init(Route::api_generate, false);
  const std::string body = R"({"model":"m","stream":false} trailing {"model":"x")";
  p.feed(body.data(), 28);
  EXPECT_TRUE(p.settled());
  p.feed(body.data() + 28, body.size() - 28);
  p.finish();
  EXPECT_EQ(p.model(), "m");
  EXPECT_FALSE(p.stream());
}

TEST(RequestProbe, EveryBodyIsSplitInvariant) {
  const std::vector<std::pair<Route, std::string>> bodies = {
      {Route::v1_chat_completions,
       R"({"messages":[{"role":"user","content":"a \"model\":\"x\" \\"}],"model":"ll\u0061ma",)"
       R"( "stream" : true , "stream_options" : { "include_usage" : false } })"},
      {Route::api_chat, "{\"MODEL\":\"\xE6\xA8\xA1\",\"\xC5\xBFtream\":false,\"model\":null}"},
      {Route::v1_completions, R"({"model":"a","model":"b\ud800","stream_options":null})"},
      {Route::api_generate, R"({"model":"m","stream":tru})"},
  };
  for (const auto& [route, body] : bodies) {
    SCOPED_TRACE(body);
    expect_split_invariant(route, body);
  }
}

TEST(ValidModelName, Utf8AndControlCharacters) {
  EXPECT_TRUE(valid_model_name("llama3.2:latest"));
  EXPECT_TRUE(valid_model_name("hf.co/bartowski/Qwen2.5-7B-GGUF:Q4_K_M"));
  EXPECT_TRUE(valid_model_name("\xC2\xA0\xF4\x8F\xBF\xBF"));  // U+00A0, U+10FFFF
  for (const std::string_view bad :
       {std::string_view(""), std::string_view("a\tb"), std::string_view("\x7f"),
        std::string_view("\xC2\x85"), std::string_view("\xC0\xAF"),
        std::string_view("\xE0\x80\xAF"), std::string_view("\xED\xA0\x80"),
        std::string_view("\xF4\x90\x80\x80"), std::string_view("\xF8\x88\x80\x80\x80"),
        std::string_view("\x80"), std::string_view("\xE6\xA8"), std::string_view("a\0b", 3)}) {
    EXPECT_FALSE(valid_model_name(bad)) << testing::PrintToString(std::string(bad));
  }
}

// ---- Injection ----------------------------------------------------------------------------

// key -> minified value, for the root object of json (simdjson DOM).
std::map<std::string, std::string> members(const std::string& json) {
  simdjson::dom::parser parser;
  simdjson::dom::object obj;
  EXPECT_EQ(parser.parse(json).get(obj), simdjson::SUCCESS) << json;
  std::map<std::string, std::string> m;
  for (const auto field : obj) m[std::string(field.key)] = simdjson::minify(field.value);
  return m;
}

std::string inject(const std::string& body, Route route = Route::v1_chat_completions,
                   InjectOutcome want = InjectOutcome::injected) {
  std::string out(body.size() + inject_growth_bytes_max, '\0');
  std::size_t len = 0;
  const InjectOutcome got = inject_include_usage(body, route, false, out.data(), out.size(), &len);
  EXPECT_EQ(inject_outcome_name(got), inject_outcome_name(want)) << body;
  out.resize(got == InjectOutcome::injected ? len : 0);
  return out;
}

TEST(InjectIncludeUsage, AddsTheMemberRightAfterTheRootBrace) {
  const std::string body =
      " {\"model\":\"llama3.2\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],"
      "\"stream\":true, \"temperature\":0.5}\n";
  const std::string out = inject(body);
  EXPECT_EQ(out, " {\"stream_options\":{\"include_usage\":true}," + body.substr(2));
  auto want = members(body);
  want["stream_options"] = R"({"include_usage":true})";
  EXPECT_EQ(members(out), want);
  RequestProbe p;
  p.init(Route::v1_chat_completions, false);
  p.feed(out.data(), out.size());
  p.finish();
  EXPECT_TRUE(p.include_usage());
  EXPECT_EQ(p.model(), "llama3.2");
}

TEST(InjectIncludeUsage, EditsAnExistingStreamOptions) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"({"stream":true,"stream_options":{}})",
       R"({"stream":true,"stream_options":{"include_usage":true}})"},
      {R"({"stream":true,"stream_options":{ "x":1 }})",
       R"({"stream":true,"stream_options":{"include_usage":true, "x":1 }})"},
      {R"({"stream":true,"stream_options":{"include_usage":false,"x":1}})",
       R"({"stream":true,"stream_options":{"include_usage":true,"x":1}})"},
      {R"({"stream":true,"stream_options":{"Include_Usage": null}})",
       R"({"stream":true,"stream_options":{"Include_Usage": true}})"},
      {R"({"stream_options":null,"stream":true})",
       R"({"stream_options":{"include_usage":true},"stream":true})"},
  };
  for (const auto& [body, want] : cases) {
    EXPECT_EQ(inject(body, Route::v1_completions), want);
    const auto m = members(inject(body, Route::v1_completions));
    EXPECT_EQ(members(m.at("stream_options")).count("x"), body.find("\"x\"") != std::string::npos);
  }
}

TEST(InjectIncludeUsage, ClearOutcomesWhenItDoesNotInject) {
  const std::string streaming = R"({"model":"m","stream":true})";
  inject(R"({"model":"m","stream":true,"stream_options":{"include_usage":true}})",
         Route::v1_chat_completions, InjectOutcome::client_asked);
  inject(R"({"model":"m"})", Route::v1_chat_completions, InjectOutcome::not_streaming);
  inject(R"({"model":"m","stream":true,"stream":false})", Route::v1_chat_completions,
         InjectOutcome::not_streaming);
  inject(streaming, Route::api_chat, InjectOutcome::wrong_route);
  inject(streaming, Route::v1_responses, InjectOutcome::wrong_route);
  inject(R"({"model":"m","stream":true)", Route::v1_chat_completions, InjectOutcome::not_json);
  inject("[1]", Route::v1_chat_completions, InjectOutcome::not_object);
  inject(R"({"stream":true,"stream_options":"x"})", Route::v1_chat_completions,
         InjectOutcome::rejected);
  inject(R"({"stream":true,"stream_options":{},"stream_options":{}})", Route::v1_chat_completions,
         InjectOutcome::ambiguous);
  inject(R"({"stream":true,"stream_options":{"include_usage":false,"include_usage":null}})",
         Route::v1_chat_completions, InjectOutcome::ambiguous);
  std::string out(64, '\0');
  std::size_t len = 0;
  EXPECT_EQ(inject_include_usage(streaming, Route::v1_chat_completions, true, out.data(),
                                 out.size(), &len),
            InjectOutcome::encoded);
  EXPECT_EQ(inject_include_usage(streaming, Route::v1_chat_completions, false, out.data(),
                                 streaming.size() + inject_growth_bytes_max - 1, &len),
            InjectOutcome::out_too_small);
  const std::string big =
      R"({"stream":true,"x":")" + std::string(inject_body_bytes_max, 'a') + "\"}";
  EXPECT_EQ(
      inject_include_usage(big, Route::v1_chat_completions, false, out.data(), out.size(), &len),
      InjectOutcome::too_large);
}

}  // namespace
}  // namespace tokentap
