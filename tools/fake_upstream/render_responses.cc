// /v1/responses (wire-format.md §7.6; openai/responses.go). Stream events are Go maps, so every
// object's keys are sorted and each carries sequence_number; the non-stream body is the
// ResponsesResponse struct in declaration order. Usage is only in response.completed.
#include "render.h"

namespace tokentap::fake::render_detail {
namespace {

// Stream ids: resp_N, msg_N, rs_N, fc_N_0 (rand.Intn(999999) in Go; one value per response here).
void put_id(ByteBuf& out, std::string_view prefix, const Plan& plan) {
  out.append('"');
  out.append(prefix);
  out.append_u64(plan.stamp->id6);
  if (prefix == "fc_") out.append("_0");
  out.append('"');
}

std::uint32_t message_index(const Plan& plan) { return plan.think_n > 0 ? 1 : 0; }

void put_reasoning_item(ByteBuf& out, const Plan& plan) {  // sorted: done form
  out.append(R"({"encrypted_content":)");
  put_joined(out, plan, PieceKind::think);
  out.append(R"(,"id":)");
  put_id(out, "rs_", plan);
  out.append(R"(,"summary":[{"text":)");
  put_joined(out, plan, PieceKind::think);
  out.append(R"(,"type":"summary_text"}],"type":"reasoning"})");
}

void put_function_item(ByteBuf& out, const Plan& plan, bool done) {
  out.append(R"({"arguments":)");
  out.append(done ? tool_args_string : std::string_view(R"("")"));
  out.append(R"(,"call_id":")");
  out.append(tool_call_id);
  out.append(R"(","id":)");
  put_id(out, "fc_", plan);
  out.append(R"(,"name":")");
  out.append(tool_name);
  out.append(done ? R"(","status":"completed","type":"function_call"})"
                  : R"(","status":"in_progress","type":"function_call"})");
}

void put_part(ByteBuf& out, const Plan& plan, bool done) {
  out.append(R"({"annotations":[],"logprobs":[],"text":)");
  if (done) {
    put_joined(out, plan, PieceKind::text);
  } else {
    out.append(R"("")");
  }
  out.append(R"(,"type":"output_text"})");
}

void put_message_item(ByteBuf& out, const Plan& plan, bool done) {
  out.append(R"({"content":[)");
  if (done) put_part(out, plan, true);
  out.append(R"(],"id":)");
  put_id(out, "msg_", plan);
  out.append(done ? R"(,"role":"assistant","status":"completed","type":"message"})"
                  : R"(,"role":"assistant","status":"in_progress","type":"message"})");
}

void put_stream_usage(ByteBuf& out, const Plan& plan) {
  out.append(R"({"input_tokens":)");
  out.append_u64(plan.prompt_tokens);
  out.append(R"(,"input_tokens_details":{"cached_tokens":0},"output_tokens":)");
  out.append_u64(plan.tokens);
  out.append(R"(,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":)");
  out.append_u64(plan.prompt_tokens + plan.tokens);
  out.append('}');
}

// The response object of response.created / in_progress / completed (a map: sorted keys).
void put_stream_response(ByteBuf& out, const Plan& plan, bool completed) {
  out.append(R"({"background":false,"completed_at":)");
  if (completed) {
    out.append_i64(plan.stamp->created);
  } else {
    out.append("null");
  }
  out.append(R"(,"created_at":)");
  out.append_i64(plan.stamp->created);
  out.append(R"(,"error":null,"frequency_penalty":0,"id":)");
  put_id(out, "resp_", plan);
  out.append(R"(,"incomplete_details":null,"instructions":null,"max_output_tokens":null,)"
             R"("max_tool_calls":null,"metadata":{},"model":)");
  put_string(out, plan.model);
  out.append(R"(,"object":"response","output":[)");
  if (completed) {
    if (plan.think_n > 0) put_reasoning_item(out, plan);
    if (plan.think_n > 0 && (plan.tool || plan.text_n() > 0)) out.append(',');
    if (plan.tool) {
      put_function_item(out, plan, true);
    } else if (plan.text_n() > 0) {
      put_message_item(out, plan, true);
    }
  }
  out.append(R"(],"parallel_tool_calls":true,"presence_penalty":0,"previous_response_id":null,)"
             R"("prompt_cache_key":null,"reasoning":null,"safety_identifier":null,)"
             R"("service_tier":"default","status":")");
  out.append(completed ? "completed" : "in_progress");
  out.append(R"(","store":false,"temperature":1,"text":{"format":{"type":"text"}},)"
             R"("tool_choice":"auto","tools":[],"top_logprobs":0,"top_p":1,)"
             R"("truncation":"disabled","usage":)");
  if (completed) {
    put_stream_usage(out, plan);
  } else {
    out.append("null");
  }
  out.append('}');
}

