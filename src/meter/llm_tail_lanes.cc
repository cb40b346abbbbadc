// TailScanner's fast lanes: whole pieces of the common shapes read in one pass, each exactly as
// the general path (SseLexer + JsonSkim) would read them, and anything else left to that path.
//
//  - Ollama's per-token NDJSON line (ollama_line.h).
//  - A compact chunk event, `data: {...}` and an empty line (after an `event: NAME` line for
//    Responses and Anthropic), LF framing, whole in one feed at an event boundary
//    (compact_skim.h). OpenAI chat/completions, Responses and Anthropic streams.
//  - The chunk memo (OpenAI chat/completions): a stream's token chunks differ only in the
//    token's text ("id", "created", "model", the structure around "content" repeat), so once a
//    chunk's only effect was one output piece from one non-empty string, the next chunk made of
//    the same bytes before that string's contents and from its closing quote on, around a
//    non-empty string body, has that effect too: compact_skim would walk it the same way up to
//    the string, skip the string to the same closing quote, and walk the same bytes after it;
//    the captures differ only in that string's length and the offsets after it, which no rule
//    reads. Two memcmp and one string scan instead of a parse.
#include <cstring>

#include "byte_scan.h"
#include "tokentap/meter/compact_skim.h"
#include "tokentap/meter/llm_tail.h"
#include "tokentap/meter/ollama_line.h"

namespace tokentap {

// Ollama's per-token line, whole in this feed at a document boundary: its '\n', or nullptr when
// the line is anything else (JsonSkim then reads it). /api/embed is left to JsonSkim: a
// done:false document means nothing there.
const char* TailScanner::piece_line_end(const char* p, const char* end) const {
  if (route_ != Route::api_generate && route_ != Route::api_chat) return nullptr;
  if (*p != '{' || !skim_.between_documents()) return nullptr;
  const void* lf = std::memchr(p, '\n', static_cast<std::size_t>(end - p));
  if (lf == nullptr) return nullptr;
  const auto* line_end = static_cast<const char*>(lf);
  const std::string_view line(p, static_cast<std::size_t>(line_end - p));
  return is_ollama_piece_line(line, tail_spec(Dialect::ollama)) ? line_end : nullptr;
}

// A compact chunk event whole in this feed at an event boundary, dispatched as the lexer and
// JsonSkim would have dispatched it: returns the byte after the event, or nullptr when the event
// is anything else (split, CR framing, [DONE], whitespace...), which the general path reads.
// OpenAI chat/completions events are one `data:` line; Responses and Anthropic events may open
// with an `event: NAME` line, which then classifies the event as the lexer's would.
const char* TailScanner::whole_chunk_event(const char* p, const char* end) {
  constexpr std::string_view data_prefix = "data: {";
  constexpr std::string_view event_prefix = "event: ";
  const bool typed = dialect_ == Dialect::openai_responses || dialect_ == Dialect::anthropic;
  if (!typed && dialect_ != Dialect::openai_chat && dialect_ != Dialect::openai_completions) {
    return nullptr;
  }
  if (!lexer_.at_line_start() || has_data_ || event_len_ > 0 || event_long_) return nullptr;
  std::string_view name;  // the `event:` line's value; empty: none
  if (typed && static_cast<std::size_t>(end - p) > event_prefix.size() &&
      std::memcmp(p, event_prefix.data(), event_prefix.size()) == 0) {
    const char* const name_begin = p + event_prefix.size();
    const char* const name_end = byte_scan::find_line_end(name_begin, end);
    // An empty or over-long name, or CR framing, is the lexer's to read.
    if (name_end == end || *name_end != '\n' || name_end == name_begin ||
        static_cast<std::size_t>(name_end - name_begin) > event_.size()) {
      return nullptr;
    }
    name = std::string_view(name_begin, static_cast<std::size_t>(name_end - name_begin));
    p = name_end + 1;
  }
  const auto n = static_cast<std::size_t>(end - p);
  if (n < data_prefix.size() || std::memcmp(p, data_prefix.data(), data_prefix.size()) != 0) {
    return nullptr;
  }
  const char* json_begin = p + data_prefix.size() - 1;
  const char* lf = byte_scan::find_line_end(json_begin, end);
  if (lf + 1 >= end || *lf != '\n' || lf[1] != '\n') return nullptr;
  const std::string_view json(json_begin, static_cast<std::size_t>(lf - json_begin));
  if (!typed && repeats_memo(json)) {
    output();  // the whole effect of such a chunk; the event state is still fresh
    return lf + 2;
  }
  CompactCaptures caps;
  if (!compact_skim(json, tail_spec(dialect_), &caps)) return nullptr;
  const std::uint32_t unreadable_before = unreadable_;
  for (std::uint8_t i = 0; i < caps.count; ++i) on_capture(caps.at(i));
  if (!typed) {
    // What commit_openai will do with this chunk: output() and nothing else?
    const bool only_output = doc_.output && !doc_.error && !doc_.model_empty && !doc_.usage_ok &&
                             unreadable_ == unreadable_before;
    remember_chunk(json, caps, only_output);
  }
  if (!name.empty()) std::memcpy(event_.data(), name.data(), name.size());
  event_len_ = static_cast<std::uint8_t>(name.size());
  has_data_ = true;
  doc_complete_ = true;
  dispatch();
  return lf + 2;
}

bool TailScanner::repeats_memo(std::string_view json) const {
  if (memo_prefix_ == 0 || json.size() <= std::size_t{memo_prefix_} + memo_suffix_) return false;
  const char* const suffix = json.data() + json.size() - memo_suffix_;
  if (std::memcmp(json.data(), memo_.data(), memo_prefix_) != 0 ||
      std::memcmp(suffix, memo_.data() + memo_prefix_, memo_suffix_) != 0) {
    return false;
  }
  // The string body must end exactly at the remembered closing quote (suffix[0]).
  return byte_scan::skip_whole_string(json.data() + memo_prefix_, json.data() + json.size()) ==
         suffix + 1;
}

// Remembers the bytes around the chunk's one output string when the chunk's only effect was that
// output; otherwise forgets any memo (the stream changed shape).
void TailScanner::remember_chunk(std::string_view json, const CompactCaptures& caps,
                                 bool only_output) {
  memo_prefix_ = 0;
  if (!only_output) return;
  const SkimCapture* text = nullptr;
  for (std::uint8_t i = 0; i < caps.count; ++i) {
    const SkimCapture& c = caps.at(i);
    if (!is_output_slot(c.slot)) continue;
    const bool sets_output =
        (c.type == JsonType::string || c.type == JsonType::array || c.type == JsonType::object) &&
        c.nonempty;
    if (!sets_output) continue;
    if (text != nullptr || c.type != JsonType::string) return;  // output must hinge on one string
    text = &c;
  }
  if (text == nullptr) return;
  const std::size_t prefix = text->begin + 1;                // through the opening quote
  const std::size_t suffix = json.size() - (text->end - 1);  // from the closing quote
  if (prefix + suffix > memo_.size()) return;
  std::memcpy(memo_.data(), json.data(), prefix);
  std::memcpy(memo_.data() + prefix, json.data() + text->end - 1, suffix);
  memo_prefix_ = static_cast<std::uint16_t>(prefix);
  memo_suffix_ = static_cast<std::uint16_t>(suffix);
}

}  // namespace tokentap
