// error_body: dialect-shaped error bodies; see error_body.h.
#include "tokentap/proxy/error_body.h"

#include <fmt/format.h>

namespace tokentap {
namespace {

// The message as JSON string contents: what needs no escape is kept, '"' and '\' are escaped,
// control bytes become spaces.
std::size_t json_text(std::string_view in, char* out, std::size_t cap) {
  std::size_t n = 0;
  for (const char c : in.substr(0, error_message_bytes_max)) {
    const auto u = static_cast<unsigned char>(c);
    if (n + 2 > cap) break;
    if (c == '"' || c == '\\') out[n++] = '\\';
    out[n++] = u < 0x20 ? ' ' : c;
  }
  return n;
}

}  // namespace

ErrorDialect error_dialect_of(std::string_view target) {
  if (target.starts_with("/v1/messages")) return ErrorDialect::anthropic;
  if (target.starts_with("/v1/")) return ErrorDialect::openai;
  return ErrorDialect::ollama;
}

std::string_view openai_error_type(int status) {
  switch (status) {
    case 400: return "invalid_request_error";
    case 404: return "not_found_error";
    default: return "api_error";
  }
}

std::string_view anthropic_error_type(int status) {
  switch (status) {
    case 400: return "invalid_request_error";
    case 401: return "authentication_error";
    case 403: return "permission_error";
    case 404: return "not_found_error";
    case 429: return "rate_limit_error";
    case 503:
    case 529: return "overloaded_error";
    default: return "api_error";
  }
}

std::string_view error_content_type(ErrorDialect d) {
  return d == ErrorDialect::ollama ? "application/json; charset=utf-8" : "application/json";
}

std::size_t write_error_body(ErrorDialect d, int status, std::string_view message,
                             std::uint64_t request_id_seed, char* out, std::size_t cap) {
  char text_buf[2 * error_message_bytes_max + 2];
  const std::string_view text(text_buf, json_text(message, text_buf, sizeof(text_buf)));
  fmt::format_to_n_result<char*> r{out, 0};
  switch (d) {
    case ErrorDialect::ollama:
      r = fmt::format_to_n(out, cap, "{{\"error\":\"{}\"}}", text);
      break;
    case ErrorDialect::openai:
      r = fmt::format_to_n(out, cap,
                           "{{\"error\":{{\"message\":\"{}\",\"type\":\"{}\",\"param\":null,"
                           "\"code\":null}}}}\n",
                           text, openai_error_type(status));
      break;
    case ErrorDialect::anthropic:
      r = fmt::format_to_n(out, cap,
                           "{{\"type\":\"error\",\"error\":{{\"type\":\"{}\",\"message\":\"{}\"}},"
                           "\"request_id\":\"req_{:08x}{:016x}\"}}\n",
                           anthropic_error_type(status), text,
                           static_cast<std::uint32_t>(request_id_seed >> 40), request_id_seed);
      break;
  }
  return r.size <= cap ? r.size : 0;
}

}  // namespace tokentap
