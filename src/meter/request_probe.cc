// request_probe: Go decoding semantics for four request fields, the model name check, and the
// include_usage injection for buffered bodies.
#include "tokentap/meter/request_probe.h"

#include <cstring>

#include "tokentap/base/assert.h"

namespace tokentap {
namespace {

enum RequestSlot : std::uint8_t { slot_model, slot_stream, slot_stream_options, slot_include };
constexpr std::array<SkimPath, 4> request_paths{{
    {{"model"}, SkimKind::bytes, static_cast<std::uint16_t>(model_bytes_max)},
    {{"stream"}},
    {{"stream_options"}},
    {{"stream_options", "include_usage"}},
}};
constexpr SkimSpec request_spec = make_skim_spec(request_paths, true);
static_assert(request_spec.valid);

// How each route's Go request struct declares the fields (Ollama api/types.go, openai/*.go,
// anthropic/anthropic.go): a *bool stream is reset by null, a bool stream is not.
struct RouteFields {
  bool has_stream = false;
  bool stream_is_pointer = false;
  bool has_stream_options = false;
};
constexpr RouteFields fields_of(Route r) {
  switch (r) {
    case Route::api_generate:
    case Route::api_chat:
      return {true, true, false};
    case Route::v1_chat_completions:
    case Route::v1_completions:
      return {true, false, true};
    case Route::v1_responses:
      return {true, true, false};
    case Route::v1_messages:
      return {true, false, false};
    default:
      return {};  // embed, embeddings: no stream field, Go ignores the key
  }
}

constexpr std::string_view member_at_root = R"("stream_options":{"include_usage":true})";
constexpr std::string_view member_in_options = R"("include_usage":true)";
constexpr std::string_view options_object = R"({"include_usage":true})";
constexpr std::string_view value_true = "true";
static_assert(member_at_root.size() + 1 == inject_growth_bytes_max);

// out = body[0, at) + insert + body[at + cut, end).
std::size_t splice(std::string_view body, std::size_t at, std::size_t cut, std::string_view insert,
                   std::string_view comma, char* out) {
  char* w = out;
  std::memcpy(w, body.data(), at);
  w += at;
  std::memcpy(w, insert.data(), insert.size());
  w += insert.size();
  std::memcpy(w, comma.data(), comma.size());
  w += comma.size();
  const std::size_t rest = body.size() - at - cut;
  std::memcpy(w, body.data() + at + cut, rest);
  return static_cast<std::size_t>(w - out) + rest;
}

}  // namespace

bool valid_model_name(std::string_view name) {
  if (name.empty() || name.size() > model_bytes_max) return false;
  const auto* p = reinterpret_cast<const unsigned char*>(name.data());
  const auto* const end = p + name.size();
  while (p < end) {
    const unsigned c = *p;
    if (c < 0x80) {
      if (c < 0x20 || c == 0x7f) return false;
      ++p;
      continue;
    }
    std::size_t len = 0;
    std::uint32_t cp = 0;
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
      cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;  // continuation byte, C0/C1 overlong lead, or past U+10FFFF
    }
    if (static_cast<std::size_t>(end - p) < len) return false;
    for (std::size_t i = 1; i < len; ++i) {
      if ((p[i] & 0xC0) != 0x80) return false;
      cp = cp << 6 | (p[i] & 0x3F);
    }
    const std::uint32_t min = len == 2 ? 0x80 : len == 3 ? 0x800 : 0x10000;
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    if (cp >= 0x80 && cp <= 0x9F) return false;  // C1 controls
    p += len;
  }
  return true;
}

void RequestProbe::init(Route route, bool body_encoded) {
  *this = RequestProbe{};
  route_ = route;
  settled_ = body_encoded;  // every route is read: /api/pull, /api/show... carry a model too
  if (!settled_) skim_.init(request_spec, false);
}

void RequestProbe::feed(const char* data, std::size_t size) {
  while (size > 0 && !settled_) {
    const std::size_t used = skim_.feed(data, size);
    data += used;
    size -= used;
    switch (skim_.event()) {
      case JsonSkim::Event::captured:
        on_capture(skim_.capture());
        break;
      case JsonSkim::Event::document_end:
        settle(true);
        break;
      case JsonSkim::Event::failed:
        settle(false);
        break;
      case JsonSkim::Event::none:
        break;
    }
  }
}

void RequestProbe::finish() {
  if (!settled_) settle(false);  // the root value never ended
}

void RequestProbe::settle(bool syntax_ok) {
  settled_ = true;
  syntax_ok_ = syntax_ok;
  root_type_ = skim_.document_type();
  root_begin_ = skim_.document_begin();
  parsed_ = syntax_ok && root_type_ == JsonType::object && !type_error_;
}

std::optional<std::string_view> RequestProbe::model() const {
  if (!parsed_ || model_state_ != ModelState::valid) return std::nullopt;
  return std::string_view(model_.data(), model_len_);
}

bool RequestProbe::stream() const {
  const RouteFields f = fields_of(route_);
  if (!f.has_stream) return false;
  if (parsed_ && stream_set_) return stream_value_;
  return route_info(route_).stream_default;
}

