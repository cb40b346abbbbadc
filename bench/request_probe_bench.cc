// request_probe bench: model/stream extraction from a small chat body and from a 5 MiB body
// whose model comes last (base64 image first, as the OpenAI Python SDK writes it), fed in 64 KiB
// recv-sized pieces; plus the include_usage injection of a small buffered body. The per_byte
// counter (time per body byte) is the figure to report. Environment lines come first.
#include <benchmark/benchmark.h>
#include <sys/utsname.h>

#include <string>
#include <vector>

#include "tokentap/meter/request_probe.h"

namespace tokentap {
namespace {

constexpr std::size_t recv_piece_bytes = 64 * 1024;
constexpr std::size_t big_body_bytes = 5 * 1024 * 1024;

const std::string small_body =
    R"({"model":"llama3.2","messages":[{"role":"system","content":"You are a helpful )"
    R"(assistant."},{"role":"user","content":"Why is the sky blue? Answer in one line."}],)"
    R"("stream":true,"temperature":0.7,"max_tokens":256})";

std::vector<std::string> big_pieces() {
  std::string body = R"({"messages":[{"role":"user","content":[{"type":"image_url",)"
                     R"("image_url":{"url":"data:image/png;base64,)";
  while (body.size() < big_body_bytes) body += "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJ";
  body += R"("}},{"type":"text","text":"what is this?"}]}],"model":"llava:13b","stream":true})";
  std::vector<std::string> v;
  for (std::size_t at = 0; at < body.size(); at += recv_piece_bytes) {
    v.push_back(body.substr(at, recv_piece_bytes));
  }
  return v;
}

// Runs before benchmark_main prints its context block, so these lines appear in it.
const bool environment_recorded = [] {
  utsname u{};
  if (uname(&u) == 0) benchmark::AddCustomContext("kernel", u.release);
  benchmark::AddCustomContext("sizeof(RequestProbe)", std::to_string(sizeof(RequestProbe)));
  benchmark::AddCustomContext("recv_piece_bytes", std::to_string(recv_piece_bytes));
  return true;
}();

void set_counters(benchmark::State& state, std::size_t bytes) {
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * bytes));
  state.counters["per_byte"] =
      benchmark::Counter(static_cast<double>(bytes), benchmark::Counter::kIsIterationInvariantRate |
                                                         benchmark::Counter::kInvert);
  state.counters["body_bytes"] = static_cast<double>(bytes);
}

void run(benchmark::State& state, const std::vector<std::string>& pieces) {
  std::size_t bytes = 0;
  for (const std::string& p : pieces) bytes += p.size();
  RequestProbe probe;
  for (auto _ : state) {
    probe.init(Route::v1_chat_completions, false);
    for (const std::string& p : pieces) probe.feed(p.data(), p.size());
    probe.finish();
    if (!probe.model() || !probe.stream()) state.SkipWithError("facts not found");
    benchmark::DoNotOptimize(probe.model());
  }
  set_counters(state, bytes);
}

void BM_small_chat_body(benchmark::State& s) { run(s, {small_body}); }
void BM_5mib_body_model_last(benchmark::State& s) { run(s, big_pieces()); }

void BM_inject_small_body(benchmark::State& state) {
  std::string out(small_body.size() + inject_growth_bytes_max, '\0');
  for (auto _ : state) {
    std::size_t len = 0;
    const InjectOutcome o = inject_include_usage(small_body, Route::v1_chat_completions, false,
                                                 out.data(), out.size(), &len);
    if (o != InjectOutcome::injected) state.SkipWithError("not injected");
    benchmark::DoNotOptimize(out.data());
  }
  set_counters(state, small_body.size());
}

BENCHMARK(BM_small_chat_body);
BENCHMARK(BM_5mib_body_model_last);
BENCHMARK(BM_inject_small_body);

}  // namespace
}  // namespace tokentap
