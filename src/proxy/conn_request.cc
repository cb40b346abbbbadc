// Conn, request side: the request head (rewritten for the upstream, or refused), its body, and
// the replies tokentap writes itself. See conn.h for the state machine.
#include <cstring>
#include <fmt/format.h>

#include "tokentap/base/assert.h"
#include "tokentap/proxy/error_body.h"
#include "tokentap/proxy/shard.h"
#include "tokentap/proxy/usage_injection.h"

namespace tokentap {
namespace {

// A local reply's body: the longest dialect envelope around the longest message, escaped.
constexpr std::size_t error_body_bytes_max = 2 * error_message_bytes_max + 256;
static_assert(error_body_bytes_max + 1024 < buf_bytes, "a local reply fits one buffer");

// Whether a request must reach the backend its predecessors reached, load aside: a model
// built from blobs (HEAD/POST /api/blobs/:digest, then /api/create naming them) and pushed from
// where it was built (/api/push) lives on one backend only.
bool in_order_route(std::string_view target) {
  const std::string_view path = target_path(target);
  return path == "/api/create" || path == "/api/push" || path.starts_with("/api/blobs/");
}

}  // namespace

void Conn::process_client_input() {
  SegmentPool& segs = shard_->segments();
  BufRing& bufs = shard_->bufs();
  while (state_ == State::open && ex_.req != Req::done && !client_in_.empty()) {
    const Segment s = segs.at(client_in_.head());
    std::uint32_t used = 0;
    const std::uint32_t resets = input_resets_;
    const bool ok = ex_.req == Req::head ? feed_head(bufs.data(s.buf) + s.off, s.len, &used)
                                          : feed_body(s.buf, s.off, s.len, &used);
    // A failure path (error reply, close) discarded the input: nothing is left to consume.
    if (state_ != State::open || resets != input_resets_) return;
    client_in_.consume(segs, bufs, used);
    if (!ok) return;
  }
  flush_upstream();
  update_client_recv();
}

bool Conn::feed_head(const char* data, std::uint32_t len, std::uint32_t* used) {
  if (ex_.head_len == 0 && ex_.start_ns == 0) {
    ex_.start_ns = shard_->now_ns();
    // The head deadline runs from its first byte, however slowly the rest trickles in.
    arm_timer(shard_->config().head_timeout_ms);
  }
  std::size_t n = 0;
  const HttpParser::Stop stop = req_.feed(data, len, &n);
  if (stop == HttpParser::Stop::error) {
    respond_parse_error();
    return false;
  }
  BufRing& bufs = shard_->bufs();
  if (ex_.head_buf < 0) {
    ex_.head_buf = bufs.alloc_spare();
    if (ex_.head_buf < 0) {
      respond_error(503, "Service Unavailable", "tokentap: no buffer for the request head");
      return false;
    }
  }
  if (ex_.head_len + n > head_bytes_max) {
    respond_error(431, "Request Header Fields Too Large", "tokentap: request head too large");
    return false;
  }
  std::memcpy(bufs.data(static_cast<std::uint16_t>(ex_.head_buf)) + ex_.head_len, data, n);
  ex_.head_len += static_cast<std::uint32_t>(n);
  ex_.request_bytes += n;
  *used = static_cast<std::uint32_t>(n);
  if (stop == HttpParser::Stop::need_more) return true;
  on_request_head();
  return state_ == State::open;
}

bool Conn::feed_body(std::uint16_t buf, std::uint32_t off, std::uint32_t len,
                     std::uint32_t* used) {
  BufRing& bufs = shard_->bufs();
  std::size_t n = 0;
  const HttpParser::Stop stop = req_.feed(bufs.data(buf) + off, len, &n);
  if (stop == HttpParser::Stop::error) {
    respond_error(400, "Bad Request", req_.error_reason());
    return false;
  }
  const auto n32 = static_cast<std::uint32_t>(n);
  if (n > 0 && !ex_.to_upstream.push(shard_->segments(), bufs, buf, off, n32)) {
    close_now();
    return false;
  }
  *used = n32;
  ex_.request_bytes += n;
  ex_.body_bytes += n;
  if (ex_.body_bytes > shard_->config().max_body_bytes) {
    // Only a chunked body gets here (a Content-Length one was refused at its head); its head
    // is already upstream, so the exchange cannot end with a status: cut both sides.
    return close_now(), false;
  }
  if (stop == HttpParser::Stop::message_done) on_request_done();
  return state_ == State::open;
}

RewriteOptions Conn::rewrite_options() const {
  RewriteOptions opts{backend_target().host_header, shard_->config().preserve_host};
  opts.drop_expect = ex_.expect_continue;
  return opts;
}

int Conn::rewrite_head(const RewriteOptions& opts, std::size_t* out_len, HeadFacts* facts,
                       RewriteError* err) {
  BufRing& bufs = shard_->bufs();
  const int out = bufs.alloc_spare();
  if (out < 0) {
    *err = RewriteError::ok;  // not the head's fault: no buffer
    return -1;
  }
  const auto out_id = static_cast<std::uint16_t>(out);
  const std::string_view raw(bufs.data(static_cast<std::uint16_t>(ex_.head_buf)), ex_.head_len);
  *err = rewrite_request_head(raw, opts, bufs.data(out_id), buf_bytes, out_len, facts);
  if (*err == RewriteError::ok) return out;
  bufs.unref(out_id);
  return -1;
}

void Conn::on_request_head() {
  // llhttp checks the framing headers (Transfer-Encoding codings…) only after the head pause,
  // and reports a bodyless request's end only on its next feed: an empty feed does both,
  // before anything is forwarded.
  static const char nothing = 0;
  std::size_t unused = 0;
  const HttpParser::Stop head_end = req_.feed(&nothing, 0, &unused);
  if (head_end == HttpParser::Stop::error) return respond_parse_error();
  // The Host written upstream is the backend's: choose one now (model not known yet; a held
  // request is routed again once its body is read).
  const bool routed = choose_backend();
  HeadFacts facts;
  std::size_t out_len = 0;
  RewriteError err = RewriteError::ok;
  const int out = rewrite_head(rewrite_options(), &out_len, &facts, &err);
  ex_.route = route_of(facts.target);  // also a refused request counts under its own route
  ex_.dialect = error_dialect_of(facts.target);
  ex_.stream = route_info(ex_.route).stream_default;
  if (out < 0) {
    if (err == RewriteError::ok) {
      return respond_error(503, "Service Unavailable", "tokentap: no buffer for the request head");
    }
    request_head_refused(facts, err);
    return;
  }
  if (request_head_refused(facts, RewriteError::ok) || serve_catalog(facts)) {
    return shard_->bufs().unref(static_cast<std::uint16_t>(out));
  }
  const int settled = settle_backend(facts, routed, out, &out_len);
  if (settled < 0) return;
  const auto out_id = static_cast<std::uint16_t>(settled);
  const Config& cfg = shard_->config();
  ex_.local_metrics = cfg.metrics_on_proxy && is_metrics_path(facts.target);
  ex_.head_request = facts.method == "HEAD";
  ex_.http10 = facts.http10;
  ex_.keep_alive_10 = facts.keep_alive_10;
  ex_.expect_continue = facts.expect_continue;
  shard_->timers().cancel(timer_);  // a request in progress, stream or upload, is never cut
  ex_.open = true;
  meter_request_head(facts.content_encoded);
  ex_.close_after = !req_.keep_alive();
  if (!hold_or_queue_head(facts, out_id, out_len)) return close_now();
  ex_.resp_parser.init_response();
  ex_.resp_parser.set_no_body(ex_.head_request);
  ex_.advance(Req::body);
  ex_.advance(Resp::head);
  if (splice_candidate(req_)) ex_.splice_mode = Splice::pending_request;
  // A held request on a fleet is routed once its model is known (release_held_request).
  if (!(ex_.hold && fleet_routing())) attach_upstream();
  if (state_ != State::open) return;
  if (head_end == HttpParser::Stop::message_done) on_request_done();
}

// Holds the request (raw head kept, body collected unsent) when injection or routing needs its
// body first, or queues the rewritten head for the upstream. False: no buffer or segment.
bool Conn::hold_or_queue_head(const HeadFacts& facts, std::uint16_t out_id, std::size_t out_len) {
  BufRing& bufs = shard_->bufs();
  if (hold_candidate(
          hold_facts(ex_.inspect != slot_none, fleet_routing(), ex_.route, facts, req_))) {
    // The raw head stays in head_buf and is rewritten once the body is known (its
    // Content-Length may change); the body collects behind it without being sent.
    ex_.hold = true;
    bufs.unref(out_id);
    if (!ex_.expect_continue) return true;
    // The client waits for this before sending the body we must see first.
    if (!queue_client_text("HTTP/1.1 100 Continue\r\n\r\n")) return false;
    flush_client();
    return true;
  }
  ex_.upstream_head_len = static_cast<std::uint32_t>(out_len);
  const bool queued = ex_.to_upstream.push(shard_->segments(), bufs, out_id, 0,
                                           static_cast<std::uint32_t>(out_len));
  bufs.unref(out_id);
  // A fleet keeps the raw head until a connection is up, for a failover's new Host.
  if (queued && !fleet_routing()) forget_raw_head();
  return queued;
}

// The backend this head goes to: the one X-Tokentap-Backend names, the fan-out service for a
// pull, delete or copy (fan_out_route), the first healthy one for a model-store route
// (in_order_route), else the balancer's choice. The head is rewritten again
// when that is not the backend it was written for. Returns the rewritten head's buffer, or -1
// after answering (an unknown name, no healthy backend, no buffer).
int Conn::settle_backend(const HeadFacts& facts, bool routed, int out, std::size_t* out_len) {
  BufRing& bufs = shard_->bufs();
  std::uint32_t b = routed ? ex_.backend : no_backend;
  if (!facts.backend_pin.empty() && fleet_routing()) {
    b = shard_->fleet().find(facts.backend_pin);
    if (b == no_backend) {
      bufs.unref(static_cast<std::uint16_t>(out));
      respond_error(400, "Bad Request", "tokentap: X-Tokentap-Backend names no backend");
      return -1;
    }
    ex_.pinned = static_cast<std::uint8_t>(b);
  } else if (fleet_routing() && shard_->has_fan_out() &&
             fan_out_route(facts.method, facts.target) != FanOutRoute::other) {
    ex_.fan_out = true;
    b = fan_out_slot;
  } else if (fleet_routing() && in_order_route(facts.target)) {
    ex_.in_order = true;
    b = next_backend();
  }
  if (b == no_backend) {
    bufs.unref(static_cast<std::uint16_t>(out));
    shard_->metrics().upstream_error(UpstreamError::connect);
    respond_error(502, "Bad Gateway", "tokentap: no healthy backend");
    return -1;
  }
  if (routed && b == ex_.backend) return out;
  ex_.backend = static_cast<std::uint8_t>(b);
  bufs.unref(static_cast<std::uint16_t>(out));
  HeadFacts again;
  RewriteError err = RewriteError::ok;
  const int readdressed = rewrite_head(rewrite_options(), out_len, &again, &err);
  if (readdressed < 0) {
    respond_error(503, "Service Unavailable", "tokentap: no buffer for the head");
  }
  return readdressed;
}

// True when the head is answered by tokentap instead of forwarded: a refused head (err), a
// body over --max-body, or an OPTIONS/TRACE whose Max-Forwards reached 0 (RFC 9110 §7.6.2).
bool Conn::request_head_refused(const HeadFacts& facts, RewriteError err) {
  if (err != RewriteError::ok) {
    const HttpRefusal r = refusal_of(err);
    respond_local(LocalReply{r.status, r.reason, r.message, r.allow});
    return true;
  }
  if (req_.has_content_length() && req_.content_length() > shard_->config().max_body_bytes) {
    respond_error(413, "Request Entity Too Large", "tokentap: request body larger than --max-body");
    return true;
  }
  if (!facts.max_forwards_zero) return false;
  if (facts.method == "OPTIONS") {
    respond_local(LocalReply{200, "OK", nullptr, "GET, HEAD, POST, DELETE, OPTIONS"});
  } else {
    respond_local(LocalReply{405, "Method Not Allowed", "tokentap: TRACE is not supported",
                             "GET, HEAD, POST, DELETE, OPTIONS"});
  }
  return true;
}

void Conn::respond_parse_error() {
  if (req_.connect()) {
    const HttpRefusal r = refusal_of(RewriteError::method_not_allowed);
    return respond_local(LocalReply{r.status, r.reason, r.message, r.allow});
  }
  if (req_.error_code() == HPE_INVALID_TRANSFER_ENCODING) {
    // RFC 9112 §6.3 rule 4: a request whose Transfer-Encoding does not end with chunked (once)
    // has no reliable length: 400 and close. (A coding before chunked is forwarded untouched.)
    return respond_error(400, "Bad Request",
                         "tokentap: Transfer-Encoding must end with chunked, applied once");
  }
  respond_error(400, "Bad Request", req_.error_reason());
}

void Conn::on_request_done() {
  ex_.advance(Req::done);
  meter_request_done();
  if (ex_.hold) release_held_request();
  if (state_ != State::open) return;
  maybe_finish_exchange();
}

void Conn::release_held_request() {
  ex_.hold = false;
  std::int64_t content_length = -1;
  const InjectResult injected =
      apply_include_usage(shard_->inspects()[ex_.inspect].probe(), ex_.route, ex_.to_upstream,
                          shard_->segments(), shard_->bufs(), &content_length);
  if (injected == InjectResult::failed) return close_now();
  ex_.injected = injected == InjectResult::injected;
  ex_.upstream_content_length = content_length;
  const bool route_now = fleet_routing();
  if (route_now && !choose_backend()) {  // the model is known now: route by it
    shard_->metrics().upstream_error(UpstreamError::connect);
    return respond_error(502, "Bad Gateway", "tokentap: no healthy backend");
  }
  if (route_now) keep_replay_copy();
  if (!queue_upstream_head()) return close_now();
  if (!route_now) forget_raw_head();
  if (route_now) attach_upstream();
  if (state_ != State::open) return;
  flush_upstream();
  update_client_recv();
}

void Conn::respond_error(int status, const char* reason, const char* message) {
  respond_local(LocalReply{status, reason, message != nullptr ? message : "error"});
}

void Conn::respond_local(const LocalReply& reply) {
  release_upstream(false);
  drop_response_head();
  if (ex_.response_started) return close_now();  // too late for a status: truncate instead
  if (reply.status == 400) shard_->metrics().connection_rejected(RejectReason::bad_request);
  if (reply.status == 431) shard_->metrics().connection_rejected(RejectReason::header_too_large);
  ex_.open = true;  // a request refused before its head was read still counts
  ex_.status = static_cast<std::uint16_t>(reply.status);
  BufRing& bufs = shard_->bufs();
  const int b = bufs.alloc_spare(/*urgent=*/true);
  if (b < 0) return close_now();
  const auto id = static_cast<std::uint16_t>(b);
  // The body is shaped like the errors of the API the client called (error_body.h).
  char body[error_body_bytes_max];
  const std::uint64_t seed = shard_->now_ns() ^ (std::uint64_t{slot_} << 40) ^ generation_;
  const std::size_t body_len =
      reply.message == nullptr
          ? 0
          : write_error_body(ex_.dialect, reply.status, reply.message, seed, body, sizeof(body));
  auto r = fmt::format_to_n(bufs.data(id), buf_bytes, "HTTP/1.1 {} {}\r\n", reply.status,
                            reply.reason);
  if (reply.allow != nullptr) r = fmt::format_to_n(r.out, 512, "Allow: {}\r\n", reply.allow);
  if (body_len > 0) {
    r = fmt::format_to_n(r.out, 64, "Content-Type: {}\r\n", error_content_type(ex_.dialect));
  }
  r = fmt::format_to_n(r.out, 64, "Content-Length: {}\r\nConnection: close\r\n\r\n", body_len);
  std::memcpy(r.out, body, body_len);
  r.out += body_len;
  const auto size = static_cast<std::uint32_t>(r.out - bufs.data(id));
  SegmentPool& segs = shard_->segments();
  ex_.to_upstream.clear(segs, bufs);
  client_in_.clear(segs, bufs);
  ++input_resets_;
  const bool queued = to_client_.push(segs, bufs, id, 0, size);
  bufs.unref(id);
  if (!queued) return close_now();
  finish_local_reply();
}

// A reply tokentap wrote itself is queued: the exchange is over, the connection closes after it.
void Conn::finish_local_reply() {
  ex_.response_started = true;
  if (ex_.req != Req::done) ex_.advance(Req::done);
  if (ex_.resp != Resp::done) ex_.advance(Resp::done);
  ex_.close_after = true;
  flush_client();
}

}  // namespace tokentap
