// Stream bodies and the per-byte report shared by the response-scanning benches
// (llm_tail_bench, usage_strip_bench), so both measure the same OpenAI stream.
#pragma once

#include <benchmark/benchmark.h>

#include <cstdint>
#include <string>
#include <vector>

namespace tokentap::bench {

constexpr int stream_events = 32;

// /v1/chat/completions with include_usage as Ollama flushes it: one event per piece, the last
// piece holding the finish chunk, the usage-only chunk and `data: [DONE]` together.
inline std::vector<std::string> openai_chat_events() {
  const std::string head =
      R"(data: {"id":"chatcmpl-318","object":"chat.completion.chunk","created":1787580250,)"
      R"("model":"llama3.2","system_fingerprint":"fp_ollama","choices":)";
  std::vector<std::string> v;
  for (int i = 0; i + 2 < stream_events; ++i) {
    v.push_back(head + R"([{"index":0,"delta":{"role":"assistant","content":" token)" +
                std::to_string(i) +
                R"("},"finish_reason":null}]})"
                "\n\n");
  }
  v.push_back(head +
              R"([{"index":0,"delta":{},"finish_reason":"stop"}]})"
              "\n\n" +
              head +
              R"([],"usage":{"prompt_tokens":32,"completion_tokens":34,"total_tokens":66}})"
              "\n\ndata: [DONE]\n\n");
  return v;
}

inline std::size_t total_bytes(const std::vector<std::string>& pieces) {
  std::size_t bytes = 0;
  for (const std::string& p : pieces) bytes += p.size();
  return bytes;
}

// Bytes/s, and per_byte (time per body byte): the figure BENCHMARKS.md reports.
inline void report_per_byte(benchmark::State& state, std::size_t bytes) {
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * bytes));
  state.counters["per_byte"] =
      benchmark::Counter(static_cast<double>(bytes), benchmark::Counter::kIsIterationInvariantRate |
                                                         benchmark::Counter::kInvert);
  state.counters["body_bytes"] = static_cast<double>(bytes);
}

}  // namespace tokentap::bench
