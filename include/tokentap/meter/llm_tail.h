// llm_tail: response-side metering. Finds the terminating chunk of an LLM response (Ollama
// done:true line, OpenAI usage chunk, Responses response.completed, Anthropic message_delta) in
// the de-chunked body as it streams past, and reads its usage; also timestamps output pieces.
//
// Framing. Ollama bodies (NDJSON or one object) and every non-stream body are a sequence of JSON
// documents, read by JsonSkim in multi-document mode; after a malformed document the scanner
// skips to the next '\n'. OpenAI and Anthropic streams are SSE (`data:` with or without a space,
// `event:` lines, comments, CRLF/LF/CR line ends, events ended by a blank line, `data: [DONE]`);
// each event's data is one JSON document. Which of the two a /v1 body is, is decided by its first
// non-space byte ('{' or '[': JSON), so a stream:true request answered with one JSON object is
// still read right. Only values on a few key paths are kept (see llm_tail.cc); everything else,
// a 1 MiB `context` array or a 10 MiB embeddings body included, is skipped at SWAR speed.
//
// Where the numbers come from (wire-format.md §0, §2.4, §2.5, §4, §7, §8, §9):
//   Ollama generate/chat: the document with "done":true only (load/unload replies are such a
//     document without metrics: usage found, no tokens). /api/embed: its one object
//     (prompt_eval_count, total/load durations). /api/embeddings: nothing, never missing.
//   OpenAI chat/completions streams: `usage` of a chunk whose `choices` is [] or absent, the last
//     one wins (completions sends a zero usage in every chunk with choices). Non-stream and
//     /v1/embeddings: the object's `usage`.
//   Responses: response.usage of response.completed (or response.incomplete); non-stream: usage.
//   Anthropic: message_delta.usage (input_tokens, output_tokens). message_start's input_tokens is
//     used only when message_delta has none (real Anthropic sends it there, Ollama an estimate).
// A usage object is parsed by simdjson (PieceParser); Ollama's top-level integers by json_uint.
//
// Output pieces (TTFT/TPOT): an Ollama done:false document; an OpenAI chunk whose choices carry a
// non-empty delta content/reasoning/reasoning_content/tool_calls/refusal/function_call or text;
// a Responses event whose type ends in ".delta"; an Anthropic content_block_delta. A piece is
// stamped with the now_ns of the feed() that completed it (its JSON for NDJSON, its blank line
// for SSE).
//
// Outcome: usage_found when a terminating chunk was read; usage_missing when a 2xx inference
// response (other than /api/embeddings) ended without one, whatever the reason (truncated, error
// mid-stream, unparsable, or a stream the client asked without include_usage). error_seen: a
// non-2xx status, an Ollama {"error":...} line, an OpenAI error object or Ollama's error chunk
// (model ""), a Responses response.failed/error event, an Anthropic error event. Non-2xx bodies
// are not scanned: no tokens, not missing.
//
// State is fixed-size (see the static_assert in llm_tail.cc); no allocation. No kernel features.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string_view>

#include "tokentap/meter/json_skim.h"
#include "tokentap/base/route.h"

namespace tokentap {

constexpr std::size_t piece_bytes_max = skim_capture_bytes_max;  // largest piece PieceParser reads
constexpr std::size_t sse_field_name_bytes_max = 8;   // longer field names are ignored fields
constexpr std::size_t sse_event_name_bytes_max = 48;  // longer `event:` values classify as other
constexpr std::size_t chunk_memo_bytes_max = 256;     // a chunk's bytes around its output string

// Parses a JSON unsigned integer token ("0", "123"; no sign, fraction, exponent or leading zero)
// that fits in 64 bits. Anything else gives nullopt.
[[nodiscard]] std::optional<std::uint64_t> json_uint(std::string_view token);

// The skimmer's key paths for a dialect's response bodies (llm_tail.cc lists them). Public so
// that the one-pass readers' tests check against the very spec the scanner uses.
[[nodiscard]] const SkimSpec& tail_spec(Dialect d);

// Reads small captured JSON pieces with simdjson on-demand (error codes, no exceptions) into
// preallocated buffers: construct one per shard at start-up and share it between connections.
class PieceParser {
 public:
  static constexpr std::size_t keys_max = 4;
  struct Counts {
    std::array<std::uint64_t, keys_max> value{};
    std::uint8_t present = 0;  // bit i: keys[i] was a non-negative integer
  };

