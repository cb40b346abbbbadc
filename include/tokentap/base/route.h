// Route: the fixed `endpoint` label of every request, and what each inference route speaks.
//
// The label is drawn from this closed set and never from the raw client path, so a client cannot
// create series (metrics.md, "Labels"). The path is matched exactly, without its query string:
// Ollama redirects "/api/chat/" and "//api/chat" instead of serving them, so they are `other`.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

namespace tokentap {

enum class Route : std::uint8_t {
  api_generate,
  api_chat,
  api_embed,
  api_embeddings,
  v1_chat_completions,
  v1_completions,
  v1_embeddings,
  v1_responses,
  v1_messages,
  other,
  count_,
};

constexpr std::size_t route_count = static_cast<std::size_t>(Route::count_);

// The wire dialect of a route's responses: how its stream is framed and where its usage lives.
enum class Dialect : std::uint8_t {
  none,               // not an inference route: nothing to meter beyond bytes and status
  ollama,             // NDJSON stream / one JSON object (generate, chat, embed, embeddings)
  openai_chat,        // SSE `data:` events, usage chunk with "choices":[] (chat/completions)
  openai_completions, // SSE, every chunk may carry a zero usage; the last one counts
  openai_embeddings,  // one JSON object with usage
  openai_responses,   // SSE `event:`/`data:`, usage in response.completed
  anthropic,          // SSE, usage in message_delta
};

struct RouteInfo {
  std::string_view path;   // exact path, also the label value
  Dialect dialect;
  bool stream_default;     // effective `stream` when the request body does not say
};

inline constexpr std::array<RouteInfo, route_count> route_table{{
    {"/api/generate", Dialect::ollama, true},
    {"/api/chat", Dialect::ollama, true},
    {"/api/embed", Dialect::ollama, false},
    {"/api/embeddings", Dialect::ollama, false},
    {"/v1/chat/completions", Dialect::openai_chat, false},
    {"/v1/completions", Dialect::openai_completions, false},
    {"/v1/embeddings", Dialect::openai_embeddings, false},
    {"/v1/responses", Dialect::openai_responses, false},
    {"/v1/messages", Dialect::anthropic, false},
    {"other", Dialect::none, false},
}};

[[nodiscard]] constexpr const RouteInfo& route_info(Route r) {
  return route_table[static_cast<std::size_t>(r)];
}

[[nodiscard]] constexpr std::string_view route_label(Route r) { return route_info(r).path; }

// The path of a request target: what comes before '?'.
[[nodiscard]] constexpr std::string_view target_path(std::string_view target) {
  return target.substr(0, target.find('?'));
}

// Maps a request target ("/api/chat?x=1") to its route. Only the path before '?' is compared.
[[nodiscard]] constexpr Route route_of(std::string_view target) {
  target = target_path(target);
  for (std::size_t i = 0; i + 1 < route_count; ++i) {
    if (route_table[i].path == target) return static_cast<Route>(i);
  }
  return Route::other;
}

// The model-store changes a fleet applies to every backend so that it stays uniform (issue 16
// "Fleet endpoints"): the proxy sends these to the fan-out service (app/fan_out.h), which
// tells them apart by the same function. `other`: anything else.
enum class FanOutRoute : std::uint8_t { pull, delete_model, copy_model, other };

[[nodiscard]] constexpr FanOutRoute fan_out_route(std::string_view method,
                                                  std::string_view target) {
  const std::string_view path = target_path(target);
  if (method == "POST" && path == "/api/pull") return FanOutRoute::pull;
  if (method == "DELETE" && path == "/api/delete") return FanOutRoute::delete_model;
  if (method == "POST" && path == "/api/copy") return FanOutRoute::copy_model;
  return FanOutRoute::other;
}

// `/metrics` (any query): the path --metrics-on-proxy answers on the proxy port.
[[nodiscard]] constexpr bool is_metrics_path(std::string_view target) {
  return target == "/metrics" || target.starts_with("/metrics?");
}

// True for the routes whose requests are metered as inference (active gauge, tokens, TTFT).
[[nodiscard]] constexpr bool is_inference(Route r) {
  return route_info(r).dialect != Dialect::none;
}

static_assert(route_of("/api/chat") == Route::api_chat);
static_assert(route_of("/v1/messages?beta=true") == Route::v1_messages);
static_assert(route_of("/api/chat/") == Route::other);
static_assert(route_of("/api/tags") == Route::other);

}  // namespace tokentap
