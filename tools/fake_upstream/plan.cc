// Plan and Script (see plan.h): routing, the per-request answer plan, and stream event order.
#include "plan.h"

#include "../../include/tokentap/base/assert.h"

namespace tokentap::fake {
namespace {

// Ollama's prompt_eval_count counts the rendered template and system prompt too, so the default
// is more than the Anthropic len/4 estimate; a proxy that reports message_start is caught.
constexpr std::uint64_t prompt_template_tokens = 7;
constexpr std::uint64_t estimate_bytes_per_token = 4;

struct RouteEntry {
  std::string_view path;
  std::string_view methods;  // gin's Allow order: trees in registration order
  Endpoint endpoint;
};

constexpr std::array<RouteEntry, 20> routes{{
    {"/", "HEAD, GET", Endpoint::root},
    {"/api/version", "HEAD, GET", Endpoint::version},
    {"/api/tags", "HEAD, GET", Endpoint::tags},
    {"/api/ps", "GET", Endpoint::ps},
    {"/v1/models", "GET", Endpoint::v1_models},
    {"/api/generate", "POST", Endpoint::generate},
    {"/api/chat", "POST", Endpoint::chat},
    {"/api/embed", "POST", Endpoint::embed},
    {"/api/embeddings", "POST", Endpoint::embeddings},
    {"/v1/chat/completions", "POST", Endpoint::v1_chat},
    {"/v1/completions", "POST", Endpoint::v1_completions},
    {"/v1/embeddings", "POST", Endpoint::v1_embeddings},
    {"/v1/responses", "POST", Endpoint::v1_responses},
    {"/v1/messages", "POST", Endpoint::v1_messages},
    {"/api/pull", "POST", Endpoint::pull},
    {"/api/delete", "DELETE", Endpoint::delete_model},
    {"/api/copy", "POST", Endpoint::copy_model},
    {"/fake/blob", "HEAD, GET", Endpoint::fake_blob},
    {"/fake/echo", "", Endpoint::fake_echo},               // any method
    {"/api/blobs/", "HEAD, POST", Endpoint::blob_upload},  // prefix: /api/blobs/:digest
}};

bool method_listed(std::string_view methods, std::string_view method) {
  while (!methods.empty()) {
    const std::size_t comma = methods.find(", ");
    if (methods.substr(0, comma) == method) return true;
    if (comma == std::string_view::npos) break;
    methods.remove_prefix(comma + 2);
  }
  return false;
}

bool chat_like(Endpoint e) {
  return e == Endpoint::chat || e == Endpoint::v1_chat || e == Endpoint::v1_responses ||
         e == Endpoint::v1_messages;
}

bool stream_default(Endpoint e) { return e == Endpoint::generate || e == Endpoint::chat; }

bool streamable(Endpoint e) {
  return e == Endpoint::generate || e == Endpoint::chat || e == Endpoint::v1_chat ||
         e == Endpoint::v1_completions || e == Endpoint::v1_responses || e == Endpoint::v1_messages;
}

Special special_of(Endpoint e, const RequestFields& f) {
  bool empty = false;
  if (e == Endpoint::generate) empty = f.prompt_empty;
  if (e == Endpoint::chat) empty = f.messages <= 0;
  if (!empty) return Special::none;
  return f.keep_alive_zero ? Special::unload : Special::load;
}

}  // namespace

RouteMatch match_route(std::string_view method, std::string_view path) {
  for (const RouteEntry& r : routes) {
    const bool prefix = r.path.back() == '/' && r.path.size() > 1;
    const bool hit = prefix
                         ? (path.size() > r.path.size() && path.substr(0, r.path.size()) == r.path)
                         : path == r.path;
    if (!hit) continue;
    if (r.methods.empty() || method_listed(r.methods, method)) {
      if (r.endpoint == Endpoint::blob_upload && method == "HEAD") return {Endpoint::blob_head, {}};
      return {r.endpoint, {}};
    }
    return {Endpoint::method_not_allowed, r.methods};
  }
  return {};
}

Endpoint path_endpoint(std::string_view path) {
  for (const RouteEntry& r : routes) {
    const bool prefix = r.path.back() == '/' && r.path.size() > 1;
    if (prefix ? (path.size() > r.path.size() && path.substr(0, r.path.size()) == r.path)
               : path == r.path) {
      return r.endpoint;
    }
  }
  return Endpoint::not_found;
}

bool is_inference(Endpoint e) { return e >= Endpoint::generate && e <= Endpoint::v1_messages; }

bool is_model_admin(Endpoint e) {
  return e == Endpoint::pull || e == Endpoint::delete_model || e == Endpoint::copy_model;
}

Plan build_plan(Endpoint endpoint, const Controls& c, const RequestFields& f,
                std::size_t body_bytes, const Stamp& stamp) {
  Plan p;
  p.endpoint = endpoint;
  p.stamp = &stamp;
  p.model = f.model;
  p.stream = streamable(endpoint) && (f.stream == -1 ? stream_default(endpoint) : f.stream == 1);
  p.include_usage = p.stream && f.include_usage;
  p.raw = f.raw;
  p.special = special_of(endpoint, f);
  p.tokens = c.tokens;
  p.tool = chat_like(endpoint) && c.tools && p.tokens > 0;
  if (c.think && endpoint != Endpoint::v1_embeddings && endpoint != Endpoint::embed &&
      endpoint != Endpoint::embeddings) {
    p.think_n = (p.tokens + 1) / 2;
    if (p.tool && p.think_n == p.tokens) --p.think_n;
  }
  p.estimate = body_bytes / estimate_bytes_per_token;
  p.prompt_tokens = c.prompt_tokens >= 0 ? static_cast<std::uint64_t>(c.prompt_tokens)
                                         : prompt_template_tokens + p.estimate;
  if (endpoint == Endpoint::embeddings) {
    p.inputs = f.prompt_empty ? 0 : 1;
  } else if (endpoint == Endpoint::v1_embeddings) {
    p.inputs = f.inputs <= 0 ? 1 : static_cast<std::uint32_t>(f.inputs);  // "" becomes [""]
  } else {
    p.inputs = f.inputs <= 0 ? 0 : static_cast<std::uint32_t>(f.inputs);
  }
  p.error = p.special == Special::none ? c.error : FakeError::none;
  p.error_at = p.tokens == 0 ? 0 : (p.tokens / 2 > 0 ? p.tokens / 2 : 1);
  p.status = 200;
  if (c.status != 0 && !p.stream) p.status = c.status;
  // A failure before the first token (or any failure without streaming) replaces the answer;
  // a midstream failure keeps the 200 that was already sent.
  if (p.error == FakeError::before || (p.error == FakeError::midstream && !p.stream)) {
    p.status = c.status >= 400 ? c.status : 500;
  }
  return p;
}

void Script::add(Ev ev) {
  if (cut_) return;
  TT_ASSERT(count_ < segments_max);
  segments_[count_++] = Segment{ev, 1, 0, seq_};
  ++seq_;
}

void Script::add_pieces(Ev ev, std::uint32_t first_piece, std::uint32_t count) {
  if (cut_) return;
  if (cutting_ && count > budget_ - pieces_) count = budget_ - pieces_;
  if (count > 0) {
    TT_ASSERT(count_ < segments_max);
    segments_[count_++] = Segment{ev, count, first_piece, seq_};
    seq_ += count;
    pieces_ += count;
  }
  if (cutting_ && pieces_ == budget_) cut_ = true;
}

void Script::build(const Plan& plan) {
  count_ = 0;
  seq_ = 0;
  pieces_ = 0;
  cutting_ = plan.error == FakeError::midstream;
  budget_ = cutting_ ? plan.error_at : plan.tokens;
  cut_ = cutting_ && budget_ == 0;
  switch (plan.endpoint) {
    case Endpoint::generate:
    case Endpoint::chat:
      build_native(plan);
      break;
    case Endpoint::v1_chat:
    case Endpoint::v1_completions:
      build_openai(plan);
      break;
    case Endpoint::v1_responses:
      build_responses(plan);
      break;
    case Endpoint::v1_messages:
      build_anthropic(plan);
      break;
    case Endpoint::pull:
      build_pull(plan);
      break;
    default:
      break;
  }
}

void Script::build_native(const Plan& plan) {
  add_pieces(Ev::ol_piece, 0, plan.tokens);
  add(Ev::ol_final);
  if (cutting_) {
    cut_ = false;
    add(Ev::ol_error);
  }
}

// PullModel's progress (server/images.go): the manifest, every layer's download, the digest
// check, the manifest write, success; a failure ends the stream with an error line instead.
void Script::build_pull(const Plan& plan) {
  add(Ev::pl_manifest);
  const std::uint32_t lines = pull_layers * pull_layer_updates;
  add_pieces(Ev::pl_layer, 0, plan.pull_fail ? pull_fail_layer_lines : lines);
  if (plan.pull_fail) {
    add(Ev::pl_error);
    return;
  }
  add(Ev::pl_verify);
  add(Ev::pl_write);
  add(Ev::pl_success);
}

void Script::build_openai(const Plan& plan) {
  add_pieces(Ev::oa_piece, 0, plan.tokens);
  add(Ev::oa_final);
  if (cutting_) {
    cut_ = false;
    add(Ev::oa_error);
  }
}

// Event order of ResponsesStreamConverter: reasoning item, then text item, then function call;
// a tool call suppresses the text "done" events (openai/responses.go).
void Script::build_responses(const Plan& plan) {
  add(Ev::rs_created);  // no-ops once cut, like every add below
  add(Ev::rs_in_progress);
  const std::uint32_t text_n = plan.text_n();
  if (plan.think_n > 0) {
    add(Ev::rs_reason_added);
    add_pieces(Ev::rs_reason_delta, 0, plan.think_n);
    add(Ev::rs_reason_done);
    add(Ev::rs_reason_item_done);
  }
  if (text_n > 0) {
    add(Ev::rs_msg_added);
    add(Ev::rs_part_added);
    add_pieces(Ev::rs_text_delta, plan.think_n, text_n);
  }
  if (plan.tool) {
    add(Ev::rs_fc_added);
    add_pieces(Ev::rs_fc_args_delta, plan.tokens - 1, 1);
    add(Ev::rs_fc_args_done);
    add(Ev::rs_fc_item_done);
  } else if (text_n > 0) {
    add(Ev::rs_text_done);
    add(Ev::rs_part_done);
    add(Ev::rs_msg_item_done);
  }
  add(Ev::rs_completed);
}

// Block order of the Anthropic stream converter: thinking, text, tool_use; each block is closed
// when the next one opens (anthropic/anthropic.go).
void Script::build_anthropic(const Plan& plan) {
  add(Ev::an_message_start);
  const std::uint32_t text_n = plan.text_n();
  if (plan.think_n > 0) {
    add(Ev::an_think_start);
    add_pieces(Ev::an_think_delta, 0, plan.think_n);
    add(Ev::an_think_stop);
  }
  if (text_n > 0) {
    add(Ev::an_text_start);
    add_pieces(Ev::an_text_delta, plan.think_n, text_n);
    add(Ev::an_text_stop);
  }
  if (plan.tool) {
    add(Ev::an_tool_start);
    add_pieces(Ev::an_tool_delta, plan.tokens - 1, 1);
    add(Ev::an_tool_stop);
  }
  add(Ev::an_message_delta);
  add(Ev::an_message_stop);
}

bool Script::next(Cursor* cursor, Event* event) const {
  while (cursor->segment < count_) {
    const Segment& s = segments_[cursor->segment];
    if (cursor->offset < s.count) {
      event->ev = s.ev;
      event->piece = s.first_piece + cursor->offset;
      event->seq = s.first_seq + cursor->offset;
      ++cursor->offset;
      return true;
    }
    ++cursor->segment;
    cursor->offset = 0;
  }
  return false;
}

}  // namespace tokentap::fake
