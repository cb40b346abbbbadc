// prom_text: exposition format, merging of shards, series creation rules, cardinality, promtool.
#include "tokentap/obs/prom_text.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <memory>
#include <random>
#include <thread>

#include "prom_samples.h"
#include "promtool_check.h"
#include "shard_records.h"

namespace tokentap {
namespace {

using testing::Exposition;
using testing::Labels;
using testing::parse_exposition;
using testing::value_of;

constexpr std::string_view version = "1.2.3";

std::string render_all(const std::vector<const MetricsShard*>& shards, const ModelTable& models,
                       const ProcessStats& process = {}) {
  std::string out;
  PromRenderer().render(shards, models, process, version, out);
  return out;
}

Exposition parsed(const std::string& text) {
  Exposition e = parse_exposition(text);
  EXPECT_EQ(e.error, "") << text.substr(0, 2000);
  return e;
}

RequestRecord record(Route route, ModelId model, std::uint16_t status, bool stream, double d) {
  RequestRecord r;
  r.route = route;
  r.model = model;
  r.status = status;
  r.stream = stream;
  r.duration_s = d;
  return r;
}

using test::finish;

TEST(PromText, EscapesLabelValues) {
  std::string out;
  append_label_value(out, "plain");
  append_label_value(out, "a\\b\"c\nd");
  EXPECT_EQ(out, "plaina\\\\b\\\"c\\nd");
}

TEST(PromText, EmptyShardsRenderOnlyTheAlwaysPresentFamilies) {
  ModelTable models(8);
  MetricsShard a, b;
  ProcessStats p;
  p.cpu_seconds = 1.25;
  p.resident_bytes = 4096;
  p.open_fds = 7;
  p.start_time_seconds = 1700000000.5;
  const Exposition e = parsed(render_all({&a, &b}, models, p));
  EXPECT_EQ(e.family_order,
            (std::vector<std::string>{"tokentap_upstream_errors_total", "tokentap_connections_open",
                                      "tokentap_connections_total",
                                      "tokentap_connections_rejected_total", "tokentap_build_info",
                                      "process_cpu_seconds_total", "process_resident_memory_bytes",
                                      "process_open_fds", "process_start_time_seconds"}));
  EXPECT_EQ(value_of(e, "tokentap_upstream_errors_total", {{"kind", "malformed"}}), 0);
  EXPECT_EQ(value_of(e, "tokentap_connections_rejected_total", {{"reason", "limit"}}), 0);
  EXPECT_EQ(value_of(e, "tokentap_build_info", {{"version", "1.2.3"}}), 1);
  EXPECT_EQ(value_of(e, "process_cpu_seconds_total"), 1.25);
  EXPECT_EQ(value_of(e, "process_resident_memory_bytes"), 4096);
  EXPECT_EQ(value_of(e, "process_open_fds"), 7);
  EXPECT_EQ(value_of(e, "process_start_time_seconds"), 1700000000.5);
}

TEST(PromText, ExactLinesForOneRequest) {
  ModelTable models(8);
  MetricsShard s;
  RequestRecord r = record(Route::api_chat, models.intern("llama3"), 200, true, 0.5);
  r.ttft_s = 0.04;
  finish(s, r);
  const std::string text = render_all({&s}, models);
  const char* expected_lines[] = {
      "# HELP tokentap_requests_total Requests completed, by endpoint, model, status and stream.\n"
      "# TYPE tokentap_requests_total counter\n"
      "tokentap_requests_total{endpoint=\"/api/chat\",model=\"llama3\",status=\"200\","
      "stream=\"true\"} 1\n"
      "# HELP tokentap_request_duration_seconds",
      "# TYPE tokentap_request_duration_seconds histogram\n",
      "tokentap_request_duration_seconds_bucket{endpoint=\"/api/chat\",model=\"llama3\","
      "stream=\"true\",le=\"0.25\"} 0\n"
      "tokentap_request_duration_seconds_bucket{endpoint=\"/api/chat\",model=\"llama3\","
      "stream=\"true\",le=\"0.5\"} 1\n",
      "tokentap_request_duration_seconds_bucket{endpoint=\"/api/chat\",model=\"llama3\","
      "stream=\"true\",le=\"1280\"} 1\n"
      "tokentap_request_duration_seconds_bucket{endpoint=\"/api/chat\",model=\"llama3\","
      "stream=\"true\",le=\"+Inf\"} 1\n"
      "tokentap_request_duration_seconds_sum{endpoint=\"/api/chat\",model=\"llama3\","
      "stream=\"true\"} 0.5\n"
      "tokentap_request_duration_seconds_count{endpoint=\"/api/chat\",model=\"llama3\","
      "stream=\"true\"} 1\n",
      "tokentap_time_to_first_token_seconds_bucket{endpoint=\"/api/chat\",model=\"llama3\","
      "le=\"0.04\"} 1\n",
      "tokentap_active_requests{endpoint=\"/api/chat\",model=\"llama3\"} 0\n",
  };
  for (const char* line : expected_lines) EXPECT_NE(text.find(line), std::string::npos) << line;
  const Exposition e = parsed(text);
  for (const auto& [family, count] : e.help_lines) EXPECT_EQ(count, 1) << family;
  EXPECT_EQ(e.help_lines.size(), e.types.size());
  EXPECT_EQ(e.types.at("tokentap_request_duration_seconds"), "histogram");
  EXPECT_EQ(e.types.at("tokentap_active_requests"), "gauge");
}

TEST(PromText, HistogramBucketsAreCumulativeAndCountIsInfBucket) {
  ModelTable models(8);
  MetricsShard s;
  const ModelId m = models.intern("m");
  for (const double d : {0.001, 0.005, 0.3, 3.0, 3.0, 2000.0}) {
    finish(s, record(Route::api_generate, m, 200, false, d));
  }
  const Exposition e = parsed(render_all({&s}, models));
  const Labels base{{"endpoint", "/api/generate"}, {"model", "m"}, {"stream", "false"}};
  const auto bucket = [&](const char* le) {
    Labels l = base;
    l["le"] = le;
    return value_of(e, "tokentap_request_duration_seconds_bucket", l);
  };
  EXPECT_EQ(bucket("0.005"), 2);
  EXPECT_EQ(bucket("0.25"), 2);
  EXPECT_EQ(bucket("0.5"), 3);
  EXPECT_EQ(bucket("5"), 5);
  EXPECT_EQ(bucket("1280"), 5);
  EXPECT_EQ(bucket("+Inf"), 6);
  EXPECT_EQ(value_of(e, "tokentap_request_duration_seconds_count", base), 6);
  EXPECT_DOUBLE_EQ(*value_of(e, "tokentap_request_duration_seconds_sum", base), 2006.306);
  double previous = 0;
  for (const auto& sample : e.samples) {
    if (sample.name != "tokentap_request_duration_seconds_bucket") continue;
    EXPECT_GE(sample.value, previous);
    previous = sample.value;
  }
}

TEST(PromText, AbsentFieldsCreateNoSeries) {
  ModelTable models(8);
  MetricsShard s;
  const ModelId m = models.intern("m");
  finish(s, record(Route::api_generate, m, 200, true, 1.0));  // no usage at all
  const Exposition bare = parsed(render_all({&s}, models));
  for (const char* family :
       {"tokentap_time_to_first_token_seconds", "tokentap_time_per_output_token_seconds",
        "tokentap_prompt_tokens_total", "tokentap_completion_tokens_total",
        "tokentap_generation_tokens_per_second", "tokentap_prompt_eval_seconds_total",
        "tokentap_generation_seconds_total", "tokentap_model_load_seconds_total",
        "tokentap_client_aborts_total", "tokentap_usage_missing_total",
        "tokentap_request_bytes_total"}) {
    EXPECT_EQ(bare.types.count(family), 0u) << family;
  }
  RequestRecord r = record(Route::api_generate, m, 200, true, 1.0);
  r.prompt_tokens = 5;  // completion, eval and load stay zero
  r.prompt_eval_ns = 250'000'000;
  finish(s, r);
  const Exposition e = parsed(render_all({&s}, models));
  const Labels em{{"endpoint", "/api/generate"}, {"model", "m"}};
  EXPECT_EQ(value_of(e, "tokentap_prompt_tokens_total", em), 5);
  EXPECT_EQ(value_of(e, "tokentap_prompt_eval_seconds_total", {{"model", "m"}}), 0.25);
  EXPECT_EQ(e.types.count("tokentap_completion_tokens_total"), 0u);
  EXPECT_EQ(e.types.count("tokentap_model_load_seconds_total"), 0u);
  EXPECT_EQ(e.types.count("tokentap_generation_tokens_per_second"), 0u);
  EXPECT_EQ(
      value_of(
          e, "tokentap_requests_total",
          {{"endpoint", "/api/generate"}, {"model", "m"}, {"status", "200"}, {"stream", "true"}}),
      2);
}

TEST(PromText, ModelNamesAreEscapedAndSeriesSortedByName) {
  ModelTable models(8);
  MetricsShard s;
  for (const char* name : {"zeta", "we\"ird\\name", "alpha"}) {
    finish(s, record(Route::api_embed, models.intern(name), 200, false, 0.01));
  }
  const std::string text = render_all({&s}, models);
  EXPECT_NE(text.find("model=\"we\\\"ird\\\\name\""), std::string::npos);
  const Exposition e = parsed(text);
  std::vector<std::string> order;
  for (const auto& sample : e.samples) {
    if (sample.name == "tokentap_requests_total") order.push_back(sample.labels.at("model"));
  }
  EXPECT_EQ(order, (std::vector<std::string>{"alpha", "we\"ird\\name", "zeta"}));
  EXPECT_EQ(text, render_all({&s}, models));  // same state, same bytes
  std::string one_shot;
  const std::vector<const MetricsShard*> views{&s};
  render(views, models, {}, version, one_shot);
  EXPECT_EQ(one_shot, text);
}

// A deterministic mix of requests whose durations are exact binary fractions, so sums do not
// depend on the order they are added in.
std::vector<RequestRecord> mixed_records(ModelTable& models, int count) {
  std::mt19937 rng(7);
  std::vector<RequestRecord> out;
  for (int i = 0; i < count; ++i) {
    const auto route = static_cast<Route>(rng() % route_count);
    const ModelId model = models.intern("m" + std::to_string(rng() % 13));
    RequestRecord r = record(route, model, 200 + 100 * (rng() % 4), rng() % 2 == 0,
                             static_cast<double>(rng() % 4096) / 64.0);
    if (is_inference(route)) {
      if (rng() % 2) r.ttft_s = static_cast<double>(rng() % 512) / 256.0;
      if (rng() % 2) r.tpot_s = static_cast<double>(rng() % 64) / 1024.0;
      r.prompt_tokens = rng() % 3 == 0 ? 0 : rng() % 5000;
      r.completion_tokens = rng() % 3 == 0 ? 0 : rng() % 900;
      // 1e9 >> k: tokens per second come out as whole numbers, so their sums are exact too.
      r.eval_ns = rng() % 2 ? std::uint64_t{1'000'000'000} >> (rng() % 4) : 0;
      r.load_ns = rng() % 5;
      r.client_aborted = rng() % 7 == 0;
      r.usage_missing = rng() % 9 == 0;
    }
    r.request_bytes = rng() % 10000;
    r.response_bytes = rng() % 100000;
    out.push_back(r);
  }
  return out;
}

TEST(PromText, MergeOfShardsEqualsOneShardWithEverything) {
  ModelTable models(32);
  const std::vector<RequestRecord> records = mixed_records(models, 5000);
  MetricsShard single;
  std::uint64_t prompt_tokens = 0;
  for (const RequestRecord& r : records) {
    finish(single, r);
    prompt_tokens += r.prompt_tokens;
  }
  single.request_started(Route::api_chat, 2);  // one request still in flight
  const std::string expected = render_all({&single}, models);
  for (const int n : {2, 3, 16}) {
    std::vector<std::unique_ptr<MetricsShard>> shards;
    std::vector<const MetricsShard*> views;
    for (int i = 0; i < n; ++i) views.push_back(shards.emplace_back(new MetricsShard).get());
    std::mt19937 rng(n);
    for (const RequestRecord& r : records) finish(*shards[rng() % n], r);
    shards[n - 1]->request_started(Route::api_chat, 2);
    EXPECT_EQ(render_all(views, models), expected) << n << " shards";
  }
  const Exposition e = parsed(expected);
  double rendered_prompt = 0;
  for (const auto& s : e.samples) {
    if (s.name == "tokentap_prompt_tokens_total") rendered_prompt += s.value;
  }
  EXPECT_EQ(rendered_prompt, static_cast<double>(prompt_tokens));
  double in_flight = 0;
  for (const auto& s : e.samples) {
    if (s.name == "tokentap_active_requests") in_flight += s.value;
  }
  EXPECT_EQ(in_flight, 1);
}

TEST(PromText, TenThousandModelNamesStayWithinTheCap) {
  constexpr std::uint32_t max_models = 64;
  ModelTable models(max_models);
  std::vector<std::unique_ptr<MetricsShard>> shards;
  std::vector<const MetricsShard*> views;
  for (int i = 0; i < 4; ++i) views.push_back(shards.emplace_back(new MetricsShard).get());
  for (int i = 0; i < 10'000; ++i) {
    const ModelId m = models.intern(i % 97 == 0 ? "bad\nname" : "model-" + std::to_string(i));
    RequestRecord r = record(Route::v1_chat_completions, m, 200, true, 0.1);
    r.ttft_s = 0.01;
    r.prompt_tokens = 1;
    r.eval_ns = 1000;
    r.completion_tokens = 1;
    finish(*shards[i % 4], r);
  }
  const Exposition e = parsed(render_all(views, models));
  for (const std::string& family : e.family_order) {
    const auto values = testing::label_values(e, family, "model");
    EXPECT_LE(values.size(), max_models + 2) << family;
  }
  const auto values = testing::label_values(e, "tokentap_requests_total", "model");
  EXPECT_EQ(values.size(), max_models + 2);
  EXPECT_EQ(values.count("__overflow__"), 1u);
  EXPECT_EQ(values.count("unknown"), 1u);
  double total = 0;
  for (const auto& s : e.samples) total += s.name == "tokentap_requests_total" ? s.value : 0;
  EXPECT_EQ(total, 10'000);  // nothing lost to the cap
}

TEST(PromText, FullShardTablesRenderUnderOverflowWithExactSums) {
  ModelTable models(16);
  MetricsShard small(MetricsLimits{.model_series = 1, .request_series = 1});
  MetricsShard roomy;
  const ModelId a = models.intern("a");
  const ModelId b = models.intern("b");
  for (MetricsShard* s : {&small, &roomy}) {
    RequestRecord r = record(Route::api_chat, a, 200, true, 1);
    r.completion_tokens = 3;
    finish(*s, r);
    r.model = b;
    r.status = 500;
    finish(*s, r);
  }
  const Exposition e = parsed(render_all({&small, &roomy}, models));
  const auto requests = [&](const char* model, const char* status) {
    return value_of(
        e, "tokentap_requests_total",
        {{"endpoint", "/api/chat"}, {"model", model}, {"status", status}, {"stream", "true"}});
  };
  EXPECT_EQ(requests("a", "200"), 2);
  EXPECT_EQ(requests("b", "500"), 1);
  EXPECT_EQ(requests("__overflow__", "500"), 1);
  const Labels ov{{"endpoint", "/api/chat"}, {"model", "__overflow__"}};
  EXPECT_EQ(value_of(e, "tokentap_completion_tokens_total", ov), 3);
  EXPECT_EQ(value_of(e, "tokentap_active_requests", ov), 0);
}

TEST(PromText, ConcurrentWriterNeverShowsTornHistogramsOrNegativeGauges) {
  ModelTable models(8);
  MetricsShard s;
  const ModelId m = models.intern("m");
  std::atomic<bool> done{false};
  std::atomic<int> iterations{0};
  std::thread writer([&] {
    for (int i = 0; !done.load(std::memory_order_relaxed); ++i) {
      iterations.store(i, std::memory_order_relaxed);
      s.connection_opened();
      s.request_started(Route::api_chat, m);
      s.request_finished(record(Route::api_chat, m, 200, true, (i % 100) * 0.05));
      s.connection_closed();
    }
  });
  PromRenderer renderer;
  std::string out;
  double last_count = 0;
  while (iterations.load() < 1000) std::this_thread::yield();  // scrape a moving target
  for (int scrape = 0; scrape < 300; ++scrape) {
    renderer.render(std::vector<const MetricsShard*>{&s}, models, {}, version, out);
    const Exposition e = parse_exposition(out);
    ASSERT_EQ(e.error, "");
    const Labels l{{"endpoint", "/api/chat"}, {"model", "m"}, {"stream", "true"}};
    Labels inf = l;
    inf["le"] = "+Inf";
    const auto count = value_of(e, "tokentap_request_duration_seconds_count", l);
    if (!count) continue;  // nothing finished yet
    EXPECT_EQ(count, value_of(e, "tokentap_request_duration_seconds_bucket", inf));
    EXPECT_GE(*count, last_count);
    last_count = *count;
    // A gauge that went below zero would wrap to ~1.8e19.
    EXPECT_LT(*value_of(e, "tokentap_active_requests", {{"endpoint", "/api/chat"}, {"model", "m"}}),
              1e12);
    EXPECT_LT(*value_of(e, "tokentap_connections_open"), 1e12);
  }
  done = true;
  writer.join();
  EXPECT_GT(last_count, 0);
}

TEST(PromText, ManySeriesPassPromtool) {
  const std::string promtool = test::promtool_path();
  if (promtool.empty()) GTEST_SKIP() << "promtool not installed (apt-get install prometheus)";
  ModelTable models(512);
  MetricsShard a, b;
  int i = 0;
  for (int model = 0; model < 500; ++model) {
    const ModelId id = models.intern(model % 50 == 0 ? "odd \"name\" \\ " + std::to_string(model)
                                                     : "model-" + std::to_string(model));
    for (const Route route : {Route::api_chat, Route::api_generate, Route::v1_chat_completions,
                              Route::v1_messages, Route::other}) {
      for (const std::uint16_t status : {200, 400, 500}) {
        ++i;
        RequestRecord r = record(route, id, status, i % 2 == 0, 0.001 * (i % 3000));
        if (is_inference(route)) {
          r.ttft_s = 0.002 * (i % 500);
          r.tpot_s = 0.0001 * (i % 700);
          r.prompt_tokens = i % 300;
          r.completion_tokens = i % 200;
          r.eval_ns = 1'000'000 * (i % 40);
          r.load_ns = i % 3 == 0 ? 1'500'000 : 0;
          r.prompt_eval_ns = 7'000 * (i % 11);
          r.client_aborted = i % 13 == 0;
          r.usage_missing = i % 17 == 0;
        }
        r.request_bytes = 100 + i;
        r.response_bytes = 1000 + i;
        finish(i % 2 ? a : b, r);
      }
    }
  }
  a.upstream_error(UpstreamError::timeout);
  b.connection_rejected(RejectReason::limit);
  const std::string text = render_all({&a, &b}, models, read_process_stats());
  const Exposition e = parsed(text);
  EXPECT_GE(e.samples.size(), 7500u);
  const test::PromtoolResult checked = test::promtool_check(promtool, text);
  EXPECT_EQ(checked.status, 0) << checked.output;
  EXPECT_EQ(checked.output, "");
}

}  // namespace
}  // namespace tokentap
