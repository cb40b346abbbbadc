// UsageStrip: removes from an OpenAI-compatible SSE stream what stream_options.include_usage
// added, for requests where the proxy injected it, so the client receives exactly the body bytes
// it would have received without tokentap (metrics.md, "OpenAI streams and usage").
//
// What include_usage adds (Ollama middleware/openai.go, wire-format §7.2-7.3; OpenAI does the
// same):
//   - one extra event `data: {...,"choices":[],"usage":{...}}\n\n` before `data: [DONE]`;
//   - /v1/completions: a `"usage":{"prompt_tokens":0,...}` member at the end of every chunk
//     (Go's omitempty *Usage is nil without include_usage); OpenAI adds `"usage":null` instead.
// So the filter drops every event whose root has "choices":[] and a non-null "usage", and
// removes the root "usage" member (with one adjacent comma) from every other event. Nothing else
// changes: framing, whitespace and key order pass through byte for byte.
//
// How. Bytes are passed through as soon as nothing about them is pending. An event is held from
// its first byte until its fate is known (normally at its "choices" value, which Ollama puts
// after id/object/created/model/system_fingerprint); a root member is held from its separator
// until its key is known, and a usage member until it ends, then discarded. Only bytes of the
// current event are ever held, at most strip_hold_bytes_max; past that, or when a member would
// span an SSE line break, the filter gives up on that event and passes it through unchanged
// (fail open: the client may see an extra usage, never a damaged event). Both are counted.
//
// A body that starts with '{' or '[' is not SSE (an error object): it passes through untouched.
//
// Interface: feed() calls sink(const char*, std::size_t) with output spans in order; spans may
// point into the input or into the filter's hold buffer and are valid only during the call.
// No allocation; no kernel features.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

#include "tokentap/meter/llm_tail.h"

namespace tokentap {

constexpr std::size_t strip_hold_bytes_max = 1024;  // the usage event is ~250 B + model name
constexpr std::size_t strip_key_bytes_max = 8;      // "choices" and "usage" fit

class UsageStrip {
 public:
  void reset() { *this = UsageStrip{}; }

  // Consecutive pass steps over adjacent input are handed to sink as one span.
  template <typename Sink>
  void feed(const char* data, std::size_t size, Sink&& sink) {
    const char* pass_from = data;
    std::size_t pass_len = 0;  // input bytes passed but not yet given to sink
    while (size > 0) {
      const Step s = step(data, size);
      if (s.flush > 0) {
        if (pass_len > 0) sink(pass_from, pass_len);
        pass_len = 0;
        sink(static_cast<const char*>(hold_.data()), s.flush);
        release(s.flush);
      }
      if (s.disp == Disp::pass) {
        if (pass_len > 0 && pass_from + pass_len != data) {
          sink(pass_from, pass_len);
          pass_len = 0;
        }
        if (pass_len == 0) pass_from = data;
        pass_len += s.consumed;
      } else if (s.disp == Disp::hold) {
        append(data, s.consumed);
      }
      data += s.consumed;
      size -= s.consumed;
    }
    if (pass_len > 0) sink(pass_from, pass_len);
  }

  // The body ended: an event still held (cut off mid-way) is passed on as it was received.
  template <typename Sink>
  void finish(Sink&& sink) {
    if (hold_len_ > 0) sink(static_cast<const char*>(hold_.data()), std::size_t{hold_len_});
    hold_len_ = 0;
  }

  [[nodiscard]] std::uint32_t events_dropped() const { return events_dropped_; }
  [[nodiscard]] std::uint32_t members_removed() const { return members_removed_; }
  [[nodiscard]] std::uint32_t gave_up() const { return gave_up_; }

 private:
  enum class Disp : std::uint8_t { pass, hold, drop };
  enum class Verdict : std::uint8_t { undecided, pass, drop };
  enum class Fact : std::uint8_t { unknown, empty, other, null };
  enum class Key : std::uint8_t { other, choices, usage };
  // Position in the event's JSON, root level only; values are opaque.
  enum class Js : std::uint8_t {
    before,
    member_start,
    key,
    key_escape,
    colon,
    value_start,
    string,
    string_escape,
    nested,
    nested_string,
    nested_escape,
    scalar,
    after_value,
    done,
    off,
  };
  struct Step {
    std::size_t consumed = 0;
    std::size_t flush = 0;  // emit hold_[0, flush) before the consumed bytes
    Disp disp = Disp::pass;
  };

  Step step(const char* p, std::size_t n);
  Step frame_step(SseLexer::Run run, std::size_t len);
  [[nodiscard]] static std::size_t untouchable_event(const char* p, std::size_t n);
  Step data_step(const char* p, std::size_t n);
  Step finalize(Step s);
  [[nodiscard]] std::size_t quiet_run(const char* p, std::size_t n);
  [[nodiscard]] bool inert(char c) const;
  [[nodiscard]] std::size_t string_run(const char* p, const char* end);
  [[nodiscard]] std::size_t nested_run(const char* p, const char* end);
  void on_byte(char c);
  void on_member_start(char c);
  void on_key_byte(char c);
  void on_nested(char c);
  void on_value_start(char c);
  void on_after_value(char c);
  void begin_event();
  void begin_member();
  [[nodiscard]] bool end_member();
  void decide();
  [[nodiscard]] Disp disp_now() const;
  void append(const char* p, std::size_t n);
  void release(std::size_t n);

  SseLexer lexer_;
  std::size_t ahead_ = 0;  // bytes at the input's front the lexer already called data
  std::uint32_t events_dropped_ = 0;
  std::uint32_t members_removed_ = 0;
  std::uint32_t gave_up_ = 0;
  std::uint32_t vdepth_ = 0;  // nesting inside a root member's value
  std::uint16_t hold_len_ = 0;
  std::uint16_t member_mark_ = 0;  // hold_ offset where the pending member starts
  Verdict verdict_ = Verdict::pass;
  Js js_ = Js::off;
  Fact choices_ = Fact::unknown;
  Fact usage_ = Fact::unknown;
  Key member_key_ = Key::other;
  Disp last_disp_ = Disp::pass;  // for the LF of a CRLF
  bool started_ = false;         // the body's first byte was seen
  bool bypass_ = false;          // the body is JSON, not SSE
  bool in_event_ = false;
  bool member_pending_ = false;
  bool member_due_ = false;     // the next byte in member_start begins a member
  bool member_first_ = false;   // the pending member is the object's first
  bool choices_probe_ = false;  // inside choices' '[': the next non-space byte tells emptiness
  bool eat_ = false;            // drop the byte just processed (a comma after a removed member)
  bool end_event_ = false;
  std::uint8_t key_len_ = 0;
  bool key_long_ = false;
  std::array<char, strip_key_bytes_max> key_{};
  std::array<char, strip_hold_bytes_max> hold_{};
};

}  // namespace tokentap
