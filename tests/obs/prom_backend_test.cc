// prom_backend: the backend families (metrics.md "Backends"): exact bytes, merging over shards,
// the bounded (backend, model) table, the BackendSource (names, escaping, vacant and duplicate
// entries) and the families' absence without backends.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "prom_samples.h"
#include "tokentap/obs/prom_text.h"
#include "promtool_check.h"
#include "shard_records.h"

namespace tokentap {
namespace {

using testing::Exposition;
using testing::Labels;
using testing::parse_exposition;
using testing::value_of;

struct FakeBackend {
  std::string name;
  bool up = true;
  std::uint32_t in_flight = 0;
  std::uint32_t slots = 0;
  bool with_counters = true;
  std::unique_ptr<BackendCounters> counters = std::make_unique<BackendCounters>();
};

// A source over a fixed vector, the way a fleet with preallocated slots would answer.
BackendSource source_of(std::vector<FakeBackend>& fleet, int* calls = nullptr) {
  return [&fleet, calls](BackendGauge* out, const BackendCounters** counters, std::size_t max) {
    if (calls != nullptr) ++*calls;
    const std::size_t n = std::min(fleet.size(), max);
    for (std::size_t i = 0; i < n; ++i) {
      out[i] = BackendGauge{fleet[i].name, fleet[i].up, fleet[i].in_flight, fleet[i].slots};
      counters[i] = fleet[i].with_counters ? fleet[i].counters.get() : nullptr;
    }
    return fleet.size();  // may exceed max: the renderer clamps
  };
}

std::string render_all(const std::vector<const MetricsShard*>& shards, const ModelTable& models,
                       const BackendSource& source = {}) {
  std::string out;
  PromRenderer().render(shards, models, {}, "1.2.3", source, out);
  return out;
}

// The exposition from the first backend family up to tokentap_build_info.
std::string backend_part(const std::string& text) {
  const auto begin = text.find("# HELP tokentap_backend_");
  const auto end = text.find("# HELP tokentap_build_info");
  if (begin == std::string::npos || end == std::string::npos || end < begin) return {};
  return text.substr(begin, end - begin);
}

Exposition parsed(const std::string& text) {
  Exposition e = parse_exposition(text);
  EXPECT_EQ(e.error, "") << text.substr(0, 2000);
  return e;
}

RequestRecord served(std::uint8_t backend, ModelId model, std::uint16_t status) {
  RequestRecord r;
  r.route = Route::api_chat;
  r.model = model;
  r.status = status;
  r.stream = true;
  r.duration_s = 0.5;
  r.backend = backend;
  return r;
}

using test::finish;

// The 20 cumulative bucket lines of one backend's TTFT with one observation in bucket `at`.
std::string ttft_buckets(std::string_view backend, std::size_t at) {
  std::string out;
  for (std::size_t i = 0; i <= ttft_bounds_s.size(); ++i) {
    const std::string le = i < ttft_bounds_s.size() ? fmt::format("{}", ttft_bounds_s[i]) : "+Inf";
    out += fmt::format(
        "tokentap_backend_time_to_first_token_seconds_bucket{{backend=\"{}\",le=\"{}\"}} {}\n",
        backend, le, i >= at ? 1 : 0);
  }
  return out;
}

TEST(PromBackend, GoldenExpositionOverTwoShardsWithASource) {
  ModelTable models(8);
  const ModelId llama = models.intern("llama3");
  const ModelId qwen = models.intern("qwen");
  MetricsShard a, b;
  RequestRecord r = served(0, llama, 200);
  r.ttft_s = 0.04;
  r.prompt_tokens = 10;
  r.completion_tokens = 20;
  finish(a, r);
  r = served(0, qwen, 200);
  r.prompt_tokens = 5;
  finish(b, r);
  finish(b, served(1, llama, 503));
  a.retry(RetryReason::busy);
  std::vector<FakeBackend> fleet(2);
  fleet[0].name = "a";
  fleet[0].in_flight = 3;
  fleet[0].slots = 4;
  counter_add(fleet[0].counters->health_checks[0], 7);
  fleet[1].name = "b";
  fleet[1].up = false;
  fleet[1].slots = 4;
  counter_add(fleet[1].counters->health_checks[1], 2);
  counter_add(fleet[1].counters->health_checks[2], 1);
  counter_add(fleet[1].counters->ejections[static_cast<std::size_t>(EjectionReason::errors_5xx)],
              1);
  const std::string text = render_all({&a, &b}, models, source_of(fleet));
  const std::string expected =
      "# HELP tokentap_backend_up 1 when the backend is in rotation (healthy, not ejected), "
      "else 0.\n"
      "# TYPE tokentap_backend_up gauge\n"
      "tokentap_backend_up{backend=\"a\"} 1\n"
      "tokentap_backend_up{backend=\"b\"} 0\n"
      "# HELP tokentap_backend_in_flight Requests in flight to the backend.\n"
      "# TYPE tokentap_backend_in_flight gauge\n"
      "tokentap_backend_in_flight{backend=\"a\"} 3\n"
      "tokentap_backend_in_flight{backend=\"b\"} 0\n"
      "# HELP tokentap_backend_slots Concurrent requests the backend accepts.\n"
      "# TYPE tokentap_backend_slots gauge\n"
      "tokentap_backend_slots{backend=\"a\"} 4\n"
      "tokentap_backend_slots{backend=\"b\"} 4\n"
      "# HELP tokentap_backend_requests_total Requests completed, by the backend that served "
      "them and status.\n"
      "# TYPE tokentap_backend_requests_total counter\n"
      "tokentap_backend_requests_total{backend=\"a\",status=\"200\"} 2\n"
      "tokentap_backend_requests_total{backend=\"b\",status=\"503\"} 1\n"
      "# HELP tokentap_backend_prompt_tokens_total Prompt tokens reported by the upstream, by "
      "backend and model.\n"
      "# TYPE tokentap_backend_prompt_tokens_total counter\n"
      "tokentap_backend_prompt_tokens_total{backend=\"a\",model=\"llama3\"} 10\n"
      "tokentap_backend_prompt_tokens_total{backend=\"a\",model=\"qwen\"} 5\n"
      "# HELP tokentap_backend_completion_tokens_total Completion tokens reported by the "
      "upstream, by backend and model.\n"
      "# TYPE tokentap_backend_completion_tokens_total counter\n"
      "tokentap_backend_completion_tokens_total{backend=\"a\",model=\"llama3\"} 20\n"
      "# HELP tokentap_backend_time_to_first_token_seconds Streaming inference: request "
      "received to first output chunk sent, by backend.\n"
      "# TYPE tokentap_backend_time_to_first_token_seconds histogram\n" +
      ttft_buckets("a", 4) +
      "tokentap_backend_time_to_first_token_seconds_sum{backend=\"a\"} 0.04\n"
      "tokentap_backend_time_to_first_token_seconds_count{backend=\"a\"} 1\n"
      "# HELP tokentap_backend_ejections_total Times the backend was taken out of rotation, by "
      "reason.\n"
      "# TYPE tokentap_backend_ejections_total counter\n"
      "tokentap_backend_ejections_total{backend=\"a\",reason=\"health_check\"} 0\n"
      "tokentap_backend_ejections_total{backend=\"a\",reason=\"connect_refused\"} 0\n"
      "tokentap_backend_ejections_total{backend=\"a\",reason=\"connect_timeout\"} 0\n"
      "tokentap_backend_ejections_total{backend=\"a\",reason=\"5xx\"} 0\n"
      "tokentap_backend_ejections_total{backend=\"b\",reason=\"health_check\"} 0\n"
      "tokentap_backend_ejections_total{backend=\"b\",reason=\"connect_refused\"} 0\n"
      "tokentap_backend_ejections_total{backend=\"b\",reason=\"connect_timeout\"} 0\n"
      "tokentap_backend_ejections_total{backend=\"b\",reason=\"5xx\"} 1\n"
      "# HELP tokentap_health_checks_total Active health checks of the backend, by result.\n"
      "# TYPE tokentap_health_checks_total counter\n"
      "tokentap_health_checks_total{backend=\"a\",result=\"ok\"} 7\n"
      "tokentap_health_checks_total{backend=\"a\",result=\"fail\"} 0\n"
      "tokentap_health_checks_total{backend=\"a\",result=\"timeout\"} 0\n"
      "tokentap_health_checks_total{backend=\"b\",result=\"ok\"} 0\n"
      "tokentap_health_checks_total{backend=\"b\",result=\"fail\"} 2\n"
      "tokentap_health_checks_total{backend=\"b\",result=\"timeout\"} 1\n"
      "# HELP tokentap_retries_total Requests sent again to another backend, by reason.\n"
      "# TYPE tokentap_retries_total counter\n"
      "tokentap_retries_total{reason=\"connect\"} 0\n"
      "tokentap_retries_total{reason=\"reset\"} 0\n"
      "tokentap_retries_total{reason=\"busy\"} 1\n";
  EXPECT_EQ(backend_part(text), expected);
  const Exposition e = parsed(text);
  for (const auto& [family, count] : e.help_lines) EXPECT_EQ(count, 1) << family;
  // The backend fields change nothing in the families that existed before.
  EXPECT_EQ(
      value_of(e, "tokentap_prompt_tokens_total", {{"endpoint", "/api/chat"}, {"model", "llama3"}}),
      10);
}

TEST(PromBackend, WithoutBackendsNoBackendFamilyAppears) {
  ModelTable models(8);
  MetricsShard s;
  RequestRecord r = served(backend_none, models.intern("m"), 200);
  r.ttft_s = 0.1;
  r.prompt_tokens = 3;
  finish(s, r);
  const std::string plain = render_all({&s}, models);
  EXPECT_EQ(plain.find("tokentap_backend_"), std::string::npos);
  EXPECT_EQ(plain.find("tokentap_retries_total"), std::string::npos);
  EXPECT_EQ(plain.find("tokentap_health_checks_total"), std::string::npos);
  std::string old_api;
  PromRenderer().render(std::vector<const MetricsShard*>{&s}, models, {}, "1.2.3", old_api);
  EXPECT_EQ(plain, old_api);
  // A source with no backends adds only the retry reasons, each from 0.
  std::vector<FakeBackend> none;
  const Exposition e = parsed(render_all({&s}, models, source_of(none)));
  EXPECT_EQ(testing::series_count(e, "tokentap_retries_total"), retry_reason_count);
  EXPECT_EQ(value_of(e, "tokentap_retries_total", {{"reason", "reset"}}), 0);
  EXPECT_EQ(e.types.count("tokentap_backend_up"), 0u);
}

TEST(PromBackend, WithoutASourceTheIndexLabelsShardSeries) {
  ModelTable models(8);
  MetricsShard s;
  RequestRecord r = served(2, models.intern("m"), 200);
  r.completion_tokens = 4;
  finish(s, r);
  finish(s, served(0, models.intern("m"), 502));
  finish(s, served(backend_slots_max - 1, models.intern("m"), 200));
  s.retry(RetryReason::connect);
  const Exposition e = parsed(render_all({&s}, models));
  EXPECT_EQ(value_of(e, "tokentap_backend_requests_total", {{"backend", "0"}, {"status", "502"}}),
            1);
  EXPECT_EQ(value_of(e, "tokentap_backend_requests_total", {{"backend", "2"}, {"status", "200"}}),
            1);
  EXPECT_EQ(value_of(e, "tokentap_backend_requests_total", {{"backend", "63"}, {"status", "200"}}),
            1);
  EXPECT_EQ(
      value_of(e, "tokentap_backend_completion_tokens_total", {{"backend", "2"}, {"model", "m"}}),
      4);
  EXPECT_EQ(e.types.count("tokentap_backend_prompt_tokens_total"), 0u);  // zero: no series
  EXPECT_EQ(e.types.count("tokentap_backend_time_to_first_token_seconds"), 0u);
  for (const char* fleet_family :
       {"tokentap_backend_up", "tokentap_backend_in_flight", "tokentap_backend_slots",
        "tokentap_backend_ejections_total", "tokentap_health_checks_total"}) {
    EXPECT_EQ(e.types.count(fleet_family), 0u) << fleet_family;
  }
  EXPECT_EQ(value_of(e, "tokentap_retries_total", {{"reason", "connect"}}), 1);
  EXPECT_EQ(testing::series_count(e, "tokentap_retries_total"), 1u);  // only what was counted
}

std::vector<RequestRecord> backend_records(ModelTable& models, int n) {
  std::mt19937 rng(7);
  std::vector<RequestRecord> out;
  for (int i = 0; i < n; ++i) {
    const std::uint16_t status = std::array<std::uint16_t, 4>{200, 200, 503, 499}[rng() % 4];
    RequestRecord r = served(static_cast<std::uint8_t>(rng() % 5),
                             models.intern("m" + std::to_string(rng() % 7)), status);
    // Binary fractions: every partial sum is exact, so any merge order gives the same bytes.
    if (rng() % 2 != 0) r.ttft_s = static_cast<double>(rng() % 3000) / 1024;
    r.prompt_tokens = rng() % 50;
    r.completion_tokens = rng() % 3 == 0 ? 0 : rng() % 90;
    out.push_back(r);
  }
  return out;
}

TEST(PromBackend, MergeOfShardsEqualsOneShardWithEverything) {
  ModelTable models(16);
  const std::vector<RequestRecord> records = backend_records(models, 3000);
  std::vector<FakeBackend> fleet(5);
  for (std::size_t i = 0; i < fleet.size(); ++i) fleet[i].name = "b" + std::to_string(i);
  MetricsShard single;
  for (const RequestRecord& r : records) finish(single, r);
  single.retry(RetryReason::reset);
  const std::string expected = render_all({&single}, models, source_of(fleet));
  std::vector<std::unique_ptr<MetricsShard>> shards;
  std::vector<const MetricsShard*> views;
  for (int i = 0; i < 3; ++i) views.push_back(shards.emplace_back(new MetricsShard).get());
  std::mt19937 rng(3);
  for (const RequestRecord& r : records) finish(*shards[rng() % 3], r);
  shards[2]->retry(RetryReason::reset);
  EXPECT_EQ(render_all(views, models, source_of(fleet)), expected);
  const Exposition e = parsed(expected);
  double requests = 0, prompt = 0, expected_prompt = 0;
  for (const RequestRecord& r : records) expected_prompt += static_cast<double>(r.prompt_tokens);
  for (const auto& s : e.samples) {
    if (s.name == "tokentap_backend_requests_total") requests += s.value;
    if (s.name == "tokentap_backend_prompt_tokens_total") prompt += s.value;
  }
  EXPECT_EQ(requests, 3000);
  EXPECT_EQ(prompt, expected_prompt);
}

TEST(PromBackend, FullTokenTableRendersUnderOverflowWithExactSums) {
  ModelTable models(8);
  MetricsShard small(MetricsLimits{.backend_model_series = 1});
  MetricsShard roomy;
  for (MetricsShard* s : {&small, &roomy}) {
    for (const char* model : {"a", "b", "c"}) {
      RequestRecord r = served(1, models.intern(model), 200);
      r.prompt_tokens = 2;
      r.completion_tokens = 3;
      finish(*s, r);
    }
    RequestRecord r = served(1, model_overflow, 200);  // past --max-models: straight to overflow
    r.prompt_tokens = 100;
    finish(*s, r);
  }
  EXPECT_EQ(small.backend_model_series().size(), 1u);
  const Exposition e = parsed(render_all({&small, &roomy}, models));
  const auto prompt = [&](const char* model) {
    return value_of(e, "tokentap_backend_prompt_tokens_total",
                    {{"backend", "1"}, {"model", model}});
  };
  EXPECT_EQ(prompt("a"), 4);  // small's one slot, plus roomy
  EXPECT_EQ(prompt("b"), 2);
  EXPECT_EQ(prompt("c"), 2);
  EXPECT_EQ(prompt("__overflow__"), 2 + 2 + 200);
  EXPECT_EQ(value_of(e, "tokentap_backend_completion_tokens_total",
                     {{"backend", "1"}, {"model", "__overflow__"}}),
            6);
  EXPECT_EQ(value_of(e, "tokentap_backend_requests_total", {{"backend", "1"}, {"status", "200"}}),
            8);
}

TEST(PromBackend, SourceNamesAreEscapedVacantAndDuplicateEntriesSkipped) {
  ModelTable models(8);
  MetricsShard s;
  for (std::uint8_t b = 0; b < 5; ++b) finish(s, served(b, models.intern("m"), 200));
  std::vector<FakeBackend> fleet(4);
  fleet[0].name = "gpu \"1\"\n\\x";
  fleet[1].name = "";                // a vacant index: neither gauges nor its shard series
  fleet[2].name = "gpu \"1\"\n\\x";  // a duplicate: treated as vacant
  fleet[3].name = "plain";
  fleet[3].with_counters = false;  // gauges only
  int calls = 0;
  const std::string text = render_all({&s}, models, source_of(fleet, &calls));
  EXPECT_EQ(calls, 1);
  EXPECT_NE(text.find("tokentap_backend_up{backend=\"gpu \\\"1\\\"\\n\\\\x\"} 1\n"),
            std::string::npos)
      << text;
  const Exposition e = parsed(text);
  EXPECT_EQ(testing::label_values(e, "tokentap_backend_requests_total", "backend"),
            (std::set<std::string>{"gpu \"1\"\n\\x", "plain"}));  // index 4: not named
  EXPECT_EQ(testing::series_count(e, "tokentap_backend_up"), 2u);
  EXPECT_EQ(testing::label_values(e, "tokentap_health_checks_total", "backend"),
            (std::set<std::string>{"gpu \"1\"\n\\x"}));
  EXPECT_EQ(testing::series_count(e, "tokentap_backend_ejections_total"), ejection_reason_count);
}

TEST(PromBackend, SourceLongerThanTheSlotsIsClamped) {
  ModelTable models(8);
  MetricsShard s;
  std::vector<FakeBackend> fleet(backend_slots_max + 10);
  for (std::size_t i = 0; i < fleet.size(); ++i) fleet[i].name = "n" + std::to_string(i);
  std::string out;
  PromRenderer renderer;
  renderer.render(std::vector<const MetricsShard*>{&s}, models, {}, "v", source_of(fleet), out);
  const Exposition e = parsed(out);
  EXPECT_EQ(testing::series_count(e, "tokentap_backend_up"), backend_slots_max);
  // The same renderer, the fleet shrunk: nothing of the last scrape is left over.
  fleet.resize(1);
  renderer.render(std::vector<const MetricsShard*>{&s}, models, {}, "v", source_of(fleet), out);
  EXPECT_EQ(testing::series_count(parsed(out), "tokentap_backend_up"), 1u);
}

TEST(PromBackend, ScrapesWhileAShardCountsNewBackends) {
  ModelTable models(8);
  MetricsShard s;
  const ModelId m = models.intern("m");
  std::atomic<bool> done{false};
  std::atomic<int> iterations{0};
  std::thread writer([&] {
    for (int i = 0; !done.load(std::memory_order_relaxed); ++i) {
      iterations.store(i, std::memory_order_relaxed);
      // Backends appear one by one while the scraper reads: each record is published once.
      RequestRecord r = served(static_cast<std::uint8_t>((i / 64) % backend_slots_max), m, 200);
      r.ttft_s = (i % 100) * 0.01;
      r.prompt_tokens = 1;
      finish(s, r);
    }
  });
  PromRenderer renderer;
  std::string out;
  double last_total = 0;
  while (iterations.load() < 100) std::this_thread::yield();
  for (int scrape = 0; scrape < 200; ++scrape) {
    renderer.render(std::vector<const MetricsShard*>{&s}, models, {}, "v", BackendSource{}, out);
    const Exposition e = parse_exposition(out);
    ASSERT_EQ(e.error, "");
    double total = 0;
    for (const auto& sample : e.samples) {
      if (sample.name == "tokentap_backend_requests_total") total += sample.value;
      if (sample.name != "tokentap_backend_time_to_first_token_seconds_count") continue;
      Labels inf = sample.labels;
      inf["le"] = "+Inf";
      EXPECT_EQ(value_of(e, "tokentap_backend_time_to_first_token_seconds_bucket", inf),
                sample.value);
    }
    EXPECT_GE(total, last_total);
    last_total = total;
  }
  done = true;
  writer.join();
  EXPECT_GT(last_total, 0);
}

TEST(PromBackend, PromtoolAcceptsTheBackendFamilies) {
  const std::string promtool = test::promtool_path();
  if (promtool.empty()) GTEST_SKIP() << "promtool not installed (Debian: prometheus)";
  ModelTable models(16);
  MetricsShard a, b;
  const std::vector<RequestRecord> records = backend_records(models, 500);
  for (std::size_t i = 0; i < records.size(); ++i) finish(i % 2 ? a : b, records[i]);
  a.retry(RetryReason::busy);
  std::vector<FakeBackend> fleet(5);
  for (std::size_t i = 0; i < fleet.size(); ++i) fleet[i].name = "host-" + std::to_string(i);
  const std::string text = render_all({&a, &b}, models, source_of(fleet));
  const test::PromtoolResult checked = test::promtool_check(promtool, text);
  EXPECT_EQ(checked.status, 0) << checked.output;
  EXPECT_EQ(checked.output, "");
}

}  // namespace
}  // namespace tokentap
