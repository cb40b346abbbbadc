// OpenAI-compatible bodies and SSE chunks: /v1/chat/completions, /v1/completions,
// /v1/embeddings (wire-format.md §7.2-§7.4).
//  - chat chunks: no usage key; role only on the first chunk; the finish chunk (delta {}), the
//    usage chunk ("choices":[], only with include_usage) and [DONE] share the last HTTP chunk;
//  - completions chunks: key order id, object, created, choices, model, system_fingerprint,
//    usage; with include_usage every chunk carries a zero usage and the real one comes last;
//  - a midstream error becomes an empty chunk with "model":"" and nothing after it.
#include "render.h"

namespace tokentap::fake::render_detail {
namespace {

void put_usage(ByteBuf& out, std::uint64_t prompt, std::uint64_t completion) {
  out.append(R"("usage":{"prompt_tokens":)");
  out.append_u64(prompt);
  out.append(R"(,"completion_tokens":)");
  out.append_u64(completion);
  out.append(R"(,"total_tokens":)");
  out.append_u64(prompt + completion);
  out.append('}');
}

void put_tool_calls(ByteBuf& out) {
  out.append(R"("tool_calls":[{"id":")");
  out.append(tool_call_id);
  out.append(R"(","index":0,"type":"function","function":{"name":")");
  out.append(tool_name);
  out.append(R"(","arguments":)");
  out.append(tool_args_string);
  out.append("}}]");
}

// {"id":…,"object":"chat.completion.chunk","created":…,"model":…,"system_fingerprint":… ,
void chat_chunk_head(ByteBuf& out, const Plan& plan, std::string_view model) {
  out.append(R"({"id":"chatcmpl-)");
  out.append_u64(plan.stamp->id3);
  out.append(R"(","object":"chat.completion.chunk","created":)");
  out.append_i64(plan.stamp->created);
  out.append(R"(,"model":)");
  put_string(out, model);
  out.append(R"(,"system_fingerprint":"fp_ollama",)");
}

std::string_view finish_reason(const Plan& plan) { return plan.tool ? "tool_calls" : "stop"; }

void chat_delta(ByteBuf& out, const Plan& plan, std::uint32_t piece) {
  out.append(piece == 0 ? R"({"role":"assistant","content":)" : R"({"content":)");
  switch (plan.kind(piece)) {
    case PieceKind::think:
      out.append(R"("","reasoning":")");
      out.append(piece_word(piece));
      out.append("\"}");
      return;
    case PieceKind::tool:
      out.append(R"("",)");
      put_tool_calls(out);
      out.append('}');
      return;
    case PieceKind::text:
      out.append('"');
      out.append(piece_word(piece));
      out.append("\"}");
      return;
  }
}

Usage chat_event(const Plan& plan, const Script::Event& e, ByteBuf& out) {
  switch (e.ev) {
    case Ev::oa_piece:
      sse_data(out, [&] {
        chat_chunk_head(out, plan, plan.model);
        out.append(R"("choices":[{"index":0,"delta":)");
        chat_delta(out, plan, e.piece);
        out.append(R"(,"finish_reason":null}]})");
      });
      return {};
    case Ev::oa_error:
      sse_data(out, [&] {
        chat_chunk_head(out, plan, {});
        out.append(R"("choices":[{"index":0,"delta":{"content":""},"finish_reason":null}]})");
      });
      return {};
    default:
      break;
  }
  sse_data(out, [&] {
    chat_chunk_head(out, plan, plan.model);
    out.append(R"("choices":[{"index":0,"delta":{},"finish_reason":")");
    out.append(finish_reason(plan));
    out.append("\"}]}");
  });
  Usage usage;
  if (plan.include_usage) {
    sse_data(out, [&] {
      chat_chunk_head(out, plan, plan.model);
      out.append(R"("choices":[],)");
      put_usage(out, plan.prompt_tokens, plan.tokens);
      out.append('}');
    });
    usage = {plan.prompt_tokens, plan.tokens};
  }
  out.append("data: [DONE]\n\n");
  return usage;
}

// One completions chunk; `text` null means the midstream-error chunk (empty text, model "").
void completion_chunk(ByteBuf& out, const Plan& plan, std::string_view text,
                      std::string_view finish, std::string_view model) {
  sse_data(out, [&] {
    out.append(R"({"id":"cmpl-)");
    out.append_u64(plan.stamp->id3);
    out.append(R"(","object":"text_completion","created":)");
    out.append_i64(plan.stamp->created);
    out.append(R"(,"choices":[{"text":")");
    out.append(text);
    out.append(R"(","index":0,"finish_reason":)");
    out.append(finish);
    out.append(R"(}],"model":)");
    put_string(out, model);
    out.append(R"(,"system_fingerprint":"fp_ollama")");
    if (plan.include_usage)
      out.append(R"(,"usage":{"prompt_tokens":0,"completion_tokens":0,)"
                 R"("total_tokens":0})");
    out.append('}');
  });
}

Usage completion_event(const Plan& plan, const Script::Event& e, ByteBuf& out) {
  switch (e.ev) {
    case Ev::oa_piece:  // thinking pieces have no text in a completion
      completion_chunk(out, plan, plan.kind(e.piece) == PieceKind::text ? piece_word(e.piece) : "",
                       "null", plan.model);
      return {};
    case Ev::oa_error:
      completion_chunk(out, plan, "", "null", {});
      return {};
    default:
      break;
  }
  completion_chunk(out, plan, "", "\"stop\"", plan.model);
  Usage usage;
  if (plan.include_usage) {
    sse_data(out, [&] {
      out.append(R"({"id":"cmpl-)");
      out.append_u64(plan.stamp->id3);
      out.append(R"(","object":"text_completion","created":)");
      out.append_i64(plan.stamp->created);
      out.append(R"(,"choices":[],"model":)");
      put_string(out, plan.model);
      out.append(R"(,"system_fingerprint":"fp_ollama",)");
      put_usage(out, plan.prompt_tokens, plan.tokens);
      out.append('}');
    });
    usage = {plan.prompt_tokens, plan.tokens};
  }
  out.append("data: [DONE]\n\n");
  return usage;
}

Usage chat_body(const Plan& plan, ByteBuf& out) {
  out.append(R"({"id":"chatcmpl-)");
  out.append_u64(plan.stamp->id3);
  out.append(R"(","object":"chat.completion","created":)");
  out.append_i64(plan.stamp->created);
  out.append(R"(,"model":)");
  put_string(out, plan.model);
  out.append(R"(,"system_fingerprint":"fp_ollama","choices":[{"index":0,"message":{)"
             R"("role":"assistant","content":)");
  put_joined(out, plan, PieceKind::text);
  if (plan.think_n > 0) {
    out.append(R"(,"reasoning":)");
    put_joined(out, plan, PieceKind::think);
  }
  if (plan.tool) {
    out.append(',');
    put_tool_calls(out);
  }
  out.append(R"(},"finish_reason":")");
  out.append(finish_reason(plan));
  out.append("\"}],");
  put_usage(out, plan.prompt_tokens, plan.tokens);
  out.append("}\n");
  return {plan.prompt_tokens, plan.tokens};
}

Usage completion_body(const Plan& plan, ByteBuf& out) {
  out.append(R"({"id":"cmpl-)");
  out.append_u64(plan.stamp->id3);
  out.append(R"(","object":"text_completion","created":)");
  out.append_i64(plan.stamp->created);
  out.append(R"(,"model":)");
  put_string(out, plan.model);
  out.append(R"(,"system_fingerprint":"fp_ollama","choices":[{"text":)");
  put_joined(out, plan, PieceKind::text);
  out.append(R"(,"index":0,"finish_reason":"stop"}],)");
  put_usage(out, plan.prompt_tokens, plan.tokens);
  out.append("}\n");
  return {plan.prompt_tokens, plan.tokens};
}

Usage embeddings_body(const Plan& plan, ByteBuf& out) {
  out.append(R"({"object":"list","data":[)");
  for (std::uint32_t i = 0; i < plan.inputs; ++i) {
    if (i > 0) out.append(',');
    out.append(R"({"object":"embedding","embedding":)");
    out.append(embedding_f32());
    out.append(R"(,"index":)");
    out.append_u64(i);
    out.append('}');
  }
  out.append(R"(],"model":)");
  put_string(out, plan.model);
  out.append(R"(,"usage":{"prompt_tokens":)");
  out.append_u64(plan.prompt_tokens);
  out.append(R"(,"total_tokens":)");
  out.append_u64(plan.prompt_tokens);
  out.append("}}\n");
  return {plan.prompt_tokens, 0};
}

}  // namespace

Usage render_openai_body(const Plan& plan, ByteBuf& out) {
  switch (plan.endpoint) {
    case Endpoint::v1_chat:
      return chat_body(plan, out);
    case Endpoint::v1_completions:
      return completion_body(plan, out);
    default:
      return embeddings_body(plan, out);
  }
}

Usage render_openai_event(const Plan& plan, const Script::Event& e, ByteBuf& out) {
  return plan.endpoint == Endpoint::v1_chat ? chat_event(plan, e, out)
                                            : completion_event(plan, e, out);
}

}  // namespace tokentap::fake::render_detail
