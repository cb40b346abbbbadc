// Native Ollama bodies and NDJSON lines: /api/generate, /api/chat, /api/embed, /api/embeddings
// (wire-format.md §2-§5). Key order is the api.GenerateResponse / api.ChatResponse declaration
// order; metrics are omitempty and appear only on the done object.
#include "render.h"

namespace tokentap::fake::render_detail {
namespace {

constexpr std::uint64_t load_duration_ns = 14'213'406;
constexpr std::uint64_t prompt_eval_ns_per_token = 465'613;
constexpr std::uint64_t eval_ns_per_token = 6'926'580;
constexpr std::uint64_t overhead_ns = 2'417'333;
constexpr std::uint64_t context_ids_max = 256;

void put_key_u64(ByteBuf& out, std::string_view key, std::uint64_t v) {
  if (v == 0) return;  // omitempty
  out.append(",\"");
  out.append(key);
  out.append("\":");
  out.append_u64(v);
}

// The six metrics of the done object (api.Metrics), all omitempty.
void put_metrics(ByteBuf& out, const Plan& plan) {
  const std::uint64_t prompt_ns = plan.prompt_tokens * prompt_eval_ns_per_token;
  const std::uint64_t eval_ns = plan.tokens * eval_ns_per_token;
  put_key_u64(out, "total_duration", load_duration_ns + prompt_ns + eval_ns + overhead_ns);
  put_key_u64(out, "load_duration", load_duration_ns);
  put_key_u64(out, "prompt_eval_count", plan.prompt_tokens);
  put_key_u64(out, "prompt_eval_duration", prompt_ns);
  put_key_u64(out, "eval_count", plan.tokens);
  put_key_u64(out, "eval_duration", eval_ns);
}

// generate's `context`: token ids of prompt and answer (omitted with raw:true).
void put_context(ByteBuf& out, const Plan& plan) {
  if (plan.raw) return;
  std::uint64_t n = plan.prompt_tokens + plan.tokens;
  if (n > context_ids_max) n = context_ids_max;
  if (n == 0) return;
  out.append(",\"context\":[");
  for (std::uint64_t i = 0; i < n; ++i) {
    if (i > 0) out.append(',');
    out.append_u64(128000 + (i * 7919) % 2000);
  }
  out.append(']');
}

void put_head(ByteBuf& out, const Plan& plan) {
  out.append(R"({"model":)");
  put_string(out, plan.model);
  out.append(R"(,"created_at":")");
  out.append(plan.stamp->created_at());
  out.append('"');
}

void put_tool_calls(ByteBuf& out) {
  out.append(R"(,"tool_calls":[{"id":")");
  out.append(tool_call_id);
  out.append(R"(","function":{"index":0,"name":")");
  out.append(tool_name);
  out.append(R"(","arguments":)");
  out.append(tool_args_object);
  out.append("}}]");
}

std::string_view special_reason(const Plan& plan) {
  return plan.special == Special::unload ? "unload" : "load";
}

Usage generate_body(const Plan& plan, ByteBuf& out) {
  put_head(out, plan);
  if (plan.special != Special::none) {
    out.append(R"(,"response":"","done":true,"done_reason":")");
    out.append(special_reason(plan));
    out.append("\"}");
    return {};
  }
  out.append(R"(,"response":)");
  put_joined(out, plan, PieceKind::text);
  if (plan.think_n > 0) {
    out.append(R"(,"thinking":)");
    put_joined(out, plan, PieceKind::think);
  }
  out.append(R"(,"done":true,"done_reason":"stop")");
  put_context(out, plan);
  put_metrics(out, plan);
  out.append('}');
  return {plan.prompt_tokens, plan.tokens};
}

Usage chat_body(const Plan& plan, ByteBuf& out) {
  put_head(out, plan);
  if (plan.special != Special::none) {
    out.append(R"(,"message":{"role":"assistant","content":""},"done":true,"done_reason":")");
    out.append(special_reason(plan));
    out.append("\"}");
    return {};
  }
  out.append(R"(,"message":{"role":"assistant","content":)");
  put_joined(out, plan, PieceKind::text);
  if (plan.think_n > 0) {
    out.append(R"(,"thinking":)");
    put_joined(out, plan, PieceKind::think);
  }
  if (plan.tool) put_tool_calls(out);
  out.append(R"(},"done":true,"done_reason":"stop")");
  put_metrics(out, plan);
  out.append('}');
  return {plan.prompt_tokens, plan.tokens};
}

Usage embed_body(const Plan& plan, ByteBuf& out) {
  out.append(R"({"model":)");
  put_string(out, plan.model);
  out.append(R"(,"embeddings":[)");
  for (std::uint32_t i = 0; i < plan.inputs; ++i) {
    if (i > 0) out.append(',');
    out.append(embedding_f32());
  }
  out.append(']');
  if (plan.inputs == 0) {  // empty input: answered before any metrics exist
    out.append('}');
    return {};
  }
  put_key_u64(out, "total_duration", load_duration_ns + overhead_ns);
  put_key_u64(out, "load_duration", load_duration_ns);
  put_key_u64(out, "prompt_eval_count", plan.prompt_tokens);
  out.append('}');
  return {plan.prompt_tokens, 0};
}

Usage generate_line(const Plan& plan, const Script::Event& e, ByteBuf& out) {
  put_head(out, plan);
  if (e.ev == Ev::ol_final) {
    out.append(R"(,"response":"","done":true,"done_reason":"stop")");
    put_context(out, plan);
    put_metrics(out, plan);
    out.append("}\n");
    return {plan.prompt_tokens, plan.tokens};
  }
  if (plan.kind(e.piece) == PieceKind::think) {
    out.append(R"(,"response":"","thinking":")");
  } else {
    out.append(R"(,"response":")");
  }
  out.append(piece_word(e.piece));
  out.append("\",\"done\":false}\n");
  return {};
}

Usage chat_line(const Plan& plan, const Script::Event& e, ByteBuf& out) {
  put_head(out, plan);
  if (e.ev == Ev::ol_final) {
    out.append(R"(,"message":{"role":"assistant","content":""},"done":true,"done_reason":"stop")");
    put_metrics(out, plan);
    out.append("}\n");
    return {plan.prompt_tokens, plan.tokens};
  }
  switch (plan.kind(e.piece)) {
    case PieceKind::think:
      out.append(R"(,"message":{"role":"assistant","content":"","thinking":")");
      out.append(piece_word(e.piece));
      out.append("\"}");
      break;
    case PieceKind::tool:
      out.append(R"(,"message":{"role":"assistant","content":"")");
      put_tool_calls(out);
      out.append('}');
      break;
    case PieceKind::text:
      out.append(R"(,"message":{"role":"assistant","content":")");
      out.append(piece_word(e.piece));
      out.append("\"}");
      break;
  }
  out.append(",\"done\":false}\n");
  return {};
}

}  // namespace

Usage render_native_body(const Plan& plan, ByteBuf& out) {
  switch (plan.endpoint) {
    case Endpoint::generate:
      return generate_body(plan, out);
    case Endpoint::chat:
      return chat_body(plan, out);
    case Endpoint::embed:
      return embed_body(plan, out);
    case Endpoint::embeddings:  // legacy: a float64 vector and nothing else
      out.append(R"({"embedding":)");
      out.append(plan.inputs == 0 ? "[]" : embedding_f64());
      out.append('}');
      return {};
    default:
      return {};
  }
}

Usage render_native_event(const Plan& plan, const Script::Event& e, ByteBuf& out) {
  if (e.ev == Ev::ol_error) {  // the last NDJSON line: only the error key
    out.append(R"({"error":)");
    put_string(out, midstream_message);
    out.append("}\n");
    return {};
  }
  return plan.endpoint == Endpoint::chat ? chat_line(plan, e, out) : generate_line(plan, e, out);
}

}  // namespace tokentap::fake::render_detail
