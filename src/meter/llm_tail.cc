// llm_tail: TailScanner, the per-dialect rules that turn captured values into Usage, and the
// SkimSpec of each dialect. The SSE lexer is in sse_lexer.cc, the usage-object parser in
// piece_parser.cc, the fast lanes in llm_tail_lanes.cc.
//
// Each dialect has one compile-time SkimSpec; captures land in Doc while a document is read, and
// the document's rules run once it ends (JSON framing) or once its event is dispatched (SSE).
#include "tokentap/meter/llm_tail.h"

#include <cstring>
#include <string_view>

#include "tokentap/base/assert.h"

namespace tokentap {
namespace {

constexpr std::uint16_t int_cap_bytes = 24;  // a uint64 has at most 20 digits
constexpr std::uint16_t usage_cap_bytes = skim_capture_bytes_max;
constexpr std::uint16_t type_cap_bytes = sse_event_name_bytes_max;

// Ollama: slots 2.. are the six metrics, in the order of ollama_metric_fields.
enum OllamaSlot : std::uint8_t { ollama_done, ollama_error, ollama_first_metric };
constexpr std::array<SkimPath, 8> ollama_paths{{
    {{"done"}},
    {{"error"}},
    {{"prompt_eval_count"}, SkimKind::bytes, int_cap_bytes},
    {{"eval_count"}, SkimKind::bytes, int_cap_bytes},
    {{"load_duration"}, SkimKind::bytes, int_cap_bytes},
    {{"prompt_eval_duration"}, SkimKind::bytes, int_cap_bytes},
    {{"eval_duration"}, SkimKind::bytes, int_cap_bytes},
    {{"total_duration"}, SkimKind::bytes, int_cap_bytes},
}};
constexpr std::array<UsageField, 6> ollama_metric_fields{
    UsageField::prompt_tokens,  UsageField::completion_tokens, UsageField::load_ns,
    UsageField::prompt_eval_ns, UsageField::eval_ns,           UsageField::total_ns};
constexpr SkimSpec ollama_spec = make_skim_spec(ollama_paths, false);
static_assert(ollama_spec.valid);

// OpenAI chat, completions, embeddings. Slots from openai_first_output on mark output pieces.
enum OpenAiSlot : std::uint8_t {
  openai_choices,
  openai_usage,
  openai_error,
  openai_model,
  openai_first_output
};
constexpr std::array<SkimPath, 11> openai_paths{{
    {{"choices"}},
    {{"usage"}, SkimKind::bytes, usage_cap_bytes},
    {{"error"}},
    {{"model"}},
    {{"choices", "*", "delta", "content"}},
    {{"choices", "*", "delta", "reasoning"}},
    {{"choices", "*", "delta", "reasoning_content"}},
    {{"choices", "*", "delta", "tool_calls"}},
    {{"choices", "*", "delta", "refusal"}},
    {{"choices", "*", "delta", "function_call"}},
    {{"choices", "*", "text"}},
}};
constexpr SkimSpec openai_spec = make_skim_spec(openai_paths, false);
static_assert(openai_spec.valid);

// Responses and Anthropic: events named by "type" (or the SSE event line).
enum TypedSlot : std::uint8_t {
  typed_type,
  typed_usage,
  typed_response_usage,
  typed_message_usage,
  typed_error
};
constexpr std::array<SkimPath, 5> typed_paths{{
    {{"type"}, SkimKind::bytes, type_cap_bytes},
    {{"usage"}, SkimKind::bytes, usage_cap_bytes},
    {{"response", "usage"}, SkimKind::bytes, usage_cap_bytes},
    {{"message", "usage"}, SkimKind::bytes, usage_cap_bytes},
    {{"error"}},
}};
constexpr SkimSpec typed_spec = make_skim_spec(typed_paths, false);
static_assert(typed_spec.valid);

constexpr std::array<std::string_view, 2> openai_usage_keys{"prompt_tokens", "completion_tokens"};
constexpr std::array<std::string_view, 2> typed_usage_keys{"input_tokens", "output_tokens"};

constexpr std::string_view done_marker = "[DONE]";
constexpr std::uint8_t done_no = 0xff;

constexpr std::uint8_t field_bit(UsageField f) {
  return static_cast<std::uint8_t>(1u << static_cast<unsigned>(f));
}
constexpr std::uint8_t token_bits =
    field_bit(UsageField::prompt_tokens) | field_bit(UsageField::completion_tokens);

}  // namespace

const SkimSpec& tail_spec(Dialect d) {
  switch (d) {
    case Dialect::ollama:
      return ollama_spec;
    case Dialect::openai_responses:
    case Dialect::anthropic:
      return typed_spec;
    default:
      return openai_spec;
  }
}

// ---- TailScanner ------------------------------------------------------------------------------

void TailScanner::init(Route route, int http_status, PieceParser* parser) {
  TT_ASSERT(parser != nullptr);
  *this = TailScanner{};
  parser_ = parser;
  route_ = route;
  dialect_ = route_info(route).dialect;
  status_ok_ = http_status >= 200 && http_status <= 299;
  if (dialect_ == Dialect::none) return;
  usage_.error_seen = !status_ok_;
  if (!status_ok_) return;  // an error body: nothing to meter
  framing_ = dialect_ == Dialect::ollama ? Framing::json : Framing::undecided;
  skim_.init(tail_spec(dialect_), true);
}

void TailScanner::feed(const char* data, std::size_t size, std::uint64_t now_ns) {
  now_ns_ = now_ns;
  const char* p = data;
  const char* const end = data + size;
  if (framing_ == Framing::undecided) {
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')) ++p;
    if (p == end) return;
    framing_ = (*p == '{' || *p == '[') ? Framing::json : Framing::sse;
    skim_.init(tail_spec(dialect_), framing_ == Framing::json);
  }
  if (framing_ == Framing::json) feed_json(p, end);
  if (framing_ == Framing::sse) feed_sse(p, end);
}

void TailScanner::feed_json(const char* p, const char* end) {
  while (p < end) {
    if (resync_) {
      const void* lf = std::memchr(p, '\n', static_cast<std::size_t>(end - p));
      if (lf == nullptr) return;
      p = static_cast<const char*>(lf) + 1;
      resync_ = false;
      skim_.reset();
      doc_ = Doc{};
      continue;
    }
    if (const char* lf = piece_line_end(p, end)) {
      skim_.skip_document(static_cast<std::size_t>(lf - p), JsonType::object);
      doc_.done_false = true;
      commit(doc_.kind);
      doc_ = Doc{};
      p = lf;  // the '\n' goes through the skimmer as the whitespace between documents
      continue;
    }
    p += skim_.feed(p, static_cast<std::size_t>(end - p));
    switch (skim_.event()) {
      case JsonSkim::Event::captured:
        on_capture(skim_.capture());
        break;
      case JsonSkim::Event::document_end:
        commit(doc_.kind);
        doc_ = Doc{};
        break;
      case JsonSkim::Event::failed:
        ++unreadable_;
        resync_ = true;
        break;
      case JsonSkim::Event::none:
        break;
    }
  }
}

void TailScanner::feed_sse(const char* p, const char* end) {
  while (p < end) {
    if (const char* next = whole_chunk_event(p, end)) {
      p = next;
      continue;
    }
    SseLexer::Run run = SseLexer::Run::framing;
    const std::size_t n = lexer_.next(p, static_cast<std::size_t>(end - p), &run);
    switch (run) {
      case SseLexer::Run::data:
        sse_data(p, n);
        break;
      case SseLexer::Run::value_start:
        if (lexer_.field() == SseLexer::Field::event) {
          event_len_ = 0;
          event_long_ = false;
        } else if (data_lines_++ > 0) {
          sse_data("\n", 1);  // SSE joins data lines with a newline
        }
        break;
      case SseLexer::Run::event_name: {
        const std::size_t room = event_.size() - event_len_;
        event_long_ = event_long_ || n > room;
        std::memcpy(event_.data() + event_len_, p, n > room ? room : n);
        event_len_ = static_cast<std::uint8_t>(event_len_ + (n > room ? room : n));
        break;
      }
      case SseLexer::Run::event_end:
        dispatch();
        break;
      default:
        break;
    }
    p += n;
  }
}

// Data bytes of the current event. "[DONE]" is held back until it is known not to be the
// marker, then replayed from the literal, so the skimmer never sees a marker.
void TailScanner::sse_data(const char* p, std::size_t n) {
  has_data_ = true;
  if (done_match_ != done_no) {
    std::size_t i = 0;
    while (i < n && done_match_ < done_marker.size() && p[i] == done_marker[done_match_]) {
      ++i;
      ++done_match_;
    }
    if (i == n) return;
    const std::uint8_t held = done_match_;
    done_match_ = done_no;
    skim(done_marker.data(), held);
    p += i;
    n -= i;
  }
  skim(p, n);
}

void TailScanner::skim(const char* p, std::size_t n) {
  while (n > 0 && !doc_bad_) {
    const std::size_t used = skim_.feed(p, n);
    p += used;
    n -= used;
    switch (skim_.event()) {
      case JsonSkim::Event::captured:
        on_capture(skim_.capture());
        break;
      case JsonSkim::Event::document_end:
        doc_complete_ = true;
        break;
      case JsonSkim::Event::failed:
        doc_bad_ = true;
        break;
      case JsonSkim::Event::none:
        break;
    }
  }
}

void TailScanner::dispatch() {
  if (has_data_ && done_match_ != done_marker.size()) {
    if (doc_complete_ && !doc_bad_) {
      const std::string_view name(event_.data(), event_len_);
      commit(event_len_ > 0 || event_long_ ? classify(event_long_ ? "" : name) : doc_.kind);
    } else {
      ++unreadable_;
    }
  }
  skim_.reset();
  doc_ = Doc{};
  doc_complete_ = false;
  doc_bad_ = false;
  has_data_ = false;
  data_lines_ = 0;
  done_match_ = 0;
  event_len_ = 0;
  event_long_ = false;
}

const Usage& TailScanner::finish() {
  // A last SSE event whose blank line never came still counts if its JSON is whole: the
  // upstream reported that usage.
  if (framing_ == Framing::sse && doc_complete_ && !doc_bad_) dispatch();
  usage_.usage_missing = status_ok_ && dialect_ != Dialect::none &&
                         route_ != Route::api_embeddings && !usage_.usage_found;
  return usage_;
}

void TailScanner::on_capture(const SkimCapture& c) {
  switch (dialect_) {
    case Dialect::ollama:
      on_capture_ollama(c);
      break;
    case Dialect::openai_chat:
    case Dialect::openai_completions:
    case Dialect::openai_embeddings:
      on_capture_openai(c);
      break;
    case Dialect::openai_responses:
    case Dialect::anthropic:
      on_capture_typed(c);
      break;
    case Dialect::none:
      break;
  }
}

void TailScanner::on_capture_ollama(const SkimCapture& c) {
  if (c.slot == ollama_done) {
    doc_.done_true = c.type == JsonType::true_;
    doc_.done_false = c.type == JsonType::false_;
  } else if (c.slot == ollama_error) {
    doc_.error = c.type != JsonType::null;
  } else {
    const UsageField f = ollama_metric_fields[c.slot - ollama_first_metric];
    const std::uint8_t bit = field_bit(f);
    const auto v = c.truncated ? std::nullopt : json_uint(c.bytes);
    doc_.num[static_cast<std::size_t>(f)] = v.value_or(0);
    doc_.num_present =
        static_cast<std::uint8_t>(v ? doc_.num_present | bit : doc_.num_present & ~bit);
  }
}

void TailScanner::on_capture_openai(const SkimCapture& c) {
  switch (c.slot) {
    case openai_choices:
      doc_.choices_seen = c.type == JsonType::array;
      doc_.choices_empty = doc_.choices_seen && !c.nonempty;
      break;
    case openai_usage:
      read_usage(c, false);
      break;
    case openai_error:
      doc_.error = c.type != JsonType::null;
      break;
    case openai_model:
      doc_.model_empty = c.type == JsonType::string && !c.nonempty;
      break;
    default: {
      const bool text_like =
          c.type == JsonType::string || c.type == JsonType::array || c.type == JsonType::object;
      if (text_like && c.nonempty) doc_.output = true;
      break;
    }
  }
}

void TailScanner::on_capture_typed(const SkimCapture& c) {
  switch (c.slot) {
    case typed_type:
      doc_.kind = c.type == JsonType::string && !c.truncated ? classify(c.bytes) : Kind::other;
      break;
    case typed_usage:
    case typed_response_usage:
      read_usage(c, false);
      break;
    case typed_message_usage:
      read_usage(c, true);
      break;
    case typed_error:
      doc_.error = c.type != JsonType::null;
      break;
    default:
      break;
  }
}

// A usage object (start: Anthropic message_start's, kept only for its input_tokens).
void TailScanner::read_usage(const SkimCapture& c, bool start) {
  if (c.type != JsonType::object) return;  // null or absent usage: nothing reported
  const bool openai = dialect_ == Dialect::openai_chat || dialect_ == Dialect::openai_completions ||
                      dialect_ == Dialect::openai_embeddings;
  const std::span<const std::string_view> keys =
      openai ? std::span<const std::string_view>(openai_usage_keys) : typed_usage_keys;
  PieceParser::Counts counts;
  if (c.truncated || !parser_->read_counts(c.bytes, keys, &counts)) {
    ++unreadable_;
    return;
  }
  if (start) {
    doc_.start_ok = (counts.present & 1) != 0;
    doc_.start_input = counts.value[0];
    return;
  }
  doc_.num_present = static_cast<std::uint8_t>(doc_.num_present & ~token_bits);
  const std::array<UsageField, 2> fields{UsageField::prompt_tokens, UsageField::completion_tokens};
  for (std::size_t i = 0; i < fields.size(); ++i) {
    if ((counts.present >> i & 1) == 0) continue;
    doc_.num[static_cast<std::size_t>(fields[i])] = counts.value[i];
    doc_.num_present = static_cast<std::uint8_t>(doc_.num_present | field_bit(fields[i]));
  }
  doc_.usage_ok = counts.present != 0;
}

TailScanner::Kind TailScanner::classify(std::string_view type) const {
  if (dialect_ == Dialect::anthropic) {
    if (type == "content_block_delta") return Kind::output;
    if (type == "message_delta") return Kind::message_delta;
    if (type == "message_start") return Kind::message_start;
    if (type == "error") return Kind::failed;
    return Kind::other;
  }
  if (type.ends_with(".delta")) return Kind::output;
  if (type == "response.completed" || type == "response.incomplete") return Kind::completed;
  if (type == "response.failed" || type == "error") return Kind::failed;
  return Kind::other;
}

void TailScanner::commit(Kind event_kind) {
  switch (dialect_) {
    case Dialect::ollama:
      commit_ollama();
      break;
    case Dialect::openai_chat:
    case Dialect::openai_completions:
    case Dialect::openai_embeddings:
      commit_openai();
      break;
    case Dialect::openai_responses:
    case Dialect::anthropic:
      commit_typed(event_kind);
      break;
    case Dialect::none:
      break;
  }
}

void TailScanner::commit_ollama() {
  if (doc_.error) {
    usage_.error_seen = true;
    return;
  }
  switch (route_) {
    case Route::api_generate:
    case Route::api_chat:
      if (doc_.done_true) {
        take_usage();
      } else if (doc_.done_false) {
        output();
      }
      break;
    case Route::api_embed:
      take_usage();
      break;
    default:
      break;  // /api/embeddings reports nothing
  }
}

void TailScanner::commit_openai() {
  const bool stream = framing_ == Framing::sse;
  // Ollama turns a mid-stream error into a chunk with "model":"" (wire-format §7.2).
  if (doc_.error || (stream && doc_.model_empty && route_ != Route::v1_embeddings)) {
    usage_.error_seen = true;
    return;
  }
  if (stream && doc_.output) output();
  if (doc_.usage_ok && (!stream || !doc_.choices_seen || doc_.choices_empty)) take_usage();
}

void TailScanner::commit_typed(Kind kind) {
  if (doc_.error || kind == Kind::failed) usage_.error_seen = true;
  if (kind == Kind::output) output();
  if (doc_.start_ok) {
    start_input_ = doc_.start_input;
    start_known_ = true;
  }
  const Kind terminating = dialect_ == Dialect::anthropic ? Kind::message_delta : Kind::completed;
  if (doc_.usage_ok && (framing_ == Framing::json || kind == terminating)) take_usage();
}

// The document's values replace every field it can carry (the last terminating chunk wins).
void TailScanner::take_usage() {
  const std::uint8_t carried = dialect_ == Dialect::ollama ? 0x3f : token_bits;
  usage_.present = static_cast<std::uint8_t>((usage_.present & ~carried) | doc_.num_present);
  usage_.value = doc_.num;
  if (dialect_ == Dialect::anthropic && !usage_.get(UsageField::prompt_tokens) && start_known_) {
    usage_.set(UsageField::prompt_tokens, start_input_);
  }
  usage_.usage_found = true;
}

void TailScanner::output() {
  if (usage_.output_events == 0) usage_.first_output_ns = now_ns_;
  usage_.last_output_ns = now_ns_;
  ++usage_.output_events;
}

bool TailScanner::is_output_slot(std::uint8_t slot) { return slot >= openai_first_output; }

// The chunk memo (256 bytes) is most of it: per metered exchange, never per idle connection.
static_assert(sizeof(TailScanner) <= 1408, "a scanner is part of every metered exchange's state");

}  // namespace tokentap
