// Fake upstream, request_json: the request-body fields that shape the answer (model, stream,
// include_usage, tools, messages …), and bounded, crash-free refusal of invalid JSON.
#include <gtest/gtest.h>

#include <string>

#include "request_json.h"

namespace tokentap::fake {
namespace {

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

}  // namespace
}  // namespace tokentap::fake
