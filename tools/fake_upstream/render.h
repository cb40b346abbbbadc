// Render: the JSON bodies and stream events of every inference dialect, as Ollama writes them
// (wire-format.md §2-§8). Renderers append to a ByteBuf and return the token counts the bytes
// report, which feed Stats::prompt_tokens_sent / completion_tokens_sent.
//
// Key order and omitted keys follow the Go structs (declaration order, omitempty) or, for Go maps
// (every /v1/responses stream object), sorted keys. Trailing newlines follow the writer: gin's
// c.JSON has none (native bodies), json.Encoder adds one (NDJSON lines, compat bodies).
#pragma once

#include <cstdint>
#include <string_view>

#include "byte_buf.h"
#include "plan.h"

namespace tokentap::fake {

struct Usage {
  std::uint64_t prompt = 0;
  std::uint64_t completion = 0;
};

// The non-stream body of a successful inference request (also load/unload answers).
[[nodiscard]] Usage render_body(const Plan& plan, ByteBuf& out);
// The payload of one stream chunk.
[[nodiscard]] Usage render_event(const Plan& plan, const Script::Event& event, ByteBuf& out);
// An error body in the plan's dialect.
void render_error(const Plan& plan, int status, std::string_view message, ByteBuf& out);
// The Content-Type of render_body / render_error answers and of streams.
[[nodiscard]] std::string_view body_content_type(const Plan& plan);
[[nodiscard]] std::string_view error_content_type(const Plan& plan);
[[nodiscard]] std::string_view stream_content_type(const Plan& plan);
// Anthropic and Responses streams set Cache-Control and Connection before anything is written.
[[nodiscard]] bool sets_stream_headers(const Plan& plan);

// Error messages Ollama's runner produces (llm/llama_server.go).
constexpr std::string_view runner_stopped_message =
    "model runner has unexpectedly stopped, this may be due to resource limitations or an "
    "internal error, check ollama server logs for details";
constexpr std::string_view midstream_message =
    "an error was encountered while running the model: unexpected EOF";
// Options::pull_fail: what PullModel reports for a manifest the registry does not have.
constexpr std::string_view pull_fail_message = "pull model manifest: file does not exist";

namespace render_detail {

constexpr std::string_view tool_call_id = "call_k7m2x9qa";
constexpr std::string_view tool_name = "get_current_weather";
constexpr std::string_view tool_args_object = R"({"city":"Paris","unit":"celsius"})";
constexpr std::string_view tool_args_string = R"("{\"city\":\"Paris\",\"unit\":\"celsius\"}")";

// The text of piece p (plain ASCII, needs no JSON escaping).
[[nodiscard]] std::string_view piece_word(std::uint32_t piece);
// `raw` is a JSON string body with escapes kept; written quoted, HTML-safe as Go does.
void put_string(ByteBuf& out, std::string_view raw);
// The quoted concatenation of every piece of `kind`.
void put_joined(ByteBuf& out, const Plan& plan, PieceKind kind);
// One embedding vector: float32 shortest form, or widened to float64 for /api/embeddings.
[[nodiscard]] std::string_view embedding_f32();
[[nodiscard]] std::string_view embedding_f64();
// "data: " + json + "\n\n" around what `fn` writes (SSE event without an event: line).
template <typename Fn>
void sse_data(ByteBuf& out, Fn&& fn) {
  out.append("data: ");
  fn();
  out.append("\n\n");
}

Usage render_native_body(const Plan& plan, ByteBuf& out);
Usage render_native_event(const Plan& plan, const Script::Event& event, ByteBuf& out);
Usage render_openai_body(const Plan& plan, ByteBuf& out);
Usage render_openai_event(const Plan& plan, const Script::Event& event, ByteBuf& out);
Usage render_responses_body(const Plan& plan, ByteBuf& out);
Usage render_responses_event(const Plan& plan, const Script::Event& event, ByteBuf& out);
Usage render_anthropic_body(const Plan& plan, ByteBuf& out);
Usage render_anthropic_event(const Plan& plan, const Script::Event& event, ByteBuf& out);
// One /api/pull progress line (render_pull.cc).
void render_pull_event(const Plan& plan, const Script::Event& event, ByteBuf& out);

}  // namespace render_detail
}  // namespace tokentap::fake