  PieceParser();
  ~PieceParser();
  PieceParser(const PieceParser&) = delete;
  PieceParser& operator=(const PieceParser&) = delete;

  // Parses `object` (at most piece_bytes_max bytes) as a JSON object and reads its top-level
  // members named in `keys` (exact names; a later duplicate wins). Members that are not
  // non-negative integers are left absent. False if the piece is not one valid JSON object.
  [[nodiscard]] bool read_counts(std::string_view object, std::span<const std::string_view> keys,
                                 Counts* out);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// SseLexer: splits a text/event-stream body into runs of one meaning, across any split.
// Lines without a colon are ignored (the SSE rule would make "data" alone an empty data line;
// no LLM server sends that).
class SseLexer {
 public:
  enum class Field : std::uint8_t { other, data, event };
  enum class Run : std::uint8_t {
    framing,      // field names, comments, other fields, the one space after ':', ignored lines
    value_start,  // the ':' of a data or event line (field() says which)
    data,         // bytes of a data line's value
    event_name,   // bytes of an event line's value
    line_end,     // the CR or LF ending a data or event line (field() says which)
    event_end,    // the CR or LF ending a blank line: dispatch the event
    crlf_tail,    // an LF right after a CR terminator: same meaning as that CR
  };

  void reset() { *this = SseLexer{}; }
  // Classifies the longest run of one kind at p (n > 0); returns its length (>= 1).
  [[nodiscard]] std::size_t next(const char* p, std::size_t n, Run* run);
  [[nodiscard]] Field field() const { return field_; }
  // At the start of a line, with no CR just before it (an LF here would be its tail).
  [[nodiscard]] bool at_line_start() const { return state_ == State::line_start && !after_cr_; }

 private:
  enum class State : std::uint8_t { line_start, name, after_colon, value, ignore };
  std::size_t next_name(const char* p, std::size_t n, Run* run);
  std::size_t next_value(const char* p, std::size_t n, Run* run);

  State state_ = State::line_start;
  Field field_ = Field::other;
  bool after_cr_ = false;
  std::uint8_t name_len_ = 0;
  std::array<char, sse_field_name_bytes_max> name_{};
};

enum class UsageField : std::uint8_t {
  prompt_tokens,
  completion_tokens,
  load_ns,         // Ollama load_duration
  prompt_eval_ns,  // Ollama prompt_eval_duration
  eval_ns,         // Ollama eval_duration
  total_ns,        // Ollama total_duration
  count_,
};
constexpr std::size_t usage_field_count = static_cast<std::size_t>(UsageField::count_);

struct Usage {
  std::array<std::uint64_t, usage_field_count> value{};
  std::uint8_t present = 0;           // bit per UsageField
  std::uint64_t first_output_ns = 0;  // valid when output_events > 0
  std::uint64_t last_output_ns = 0;
  std::uint32_t output_events = 0;
  bool usage_found = false;
  bool usage_missing = false;
  bool error_seen = false;

  [[nodiscard]] std::optional<std::uint64_t> get(UsageField f) const {
    const auto i = static_cast<std::size_t>(f);
    if ((present >> i & 1) == 0) return std::nullopt;
    return value[i];
  }
  void set(UsageField f, std::uint64_t v) {
    const auto i = static_cast<std::size_t>(f);
    value[i] = v;
    present = static_cast<std::uint8_t>(present | 1u << i);
  }
};

class TailScanner {
 public:
  // parser: the shard's PieceParser, used for usage objects; must outlive the scan.
  void init(Route route, int http_status, PieceParser* parser);
  // Body bytes as de-chunked, any split; now_ns stamps the output pieces this call completes.
  void feed(const char* data, std::size_t size, std::uint64_t now_ns);
  // The body ended (normally or not: a truncated body that already carried its usage is still
  // metered, one that did not is usage_missing). Decides usage_missing; call once.
  [[nodiscard]] const Usage& finish();
  [[nodiscard]] const Usage& usage() const { return usage_; }
  // Documents or events that could not be read (malformed JSON), for diagnostics.
  [[nodiscard]] std::uint32_t unreadable() const { return unreadable_; }

