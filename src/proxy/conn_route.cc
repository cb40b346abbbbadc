// Conn, routing (issue 16): which backend of the fleet serves an exchange, the fleet-wide
// in-flight count it holds there, failover to another backend when a connect fails before any
// request byte left, and what each attempt tells the fleet's health policy.
//
// With one backend nothing here costs more than one relaxed atomic add and subtract per
// request. With several, an inference request whose body is small enough (usage_injection.h's
// hold) is held until its body, and so its model, is known: the balancer then prefers the
// backends that have the model installed. The raw request head is kept until the upstream
// connection is established, so a failover can address the next backend with its own Host.
#include <fmt/format.h>

#include "tokentap/base/assert.h"
#include "tokentap/base/clock.h"
#include "tokentap/proxy/conn.h"
#include "tokentap/proxy/shard.h"
#include "tokentap/upstream/balancer.h"

namespace tokentap {
namespace {

// Held bodies up to this size are kept for a replay on another backend; larger ones only fail
// over on a connect failure (their bytes are gone once sent).
constexpr std::uint64_t replay_body_bytes_max = 64 * 1024;

}  // namespace

bool Conn::fleet_routing() const { return shard_->fleet().routing(); }

const BackendTarget& Conn::backend_target() const { return shard_->target(ex_.backend); }

// The backend for the next attempt, not yet taken: X-Tokentap-Backend's, or the balancer's
// choice among the backends not tried yet; no_backend when none is healthy.
std::uint32_t Conn::next_backend() {
  Fleet& fleet = shard_->fleet();
  if (!fleet.routing()) {
    // One backend behaves as one upstream. (A reload changing the count between the two loads
    // leaves no sole backend: the balancer then chooses as for a fleet.)
    if (const std::uint32_t sole = fleet.sole(); sole != no_backend) return sole;
  }
  if (ex_.pinned != backend_unpinned) return ex_.pinned;  // that one, healthy or not
  const std::uint64_t now_ms = shard_->now_ns() / ns_per_ms;
  if (ex_.in_order) return first_in_order(fleet, now_ms, ex_.tried);
  return select_backend(fleet, ex_.model, now_ms, ex_.tried, shard_->rr());
}

bool Conn::choose_backend() {
  const std::uint32_t b = next_backend();
  if (b == no_backend) return false;
  ex_.backend = static_cast<std::uint8_t>(b);
  return true;
}

void Conn::hold_backend() {
  // The fan-out service is no backend: it holds every backend it reaches itself, and the
  // exchange carries no backend label (attempts stays 0).
  if (ex_.backend_held || ex_.local_metrics || ex_.fan_out) return;
  shard_->fleet().acquire(ex_.backend);
  shard_->advance_rr();
  ex_.backend_held = true;
  ++ex_.attempts;
}

void Conn::drop_backend() {
  if (!ex_.backend_held) return;
  shard_->fleet().release(ex_.backend);
  ex_.backend_held = false;
}

void Conn::forget_raw_head() {
  if (ex_.head_buf < 0 || ex_.hold || ex_.replayable) return;
  shard_->bufs().unref(static_cast<std::uint16_t>(ex_.head_buf));
  ex_.head_buf = -1;
}

void Conn::report_connect_failure(int res) {
  if (ex_.fan_out) return;  // the service, not a backend
  const ConnectFailure kind = res == -ECANCELED      ? ConnectFailure::timeout
                              : res == -ECONNREFUSED ? ConnectFailure::refused
                                                     : ConnectFailure::other;
  count_ejection(
      shard_->backend_counters(ex_.backend),
      shard_->fleet().report_connect_failure(ex_.backend, kind, shard_->now_ns() / ns_per_ms));
}

void Conn::report_response_head(int status) {
  if (!fleet_routing() || ex_.fan_out) return;
  // Ollama answers 503 only when its queue is full: alive but busy, never an ejection.
  count_ejection(shard_->backend_counters(ex_.backend),
                 shard_->fleet().report_response(ex_.backend, status, status == 503,
                                                 shard_->now_ns() / ns_per_ms));
}

// Another backend for this request once the current one failed it, within --retries; the
// failed one is never tried again for it. no_backend: the caller keeps the failure.
std::uint32_t Conn::backend_after_failure() {
  if (!fleet_routing() || ex_.pinned != backend_unpinned || ex_.fan_out) return no_backend;
  if (ex_.attempts > shard_->config().retries) return no_backend;
  ex_.tried |= std::uint64_t{1} << ex_.backend;
  return next_backend();
}

// The queued body goes to the (newly chosen) backend behind a head written for it.
bool Conn::resend(RetryReason why) {
  if (!queue_upstream_head()) return false;
  shard_->metrics().retry(why);
  attach_upstream();
  // A pooled connection is ready now, and nothing else will flush on this completion.
  if (state_ == State::open) flush_upstream();
  return true;
}

// After a failed connect, before any request byte left: the same request goes to another
// backend while --retries allows and one is healthy. False: the caller answers 502.
bool Conn::fail_over() {
  if (ex_.head_buf < 0 || ex_.upstream_bytes_sent != 0) return false;
  const std::uint32_t next = backend_after_failure();
  if (next == no_backend) return false;
  ex_.backend = static_cast<std::uint8_t>(next);
  // The head at the front of the queue names the failed backend's Host: write it anew.
  ex_.to_upstream.consume(shard_->segments(), shard_->bufs(), ex_.upstream_head_len);
  return resend(RetryReason::connect);
}

// A held body small enough is copied before it is sent, so a busy answer or a connection lost
// before the response head can send the request again elsewhere (issue 16 "Failover").
void Conn::keep_replay_copy() {
  if (!fleet_routing() || ex_.pinned != backend_unpinned || ex_.fan_out) return;
  if (ex_.to_upstream.bytes() > replay_body_bytes_max) return;
  ex_.replayable = ex_.replay.copy_from(shard_->segments(), shard_->bufs(), ex_.to_upstream);
}

// The final response head arrived: nothing will be replayed any more.
void Conn::end_replay() {
  if (!ex_.replayable) return;
  ex_.replayable = false;
  ex_.replay.clear(shard_->segments(), shard_->bufs());
  forget_raw_head();
}

// Before any response byte reached the client: the request goes again, whole, to another
// backend. False (nothing changed) when it cannot: not replayable, --retries used up, or no
// other healthy backend; the caller then carries on as without a fleet.
bool Conn::replay_elsewhere(RetryReason why) {
  if (!ex_.replayable || ex_.response_started || ex_.local_metrics) return false;
  const std::uint32_t next = backend_after_failure();
  if (next == no_backend) return false;
  ex_.upstream_dirty = true;
  release_upstream(false);  // the failed attempt's connection is never reused
  ex_.backend = static_cast<std::uint8_t>(next);
  ex_.upstream_dirty = false;
  ex_.upstream_bytes_sent = 0;
  ex_.informational = false;
  drop_response_head();
  ex_.resp_parser.init_response();
  ex_.resp_parser.set_no_body(ex_.head_request);
  SegmentPool& segs = shard_->segments();
  BufRing& bufs = shard_->bufs();
  ex_.to_upstream.clear(segs, bufs);
  if (!ex_.to_upstream.copy_from(segs, bufs, ex_.replay) || !resend(why)) close_now();
  return true;  // handled: sent again, or the connection is gone
}

// GET /api/tags, /api/ps and /v1/models on a fleet: the union over the backends in rotation,
// as one Ollama would answer (unless pinned to one backend). False: forward as any request.
bool Conn::serve_catalog(const HeadFacts& facts) {
  if (!fleet_routing() || !facts.backend_pin.empty() || facts.method != "GET") return false;
  const std::string_view path = target_path(facts.target);
  const bool tags = path == "/api/tags";
  const bool ps = path == "/api/ps";
  if (!tags && !ps && path != "/v1/models") return false;
  const std::shared_ptr<const CatalogBodies> snapshot = shard_->catalog().current();
  if (snapshot == nullptr) return false;
  const std::string& body = tags ? snapshot->tags : ps ? snapshot->ps : snapshot->models;
  if (body.empty()) return false;
  respond_with_body(tags || ps ? "application/json; charset=utf-8" : "application/json", body);
  return true;
}

// A 200 tokentap composes itself, of any length, then the connection closes.
void Conn::respond_with_body(std::string_view content_type, std::string_view body) {
  ex_.open = true;
  ex_.status = 200;
  BufRing& bufs = shard_->bufs();
  SegmentPool& segs = shard_->segments();
  const int b = bufs.alloc_spare();
  if (b < 0) return close_now();
  const auto id = static_cast<std::uint16_t>(b);
  const auto r = fmt::format_to_n(bufs.data(id), buf_bytes,
                                  "HTTP/1.1 200 OK\r\nContent-Type: {}\r\nContent-Length: {}\r\n"
                                  "Connection: close\r\n\r\n",
                                  content_type, body.size());
  const bool queued = to_client_.push(segs, bufs, id, 0, static_cast<std::uint32_t>(r.size));
  bufs.unref(id);
  BodyWriter writer;
  writer.set_framing(BodyWriter::Framing::raw);
  if (!queued || !writer.append(bufs, segs, to_client_, body.data(), body.size()) ||
      !writer.flush(bufs, segs, to_client_)) {
    writer.release(bufs);
    return close_now();
  }
  finish_local_reply();
}

// Rewrites the held raw head for the chosen backend and puts it in front of the queued body.
bool Conn::queue_upstream_head() {
  RewriteOptions opts = rewrite_options();
  opts.content_length = ex_.upstream_content_length;
  HeadFacts facts;
  std::size_t out_len = 0;
  RewriteError err = RewriteError::ok;
  const int out = rewrite_head(opts, &out_len, &facts, &err);
  if (out < 0) return false;  // this head was rewritten before: only a buffer can be missing
  BufRing& bufs = shard_->bufs();
  const auto out_id = static_cast<std::uint16_t>(out);
  const bool ok = ex_.to_upstream.push_front(shard_->segments(), bufs, out_id, 0,
                                             static_cast<std::uint32_t>(out_len));
  bufs.unref(out_id);
  ex_.upstream_head_len = static_cast<std::uint32_t>(out_len);
  return ok;
}

}  // namespace tokentap
