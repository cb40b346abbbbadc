// Inspect: the metering state of one inference exchange, drawn from a per-shard slab only while
// an inference request is in flight, so connections that are idle or not metered carry none.
//
// The request probe (model, stream) and the tail scanner (usage, TTFT) are never needed at the
// same time: the probe settles when the request body ends, the scanner starts with the final
// response head. They share storage; the variant says which one is live.
//
// The UsageStrip (about 1 KiB, mostly its hold buffer) is needed only when the proxy injected
// include_usage, a minority of exchanges, so it lives in a slab of its own and Inspect holds
// only its slot: every other stream held open costs a kilobyte less.
#pragma once

#include <cstdint>
#include <variant>

#include "tokentap/meter/llm_tail.h"
#include "tokentap/meter/request_probe.h"
#include "tokentap/base/slab.h"
#include "tokentap/meter/usage_strip.h"

namespace tokentap {

struct Inspect {
  std::variant<std::monostate, RequestProbe, TailScanner> state;
  // Slot in the shard's Slab<UsageStrip> while the response is stripped of injected usage.
  std::uint32_t strip = slot_none;

  RequestProbe& start_probe(Route route, bool body_encoded) {
    RequestProbe& p = state.emplace<RequestProbe>();
    p.init(route, body_encoded);
    return p;
  }
  TailScanner& start_tail(Route route, int status, PieceParser* parser) {
    TailScanner& t = state.emplace<TailScanner>();
    t.init(route, status, parser);
    return t;
  }
  RequestProbe* probe() { return std::get_if<RequestProbe>(&state); }
  TailScanner* tail() { return std::get_if<TailScanner>(&state); }
};

}  // namespace tokentap