 private:
  enum class Framing : std::uint8_t { off, undecided, json, sse };
  // What a Responses/Anthropic event is, from its `event:` line or its JSON "type".
  enum class Kind : std::uint8_t {
    other,
    output,
    completed,
    failed,
    message_start,
    message_delta,
  };
  // Values read from the current document, committed when it ends.
  struct Doc {
    std::array<std::uint64_t, usage_field_count> num{};
    std::uint8_t num_present = 0;
    std::uint64_t start_input = 0;  // Anthropic message_start usage.input_tokens
    Kind kind = Kind::other;
    bool done_true = false;
    bool done_false = false;
    bool error = false;
    bool choices_seen = false;
    bool choices_empty = false;
    bool output = false;
    bool model_empty = false;
    bool usage_ok = false;
    bool start_ok = false;
  };

  void feed_json(const char* p, const char* end);
  // Fast lanes (llm_tail_lanes.cc): whole pieces read in one pass, exactly as the general path
  // would read them; nullptr means "not taken".
  [[nodiscard]] const char* piece_line_end(const char* p, const char* end) const;
  [[nodiscard]] const char* whole_chunk_event(const char* p, const char* end);
  [[nodiscard]] bool repeats_memo(std::string_view json) const;
  void remember_chunk(std::string_view json, const struct CompactCaptures& caps, bool only_output);
  [[nodiscard]] static bool is_output_slot(std::uint8_t slot);
  void feed_sse(const char* p, const char* end);
  void sse_data(const char* p, std::size_t n);
  void skim(const char* p, std::size_t n);
  void on_capture(const SkimCapture& c);
  void on_capture_ollama(const SkimCapture& c);
  void on_capture_openai(const SkimCapture& c);
  void on_capture_typed(const SkimCapture& c);
  void read_usage(const SkimCapture& c, bool start);
  void commit(Kind event_kind);
  void commit_ollama();
  void commit_openai();
  void commit_typed(Kind kind);
  void take_usage();
  void dispatch();
  void output();
  [[nodiscard]] Kind classify(std::string_view type) const;

  JsonSkim skim_;
  SseLexer lexer_;
  Usage usage_;
  Doc doc_;
  PieceParser* parser_ = nullptr;
  std::uint64_t now_ns_ = 0;
  std::uint64_t start_input_ = 0;  // Anthropic: message_start's input_tokens, a fallback
  std::uint32_t unreadable_ = 0;
  Route route_ = Route::other;
  Dialect dialect_ = Dialect::none;
  Framing framing_ = Framing::off;
  bool status_ok_ = false;
  bool resync_ = false;  // json: skipping to the next '\n' after a malformed document
  bool start_known_ = false;
  // The SSE event being read.
  bool doc_complete_ = false;  // its JSON document ended
  bool doc_bad_ = false;       // its JSON failed
  bool has_data_ = false;
  std::uint8_t data_lines_ = 0;
  std::uint8_t done_match_ = 0;  // bytes of "[DONE]" matched; done_no: the data is something else
  std::uint8_t event_len_ = 0;
  bool event_long_ = false;
  std::array<char, sse_event_name_bytes_max> event_{};
  // The last chunk whose only effect was one output piece, from one non-empty string: its bytes
  // before that string's contents and from its closing quote on (whole_chunk_event).
  std::uint16_t memo_prefix_ = 0;  // 0: no memo
  std::uint16_t memo_suffix_ = 0;
  std::array<char, chunk_memo_bytes_max> memo_;
};

}  // namespace tokentap
