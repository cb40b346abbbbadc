// Conn, metering: what one inference exchange reports to the shard's metrics block.
//
// The request body streams through RequestProbe (model, stream flag) as it is forwarded; the
// response body streams through TailScanner, which finds the terminating chunk and parses only
// that with simdjson. Neither holds the body: both see llhttp's de-chunked spans in passing.
// The active-requests gauge is raised once the model is known (end of the request body), and
// every started exchange reports request_finished exactly once (record_exchange).
#include "tokentap/conn.h"
#include "tokentap/clock.h"
#include "tokentap/metrics.h"
#include "tokentap/shard.h"

namespace tokentap {
namespace {

constexpr std::uint32_t none = Slab<int>::none;

double seconds(std::uint64_t ns) { return static_cast<double>(ns) / 1e9; }

}  // namespace

void Conn::on_request_body(void* ctx, const char* data, std::size_t len) {
  auto* self = static_cast<Conn*>(ctx);
  if (RequestProbe* p = self->shard_->inspects()[self->inspect_].probe()) p->feed(data, len);
}

void Conn::on_response_body(void* ctx, const char* data, std::size_t len) {
  auto* self = static_cast<Conn*>(ctx);
  if (TailScanner* t = self->shard_->inspects()[self->inspect_].tail()) {
    t->feed(data, len, monotonic_ns());
  }
}

void Conn::meter_request_head(bool body_encoded) {
  if (!is_inference(route_)) return;
  inspect_ = shard_->inspects().alloc();
  if (inspect_ == none) return;  // slab full: metered without model or usage, never blocked
  shard_->inspects()[inspect_].start_probe(route_, body_encoded);
  req_.set_sink(&Conn::on_request_body, this);
}

void Conn::meter_request_done() {
  if (!is_inference(route_) || active_reported_) return;
  if (inspect_ != none) {
    if (RequestProbe* p = shard_->inspects()[inspect_].probe()) {
      p->finish();
      const auto name = p->model();
      model_ = name ? shard_->models().intern(*name) : model_unknown;
      stream_ = p->stream();
    }
  }
  shard_->metrics().request_started(route_, model_);
  active_reported_ = true;
}

void Conn::meter_response_head(int status) {
  if (inspect_ == none) return;
  // An early answer (before the request body ended) settles the probe with what it saw.
  meter_request_done();
  shard_->inspects()[inspect_].start_tail(route_, status, &shard_->piece_parser());
  resp_.set_sink(&Conn::on_response_body, this);
}

void Conn::meter_fill(RequestRecord* r) {
  if (is_inference(route_) && !active_reported_) {
    // Failed before the body ended: report the start so the gauge pairs up, then the end.
    shard_->metrics().request_started(route_, model_);
    active_reported_ = true;
  }
  r->model = model_;
  r->stream = stream_;
  if (inspect_ == none) return;
  Inspect& in = shard_->inspects()[inspect_];
  if (TailScanner* t = in.tail()) {
    const Usage& u = t->finish();
    r->prompt_tokens = u.get(UsageField::prompt_tokens).value_or(0);
    r->completion_tokens = u.get(UsageField::completion_tokens).value_or(0);
    r->load_ns = u.get(UsageField::load_ns).value_or(0);
    r->prompt_eval_ns = u.get(UsageField::prompt_eval_ns).value_or(0);
    r->eval_ns = u.get(UsageField::eval_ns).value_or(0);
    r->usage_missing = u.usage_missing;
    if (stream_ && u.output_events > 0 && start_ns_ != 0) {
      r->ttft_s = seconds(u.first_output_ns - start_ns_);
      if (r->completion_tokens >= 2) {
        r->tpot_s = seconds(u.last_output_ns - u.first_output_ns) /
                    static_cast<double>(r->completion_tokens - 1);
      }
    }
  }
  in.state.emplace<std::monostate>();
  shard_->inspects().release(inspect_);
  inspect_ = none;
}

}  // namespace tokentap
