// sse_lexer: SseLexer, the text/event-stream line lexer (the WHATWG event-stream format) behind
// TailScanner's general SSE path. It classifies runs of bytes (framing, a data or event value, a
// line or event end) and keeps only a field name's first bytes, so its state is a few bytes
// whatever the input; CR, LF and CRLF all end a line, a CRLF split across feeds included.
#include "tokentap/meter/llm_tail.h"

#include <algorithm>
#include <cstring>
#include <string_view>

#include "byte_scan.h"
#include "tokentap/base/assert.h"

namespace tokentap {
namespace {

// Length of the line content at p: up to the first CR or LF (n if none).
std::size_t line_length(const char* p, std::size_t n) {
  return static_cast<std::size_t>(byte_scan::find_line_end(p, p + n) - p);
}

}  // namespace

std::size_t SseLexer::next(const char* p, std::size_t n, Run* run) {
  TT_DASSERT(n > 0);
  if (after_cr_) {
    after_cr_ = false;
    if (*p == '\n') {
      *run = Run::crlf_tail;
      return 1;
    }
  }
  switch (state_) {
    case State::line_start:
      field_ = Field::other;
      if (*p == '\r' || *p == '\n') {
        after_cr_ = *p == '\r';
        *run = Run::event_end;
        return 1;
      }
      name_len_ = 0;
      state_ = *p == ':' ? State::ignore : State::name;
      return state_ == State::name ? next_name(p, n, run) : next_value(p, n, run);
    case State::name:
      return next_name(p, n, run);
    case State::after_colon:
      state_ = State::value;
      if (*p == ' ') {
        *run = Run::framing;
        return 1;
      }
      return next_value(p, n, run);
    case State::value:
    case State::ignore:
      return next_value(p, n, run);
  }
  return 0;
}

std::size_t SseLexer::next_name(const char* p, std::size_t n, Run* run) {
  *run = Run::framing;
  std::size_t i = 0;
  while (i < n && p[i] != ':' && p[i] != '\r' && p[i] != '\n') ++i;
  if (i > 0) {
    // Keep what fits; one past the buffer means "too long".
    const std::size_t room = name_.size() - std::min<std::size_t>(name_len_, name_.size());
    std::memcpy(name_.data() + (name_.size() - room), p, std::min(i, room));
    name_len_ = static_cast<std::uint8_t>(std::min(name_len_ + i, name_.size() + 1));
    return i;
  }
  if (*p == ':') {
    const std::string_view name(name_.data(), name_len_ <= name_.size() ? name_len_ : 0);
    field_ = name == "data" ? Field::data : name == "event" ? Field::event : Field::other;
    state_ = State::after_colon;
    if (field_ != Field::other) *run = Run::value_start;
    return 1;
  }
  // A line without a colon: ignored, its terminator included.
  after_cr_ = *p == '\r';
  state_ = State::line_start;
  return 1;
}

std::size_t SseLexer::next_value(const char* p, std::size_t n, Run* run) {
  const bool named = state_ == State::value && field_ != Field::other;
  const std::size_t len = line_length(p, n);
  if (len > 0) {
    *run = !named ? Run::framing : field_ == Field::data ? Run::data : Run::event_name;
    return len;
  }
  *run = named ? Run::line_end : Run::framing;
  after_cr_ = *p == '\r';
  state_ = State::line_start;
  return 1;
}

}  // namespace tokentap
