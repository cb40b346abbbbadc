// Request JSON scanning: the handful of request-body fields that change the fake's answer.
//
// A validating single-pass scanner over one JSON object. Top-level keys it does not need are
// skipped with bounded nesting (json_depth_max); nothing is allocated. Strings are returned raw
// (escapes kept), which is how the fake echoes `model` back.
#pragma once

#include <cstdint>
#include <string_view>

namespace tokentap::fake {

constexpr int json_depth_max = 64;

struct RequestFields {
  std::string_view model;  // contents of the "model" string, escapes kept
  bool has_model = false;
  std::int8_t stream = -1;       // -1 absent or null, 0 false, 1 true
  bool include_usage = false;    // stream_options.include_usage == true
  bool raw = false;              // generate: raw:true drops `context`
  bool prompt_empty = true;      // "prompt" absent, null or ""
  std::int64_t messages = -1;    // element count of "messages"; -1 absent or not an array
  std::int64_t inputs = -1;      // "input": 1 for a non-empty string, 0 for "", N for an array
  bool keep_alive_zero = false;  // "keep_alive" is 0 (number) or a zero duration string
  bool has_tools = false;        // "tools" is a non-empty array
  // /api/pull and /api/delete accept the old "name" for "model"; /api/copy names two models.
  std::string_view name;
  std::string_view source;
  std::string_view destination;
};

// False if `body` is not a single JSON object (then `out` is unspecified).
[[nodiscard]] bool scan_request_json(std::string_view body, RequestFields* out);

}  // namespace tokentap::fake
