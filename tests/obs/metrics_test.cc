// MetricsShard: counters, gauges, bucket placement and the bounded series tables.
#include "tokentap/obs/metrics.h"
#include "shard_records.h"

#include <gtest/gtest.h>

#include <cmath>

namespace tokentap {
namespace {

std::uint64_t get(const Counter& c) { return c.load(std::memory_order_relaxed); }

RequestRecord chat(ModelId model, double duration_s, std::uint16_t status = 200) {
  RequestRecord r;
  r.route = Route::api_chat;
  r.model = model;
  r.status = status;
  r.stream = true;
  r.duration_s = duration_s;
  return r;
}

using test::finish;

const ModelSeries* find_model(const MetricsShard& s, Route route, ModelId model) {
  for (const ModelSeries& m : s.model_series()) {
    if (m.key.load() == model_key(route, model)) return &m;
  }
  return nullptr;
}

const RequestSeries* find_request(const MetricsShard& s, std::uint64_t key) {
  for (const RequestSeries& r : s.request_series()) {
    if (r.key.load() == key) return &r;
  }
  return nullptr;
}

// Index of the bucket a single observation of `v` lands in.
template <std::size_t B>
std::size_t bucket_of(const Histogram<B>& h) {
  for (std::size_t i = 0; i < h.buckets.size(); ++i) {
    if (get(h.buckets[i]) != 0) return i;
  }
  return h.buckets.size();
}

TEST(MetricsShard, ConnectionCounters) {
  MetricsShard s;
  s.connection_opened();
  s.connection_opened();
  s.connection_closed();
  s.connection_rejected(RejectReason::header_too_large);
  s.connection_rejected(RejectReason::header_too_large);
  s.upstream_error(UpstreamError::reset);
  EXPECT_EQ(get(s.scalars().connections_opened), 2u);
  EXPECT_EQ(get(s.scalars().connections_closed), 1u);
  EXPECT_EQ(get(s.scalars().rejected[2]), 2u);
  EXPECT_EQ(get(s.scalars().rejected[0]), 0u);
  EXPECT_EQ(get(s.scalars().upstream_errors[1]), 1u);
}

TEST(MetricsShard, DurationBucketBoundariesAreInclusive) {
  for (std::size_t i = 0; i < duration_bounds_s.size(); ++i) {
    MetricsShard at, above;
    finish(at, chat(5, duration_bounds_s[i]));
    finish(above, chat(5, std::nextafter(duration_bounds_s[i], 1e9)));
    EXPECT_EQ(bucket_of(find_model(at, Route::api_chat, 5)->duration[1]), i);
    EXPECT_EQ(bucket_of(find_model(above, Route::api_chat, 5)->duration[1]), i + 1);
  }
  MetricsShard zero;
  finish(zero, chat(5, 0));
  EXPECT_EQ(bucket_of(find_model(zero, Route::api_chat, 5)->duration[1]), 0u);
}

TEST(MetricsShard, TtftTpotAndTokensPerSecondBoundaries) {
  MetricsShard s;
  RequestRecord r = chat(7, 1.0);
  r.ttft_s = ttft_bounds_s[3];
  r.tpot_s = tpot_bounds_s[16];
  r.completion_tokens = 100;
  r.eval_ns = 2'000'000'000;  // 50 tokens/s exactly: the le="50" bucket
  finish(s, r);
  const ModelSeries* m = find_model(s, Route::api_chat, 7);
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(bucket_of(m->ttft), 3u);
  EXPECT_EQ(bucket_of(m->tpot), 16u);
  EXPECT_EQ(bucket_of(m->tokens_per_second), 7u);
  EXPECT_DOUBLE_EQ(m->tokens_per_second.sum.load(), 50.0);
  EXPECT_EQ(get(m->eval_ns), 2'000'000'000u);
  r.ttft_s = 1e6;  // past the last bound: +Inf
  finish(s, r);
  EXPECT_EQ(get(m->ttft.buckets.back()), 1u);
}

TEST(MetricsShard, RequestFinishedCountsEveryField) {
  MetricsShard s;
  s.request_started(Route::v1_chat_completions, 9);
  RequestRecord r;
  r.route = Route::v1_chat_completions;
  r.model = 9;
  r.status = 499;
  r.duration_s = 0.75;
  r.prompt_tokens = 11;
  r.completion_tokens = 22;
  r.client_aborted = true;
  r.usage_missing = true;
  r.request_bytes = 300;
  r.response_bytes = 4000;
  s.request_finished(r);
  const ModelSeries* m = find_model(s, Route::v1_chat_completions, 9);
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(get(m->started), 1u);
  EXPECT_EQ(get(m->finished), 1u);
  EXPECT_EQ(get(m->prompt_tokens), 11u);
  EXPECT_EQ(get(m->completion_tokens), 22u);
  EXPECT_EQ(get(m->client_aborts), 1u);
  EXPECT_DOUBLE_EQ(m->duration[0].sum.load(), 0.75);
  EXPECT_EQ(bucket_of(m->duration[0]), 7u);                             // 0.5 < 0.75 <= 1
  EXPECT_EQ(bucket_of(m->duration[1]), m->duration[1].buckets.size());  // stream=false only
  const RequestSeries* req =
      find_request(s, request_key(Route::v1_chat_completions, 9, 499, false));
  ASSERT_NE(req, nullptr);
  EXPECT_EQ(get(req->count), 1u);
  const auto route = static_cast<std::size_t>(Route::v1_chat_completions);
  EXPECT_EQ(get(s.scalars().request_bytes[route]), 300u);
  EXPECT_EQ(get(s.scalars().response_bytes[route]), 4000u);
  EXPECT_EQ(get(s.scalars().usage_missing[route]), 1u);
}

TEST(MetricsShard, ActiveGaugeOnlyForInferenceRoutes) {
  MetricsShard s;
  s.request_started(Route::other, model_unknown);  // not metered as inference
  s.request_started(Route::api_generate, 3);
  s.request_started(Route::api_generate, 3);
  const ModelSeries* m = find_model(s, Route::api_generate, 3);
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(get(m->started) - get(m->finished), 2u);
  RequestRecord r = chat(3, 0.1);
  r.route = Route::api_generate;
  s.request_finished(r);
  EXPECT_EQ(get(m->started) - get(m->finished), 1u);
  RequestRecord other;
  other.route = Route::other;
  other.status = 404;
  s.request_finished(other);
  EXPECT_EQ(find_model(s, Route::other, model_unknown)->started.load(), 0u);
}

TEST(MetricsShardDeathTest, FinishWithoutStartIsAProgrammerError) {
  MetricsShard s;
  EXPECT_DEATH(s.request_finished(chat(3, 0.1)), "assertion failed");
}

TEST(MetricsShard, ZeroUpstreamFieldsAddNothing) {
  MetricsShard s;
  s.request_started(Route::api_chat, 4);
  s.request_finished(chat(4, 0.2));
  const ModelSeries* m = find_model(s, Route::api_chat, 4);
  EXPECT_EQ(get(m->prompt_tokens) + get(m->completion_tokens) + get(m->load_ns) +
                get(m->prompt_eval_ns) + get(m->eval_ns),
            0u);
  std::uint64_t tps = 0, ttft = 0;
  for (const auto& b : m->tokens_per_second.buckets) tps += get(b);
  for (const auto& b : m->ttft.buckets) ttft += get(b);
  EXPECT_EQ(tps + ttft, 0u);
}

TEST(MetricsShard, FullTablesCountIntoOverflowWithoutLosingIncrements) {
  MetricsShard s(MetricsLimits{.model_series = 2, .request_series = 3});
  for (ModelId model = 2; model < 12; ++model) {
    s.request_started(Route::api_chat, model);
    RequestRecord r = chat(model, 0.5);
    r.prompt_tokens = 10;
    s.request_finished(r);
  }
  EXPECT_EQ(s.model_series().size(), 2u);
  EXPECT_EQ(s.request_series().size(), 3u);
  const ModelSeries& overflow = s.overflow_models()[static_cast<std::size_t>(Route::api_chat)];
  EXPECT_EQ(get(overflow.prompt_tokens), 80u);  // 8 of 10 models found no slot
  EXPECT_EQ(get(overflow.started), 8u);
  EXPECT_EQ(get(overflow.finished), 8u);
  const OverflowRequests& o = s.overflow_requests(Route::api_chat, true);
  EXPECT_EQ(get(o.count[200 - status_min]), 7u);  // 7 of 10 request keys found no slot
  EXPECT_NE(o.touched[(200 - status_min) / 64].load() & (1ull << ((200 - status_min) % 64)), 0u);
}

TEST(MetricsShard, OverflowModelNeverTakesATableSlot) {
  MetricsShard s;
  s.request_started(Route::api_chat, model_overflow);
  s.request_finished(chat(model_overflow, 1.0, 503));
  EXPECT_EQ(s.model_series().size(), 0u);
  EXPECT_EQ(s.request_series().size(), 0u);
  EXPECT_EQ(get(s.overflow_requests(Route::api_chat, true).count[503 - status_min]), 1u);
  EXPECT_EQ(get(s.overflow_models()[static_cast<std::size_t>(Route::api_chat)].finished), 1u);
}

TEST(MetricsShard, RetriesByReason) {
  MetricsShard s;
  s.retry(RetryReason::busy);
  s.retry(RetryReason::busy);
  s.retry(RetryReason::connect);
  EXPECT_EQ(get(s.scalars().retries[static_cast<std::size_t>(RetryReason::connect)]), 1u);
  EXPECT_EQ(get(s.scalars().retries[static_cast<std::size_t>(RetryReason::reset)]), 0u);
  EXPECT_EQ(get(s.scalars().retries[static_cast<std::size_t>(RetryReason::busy)]), 2u);
}

TEST(MetricsShard, BackendSeriesOnlyForARequestWithABackend) {
  MetricsShard s;
  RequestRecord r = chat(5, 0.3, 200);
  r.ttft_s = ttft_bounds_s[2];
  r.prompt_tokens = 7;
  r.completion_tokens = 9;
  finish(s, r);  // backend_none: no backend series
  EXPECT_EQ(s.backends_seen(), 0u);
  EXPECT_TRUE(s.backend_model_series().empty());
  r.backend = 3;
  r.attempts = 2;
  finish(s, r);
  r.status = 503;
  r.ttft_s.reset();
  r.completion_tokens = 0;
  finish(s, r);
  EXPECT_EQ(s.backends_seen(), 1u << 3);
  const BackendSeries& b = s.backend(3);
  EXPECT_EQ(get(b.requests[200 - status_min]), 1u);
  EXPECT_EQ(get(b.requests[503 - status_min]), 1u);
  EXPECT_NE(b.touched[(503 - status_min) / 64].load() & (1ull << ((503 - status_min) % 64)), 0u);
  EXPECT_EQ(bucket_of(b.ttft), 2u);
  ASSERT_EQ(s.backend_model_series().size(), 1u);
  const BackendModelSeries& m = s.backend_model_series()[0];
  EXPECT_EQ(m.key.load(), backend_model_key(3, 5));
  EXPECT_EQ(get(m.prompt_tokens), 14u);
  EXPECT_EQ(get(m.completion_tokens), 9u);
  // The per-model families are counted as before, whatever the backend.
  EXPECT_EQ(get(find_model(s, Route::api_chat, 5)->prompt_tokens), 21u);
}

TEST(MetricsShard, FullBackendTokenTableCountsIntoTheBackendsOverflow) {
  MetricsShard s(MetricsLimits{.backend_model_series = 2});
  for (ModelId model = 2; model < 6; ++model) {
    RequestRecord r = chat(model, 0.1);
    r.backend = 0;
    r.prompt_tokens = 10;
    finish(s, r);
  }
  RequestRecord r = chat(model_overflow, 0.1);
  r.backend = 0;
  r.completion_tokens = 5;
  finish(s, r);
  RequestRecord none = chat(7, 0.1);
  none.backend = 1;  // no tokens: no table slot
  finish(s, none);
  EXPECT_EQ(s.backend_model_series().size(), 2u);
  EXPECT_EQ(get(s.backend(0).prompt_tokens_overflow), 20u);
  EXPECT_EQ(get(s.backend(0).completion_tokens_overflow), 5u);
  EXPECT_EQ(get(s.backend(1).prompt_tokens_overflow), 0u);
  EXPECT_EQ(s.backends_seen(), 3u);
}

TEST(MetricsShardDeathTest, BackendIndexPastTheSlotsIsAProgrammerError) {
  MetricsShard s;
  RequestRecord r = chat(3, 0.1);
  r.backend = backend_slots_max;
  EXPECT_DEATH(finish(s, r), "assertion failed");
}

}  // namespace
}  // namespace tokentap
