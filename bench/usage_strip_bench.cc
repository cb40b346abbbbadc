// usage_strip bench: cost per streamed byte of removing what an injected include_usage added to
// an OpenAI-compatible SSE stream, for the shapes Ollama produces: /v1/chat/completions (32
// chunks plus the usage event, which is dropped) and /v1/completions (every chunk ends with a
// usage member, which is removed). Streams are fed one event per call, as Ollama flushes them.
// The per_byte counter (time per body byte) is the figure to report. Environment lines first.
#include <benchmark/benchmark.h>
#include <sys/utsname.h>

#include <string>
#include <vector>

#include "stream_shapes.h"
#include "tokentap/meter/usage_strip.h"

namespace tokentap {
namespace {

using bench::stream_events;

std::vector<std::string> completion_events() {
  std::vector<std::string> v;
  for (int i = 0; i + 1 < stream_events; ++i) {
    v.push_back(R"(data: {"id":"cmpl-42","object":"text_completion","created":1787580250,)"
                R"("choices":[{"text":" token)" +
                std::to_string(i) +
                R"(","index":0,"finish_reason":null}],"model":"llama3.2",)"
                R"("system_fingerprint":"fp_ollama","usage":{"prompt_tokens":0,)"
                R"("completion_tokens":0,"total_tokens":0}})" +
                "\n\n");
  }
  v.push_back("data: [DONE]\n\n");
  return v;
}

const bool environment_recorded = [] {
  utsname u{};
  if (uname(&u) == 0) benchmark::AddCustomContext("kernel", u.release);
  benchmark::AddCustomContext("strip_hold_bytes_max", std::to_string(strip_hold_bytes_max));
  benchmark::AddCustomContext("sizeof(UsageStrip)", std::to_string(sizeof(UsageStrip)));
  return true;
}();

void run(benchmark::State& state, const std::vector<std::string>& pieces) {
  const std::size_t bytes = bench::total_bytes(pieces);
  UsageStrip s;
  std::size_t out = 0;
  const auto sink = [&out](const char* p, std::size_t n) {
    benchmark::DoNotOptimize(p);
    out += n;
  };
  for (auto _ : state) {
    s.reset();
    out = 0;
    for (const std::string& p : pieces) s.feed(p.data(), p.size(), sink);
    s.finish(sink);
    if (out >= bytes) state.SkipWithError("nothing stripped");
  }
  bench::report_per_byte(state, bytes);
}

void BM_strip_chat_sse(benchmark::State& s) { run(s, bench::openai_chat_events()); }
void BM_strip_completions_sse(benchmark::State& s) { run(s, completion_events()); }

BENCHMARK(BM_strip_chat_sse);
BENCHMARK(BM_strip_completions_sse);

}  // namespace
}  // namespace tokentap