void RequestProbe::on_capture(const SkimCapture& c) {
  const RouteFields f = fields_of(route_);
  switch (c.slot) {
    case slot_model:
      on_model(c);
      break;
    case slot_stream:
      if (f.has_stream) on_stream(c);
      break;
    case slot_stream_options:
      if (!f.has_stream_options) break;
      record(&stream_options_, c);
      if (c.type == JsonType::null) {
        include_usage_ = false;  // the *StreamOptions pointer is reset
      } else if (c.type != JsonType::object) {
        type_error_ = true;
      }
      break;
    case slot_include:
      if (!f.has_stream_options) break;
      record(&include_usage_member_, c);
      if (c.type == JsonType::true_ || c.type == JsonType::false_) {
        include_usage_ = c.type == JsonType::true_;
      } else if (c.type != JsonType::null) {
        type_error_ = true;
      }
      break;
    default:
      break;
  }
}

void RequestProbe::on_model(const SkimCapture& c) {
  if (c.type == JsonType::null) return;  // no-op for a Go string field
  if (c.type != JsonType::string) {
    type_error_ = true;
    return;
  }
  if (c.truncated || c.lossy || !valid_model_name(c.bytes)) {
    model_state_ = ModelState::invalid;
    return;
  }
  std::memcpy(model_.data(), c.bytes.data(), c.bytes.size());
  model_len_ = static_cast<std::uint16_t>(c.bytes.size());
  model_state_ = ModelState::valid;
}

void RequestProbe::on_stream(const SkimCapture& c) {
  if (c.type == JsonType::true_ || c.type == JsonType::false_) {
    stream_set_ = true;
    stream_value_ = c.type == JsonType::true_;
  } else if (c.type == JsonType::null) {
    if (fields_of(route_).stream_is_pointer) stream_set_ = false;
  } else {
    type_error_ = true;
  }
}

void RequestProbe::record(Member* m, const SkimCapture& c) {
  ++m->count;
  m->type = c.type;
  m->nonempty = c.nonempty;
  m->begin = c.begin;
  m->end = c.end;
}

std::string_view inject_outcome_name(InjectOutcome o) {
  switch (o) {
    case InjectOutcome::injected:
      return "injected";
    case InjectOutcome::client_asked:
      return "client_asked";
    case InjectOutcome::not_streaming:
      return "not_streaming";
    case InjectOutcome::wrong_route:
      return "wrong_route";
    case InjectOutcome::encoded:
      return "encoded";
    case InjectOutcome::too_large:
      return "too_large";
    case InjectOutcome::out_too_small:
      return "out_too_small";
    case InjectOutcome::not_json:
      return "not_json";
    case InjectOutcome::not_object:
      return "not_object";
    case InjectOutcome::rejected:
      return "rejected";
    case InjectOutcome::ambiguous:
      return "ambiguous";
  }
  return "?";
}

namespace {

void set_edit(InjectEdit* e, std::uint64_t at, std::uint64_t remove, std::string_view insert,
              std::string_view comma) {
  TT_ASSERT(insert.size() + comma.size() <= e->text.size());
  e->at = at;
  e->remove = remove;
  std::memcpy(e->text.data(), insert.data(), insert.size());
  std::memcpy(e->text.data() + insert.size(), comma.data(), comma.size());
  e->text_len = static_cast<std::uint8_t>(insert.size() + comma.size());
}

}  // namespace

InjectOutcome plan_include_usage(const RequestProbe& probe, Route route, bool body_encoded,
                                 std::uint64_t body_size, InjectEdit* edit) {
  if (!fields_of(route).has_stream_options) return InjectOutcome::wrong_route;
  if (body_encoded) return InjectOutcome::encoded;
  if (body_size > inject_body_bytes_max) return InjectOutcome::too_large;
  if (!probe.syntax_ok()) return InjectOutcome::not_json;
  if (probe.root_type() != JsonType::object) return InjectOutcome::not_object;
  if (probe.type_error()) return InjectOutcome::rejected;
  if (!probe.stream()) return InjectOutcome::not_streaming;
  if (probe.include_usage()) return InjectOutcome::client_asked;
  const RequestProbe::Member& options = probe.stream_options_member();
  const RequestProbe::Member& include = probe.include_usage_member();
  if (options.count > 1 || include.count > 1) return InjectOutcome::ambiguous;
  if (options.count == 0) {
    // stream is true, so the root has a member: the new one needs a comma after it.
    set_edit(edit, probe.root_begin() + 1, 0, member_at_root, ",");
  } else if (options.type == JsonType::null) {
    set_edit(edit, options.begin, options.end - options.begin, options_object, "");
  } else if (include.count == 0) {
    set_edit(edit, options.begin + 1, 0, member_in_options, options.nonempty ? "," : "");
  } else {
    // include_usage is false or null (true returned client_asked above).
    set_edit(edit, include.begin, include.end - include.begin, value_true, "");
  }
  return InjectOutcome::injected;
}

InjectOutcome inject_include_usage(std::string_view body, Route route, bool body_encoded,
                                   char* out, std::size_t out_cap, std::size_t* out_len) {
  if (!fields_of(route).has_stream_options) return InjectOutcome::wrong_route;
  if (body_encoded) return InjectOutcome::encoded;
  if (body.size() > inject_body_bytes_max) return InjectOutcome::too_large;
  RequestProbe probe;
  probe.init(route, false);
  probe.feed(body.data(), body.size());
  probe.finish();
  InjectEdit edit;
  const InjectOutcome outcome = plan_include_usage(probe, route, false, body.size(), &edit);
  if (outcome != InjectOutcome::injected) return outcome;
  if (out_cap < body.size() + inject_growth_bytes_max) return InjectOutcome::out_too_small;
  const std::size_t n = splice(body, edit.at, edit.remove, edit.insert(), "", out);
  TT_ASSERT(n <= out_cap);
  *out_len = n;
  return InjectOutcome::injected;
}

}  // namespace tokentap
