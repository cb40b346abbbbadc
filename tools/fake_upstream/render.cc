// Render dispatch, content types, error envelopes and the helpers every dialect shares.
#include "render.h"

#include <array>
#include <charconv>
#include <cmath>
#include <string>

namespace tokentap::fake {
namespace render_detail {
namespace {

constexpr std::size_t embedding_dims = 384;  // all-minilm: far above 2048 bytes, so chunked

constexpr std::array<std::string_view, 32> words{{
    "The",  " sky",      " is",     " blue",    " because",  " molecules",
    " in",  " the",      " air",    " scatter", " short",    " wavelengths",
    " of",  " sunlight", " more",   " than",    " long",     " ones",
    ",",    " an",       " effect", " called",  " Rayleigh", " scattering",
    ".",    " At",       " sunset", " light",   " travels",  " farther",
    " and", " reddens",
}};

std::string make_embedding(bool widen) {
  std::string s = "[";
  char buf[40];
  for (std::size_t i = 0; i < embedding_dims; ++i) {
    // Deterministic values in (-0.1, 0.1); only their text matters.
    const float v = static_cast<float>(std::sin(static_cast<double>(i) * 0.37 + 0.5) * 0.1);
    const auto r = widen ? std::to_chars(buf, buf + sizeof(buf), static_cast<double>(v))
                         : std::to_chars(buf, buf + sizeof(buf), v);
    if (i > 0) s += ',';
    s.append(buf, r.ptr);
  }
  s += ']';
  return s;
}

}  // namespace

std::string_view piece_word(std::uint32_t piece) { return words[piece % words.size()]; }

void put_string(ByteBuf& out, std::string_view raw) {
  out.append('"');
  std::size_t start = 0;
  for (std::size_t i = 0; i < raw.size(); ++i) {
    const char c = raw[i];
    if (c != '<' && c != '>' && c != '&') continue;
    out.append(raw.substr(start, i - start));
    out.append(c == '<' ? "\\u003c" : c == '>' ? "\\u003e" : "\\u0026");
    start = i + 1;
  }
  out.append(raw.substr(start));
  out.append('"');
}

void put_joined(ByteBuf& out, const Plan& plan, PieceKind kind) {
  out.append('"');
  for (std::uint32_t p = 0; p < plan.tokens; ++p) {
    if (plan.kind(p) == kind) out.append(piece_word(p));
  }
  out.append('"');
}

std::string_view embedding_f32() {
  static const std::string text = make_embedding(false);
  return text;
}

std::string_view embedding_f64() {
  static const std::string text = make_embedding(true);
  return text;
}

}  // namespace render_detail

using namespace render_detail;

namespace {

enum class Family : std::uint8_t { native, openai, responses, anthropic };

Family family_of(Endpoint e) {
  switch (e) {
    case Endpoint::v1_chat:
    case Endpoint::v1_completions:
    case Endpoint::v1_embeddings:
      return Family::openai;
    case Endpoint::v1_responses:
      return Family::responses;
    case Endpoint::v1_messages:
      return Family::anthropic;
    default:
      return Family::native;
  }
}

// OpenAI error `type` by status (openai/openai.go).
std::string_view openai_error_type(int status) {
  if (status == 400) return "invalid_request_error";
  if (status == 404) return "not_found_error";
  return "api_error";
}

// Anthropic error `type` by status (anthropic/anthropic.go).
std::string_view anthropic_error_type(int status) {
  switch (status) {
    case 400:
      return "invalid_request_error";
    case 401:
      return "authentication_error";
    case 403:
      return "permission_error";
    case 404:
      return "not_found_error";
    case 429:
      return "rate_limit_error";
    case 503:
    case 529:
      return "overloaded_error";
    default:
      return "api_error";
  }
}

}  // namespace

Usage render_body(const Plan& plan, ByteBuf& out) {
  switch (family_of(plan.endpoint)) {
    case Family::native:
      return render_native_body(plan, out);
    case Family::openai:
      return render_openai_body(plan, out);
    case Family::responses:
      return render_responses_body(plan, out);
    case Family::anthropic:
      return render_anthropic_body(plan, out);
  }
  return {};
}

Usage render_event(const Plan& plan, const Script::Event& event, ByteBuf& out) {
  if (plan.endpoint == Endpoint::pull) {  // progress, not inference: no usage
    render_pull_event(plan, event, out);
    return {};
  }
  switch (family_of(plan.endpoint)) {
    case Family::native:
      return render_native_event(plan, event, out);
    case Family::openai:
      return render_openai_event(plan, event, out);
    case Family::responses:
      return render_responses_event(plan, event, out);
    case Family::anthropic:
      return render_anthropic_event(plan, event, out);
  }
  return {};
}

void render_error(const Plan& plan, int status, std::string_view message, ByteBuf& out) {
  switch (family_of(plan.endpoint)) {
    case Family::native:  // gin.H{"error": ...} through c.JSON or a raw write: no newline
      out.append(R"({"error":)");
      put_string(out, message);
      out.append('}');
      return;
    case Family::openai:
    case Family::responses:
      out.append(R"({"error":{"message":)");
      put_string(out, message);
      out.append(R"(,"type":")");
      out.append(openai_error_type(status));
      out.append("\",\"param\":null,\"code\":null}}\n");
      return;
    case Family::anthropic:
      out.append(R"({"type":"error","error":{"type":")");
      out.append(anthropic_error_type(status));
      out.append(R"(","message":)");
      put_string(out, message);
      out.append(R"(},"request_id":"req_)");
      out.append(plan.stamp->hex24_req());
      out.append("\"}\n");
      return;
  }
}

std::string_view body_content_type(const Plan& plan) {
  return family_of(plan.endpoint) == Family::native ? "application/json; charset=utf-8"
                                                    : "application/json";
}

std::string_view error_content_type(const Plan& plan) {
  // A native stream that fails before its first token writes the error itself (no charset).
  if (family_of(plan.endpoint) == Family::native && !plan.stream) {
    return "application/json; charset=utf-8";
  }
  return "application/json";
}

std::string_view stream_content_type(const Plan& plan) {
  return family_of(plan.endpoint) == Family::native ? "application/x-ndjson" : "text/event-stream";
}

bool sets_stream_headers(const Plan& plan) {
  const Family f = family_of(plan.endpoint);
  return plan.stream && (f == Family::anthropic || f == Family::responses);
}

}  // namespace tokentap::fake
