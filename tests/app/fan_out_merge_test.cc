// fan_out_merge: the fan-out's pure policies without sockets — routes, `stream`, progress lines,
// and the merged reply of each route for every mix of backend outcomes (fan_out.h rules).
#include "tokentap/app/fan_out_merge.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace tokentap {
namespace {

LegOutcome answered(std::string name, int status, std::string body = {}) {
  LegOutcome o;
  o.name = std::move(name);
  o.end = LegEnd::answered;
  o.status = status;
  o.body = std::move(body);
  return o;
}

LegOutcome ended(std::string name, LegEnd end) {
  LegOutcome o;
  o.name = std::move(name);
  o.end = end;
  return o;
}

LegOutcome pulled(std::string name) {
  LegOutcome o = answered(std::move(name), 200);
  o.success_line = true;
  return o;
}

TEST(FanOutMerge, PullStreamsUnlessStreamIsFalse) {
  EXPECT_TRUE(pull_streams(R"({"model":"x"})"));
  EXPECT_TRUE(pull_streams(R"({"model":"x","stream":true})"));
  EXPECT_TRUE(pull_streams(R"({"model":"x","stream":null})"));
  EXPECT_TRUE(pull_streams("not json"));
  EXPECT_FALSE(pull_streams(R"({"model":"x","stream":false})"));
}

TEST(FanOutMerge, PullLines) {
  std::string error;
  EXPECT_EQ(read_pull_line(R"({"status":"success"})", &error), PullLine::success);
  EXPECT_EQ(read_pull_line(R"({"status":"pulling manifest"})", &error), PullLine::progress);
  EXPECT_EQ(read_pull_line("garbage", &error), PullLine::progress);
  EXPECT_EQ(read_pull_line(R"({"error":"a \"b\""})", &error), PullLine::error);
  EXPECT_EQ(error, R"(a "b")");
}

TEST(FanOutMerge, StreamEndIsSuccessOnlyWhenEveryBackendSucceeded) {
  EXPECT_EQ(pull_stream_end({pulled("a"), pulled("b")}), "{\"status\":\"success\"}\n");
  LegOutcome failed = answered("b", 200);
  failed.error = "disk \"full\"";
  EXPECT_EQ(pull_stream_end({pulled("a"), failed}), "{\"error\":\"b: disk \\\"full\\\"\"}\n");
  EXPECT_EQ(pull_stream_end({pulled("a"), answered("c", 200)}),
            "{\"error\":\"c: tokentap: pull ended without success\"}\n");
  EXPECT_EQ(pull_stream_end({ended("d", LegEnd::closed_early), pulled("a")}),
            "{\"error\":\"d: tokentap: backend closed the connection early\"}\n");
}

TEST(FanOutMerge, StreamHeadFailure) {
  EXPECT_EQ(pull_head_failure({pulled("a"), ended("b", LegEnd::unreachable)}), -1);
  EXPECT_EQ(pull_head_failure({pulled("a"), answered("b", 400), answered("c", 500)}), 1);
  EXPECT_EQ(pull_head_failure({ended("a", LegEnd::unreachable), ended("b", LegEnd::timed_out)}),
            0);
}

TEST(FanOutMerge, FailureStatuses) {
  EXPECT_EQ(leg_failure(ended("a", LegEnd::unreachable)).status, 502);
  EXPECT_EQ(leg_failure(ended("a", LegEnd::timed_out)).status, 504);
  EXPECT_EQ(leg_failure(ended("a", LegEnd::timed_out)).body,
            R"({"error":"a: tokentap: backend timed out"})");
  const FanOutReply r = leg_failure(answered("a", 500, R"({"error":"boom"})"));
  EXPECT_EQ(r.status, 500);
  EXPECT_EQ(r.body, R"({"error":"a: boom"})");
  EXPECT_EQ(leg_failure(answered("a", 503, "<html>")).body,
            R"({"error":"a: tokentap: backend answered 503"})");
}

TEST(FanOutMerge, Delete) {
  const std::string not_found = R"({"error":"model 'x' not found"})";
  EXPECT_EQ(merge_delete({answered("a", 200), answered("b", 200)}).status, 200);
  const FanOutReply some = merge_delete({answered("a", 404, not_found), answered("b", 200)});
  EXPECT_EQ(some.status, 200);
  EXPECT_TRUE(some.body.empty());
  EXPECT_TRUE(some.content_type.empty());
  const FanOutReply none = merge_delete({answered("a", 404, not_found), answered("b", 404, "")});
  EXPECT_EQ(none.status, 404);
  EXPECT_EQ(none.body, not_found);
  const FanOutReply broken =
      merge_delete({answered("a", 200), answered("b", 404), answered("c", 500, "{}")});
  EXPECT_EQ(broken.status, 500);
  EXPECT_EQ(broken.body, R"({"error":"c: tokentap: backend answered 500"})");
}

TEST(FanOutMerge, CopyAndNonStreamPull) {
  EXPECT_EQ(merge_copy({answered("a", 200), answered("b", 200)}).status, 200);
  EXPECT_EQ(merge_copy({answered("a", 200), answered("b", 404)}).status, 404);
  const FanOutReply ok = merge_pull({answered("a", 200, R"({"status":"success"})")});
  EXPECT_EQ(ok.body, R"({"status":"success"})");
  EXPECT_EQ(merge_pull({answered("a", 200, R"({"error":"x"})")}).status, 502);
}

TEST(FanOutMerge, ReplyBytes) {
  EXPECT_EQ(reply_bytes(FanOutReply{200, {}, {}}),
            "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(reply_bytes(local_error(502, "tokentap: no healthy backend")),
            "HTTP/1.1 502 Bad Gateway\r\nContent-Type: application/json; charset=utf-8\r\n"
            "Content-Length: 40\r\nConnection: close\r\n\r\n"
            R"({"error":"tokentap: no healthy backend"})");
}

}  // namespace
}  // namespace tokentap
