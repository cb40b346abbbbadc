// prom_text: cost of one /metrics scrape of 10,000 requests_total series (250 models x 5
// endpoints x 4 statuses x 2 stream values, plus the histograms and counters of the 1,250
// (endpoint, model) pairs), each series present on every shard, merged from 2 and 16 shards.
// Reports time per scrape, exposition bytes and sample lines.
#include <benchmark/benchmark.h>
#include <sys/utsname.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "tokentap/obs/prom_text.h"

namespace tokentap {
namespace {

constexpr int bench_models = 250;
constexpr std::array<Route, 5> bench_routes{Route::api_chat, Route::api_generate,
                                            Route::v1_chat_completions, Route::v1_messages,
                                            Route::api_embed};
constexpr std::array<std::uint16_t, 4> bench_statuses{200, 400, 499, 500};

// Records the environment next to the results (STYLE: benchmarks record their environment).
const bool context_added = [] {
  utsname u{};
  ::uname(&u);
  benchmark::AddCustomContext("kernel", std::string(u.sysname) + " " + u.release);
  benchmark::AddCustomContext("series", "10000 requests_total, 1250 endpoint x model");
  return true;
}();

void fill(MetricsShard& shard, ModelTable& models, int salt) {
  int i = salt;
  for (int m = 0; m < bench_models; ++m) {
    const ModelId id = models.intern("model-" + std::to_string(m));
    for (const Route route : bench_routes) {
      for (const std::uint16_t status : bench_statuses) {
        for (const bool stream : {false, true}) {
          RequestRecord r;
          r.route = route;
          r.model = id;
          r.status = status;
          r.stream = stream;
          r.duration_s = 0.001 * (++i % 5000);
          r.ttft_s = 0.0005 * (i % 400);
          r.tpot_s = 0.0001 * (i % 300);
          r.prompt_tokens = 1 + i % 900;
          r.completion_tokens = 1 + i % 300;
          r.eval_ns = 1'000'000 * (1 + i % 50);
          r.request_bytes = 200;
          r.response_bytes = 2000;
          shard.request_started(route, id);
          shard.request_finished(r);
        }
      }
    }
  }
}

void BM_Scrape(benchmark::State& state) {
  const auto shard_count = static_cast<int>(state.range(0));
  ModelTable models(512);
  std::vector<std::unique_ptr<MetricsShard>> shards;
  std::vector<const MetricsShard*> views;
  for (int s = 0; s < shard_count; ++s) {
    shards.push_back(std::make_unique<MetricsShard>());
    fill(*shards.back(), models, s);
    views.push_back(shards.back().get());
  }
  PromRenderer renderer;
  std::string out;
  const ProcessStats process = read_process_stats();
  for (auto _ : state) {
    renderer.render(views, models, process, "bench", out);
    benchmark::DoNotOptimize(out.data());
  }
  state.counters["bytes"] = static_cast<double>(out.size());
  // Every line that is not a # HELP or # TYPE comment is one sample.
  state.counters["samples"] = static_cast<double>(std::count(out.begin(), out.end(), '\n') -
                                                  std::count(out.begin(), out.end(), '#'));
  state.counters["shards"] = shard_count;
}

BENCHMARK(BM_Scrape)->Arg(2)->Arg(16)->Unit(benchmark::kMicrosecond)->MinTime(2.0);

}  // namespace
}  // namespace tokentap
