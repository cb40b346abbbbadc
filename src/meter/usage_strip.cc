// UsageStrip: the hold/pass/drop state machine behind the template feed() in usage_strip.h.
//
// step() classifies the next run of input bytes: the SSE lexer gives runs of one meaning; data
// runs are cut further by the root-level JSON tracker wherever a byte may change what is pending.
// After each step, finalize() decides what of the hold buffer can be emitted before the run.
#include "tokentap/meter/usage_strip.h"

#include <cstring>
#include <string_view>

#include "byte_scan.h"
#include "tokentap/base/assert.h"

namespace tokentap {
namespace {

constexpr bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
using byte_scan::find_bracket_or_quote;
using byte_scan::find_quote_or_backslash;

constexpr bool is_scalar_char(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '.' ||
         c == '+' || c == '-';
}

}  // namespace

UsageStrip::Step UsageStrip::step(const char* p, std::size_t n) {
  if (!started_) {
    // A JSON body (an error answered before any output) is not SSE: pass it through untouched
    // instead of holding it as one endless event.
    started_ = true;
    bypass_ = *p == '{' || *p == '[';
  }
  if (bypass_) return Step{n, 0, Disp::pass};
  if (ahead_ == 0 && !in_event_ && lexer_.at_line_start()) {
    if (const std::size_t len = untouchable_event(p, n); len > 0) {
      return finalize(Step{len, 0, Disp::pass});
    }
  }
  if (ahead_ == 0) {
    SseLexer::Run run = SseLexer::Run::framing;
    const std::size_t len = lexer_.next(p, n, &run);
    if (run != SseLexer::Run::data) return finalize(frame_step(run, len));
    ahead_ = len;
  }
  Step s = data_step(p, ahead_);
  ahead_ -= s.consumed;
  return finalize(s);
}

// The length of a whole event at p (its blank line included) that this filter would pass
// unchanged, or 0. Only a `"usage"` token can make an event dropped or edited, and those seven
// bytes cannot occur inside a JSON string (its quotes would be escaped), so an event without
// them passes as is: it goes out in one step instead of through the byte-wise tracker, which
// is what almost every event of a stream is. Only LF-framed events wholly in this input qualify
// (then the lexer ends them at line start, exactly where it began); anything else takes the
// general path.
std::size_t UsageStrip::untouchable_event(const char* p, std::size_t n) {
  if (*p == '\n' || *p == '\r') return 0;  // a blank line: the lexer's to classify
  constexpr std::string_view usage_key = "\"usage\"";
  const char* const end = p + n;
  for (const char* q = p;; ++q) {
    q = byte_scan::find_event_mark(q, end);
    if (q == end || *q == '\r') return 0;  // no whole event here, or CR framing
    if (*q == '\n') return static_cast<std::size_t>(q - p) + 2;
    if (static_cast<std::size_t>(end - q) >= usage_key.size() &&
        std::memcmp(q, usage_key.data(), usage_key.size()) == 0) {
      return 0;
    }
  }
}

UsageStrip::Step UsageStrip::frame_step(SseLexer::Run run, std::size_t len) {
  Step s;
  s.consumed = len;
  switch (run) {
    case SseLexer::Run::crlf_tail:
      s.disp = last_disp_;  // the LF goes wherever its CR went
      return s;
    case SseLexer::Run::event_end:
      if (in_event_) {
        if (verdict_ != Verdict::drop) {
          verdict_ = Verdict::pass;  // undecided at its end: not a usage event
          member_pending_ = false;
        }
        end_event_ = true;
      }
      s.disp = disp_now();
      return s;
    case SseLexer::Run::line_end:
      // A member may not span data lines: removing it would take framing bytes with it.
      if (member_pending_) {
        member_pending_ = false;
        js_ = Js::off;
        ++gave_up_;
        decide();
      }
      break;
    default:
      break;
  }
  if (!in_event_) begin_event();
  s.disp = disp_now();
  return s;
}

UsageStrip::Step UsageStrip::data_step(const char* p, std::size_t n) {
  Step s;
  const std::size_t quiet = quiet_run(p, n);
  if (quiet > 0) {
    s.consumed = quiet;
  } else {
    on_byte(*p);
    decide();
    s.consumed = 1;
    if (eat_) {
      eat_ = false;
      s.disp = verdict_ != Verdict::drop ? Disp::drop : disp_now();
      return s;
    }
  }
  // Go on while the bytes cannot change the verdict, what is pending, or the hold: they share
  // this step's disposition, and a step of its own would release nothing before them.
  while (s.consumed < n) {
    const char* q = p + s.consumed;
    const std::size_t more = quiet_run(q, n - s.consumed);
    if (more > 0) {
      s.consumed += more;
      continue;
    }
    if (!inert(*q)) break;
    on_byte(*q);
    TT_DASSERT(!eat_);
    ++s.consumed;
  }
  s.disp = disp_now();
  return s;
}

// A byte whose on_byte() leaves the verdict, the pending member (its flag, mark and key) and the
// hold as they are, and after which decide() has nothing new to decide.
bool UsageStrip::inert(char c) const {
  switch (js_) {
    case Js::before:
      return c == '{';
    case Js::member_start:
      return !member_due_ && c == '"';
    case Js::key:
      // The closing quote settles whether the member is pending: that matters once it passes.
      return c == '\\' || verdict_ != Verdict::pass;
    case Js::key_escape:
      return true;
    case Js::colon:
      return c == ':';
    case Js::value_start:
      return member_key_ == Key::other;  // choices and usage values feed decide()
    default:
      return false;
  }
}

// Decides what of the hold buffer goes out before this step's bytes, and fails open if this
// step's bytes would not fit.
UsageStrip::Step UsageStrip::finalize(Step s) {
  if (verdict_ == Verdict::pass) {
    s.flush = member_pending_ ? member_mark_ : hold_len_;
  }
  if (s.disp == Disp::hold && hold_len_ - s.flush + s.consumed > hold_.size()) {
    s.flush = hold_len_;
    s.disp = Disp::pass;
    verdict_ = Verdict::pass;
    member_pending_ = false;
    js_ = Js::off;
    ++gave_up_;
  }
  last_disp_ = s.disp;
  if (end_event_) {
    end_event_ = false;
    in_event_ = false;
    verdict_ = Verdict::pass;
    js_ = Js::off;
  }
  return s;
}

// Bytes that change nothing pending: string and nested-value contents (their closing byte
// included: it changes neither the verdict nor the disposition), scalar characters, key
// characters (collected), and whitespace between tokens.
std::size_t UsageStrip::quiet_run(const char* p, std::size_t n) {
  std::size_t i = 0;
  switch (js_) {
    case Js::string:
    case Js::string_escape:
      return string_run(p, p + n);
    case Js::nested:
    case Js::nested_string:
    case Js::nested_escape:
      return choices_probe_ ? 0 : nested_run(p, p + n);
    case Js::scalar:
      while (i < n && is_scalar_char(p[i])) ++i;
      break;
    case Js::key: {
      i = static_cast<std::size_t>(find_quote_or_backslash(p, p + n) - p);
      const std::size_t room = key_.size() - key_len_;
      key_long_ = key_long_ || i > room;
      std::memcpy(key_.data() + key_len_, p, i < room ? i : room);
      key_len_ = static_cast<std::uint8_t>(key_len_ + (i < room ? i : room));
      break;
    }
    case Js::member_start:
      if (member_due_) break;
      [[fallthrough]];
    case Js::before:
    case Js::colon:
    case Js::value_start:
    case Js::after_value:
      while (i < n && is_ws(p[i])) ++i;
      break;
    case Js::done:
    case Js::off:
      i = n;
      break;
    default:
      break;
  }
  return i;
}

// A root member's string value, up to and including its closing quote.
std::size_t UsageStrip::string_run(const char* p, const char* end) {
  bool escape = js_ == Js::string_escape;
  bool closed = false;
  const char* q = byte_scan::skip_string(p, end, &escape, &closed);
  js_ = closed ? Js::after_value : escape ? Js::string_escape : Js::string;
  return static_cast<std::size_t>(q - p);
}

// A root member's object or array value, up to and including its closing bracket. Like
// on_nested, brackets are only counted (values are opaque here).
std::size_t UsageStrip::nested_run(const char* p, const char* end) {
  const char* q = p;
  while (q < end) {
    if (js_ == Js::nested_string || js_ == Js::nested_escape) {
      bool escape = js_ == Js::nested_escape;
      bool closed = false;
      q = byte_scan::skip_string(q, end, &escape, &closed);
      js_ = closed ? Js::nested : escape ? Js::nested_escape : Js::nested_string;
      continue;
    }
    q = find_bracket_or_quote(q, end);
    if (q == end) break;
    const char c = *q++;
    if (c == '"') {
      js_ = Js::nested_string;
    } else if (c == '{' || c == '[') {
      ++vdepth_;
    } else if (--vdepth_ == 0) {
      js_ = Js::after_value;
      break;
    }
  }
  return static_cast<std::size_t>(q - p);
}

void UsageStrip::on_byte(char c) {
  switch (js_) {
    case Js::before:
      js_ = c == '{' ? Js::member_start : Js::off;
      member_due_ = true;
      member_first_ = true;
      return;
    case Js::member_start:
      on_member_start(c);
      return;
    case Js::key:
      on_key_byte(c);
      return;
    case Js::key_escape:
      js_ = Js::key;
      return;
    case Js::colon:
      js_ = c == ':' ? Js::value_start : Js::off;
      return;
    case Js::value_start:
      on_value_start(c);
      return;
    case Js::string:
      js_ = c == '"' ? Js::after_value : Js::string_escape;
      return;
    case Js::string_escape:
      js_ = Js::string;
      return;
    case Js::nested:
      on_nested(c);
      return;
    case Js::nested_string:
      js_ = c == '"' ? Js::nested : Js::nested_escape;
      return;
    case Js::nested_escape:
      js_ = Js::nested_string;
      return;
    case Js::scalar:
      js_ = Js::after_value;
      on_after_value(c);
      return;
    case Js::after_value:
      on_after_value(c);
      return;
    case Js::done:
    case Js::off:
      return;
  }
}

void UsageStrip::on_member_start(char c) {
  if (member_due_) {
    member_due_ = false;
    begin_member();
  }
  if (is_ws(c)) return;
  if (c == '"') {
    js_ = Js::key;
    key_len_ = 0;
    key_long_ = false;
    return;
  }
  member_pending_ = false;  // '}' of an empty object, or not JSON
  js_ = c == '}' ? Js::done : Js::off;
}

// A '"' ending the key, or a '\\' inside it.
void UsageStrip::on_key_byte(char c) {
  if (c == '\\') {
    key_long_ = true;  // an escaped key is never "choices" or "usage" as Go writes them
    js_ = Js::key_escape;
    return;
  }
  const std::string_view key(key_.data(), key_long_ ? 0 : key_len_);
  member_key_ = key == "choices" ? Key::choices : key == "usage" ? Key::usage : Key::other;
  if (member_key_ != Key::usage) member_pending_ = false;
  js_ = Js::colon;
}

void UsageStrip::on_nested(char c) {
  if (choices_probe_) {
    if (is_ws(c)) return;
    choices_probe_ = false;
    choices_ = c == ']' ? Fact::empty : Fact::other;
  }
  if (c == '"') {
    js_ = Js::nested_string;
  } else if (c == '{' || c == '[') {
    ++vdepth_;
  } else if ((c == '}' || c == ']') && --vdepth_ == 0) {
    js_ = Js::after_value;
  }
}

void UsageStrip::on_value_start(char c) {
  if (member_key_ == Key::choices) {
    choices_probe_ = c == '[';
    if (!choices_probe_) choices_ = Fact::other;
  } else if (member_key_ == Key::usage) {
    usage_ = c == 'n' ? Fact::null : Fact::other;
  }
  if (c == '"') {
    js_ = Js::string;
  } else if (c == '{' || c == '[') {
    js_ = Js::nested;
    vdepth_ = 1;
  } else {
    js_ = Js::scalar;
  }
}

void UsageStrip::on_after_value(char c) {
  if (is_ws(c)) return;
  if (c == ',') {
    if (end_member()) {
      eat_ = true;  // the removed member was the first: its comma goes with it
      member_due_ = true;
      member_first_ = true;
    } else {
      member_first_ = false;
      begin_member();  // the comma is the new member's first byte
    }
    js_ = Js::member_start;
    return;
  }
  (void)end_member();
  js_ = c == '}' ? Js::done : Js::off;
}

void UsageStrip::begin_event() {
  in_event_ = true;
  verdict_ = Verdict::undecided;
  js_ = Js::before;
  choices_ = Fact::unknown;
  usage_ = Fact::unknown;
  member_key_ = Key::other;
  member_pending_ = false;
  member_due_ = false;
  choices_probe_ = false;
  vdepth_ = 0;
}

void UsageStrip::begin_member() {
  member_pending_ = true;
  member_mark_ = hold_len_;
  member_key_ = Key::other;
}

// The pending member ended. A usage member is discarded; true if it was the object's first.
bool UsageStrip::end_member() {
  if (!member_pending_) return false;
  member_pending_ = false;
  if (member_key_ != Key::usage) return false;
  hold_len_ = member_mark_;
  ++members_removed_;
  return member_first_;
}

void UsageStrip::decide() {
  if (verdict_ != Verdict::undecided) return;
  if (choices_ == Fact::empty && usage_ == Fact::other) {
    verdict_ = Verdict::drop;
    hold_len_ = 0;
    member_pending_ = false;
    ++events_dropped_;
    return;
  }
  if (choices_ == Fact::other || usage_ == Fact::null || js_ == Js::done || js_ == Js::off) {
    verdict_ = Verdict::pass;
  }
}

UsageStrip::Disp UsageStrip::disp_now() const {
  if (verdict_ == Verdict::drop) return Disp::drop;
  if (verdict_ == Verdict::undecided || member_pending_) return Disp::hold;
  return Disp::pass;
}

void UsageStrip::append(const char* p, std::size_t n) {
  TT_ASSERT(hold_len_ + n <= hold_.size());  // finalize() fails open before this could happen
  std::memcpy(hold_.data() + hold_len_, p, n);
  hold_len_ = static_cast<std::uint16_t>(hold_len_ + n);
}

void UsageStrip::release(std::size_t n) {
  TT_ASSERT(n <= hold_len_);
  std::memmove(hold_.data(), hold_.data() + n, hold_len_ - n);
  hold_len_ = static_cast<std::uint16_t>(hold_len_ - n);
  member_mark_ = static_cast<std::uint16_t>(member_mark_ >= n ? member_mark_ - n : 0);
}

}  // namespace tokentap