// Small writers for the sorted keys shared by many events.
void key_output_index(ByteBuf& out, std::uint32_t index) {
  out.append(R"("output_index":)");
  out.append_u64(index);
  out.append(',');
}
void key_seq(ByteBuf& out, std::uint32_t seq) {
  out.append(R"("sequence_number":)");
  out.append_u64(seq);
  out.append(',');
}
void key_type_end(ByteBuf& out, std::string_view type) {
  out.append(R"("type":")");
  out.append(type);
  out.append("\"}\n\n");
}
void key_item_id(ByteBuf& out, std::string_view prefix, const Plan& plan) {
  out.append(R"("item_id":)");
  put_id(out, prefix, plan);
  out.append(',');
}
std::string_view open_event(ByteBuf& out, std::string_view type) {
  out.append("event: ");
  out.append(type);
  out.append("\ndata: {");
  return type;
}

// response.output_item.added / done: item, output_index, sequence_number, type.
void item_event(ByteBuf& out, const Plan& plan, const Script::Event& e) {
  const bool added =
      e.ev == Ev::rs_reason_added || e.ev == Ev::rs_msg_added || e.ev == Ev::rs_fc_added;
  const auto type =
      open_event(out, added ? "response.output_item.added" : "response.output_item.done");
  out.append(R"("item":)");
  std::uint32_t index = message_index(plan);
  switch (e.ev) {
    case Ev::rs_reason_added:
      out.append(R"({"id":)");
      put_id(out, "rs_", plan);
      out.append(R"(,"summary":[],"type":"reasoning"})");
      index = 0;
      break;
    case Ev::rs_reason_item_done:
      put_reasoning_item(out, plan);
      index = 0;
      break;
    case Ev::rs_msg_added:
    case Ev::rs_msg_item_done:
      put_message_item(out, plan, !added);
      break;
    default:  // rs_fc_added, rs_fc_item_done
      put_function_item(out, plan, !added);
      break;
  }
  out.append(',');
  key_output_index(out, index);
  key_seq(out, e.seq);
  key_type_end(out, type);
}

void reasoning_text_event(ByteBuf& out, const Plan& plan, const Script::Event& e) {
  const bool delta = e.ev == Ev::rs_reason_delta;
  const auto type = open_event(out, delta ? "response.reasoning_summary_text.delta"
                                          : "response.reasoning_summary_text.done");
  if (delta) {
    out.append(R"("delta":")");
    out.append(piece_word(e.piece));
    out.append("\",");
  }
  key_item_id(out, "rs_", plan);
  key_output_index(out, 0);
  key_seq(out, e.seq);
  out.append(R"("summary_index":0,)");
  if (!delta) {
    out.append(R"("text":)");
    put_joined(out, plan, PieceKind::think);
    out.append(',');
  }
  key_type_end(out, type);
}

void text_event(ByteBuf& out, const Plan& plan, const Script::Event& e) {
  const bool part = e.ev == Ev::rs_part_added || e.ev == Ev::rs_part_done;
  std::string_view type;
  switch (e.ev) {
    case Ev::rs_part_added:
      type = "response.content_part.added";
      break;
    case Ev::rs_part_done:
      type = "response.content_part.done";
      break;
    case Ev::rs_text_delta:
      type = "response.output_text.delta";
      break;
    default:
      type = "response.output_text.done";
      break;
  }
  open_event(out, type);
  out.append(R"("content_index":0,)");
  if (e.ev == Ev::rs_text_delta) {
    out.append(R"("delta":")");
    out.append(piece_word(e.piece));
    out.append("\",");
  }
  key_item_id(out, "msg_", plan);
  if (!part) out.append(R"("logprobs":[],)");
  key_output_index(out, message_index(plan));
  if (part) {
    out.append(R"("part":)");
    put_part(out, plan, e.ev == Ev::rs_part_done);
    out.append(',');
  }
  key_seq(out, e.seq);
  if (e.ev == Ev::rs_text_done) {
    out.append(R"("text":)");
    put_joined(out, plan, PieceKind::text);
    out.append(',');
  }
  key_type_end(out, type);
}

