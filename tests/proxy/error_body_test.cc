// error_body: each dialect's envelope, its type mapping and escaping.
#include "tokentap/proxy/error_body.h"

#include <gtest/gtest.h>
#include <simdjson.h>

#include <string>

namespace tokentap {
namespace {

std::string body(ErrorDialect d, int status, std::string_view msg, std::uint64_t seed = 7) {
  char out[1024];
  const std::size_t n = write_error_body(d, status, msg, seed, out, sizeof(out));
  return std::string(out, n);
}

TEST(ErrorBody, DialectFollowsThePath) {
  EXPECT_EQ(error_dialect_of("/api/chat"), ErrorDialect::ollama);
  EXPECT_EQ(error_dialect_of("/"), ErrorDialect::ollama);
  EXPECT_EQ(error_dialect_of("/v1/chat/completions?x=1"), ErrorDialect::openai);
  EXPECT_EQ(error_dialect_of("/v1/models"), ErrorDialect::openai);
  EXPECT_EQ(error_dialect_of("/v1/messages"), ErrorDialect::anthropic);
  EXPECT_EQ(error_dialect_of("/v1/messages?beta=true"), ErrorDialect::anthropic);
}

TEST(ErrorBody, EachEnvelopeExactly) {
  EXPECT_EQ(body(ErrorDialect::ollama, 502, "tokentap: down"), R"({"error":"tokentap: down"})");
  EXPECT_EQ(body(ErrorDialect::openai, 502, "tokentap: down"),
            "{\"error\":{\"message\":\"tokentap: down\",\"type\":\"api_error\",\"param\":null,"
            "\"code\":null}}\n");
  EXPECT_EQ(body(ErrorDialect::openai, 400, "x"),
            "{\"error\":{\"message\":\"x\",\"type\":\"invalid_request_error\",\"param\":null,"
            "\"code\":null}}\n");
  const std::string a = body(ErrorDialect::anthropic, 503, "busy", 0x0123456789abcdefULL);
  EXPECT_EQ(a, "{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":"
               "\"busy\"},\"request_id\":\"req_000123450123456789abcdef\"}\n");
  EXPECT_EQ(anthropic_error_type(502), "api_error");
  EXPECT_EQ(anthropic_error_type(429), "rate_limit_error");
}

TEST(ErrorBody, MessagesAreEscapedIntoValidJson) {
  for (ErrorDialect d : {ErrorDialect::ollama, ErrorDialect::openai, ErrorDialect::anthropic}) {
    const std::string b = body(d, 400, std::string("a\"b\\c\nd\x01", 8));
    simdjson::dom::parser p;
    simdjson::dom::element e;
    EXPECT_EQ(p.parse(b).get(e), simdjson::SUCCESS) << b;
    const std::string huge(4000, 'x');
    EXPECT_GT(body(d, 502, huge).size(), error_message_bytes_max) << "cut, not dropped";
  }
}

}  // namespace
}  // namespace tokentap
