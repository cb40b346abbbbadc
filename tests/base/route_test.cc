// Route table: every labelled path maps to itself, everything else to `other`.
#include "tokentap/base/route.h"

#include <gtest/gtest.h>

namespace tokentap {
namespace {

TEST(Route, EveryLabelledPathMapsToItsRoute) {
  for (std::size_t i = 0; i + 1 < route_count; ++i) {
    const auto r = static_cast<Route>(i);
    EXPECT_EQ(route_of(route_label(r)), r) << route_label(r);
    EXPECT_TRUE(is_inference(r));
  }
}

TEST(Route, UnknownAndUncleanPathsAreOther) {
  for (const char* path : {"/", "/api/tags", "/api/chat/", "//api/chat", "/API/CHAT", "",
                           "/v1/models", "/v1/messages/count_tokens", "/api/generatex"}) {
    EXPECT_EQ(route_of(path), Route::other) << path;
  }
  EXPECT_FALSE(is_inference(Route::other));
  EXPECT_EQ(route_label(Route::other), "other");
}

TEST(Route, QueryStringIsIgnored) {
  EXPECT_EQ(route_of("/api/generate?x=1"), Route::api_generate);
  EXPECT_EQ(route_of("/v1/chat/completions?"), Route::v1_chat_completions);
}

TEST(Route, StreamDefaultsFollowTheWireFormat) {
  EXPECT_TRUE(route_info(Route::api_generate).stream_default);
  EXPECT_TRUE(route_info(Route::api_chat).stream_default);
  EXPECT_FALSE(route_info(Route::v1_chat_completions).stream_default);
  EXPECT_FALSE(route_info(Route::v1_messages).stream_default);
}

// The proxy and the fan-out service both ask this one function which requests fan out.
TEST(Route, FanOutRoutesArePullDeleteAndCopyWithTheirMethods) {
  EXPECT_EQ(fan_out_route("POST", "/api/pull"), FanOutRoute::pull);
  EXPECT_EQ(fan_out_route("POST", "/api/pull?x=1"), FanOutRoute::pull);
  EXPECT_EQ(fan_out_route("DELETE", "/api/delete"), FanOutRoute::delete_model);
  EXPECT_EQ(fan_out_route("POST", "/api/copy"), FanOutRoute::copy_model);
  EXPECT_EQ(fan_out_route("GET", "/api/pull"), FanOutRoute::other);
  EXPECT_EQ(fan_out_route("POST", "/api/pulls"), FanOutRoute::other);
  EXPECT_EQ(target_path("/api/tags?x=1"), "/api/tags");
  EXPECT_EQ(target_path("/api/tags"), "/api/tags");
}

}  // namespace
}  // namespace tokentap
