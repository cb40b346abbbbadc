// Conn, metering: what one inference exchange reports to the shard's metrics block.
//
// The request body streams through RequestProbe (model, stream flag) as it is forwarded; the
// response body streams through TailScanner, which finds the terminating chunk and parses only
// that with simdjson. Neither holds the body: both see llhttp's de-chunked spans in passing.
// The active-requests gauge is raised once the model is known (end of the request body), and
// every started exchange reports request_finished exactly once (record_exchange).
#include <algorithm>
#include <cstring>
#include <ctime>

#include "tokentap/base/clock.h"
#include "tokentap/obs/metrics.h"
#include "tokentap/proxy/conn.h"
#include "tokentap/proxy/shard.h"

namespace tokentap {
namespace {

double seconds(std::uint64_t ns) { return static_cast<double>(ns) / 1e9; }

}  // namespace

void Conn::on_request_body(void* ctx, const char* data, std::size_t len) {
  auto* self = static_cast<Conn*>(ctx);
  TT_DASSERT(self->ex_.inspect != slot_none);
  if (RequestProbe* p = self->shard_->inspects()[self->ex_.inspect].probe()) p->feed(data, len);
}

void Conn::on_response_body(void* ctx, const char* data, std::size_t len) {
  auto* self = static_cast<Conn*>(ctx);
  Exchange& ex = self->ex_;
  if (ex.inspect != slot_none) {
    Inspect& in = self->shard_->inspects()[ex.inspect];
    if (TailScanner* t = in.tail()) t->feed(data, len, self->shard_->now_ns());
    if (ex.strip) {
      self->shard_->strips()[in.strip].feed(
          data, len, [self](const char* p, std::size_t n) { (void)self->write_body(p, n); });
      return;
    }
  }
  if (ex.dechunk) (void)self->write_body(data, len);
}

// Body bytes tokentap writes itself (stripped or de-chunked); (nullptr, 0) queues what was
// collected. A failure closes the connection (the response cannot be completed).
bool Conn::write_body(const char* data, std::size_t len) {
  if (state_ != State::open) return false;
  BufRing& bufs = shard_->bufs();
  SegmentPool& segs = shard_->segments();
  const bool ok = data == nullptr ? ex_.body_out.flush(bufs, segs, to_client_)
                                  : ex_.body_out.append(bufs, segs, to_client_, data, len);
  if (!ok) close_now();
  return ok;
}

void Conn::meter_request_head(bool body_encoded) {
  // The request parser lives as long as the connection: a sink left from an earlier metered
  // request on this keep-alive connection must not see this one's body.
  req_.set_sink(nullptr, nullptr);
  if (!is_inference(ex_.route)) return;
  ex_.inspect = shard_->inspects().alloc();
  if (ex_.inspect == slot_none) return;  // slab full: metered without model or usage
  shard_->inspects()[ex_.inspect].start_probe(ex_.route, body_encoded);
  req_.set_sink(&Conn::on_request_body, this);
}

void Conn::meter_request_done() {
  if (!is_inference(ex_.route) || ex_.active_reported) return;
  if (ex_.inspect != slot_none) {
    if (RequestProbe* p = shard_->inspects()[ex_.inspect].probe()) {
      p->finish();
      const auto name = p->model();
      ex_.model = name ? shard_->models().intern(*name) : model_unknown;
      ex_.stream = p->stream();
    }
  }
  shard_->metrics().request_started(ex_.route, ex_.model);
  ex_.active_reported = true;
}

void Conn::meter_response_head(int status) {
  if (ex_.inspect == slot_none) return;
  // An early answer (before the request body ended) settles the probe with what it saw.
  meter_request_done();
  Inspect& in = shard_->inspects()[ex_.inspect];
  in.start_tail(ex_.route, status, &shard_->piece_parser());
  ex_.resp_parser.set_sink(&Conn::on_response_body, this);
  // The client did not ask for usage: the stream it gets must not carry the usage we added.
  ex_.strip = ex_.injected && status == 200 && ex_.resp_parser.chunked();
  if (ex_.strip) {
    // Sized like the connection slab, so a stripped response always finds a slot.
    in.strip = shard_->strips().alloc();
    TT_ASSERT(in.strip != slot_none);
    shard_->strips()[in.strip].reset();
    // An HTTP/1.0 client reads the stripped body raw (on_response_head sets that framing).
    ex_.body_out.set_framing(BodyWriter::Framing::chunked);
  }
}

void Conn::end_stripped_body() {
  Inspect& in = shard_->inspects()[ex_.inspect];
  shard_->strips()[in.strip].finish(
      [this](const char* p, std::size_t n) { (void)write_body(p, n); });
  ex_.strip = false;
  if (state_ != State::open) return;
  if (!ex_.body_out.finish(shard_->bufs(), shard_->segments(), to_client_)) close_now();
}

void Conn::meter_fill(RequestRecord* r) {
  if (is_inference(ex_.route) && !ex_.active_reported) {
    // Failed before the body ended: report the start so the gauge pairs up, then the end.
    shard_->metrics().request_started(ex_.route, ex_.model);
    ex_.active_reported = true;
  }
  r->model = ex_.model;
  r->stream = ex_.stream;
  if (ex_.inspect == slot_none) return;
  Inspect& in = shard_->inspects()[ex_.inspect];
  if (TailScanner* t = in.tail()) {
    const Usage& u = t->finish();
    r->prompt_tokens = u.get(UsageField::prompt_tokens).value_or(0);
    r->completion_tokens = u.get(UsageField::completion_tokens).value_or(0);
    r->load_ns = u.get(UsageField::load_ns).value_or(0);
    r->prompt_eval_ns = u.get(UsageField::prompt_eval_ns).value_or(0);
    r->eval_ns = u.get(UsageField::eval_ns).value_or(0);
    r->usage_missing = u.usage_missing;
    if (ex_.stream && u.output_events > 0 && ex_.start_ns != 0) {
      r->ttft_s = seconds(u.first_output_ns - ex_.start_ns);
      if (r->completion_tokens >= 2) {
        r->tpot_s = seconds(u.last_output_ns - u.first_output_ns) /
                    static_cast<double>(r->completion_tokens - 1);
      }
    }
  }
  in.state.emplace<std::monostate>();
  if (in.strip != slot_none) {
    shard_->strips().release(in.strip);
    in.strip = slot_none;
  }
  shard_->inspects().release(ex_.inspect);
  ex_.inspect = slot_none;
}

void Conn::record_exchange() {
  if (!ex_.open) return;
  ex_.open = false;
  RequestRecord r;
  r.route = ex_.route;
  std::uint16_t status = ex_.status;
  if (status == 0) status = ex_.client_aborted ? 499 : 502;  // nothing was sent: nginx's codes
  r.status = status < 100 || status > 999 ? 502 : status;
  r.client_aborted = ex_.client_aborted;
  r.duration_s =
      ex_.start_ns == 0 ? 0.0 : static_cast<double>(shard_->now_ns() - ex_.start_ns) / 1e9;
  r.request_bytes = ex_.request_bytes;
  r.response_bytes = ex_.response_bytes;
  if (fleet_routing() && ex_.attempts > 0) {
    r.backend = ex_.backend;
    r.attempts = ex_.attempts;
  }
  meter_fill(&r);
  shard_->metrics().request_finished(r);
  log_exchange(r);
}

void Conn::log_exchange(const RequestRecord& r) {
  AccessRing* log = shard_->access_log();
  if (log == nullptr) return;
  AccessRecord a;
  timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  a.unix_ms = static_cast<std::int64_t>(now.tv_sec) * 1000 + now.tv_nsec / 1'000'000;
  a.duration_s = r.duration_s;
  a.ttft_s = r.ttft_s.value_or(-1);
  a.prompt_tokens = r.prompt_tokens;
  a.completion_tokens = r.completion_tokens;
  a.request_bytes = r.request_bytes;
  a.response_bytes = r.response_bytes;
  std::memcpy(&a.client, &peer_, sizeof(peer_));
  a.route = r.route;
  a.status = r.status;
  a.stream = r.stream;
  const std::string_view name = shard_->models().name(r.model);
  a.model_len = static_cast<std::uint8_t>(std::min(name.size(), a.model.size()));
  std::memcpy(a.model.data(), name.data(), a.model_len);
  if (r.backend != backend_none) {
    const std::string_view backend = shard_->fleet().name(r.backend);
    a.backend_len = static_cast<std::uint8_t>(std::min(backend.size(), a.backend.size()));
    std::memcpy(a.backend.data(), backend.data(), a.backend_len);
    a.attempts = r.attempts;
  }
  (void)log->push(a);  // a full ring drops the line and counts it; the request is unaffected
}

}  // namespace tokentap
