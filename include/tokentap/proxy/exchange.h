// Exchange: one request and its response on a client connection (STYLE §22b).
//
// Everything that belongs to one request lives here — its route, model and stream flag, its
// metering slot, its upstream binding and the bytes queued for that upstream, the response
// parser, the timestamps and byte counts, the include_usage injection state — and nothing that
// belongs to the connection (socket, client queues, the request parser that spans pipelined
// requests). Conn owns one Exchange and starts each request with `ex_ = Exchange{}` once every
// resource the previous one held was given back (asserted): a field can no longer be forgotten
// by a hand-kept reset list, so a refused request can never inherit the previous one's labels.
//
// Request and response progress are two small state machines. Every change of either goes
// through advance(), whose switch is the one place that says which transitions exist:
//
//   Req:  head ─▶ body ─▶ done        head ─▶ done  (refused before or at its head)
//   Resp: idle ─▶ head ─▶ body ─▶ done
//         idle ─▶ done                (answered by tokentap: an error, a local reply)
//         head ─▶ done                (a bodyless final response, or an error before any byte)
#pragma once

#include <cstdint>

#include "tokentap/base/assert.h"
#include "tokentap/base/route.h"
#include "tokentap/base/slab.h"
#include "tokentap/http/http1.h"
#include "tokentap/loop/send_queue.h"
#include "tokentap/loop/splice_pipe.h"
#include "tokentap/obs/model_table.h"
#include "tokentap/proxy/body_writer.h"
#include "tokentap/proxy/error_body.h"

namespace tokentap {

constexpr std::uint8_t backend_unpinned = 0xff;

struct Exchange {
  enum class Req : std::uint8_t { head, body, done };
  enum class Resp : std::uint8_t { idle, head, body, done };
  // Large opaque bodies: pending_* waits for the recv on the source to stop and the queue to
  // the sink to drain (earlier bytes go first), then the body moves by splice.
  enum class Splice : std::uint8_t { off, pending_request, request, pending_response, response };

  void advance(Req next) {
    bool legal = false;
    switch (req) {
      case Req::head:
        legal = next == Req::body || next == Req::done;
        break;
      case Req::body:
        legal = next == Req::done;
        break;
      case Req::done:
        legal = false;  // a new request starts with a new Exchange
        break;
    }
    TT_ASSERT(legal && "request transition");
    req = next;
  }
  void advance(Resp next) {
    bool legal = false;
    switch (resp) {
      case Resp::idle:
        legal = next == Resp::head || next == Resp::done;
        break;
      case Resp::head:
        legal = next == Resp::body || next == Resp::done;
        break;
      case Resp::body:
        legal = next == Resp::done;
        break;
      case Resp::done:
        legal = false;
        break;
    }
    TT_ASSERT(legal && "response transition");
    resp = next;
  }

  // True while the exchange still holds a shard resource; a new Exchange may replace it only
  // when this is false.
  [[nodiscard]] bool holds_resources() const {
    return upstream != slot_none || inspect != slot_none || head_buf >= 0 || resp_head_buf >= 0 ||
           backend_held || !replay.empty() ||
           body_out.holds_buffer() || splice.pipe >= 0 || !to_upstream.empty();
  }
  // Nothing of a request has arrived yet (an idle keep-alive connection).
  [[nodiscard]] bool not_started() const {
    return req == Req::head && head_len == 0 && resp == Resp::idle;
  }

  Req req = Req::head;
  Resp resp = Resp::idle;
  Splice splice_mode = Splice::off;
  Route route = Route::other;
  ModelId model = model_unknown;
  bool stream = false;
  std::uint16_t status = 0;  // sent (or being sent) to the client
  ErrorDialect dialect = ErrorDialect::ollama;  // the shape of the errors tokentap answers

  bool open = false;             // a request is in progress: request_finished is owed
  bool active_reported = false;  // request_started was reported (active gauge)
  bool close_after = false;      // close the client once this response is sent
  bool close_when_sent = false;  // upstream cut the response: close once what came is sent
  bool client_aborted = false;   // the client left before the response ended
  bool response_started = false; // some response byte was queued for the client
  bool head_request = false;     // HEAD: the response has no body whatever it says
  bool local_metrics = false;    // GET /metrics with --metrics-on-proxy: sent to our listener
  bool http10 = false;           // the client spoke HTTP/1.0 (no chunked, no 1xx, close)
  bool keep_alive_10 = false;    // ... and asked for keep-alive
  bool dechunk = false;          // the response body reaches a 1.0 client de-chunked
  bool informational = false;    // a 1xx head was handled; its (bodyless) message end is next
  // include_usage injection (usage_injection.h)
  bool hold = false;             // request held (raw head + body) until injection is decided
  bool injected = false;         // include_usage was added: strip its output from the response
  bool strip = false;            // the response body is re-framed without that output
  bool expect_continue = false;  // the held request had Expect: 100-continue (answered by us)
  // upstream binding
  bool upstream_dirty = false;   // the upstream connection must not be reused
  bool upstream_retried = false; // the one stale-pool retry was used
  bool up_recv_cancel_pending = false;

  std::uint32_t upstream = slot_none;  // UpstreamPool slot while attached
  std::uint8_t backend = 0;            // the backend chosen for this attempt (config order)
  std::uint8_t attempts = 0;           // backends tried (tokentap_retries_total, access log)
  std::uint8_t pinned = backend_unpinned;  // X-Tokentap-Backend's backend
  bool in_order = false;  // a model-store route: the first healthy backend (first_in_order)
  bool fan_out = false;   // sent to the fan-out service (every backend), not to one backend
  bool backend_held = false;           // this attempt counts in the backend's in-flight
  std::uint64_t tried = 0;             // backends that failed this request (bit per index)
  std::uint32_t upstream_head_len = 0; // bytes of the rewritten head queued for the upstream
  std::int64_t upstream_content_length = -1;  // the Content-Length the rewrite put (injection)
  std::uint32_t inspect = slot_none;   // Inspect slot while an inference is metered
  std::int32_t head_buf = -1;          // spare buffer accumulating the raw request head
  std::uint32_t head_len = 0;
  std::int32_t resp_head_buf = -1;     // spare buffer holding a response head split by recvs
  std::uint32_t resp_head_len = 0;
  BodyWriter body_out;                 // response body bytes tokentap writes itself

  std::uint64_t start_ns = 0;
  std::uint64_t request_bytes = 0;
  std::uint64_t body_bytes = 0;          // request body bytes (framing included) forwarded
  std::uint64_t response_bytes = 0;
  std::uint64_t upstream_bytes_sent = 0; // request bytes the upstream accepted
  std::uint64_t splice_total = 0;
  SplicePump splice;

  HttpParser resp_parser;
  SendQueue to_upstream;
  // A copy of the held body while the request may still go to another backend (until the
  // final response head): replayable says the copy and the raw head are both kept.
  SendQueue replay;
  bool replayable = false;
};

}  // namespace tokentap
