// request_probe: what a request body says about its model, stream flag and include_usage, read
// incrementally with the semantics of Ollama's Go decoding; and the include_usage injection.
//
// Ollama decodes request bodies with encoding/json (gin ShouldBindJSON or json.Decoder) into Go
// structs, whatever the Content-Type, so RequestProbe reproduces what those structs end up with:
//   - Keys match case-insensitively (Go also folds U+017F to 's' and U+212A to 'k'), escapes in
//     keys are decoded, and only top-level members count: "model" inside messages is not taken.
//   - Duplicate keys: every occurrence is decoded in order, so the last one wins. JSON null is a
//     no-op for plain fields (model string, OpenAI/Anthropic stream bool, include_usage bool) and
//     resets pointer fields (native and Responses *bool stream, *StreamOptions).
//   - A value of the wrong type for one of these fields makes Go reject the body (400), and so
//     does anything but an object at the root, or invalid JSON: the facts are then "unparsable".
//   - The decoder stops after the root value, so trailing bytes are never read.
// Every route is read (a /api/pull or /api/show body names a model too); a non-JSON body, such
// as a /api/blobs upload, fails on its first byte and costs nothing more.
// Facts are final once settled(): when the root value has ended (possibly long before the body
// ends: nothing after it is scanned), or at finish(). Unparsable bodies and bodies with a
// Content-Encoding (zstd on /v1 routes; tokentap cannot decode it) give model unknown, the
// route's default stream, and include_usage false.
//
// The model name is the decoded string; it is usable (a label value) when it is 1..256 bytes of
// valid UTF-8 without control characters (C0, DEL, C1) and had no lone surrogate escape.
//
// State is fixed-size; no allocation; a 100 MiB body with model last costs one pass at SWAR
// speed over everything the paths do not enter. No kernel features.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

#include "tokentap/meter/json_skim.h"
#include "tokentap/base/route.h"

namespace tokentap {

constexpr std::size_t model_bytes_max = 256;
constexpr std::size_t inject_body_bytes_max = 1024 * 1024;  // bodies buffered for injection
// `"stream_options":{"include_usage":true},` is the most the injection adds.
constexpr std::size_t inject_growth_bytes_max = 40;
static_assert(model_bytes_max <= skim_capture_bytes_max);

// Valid UTF-8 (no overlongs, surrogates or code points past U+10FFFF), no C0, DEL or C1 control
// characters, 1..model_bytes_max bytes.
[[nodiscard]] bool valid_model_name(std::string_view name);

class RequestProbe {
 public:
  // Where a member sits in the body, for the injection (offsets count from the body's start).
  struct Member {
    std::uint32_t count = 0;         // occurrences
    JsonType type = JsonType::none;  // of the last one
    bool nonempty = false;
    std::uint64_t begin = 0;
    std::uint64_t end = 0;
  };

  // body_encoded: the request has a Content-Encoding other than identity.
  void init(Route route, bool body_encoded);
  void feed(const char* data, std::size_t size);
  // The body ended. Settles the facts if the root value did not already.
  void finish();

  [[nodiscard]] bool settled() const { return settled_; }
  // The root was a complete object Go would accept (as far as the tracked fields tell).
  [[nodiscard]] bool parsed() const { return parsed_; }
  // The model label value, or nullopt for "unknown".
  [[nodiscard]] std::optional<std::string_view> model() const;
  // The effective stream flag (the route's default when absent, null or unparsable).
  [[nodiscard]] bool stream() const;
  // stream_options.include_usage is true (chat/completions only).
  [[nodiscard]] bool include_usage() const { return parsed_ && include_usage_; }

  [[nodiscard]] std::uint64_t root_begin() const { return root_begin_; }
  [[nodiscard]] JsonType root_type() const { return root_type_; }
  [[nodiscard]] bool syntax_ok() const { return syntax_ok_; }
  [[nodiscard]] bool type_error() const { return type_error_; }
  [[nodiscard]] const Member& stream_options_member() const { return stream_options_; }
  [[nodiscard]] const Member& include_usage_member() const { return include_usage_member_; }

 private:
  enum class ModelState : std::uint8_t { absent, valid, invalid };
  void on_capture(const SkimCapture& c);
  void on_model(const SkimCapture& c);
  void on_stream(const SkimCapture& c);
  void settle(bool syntax_ok);
  static void record(Member* m, const SkimCapture& c);

  JsonSkim skim_;
  Member stream_options_;
  Member include_usage_member_;
  std::uint64_t root_begin_ = 0;
  Route route_ = Route::other;
  JsonType root_type_ = JsonType::none;
  ModelState model_state_ = ModelState::absent;
  bool settled_ = true;
  bool parsed_ = false;
  bool syntax_ok_ = false;
  bool type_error_ = false;
  bool stream_set_ = false;
  bool stream_value_ = false;
  bool include_usage_ = false;
  std::uint16_t model_len_ = 0;
  std::array<char, model_bytes_max> model_{};
};

enum class InjectOutcome : std::uint8_t {
  injected,       // out holds the body with include_usage true; strip the usage from the stream
  client_asked,   // include_usage is already true: forward the body as is, keep the usage chunk
  not_streaming,  // effective stream is false: forward as is
  wrong_route,    // only /v1/chat/completions and /v1/completions take stream_options
  encoded,        // Content-Encoding set: the body is opaque
  too_large,      // body longer than inject_body_bytes_max
  out_too_small,  // out_cap < body size + inject_growth_bytes_max
  not_json,       // invalid or incomplete JSON
  not_object,     // valid JSON whose root is not an object
  rejected,       // a tracked field has a type Go rejects: Ollama will answer 400 anyway
  ambiguous,      // duplicate stream_options or include_usage members: left alone
};

[[nodiscard]] std::string_view inject_outcome_name(InjectOutcome o);

// For a whole buffered request body: writes into out the body with stream_options.include_usage
// set to true, changing nothing else: the member `"stream_options":{"include_usage":true}` goes
// right after the root '{'; into an existing stream_options object `"include_usage":true` goes
// right after its '{'; an explicit include_usage false/null becomes true; a stream_options null
// becomes {"include_usage":true}. *out_len is set only for `injected`.
// The injection as one edit of the body: remove `remove` bytes at `at`, insert `text` there.
// Lets the proxy apply it to a body it holds as received buffers, without copying the body.
struct InjectEdit {
  std::uint64_t at = 0;
  std::uint64_t remove = 0;
  std::array<char, inject_growth_bytes_max> text{};
  std::uint8_t text_len = 0;
  [[nodiscard]] std::string_view insert() const { return {text.data(), text_len}; }
};

// Decides the injection from a probe that has seen the whole body (settled, finish() called).
// `injected` fills *edit; every other outcome means: forward the body untouched.
[[nodiscard]] InjectOutcome plan_include_usage(const RequestProbe& probe, Route route,
                                               bool body_encoded, std::uint64_t body_size,
                                               InjectEdit* edit);

[[nodiscard]] InjectOutcome inject_include_usage(std::string_view body, Route route,
                                                 bool body_encoded, char* out, std::size_t out_cap,
                                                 std::size_t* out_len);

}  // namespace tokentap