void arguments_event(ByteBuf& out, const Plan& plan, const Script::Event& e) {
  const bool delta = e.ev == Ev::rs_fc_args_delta;
  const auto type = open_event(out, delta ? "response.function_call_arguments.delta"
                                          : "response.function_call_arguments.done");
  out.append(delta ? R"("delta":)" : R"("arguments":)");
  out.append(tool_args_string);
  out.append(',');
  key_item_id(out, "fc_", plan);
  key_output_index(out, message_index(plan));
  key_seq(out, e.seq);
  key_type_end(out, type);
}

}  // namespace

Usage render_responses_event(const Plan& plan, const Script::Event& e, ByteBuf& out) {
  switch (e.ev) {
    case Ev::rs_created:
    case Ev::rs_in_progress:
    case Ev::rs_completed: {
      const auto type = open_event(out, e.ev == Ev::rs_created       ? "response.created"
                                        : e.ev == Ev::rs_in_progress ? "response.in_progress"
                                                                     : "response.completed");
      out.append(R"("response":)");
      put_stream_response(out, plan, e.ev == Ev::rs_completed);
      out.append(',');
      key_seq(out, e.seq);
      key_type_end(out, type);
      if (e.ev == Ev::rs_completed) return {plan.prompt_tokens, plan.tokens};
      return {};
    }
    case Ev::rs_reason_delta:
    case Ev::rs_reason_done:
      reasoning_text_event(out, plan, e);
      return {};
    case Ev::rs_part_added:
    case Ev::rs_part_done:
    case Ev::rs_text_delta:
    case Ev::rs_text_done:
      text_event(out, plan, e);
      return {};
    case Ev::rs_fc_args_delta:
    case Ev::rs_fc_args_done:
      arguments_event(out, plan, e);
      return {};
    default:
      item_event(out, plan, e);
      return {};
  }
}

// ResponsesResponse in struct order; output items are ResponsesOutputItem (omitempty fields).
Usage render_responses_body(const Plan& plan, ByteBuf& out) {
  out.append(R"({"id":)");
  put_id(out, "resp_", plan);
  out.append(R"(,"object":"response","created_at":)");
  out.append_i64(plan.stamp->created);
  out.append(R"(,"completed_at":)");
  out.append_i64(plan.stamp->created);
  out.append(R"(,"status":"completed","incomplete_details":null,"model":)");
  put_string(out, plan.model);
  out.append(R"(,"previous_response_id":null,"instructions":null,"output":[)");
  if (plan.think_n > 0) {
    out.append(R"({"id":"rs_resp_)");
    out.append_u64(plan.stamp->id6);
    out.append(R"(","type":"reasoning","summary":[{"type":"summary_text","text":)");
    put_joined(out, plan, PieceKind::think);
    out.append(R"(}],"encrypted_content":)");
    put_joined(out, plan, PieceKind::think);
    out.append("},");  // a tool item or the message item always follows
  }
  if (plan.tool) {
    out.append(R"({"id":"fc_resp_)");
    out.append_u64(plan.stamp->id6);
    out.append(R"(_0","type":"function_call","status":"completed","call_id":")");
    out.append(tool_call_id);
    out.append(R"(","name":")");
    out.append(tool_name);
    out.append(R"(","arguments":)");
    out.append(tool_args_string);
    out.append('}');
  } else {
    out.append(R"({"id":)");
    put_id(out, "msg_", plan);
    out.append(R"(,"type":"message","status":"completed","role":"assistant","content":[)"
               R"({"type":"output_text","text":)");
    put_joined(out, plan, PieceKind::text);
    out.append(R"(,"annotations":[],"logprobs":[]}]})");
  }
  out.append(R"(],"error":null,"tools":[],"tool_choice":"auto","truncation":"disabled",)"
             R"("parallel_tool_calls":true,"text":{"format":{"type":"text"}},"top_p":1,)"
             R"("presence_penalty":0,"frequency_penalty":0,"top_logprobs":0,"temperature":1,)"
             R"("reasoning":null,"usage":{"input_tokens":)");
  out.append_u64(plan.prompt_tokens);
  out.append(R"(,"output_tokens":)");
  out.append_u64(plan.tokens);
  out.append(R"(,"total_tokens":)");
  out.append_u64(plan.prompt_tokens + plan.tokens);
  out.append(R"(,"input_tokens_details":{"cached_tokens":0},)"
             R"("output_tokens_details":{"reasoning_tokens":0}},"max_output_tokens":null,)"
             R"("max_tool_calls":null,"store":false,"background":false,)"
             R"("service_tier":"default","metadata":{},"safety_identifier":null,)"
             R"("prompt_cache_key":null})"
             "\n");
  return {plan.prompt_tokens, plan.tokens};
}

}  // namespace tokentap::fake::render_detail
