// error_body: the body of a reply tokentap writes itself (502 upstream down, 503, refusals),
// shaped like the API the client called, so every SDK parses it as it parses that server's own
// errors (docs/wire-format.md §5, §7.1, §8):
//   Ollama      /api/*, anything else   {"error":"<message>"}
//   OpenAI      /v1/* but /v1/messages  {"error":{"message":…,"type":…,"param":null,"code":null}}
//   Anthropic   /v1/messages*           {"type":"error","error":{"type":…,"message":…},
//                                         "request_id":"req_<24 hex>"}
// The `type` follows the status as Ollama's own compatibility layers map it. Pure functions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace tokentap {

enum class ErrorDialect : std::uint8_t { ollama, openai, anthropic };

[[nodiscard]] ErrorDialect error_dialect_of(std::string_view target);

// OpenAI's and Anthropic's `type` for a status.
[[nodiscard]] std::string_view openai_error_type(int status);
[[nodiscard]] std::string_view anthropic_error_type(int status);

constexpr std::size_t error_message_bytes_max = 255;  // longer messages are cut

// Writes the body for `message` (any bytes: quotes, backslashes and controls are escaped or
// replaced) into out; returns its length (0 if cap is too small). request_id_seed makes the
// Anthropic request_id (any 96 bits the caller has, e.g. a counter and a clock).
[[nodiscard]] std::size_t write_error_body(ErrorDialect d, int status, std::string_view message,
                                           std::uint64_t request_id_seed, char* out,
                                           std::size_t cap);

// The Content-Type each dialect's errors carry.
[[nodiscard]] std::string_view error_content_type(ErrorDialect d);

}  // namespace tokentap
