// llm_tail bench: terminating-chunk detection cost per streamed byte, for the body shapes the
// proxy sees: native NDJSON (32 lines), OpenAI chat SSE with a usage chunk, Anthropic SSE, Responses SSE, and a
// final /api/generate line carrying a 1 MiB `context` array. Streams are fed one line/event per
// call (Ollama flushes each one as its own HTTP chunk); the big line in 16 KiB recv-sized pieces.
// The per_byte counter (time per body byte) is the figure to report. Environment lines come first.
#include <benchmark/benchmark.h>
#include <simdjson.h>
#include <sys/utsname.h>

#include <string>
#include <vector>

#include "stream_shapes.h"
#include "tokentap/meter/llm_tail.h"

namespace tokentap {
namespace {

using bench::stream_events;
constexpr std::size_t recv_piece_bytes = 16 * 1024;
constexpr std::size_t context_line_bytes = 1024 * 1024;

const std::string created = R"("created_at":"2026-08-24T14:00:11.519610579Z")";
const std::string metrics =
    R"("total_duration":557637585,"load_duration":14213406,"prompt_eval_count":46,)"
    R"("prompt_eval_duration":21418000,"eval_count":75,"eval_duration":519493000)";

std::vector<std::string> native_lines() {
  std::vector<std::string> v;
  for (int i = 0; i + 1 < stream_events; ++i) {
    v.push_back(R"({"model":"llama3.2",)" + created + R"(,"response":" token)" + std::to_string(i) +
                R"(","done":false})"
                "\n");
  }
  v.push_back(R"({"model":"llama3.2",)" + created +
              R"(,"response":"","done":true,"done_reason":"stop","context":[128000,128006,9125],)" +
              metrics + "}\n");
  return v;
}

std::vector<std::string> anthropic_events() {
  std::vector<std::string> v;
  v.push_back(
      "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":"
      "\"msg_3c91e0b7a5d24f6e8b17c2a0\",\"type\":\"message\",\"role\":\"assistant\","
      "\"model\":\"qwen3:8b\",\"content\":[],\"usage\":{\"input_tokens\":16,"
      "\"output_tokens\":0}}}\n\n");
  for (int i = 0; i + 2 < stream_events; ++i) {
    v.push_back(
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,"
        "\"delta\":{\"type\":\"text_delta\",\"text\":\" token" +
        std::to_string(i) + "\"}}\n\n");
  }
  v.push_back(
      "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":"
      "\"end_turn\"},\"usage\":{\"input_tokens\":27,\"output_tokens\":150}}\n\n"
      "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");
  return v;
}

std::vector<std::string> responses_events() {
  const std::string resp_head =
      R"("response":{"id":"resp_5a1c","object":"response","created_at":1787580250,)"
      R"("model":"qwen3:8b","output":[],)";
  std::vector<std::string> v;
  v.push_back("event: response.created\ndata: {\"type\":\"response.created\",\"sequence_number\":0," +
              resp_head + R"("status":"in_progress","usage":null}})" + "\n\n");
  for (int i = 0; i + 2 < stream_events; ++i) {
    v.push_back(
        "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\","
        "\"sequence_number\":" +
        std::to_string(i + 1) +
        ",\"item_id\":\"msg_7f3e\",\"output_index\":0,\"content_index\":0,\"delta\":\" token" +
        std::to_string(i) + "\"}\n\n");
  }
  v.push_back("event: response.completed\ndata: {\"type\":\"response.completed\","
              "\"sequence_number\":99," +
              resp_head +
              R"("status":"completed","usage":{"input_tokens":27,"output_tokens":150,)"
              R"("total_tokens":177}}})" +
              "\n\n");
  return v;
}

std::vector<std::string> context_pieces() {
  std::string line = R"({"model":"llama3.2",)" + created +
                     R"(,"response":"","done":true,"done_reason":"stop","context":[)";
  while (line.size() < context_line_bytes) line += "128000,128006,9125,";
  line += "1]," + metrics + "}\n";
  std::vector<std::string> v;
  for (std::size_t at = 0; at < line.size(); at += recv_piece_bytes) {
    v.push_back(line.substr(at, recv_piece_bytes));
  }
  return v;
}

// Runs before benchmark_main prints its context block, so these lines appear in it.
const bool environment_recorded = [] {
  utsname u{};
  if (uname(&u) == 0) benchmark::AddCustomContext("kernel", u.release);
  benchmark::AddCustomContext("simdjson_ondemand", simdjson::builtin_implementation()->name());
  benchmark::AddCustomContext("skim_capture_bytes_max", std::to_string(skim_capture_bytes_max));
  benchmark::AddCustomContext("sizeof(TailScanner)", std::to_string(sizeof(TailScanner)));
  return true;
}();

void run(benchmark::State& state, Route route, const std::vector<std::string>& pieces) {
  PieceParser parser;
  const std::size_t bytes = bench::total_bytes(pieces);
  TailScanner t;
  for (auto _ : state) {
    t.init(route, 200, &parser);
    std::uint64_t now = 0;
    for (const std::string& p : pieces) t.feed(p.data(), p.size(), ++now);
    const Usage& u = t.finish();
    if (!u.usage_found) state.SkipWithError("usage not found");
    benchmark::DoNotOptimize(u);
  }
  bench::report_per_byte(state, bytes);
}

void BM_native_ndjson_32_lines(benchmark::State& s) { run(s, Route::api_chat, native_lines()); }
void BM_openai_chat_sse_usage(benchmark::State& s) {
  run(s, Route::v1_chat_completions, bench::openai_chat_events());
}
void BM_anthropic_sse(benchmark::State& s) { run(s, Route::v1_messages, anthropic_events()); }
void BM_responses_sse(benchmark::State& s) { run(s, Route::v1_responses, responses_events()); }
void BM_generate_1mib_context_line(benchmark::State& s) {
  run(s, Route::api_generate, context_pieces());
}

BENCHMARK(BM_native_ndjson_32_lines);
BENCHMARK(BM_openai_chat_sse_usage);
BENCHMARK(BM_anthropic_sse);
BENCHMARK(BM_responses_sse);
BENCHMARK(BM_generate_1mib_context_line);

}  // namespace
}  // namespace tokentap
