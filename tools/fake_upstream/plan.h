// Plan: what the fake answers to one request, decided once when the request is complete.
//
//  - match_route(): method + path → Endpoint (gin semantics: unknown path 404, known path with
//    another method 405 with Allow).
//  - Plan: for inference endpoints, the token counts, thinking/tool pieces, error mode and the
//    values echoed from the request. Piece p (0 ≤ p < tokens) is thinking for p < think_n, the
//    tool call if `tool` and p == tokens-1, text otherwise; one piece = one completion token.
//  - Script: a stream as a short list of segments (event kind × count), so a stream of millions
//    of tokens needs no memory; a cursor walks it one HTTP chunk at a time. A midstream error
//    cuts the list after `error_at` pieces, exactly where Ollama's converters would stop.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

#include "request_head.h"
#include "request_json.h"
#include "wire.h"

namespace tokentap::fake {

enum class Endpoint : std::uint8_t {
  root,
  version,
  tags,
  ps,
  v1_models,
  generate,
  chat,
  embed,
  embeddings,
  v1_chat,
  v1_completions,
  v1_embeddings,
  v1_responses,
  v1_messages,
  blob_upload,
  blob_head,
  pull,          // POST /api/pull
  delete_model,  // DELETE /api/delete
  copy_model,    // POST /api/copy
  fake_blob,
  fake_echo,
  not_found,
  method_not_allowed,
};

struct RouteMatch {
  Endpoint endpoint = Endpoint::not_found;
  std::string_view allow;  // for method_not_allowed
};

constexpr std::size_t endpoint_count = static_cast<std::size_t>(Endpoint::method_not_allowed) + 1;

[[nodiscard]] RouteMatch match_route(std::string_view method, std::string_view path);
// The route a path belongs to whatever the method (per-path request counters); not_found if none.
[[nodiscard]] Endpoint path_endpoint(std::string_view path);
[[nodiscard]] bool is_inference(Endpoint e);
// /api/pull, /api/delete, /api/copy: they change the installed models (wire-format.md §6).
[[nodiscard]] bool is_model_admin(Endpoint e);

enum class PieceKind : std::uint8_t { think, text, tool };
enum class Special : std::uint8_t { none, load, unload };

struct Plan {
  Endpoint endpoint = Endpoint::generate;
  bool stream = false;
  bool include_usage = false;
  bool raw = false;
  Special special = Special::none;
  std::uint32_t tokens = 0;
  std::uint32_t think_n = 0;
  bool tool = false;
  std::uint64_t prompt_tokens = 0;
  std::uint64_t estimate = 0;  // Anthropic message_start input_tokens (len/4 guess)
  std::uint32_t inputs = 0;    // embedding vectors to return
  FakeError error = FakeError::none;
  std::uint32_t error_at = 0;  // midstream: pieces sent before the error
  std::uint16_t status = 200;  // non-stream status (X-Fake-Status) or error-before status
  std::string_view model;
  const Stamp* stamp = nullptr;
  bool pull_fail = false;  // /api/pull: progress lines, then Ollama's manifest error

  [[nodiscard]] PieceKind kind(std::uint32_t piece) const {
    if (piece < think_n) return PieceKind::think;
    if (tool && piece + 1 == tokens) return PieceKind::tool;
    return PieceKind::text;
  }
  [[nodiscard]] std::uint32_t text_n() const { return tokens - think_n - (tool ? 1 : 0); }
};

[[nodiscard]] Plan build_plan(Endpoint endpoint, const Controls& controls,
                              const RequestFields& fields, std::size_t body_bytes,
                              const Stamp& stamp);

// One HTTP chunk of a stream.
enum class Ev : std::uint8_t {
  // native NDJSON (generate, chat)
  ol_piece,
  ol_final,
  ol_error,
  // /v1/chat/completions and /v1/completions
  oa_piece,
  oa_final,
  oa_error,
  // /v1/responses
  rs_created,
  rs_in_progress,
  rs_reason_added,
  rs_reason_delta,
  rs_reason_done,
  rs_reason_item_done,
  rs_msg_added,
  rs_part_added,
  rs_text_delta,
  rs_text_done,
  rs_part_done,
  rs_msg_item_done,
  rs_fc_added,
  rs_fc_args_delta,
  rs_fc_args_done,
  rs_fc_item_done,
  rs_completed,
  // /v1/messages
  an_message_start,
  an_think_start,
  an_think_delta,
  an_think_stop,
  an_text_start,
  an_text_delta,
  an_text_stop,
  an_tool_start,
  an_tool_delta,
  an_tool_stop,
  an_message_delta,
  an_message_stop,
  // /api/pull progress (api.ProgressResponse lines)
  pl_manifest,
  pl_layer,  // piece p: layer p / pull_layer_updates, update p % pull_layer_updates
  pl_verify,
  pl_write,
  pl_success,
  pl_error,
};

// A pulled model's layers (the model, its template, its params) and the progress lines each
// gets: total only, half, all.
constexpr std::uint32_t pull_layers = 3;
constexpr std::uint32_t pull_layer_updates = 3;
// pull_fail: the layer lines sent before the error line.
constexpr std::uint32_t pull_fail_layer_lines = 2;

class Script {
 public:
  struct Cursor {
    std::uint8_t segment = 0;
    std::uint32_t offset = 0;
  };
  struct Event {
    Ev ev;
    std::uint32_t piece;  // piece index for piece events
    std::uint32_t seq;    // /v1/responses sequence_number
  };

  void build(const Plan& plan);
  // The next event, advancing the cursor; false at the end of the stream.
  [[nodiscard]] bool next(Cursor* cursor, Event* event) const;

 private:
  struct Segment {
    Ev ev;
    std::uint32_t count;
    std::uint32_t first_piece;
    std::uint32_t first_seq;
  };
  static constexpr std::size_t segments_max = 24;

  void build_native(const Plan& plan);
  void build_openai(const Plan& plan);
  void build_responses(const Plan& plan);
  void build_anthropic(const Plan& plan);
  void build_pull(const Plan& plan);
  void add(Ev ev);
  void add_pieces(Ev ev, std::uint32_t first_piece, std::uint32_t count);

  std::array<Segment, segments_max> segments_{};
  std::uint8_t count_ = 0;
  std::uint32_t seq_ = 0;
  std::uint32_t pieces_ = 0;  // pieces added so far
  std::uint32_t budget_ = 0;  // pieces allowed before the cut
  bool cut_ = false;          // a midstream error stopped the stream here
  bool cutting_ = false;      // midstream error mode
};

}  // namespace tokentap::fake
