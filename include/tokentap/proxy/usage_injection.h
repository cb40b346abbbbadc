// usage_injection: include_usage injection (docs/metrics.md "OpenAI streams and usage").
//
// An OpenAI chat/completions stream reports usage only when the request asked for it
// (stream_options.include_usage). When a streaming request did not, tokentap holds the request
// (head and Content-Length body, at most inject_body_bytes_max) until its body is complete, adds
// the member with one edit of the held body, forwards it, and later strips the extra usage
// output from the stream (UsageStrip + BodyWriter), so the client reads exactly the body it
// would have read without tokentap. Anything it cannot read the same way (compressed, chunked,
// too large, not JSON) is forwarded untouched.
//
// The decisions are pure functions of plain values (STYLE §22c); the held body is a SendQueue
// of received buffers, edited in place without copying it.
#pragma once

#include <cstdint>

#include "tokentap/base/route.h"
#include "tokentap/http/http1.h"
#include "tokentap/loop/buf_ring.h"
#include "tokentap/loop/send_queue.h"
#include "tokentap/meter/request_probe.h"

namespace tokentap {

struct HoldFacts {
  bool metered = false;  // the exchange has a metering slot (its probe reads the body)
  bool route_by_model = false;  // several backends: the model decides where the request goes
  Route route = Route::other;
  bool content_encoded = false;
  bool chunked = false;
  bool has_content_length = false;
  std::uint64_t content_length = 0;
};

[[nodiscard]] inline HoldFacts hold_facts(bool metered, bool route_by_model, Route route,
                                          const HeadFacts& head, const HttpParser& request) {
  return HoldFacts{metered,
                   route_by_model,
                   route,
                   head.content_encoded,
                   request.chunked(),
                   request.has_content_length(),
                   request.content_length()};
}

// A body small enough to hold whole and framed by Content-Length (chunked request bodies are
// forwarded untouched), on the two routes that take stream_options — or on any metered route
// when several backends make the model the routing key (the body is read, then routed).
[[nodiscard]] constexpr bool hold_candidate(const HoldFacts& f) {
  const bool body_fits = !f.content_encoded && !f.chunked && f.has_content_length &&
                         f.content_length > 0 && f.content_length <= inject_body_bytes_max;
  const bool injectable =
      f.route == Route::v1_chat_completions || f.route == Route::v1_completions;
  return f.metered && body_fits && (injectable || f.route_by_model);
}

enum class InjectResult : std::uint8_t { untouched, injected, failed };

// With the whole held body in `body` and its probe settled: adds include_usage when the probe
// says so, setting *content_length to the edited body's length (left as is otherwise).
// `failed`: no buffer or segment for the edit; the caller fails the connection.
[[nodiscard]] InjectResult apply_include_usage(const RequestProbe* probe, Route route,
                                               SendQueue& body, SegmentPool& segs, BufRing& bufs,
                                               std::int64_t* content_length);

}  // namespace tokentap
