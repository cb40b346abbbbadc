// Fake upstream, plan: the event scripts each endpoint streams, and where a mid-stream error cuts
// them (where Ollama stops).
#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

#include "plan.h"

namespace tokentap::fake {
namespace {

std::vector<Ev> events_of(const Plan& plan) {
  Script script;
  script.build(plan);
  Script::Cursor cursor;
  Script::Event e{};
  std::vector<Ev> evs;
  while (script.next(&cursor, &e)) evs.push_back(e.ev);
  return evs;
}

TEST(Script, MidstreamErrorCutsWhereOllamaStops) {
  Plan p;
  p.endpoint = Endpoint::v1_messages;
  p.tokens = 4;
  p.think_n = 2;
  EXPECT_EQ(events_of(p).size(), 1u + 4 + 4 + 2);  // start, 2 blocks × (start,2,stop), delta, stop
  p.error = FakeError::midstream;
  p.error_at = 2;  // after the thinking deltas: no content_block_stop, no message_delta
  EXPECT_EQ(events_of(p), (std::vector<Ev>{Ev::an_message_start, Ev::an_think_start,
                                           Ev::an_think_delta, Ev::an_think_delta}));
  p.endpoint = Endpoint::generate;
  EXPECT_EQ(events_of(p), (std::vector<Ev>{Ev::ol_piece, Ev::ol_piece, Ev::ol_error}));
  p.endpoint = Endpoint::v1_responses;
  p.error = FakeError::none;
  p.tool = true;  // text deltas, then the function call; no text "done" events
  const auto evs = events_of(p);
  EXPECT_EQ(std::count(evs.begin(), evs.end(), Ev::rs_text_done), 0);
  EXPECT_EQ(evs.back(), Ev::rs_completed);
}

TEST(Routes, FleetEndpointsAndPathCounters) {
  EXPECT_EQ(match_route("GET", "/api/ps").endpoint, Endpoint::ps);
  EXPECT_EQ(match_route("POST", "/api/ps").allow, "GET");
  EXPECT_EQ(match_route("GET", "/v1/models").endpoint, Endpoint::v1_models);
  EXPECT_EQ(match_route("GET", "/v1/models/x").endpoint, Endpoint::not_found);
  EXPECT_FALSE(is_inference(Endpoint::ps));
  EXPECT_FALSE(is_inference(Endpoint::v1_models));
  EXPECT_TRUE(is_inference(Endpoint::generate));
  EXPECT_TRUE(is_inference(Endpoint::v1_messages));
  // Per-path counters ignore the method.
  EXPECT_EQ(path_endpoint("/api/chat"), Endpoint::chat);
  EXPECT_EQ(path_endpoint("/api/tags"), Endpoint::tags);
  EXPECT_EQ(path_endpoint("/api/blobs/sha256:00"), Endpoint::blob_upload);
  EXPECT_EQ(path_endpoint("/nope"), Endpoint::not_found);
}

}  // namespace
}  // namespace tokentap::fake
