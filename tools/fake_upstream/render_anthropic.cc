// Anthropic-compatible /v1/messages (wire-format.md §8; anthropic/anthropic.go).
//  - message_start.usage.input_tokens is the len/4 estimate (Plan::estimate), output_tokens 0;
//  - message_delta.usage carries the real input_tokens and output_tokens;
//  - blocks: thinking (index 0), text, tool_use (one input_json_delta), each its own chunk;
//  - no ping or error events; a midstream error just ends the stream.
#include "render.h"

namespace tokentap::fake::render_detail {
namespace {

std::string_view stop_reason(const Plan& plan) { return plan.tool ? "tool_use" : "end_turn"; }

std::uint32_t text_index(const Plan& plan) { return plan.think_n > 0 ? 1 : 0; }
std::uint32_t tool_index(const Plan& plan) {
  return text_index(plan) + (plan.text_n() > 0 ? 1 : 0);
}

void put_usage(ByteBuf& out, std::uint64_t input, std::uint64_t output) {
  out.append(R"("usage":{"input_tokens":)");
  out.append_u64(input);
  out.append(R"(,"output_tokens":)");
  out.append_u64(output);
  out.append('}');
}

std::string_view event_name(Ev ev) {
  switch (ev) {
    case Ev::an_message_start:
      return "message_start";
    case Ev::an_think_start:
    case Ev::an_text_start:
    case Ev::an_tool_start:
      return "content_block_start";
    case Ev::an_think_delta:
    case Ev::an_text_delta:
    case Ev::an_tool_delta:
      return "content_block_delta";
    case Ev::an_think_stop:
    case Ev::an_text_stop:
    case Ev::an_tool_stop:
      return "content_block_stop";
    case Ev::an_message_delta:
      return "message_delta";
    default:
      return "message_stop";
  }
}

std::uint32_t block_index(const Plan& plan, Ev ev) {
  switch (ev) {
    case Ev::an_think_start:
    case Ev::an_think_delta:
    case Ev::an_think_stop:
      return 0;
    case Ev::an_text_start:
    case Ev::an_text_delta:
    case Ev::an_text_stop:
      return text_index(plan);
    default:
      return tool_index(plan);
  }
}

// The JSON after {"type":"content_block_*","index":N, for one block event.
void put_block_body(ByteBuf& out, const Script::Event& e) {
  switch (e.ev) {
    case Ev::an_think_start:
      out.append(R"(,"content_block":{"type":"thinking","thinking":""}})");
      return;
    case Ev::an_text_start:
      out.append(R"(,"content_block":{"type":"text","text":""}})");
      return;
    case Ev::an_tool_start:
      out.append(R"(,"content_block":{"type":"tool_use","id":")");
      out.append(tool_call_id);
      out.append(R"(","name":")");
      out.append(tool_name);
      out.append(R"(","input":{}}})");
      return;
    case Ev::an_think_delta:
      out.append(R"(,"delta":{"type":"thinking_delta","thinking":")");
      out.append(piece_word(e.piece));
      out.append("\"}}");
      return;
    case Ev::an_text_delta:
      out.append(R"(,"delta":{"type":"text_delta","text":")");
      out.append(piece_word(e.piece));
      out.append("\"}}");
      return;
    case Ev::an_tool_delta:
      out.append(R"(,"delta":{"type":"input_json_delta","partial_json":)");
      out.append(tool_args_string);
      out.append("}}");
      return;
    default:  // *_stop
      out.append('}');
      return;
  }
}

}  // namespace

Usage render_anthropic_event(const Plan& plan, const Script::Event& e, ByteBuf& out) {
  const std::string_view name = event_name(e.ev);
  out.append("event: ");
  out.append(name);
  out.append("\ndata: {\"type\":\"");
  out.append(name);
  out.append('"');
  Usage usage;
  switch (e.ev) {
    case Ev::an_message_start:
      out.append(R"(,"message":{"id":"msg_)");
      out.append(plan.stamp->hex24());
      out.append(R"(","type":"message","role":"assistant","model":)");
      put_string(out, plan.model);
      out.append(R"(,"content":[],)");
      put_usage(out, plan.estimate, 0);
      out.append("}}");
      break;
    case Ev::an_message_delta:
      out.append(R"(,"delta":{"stop_reason":")");
      out.append(stop_reason(plan));
      out.append("\"},");
      put_usage(out, plan.prompt_tokens, plan.tokens);
      out.append('}');
      usage = {plan.prompt_tokens, plan.tokens};
      break;
    case Ev::an_message_stop:
      out.append('}');
      break;
    default:
      out.append(R"(,"index":)");
      out.append_u64(block_index(plan, e.ev));
      put_block_body(out, e);
      break;
  }
  out.append("\n\n");
  return usage;
}

Usage render_anthropic_body(const Plan& plan, ByteBuf& out) {
  out.append(R"({"id":"msg_)");
  out.append(plan.stamp->hex24());
  out.append(R"(","type":"message","role":"assistant","model":)");
  put_string(out, plan.model);
  out.append(R"(,"content":[)");
  bool first = true;
  if (plan.think_n > 0) {
    out.append(R"({"type":"thinking","thinking":)");
    put_joined(out, plan, PieceKind::think);
    out.append('}');
    first = false;
  }
  if (plan.text_n() > 0) {
    if (!first) out.append(',');
    out.append(R"({"type":"text","text":)");
    put_joined(out, plan, PieceKind::text);
    out.append('}');
    first = false;
  }
  if (plan.tool) {
    if (!first) out.append(',');
    out.append(R"({"type":"tool_use","id":")");
    out.append(tool_call_id);
    out.append(R"(","name":")");
    out.append(tool_name);
    out.append(R"(","input":)");
    out.append(tool_args_object);
    out.append('}');
  }
  out.append(R"(],"stop_reason":")");
  out.append(stop_reason(plan));
  out.append("\",");
  put_usage(out, plan.prompt_tokens, plan.tokens);
  out.append("}\n");
  return {plan.prompt_tokens, plan.tokens};
}

}  // namespace tokentap::fake::render_detail
