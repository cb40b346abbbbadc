// Conn, metering: what one inference exchange reports to the shard's metrics block.
//
// The request body streams through RequestProbe (model, stream flag) as it is forwarded; the
// response body streams through TailScanner, which finds the terminating chunk and parses only
// that with simdjson. Neither holds the body: both see llhttp's de-chunked spans in passing.
// The active-requests gauge is raised once the model is known (end of the request body), and
// every started exchange reports request_finished exactly once (record_exchange).
#include <algorithm>
#include <cstdio>
#include <cstring>

#include "tokentap/proxy/conn.h"
#include "tokentap/base/clock.h"
#include "tokentap/obs/metrics.h"
#include "tokentap/proxy/shard.h"

namespace tokentap {
namespace {

constexpr std::uint32_t none = Slab<int>::none;

double seconds(std::uint64_t ns) { return static_cast<double>(ns) / 1e9; }

}  // namespace

void Conn::on_request_body(void* ctx, const char* data, std::size_t len) {
  auto* self = static_cast<Conn*>(ctx);
  TT_DASSERT(self->inspect_ != none);
  if (RequestProbe* p = self->shard_->inspects()[self->inspect_].probe()) p->feed(data, len);
}

void Conn::on_response_body(void* ctx, const char* data, std::size_t len) {
  auto* self = static_cast<Conn*>(ctx);
  Inspect& in = self->shard_->inspects()[self->inspect_];
  if (TailScanner* t = in.tail()) t->feed(data, len, self->shard_->now_ns());
  if (self->strip_) {
    self->shard_->strips()[in.strip].feed(
        data, len, [self](const char* p, std::size_t n) { self->append_client_chunk(p, n); });
  }
}

void Conn::meter_request_head(bool body_encoded) {
  // The request parser lives as long as the connection: a sink left from an earlier metered
  // request on this keep-alive connection must not see this one's body.
  req_.set_sink(nullptr, nullptr);
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
  Inspect& in = shard_->inspects()[inspect_];
  in.start_tail(route_, status, &shard_->piece_parser());
  resp_.set_sink(&Conn::on_response_body, this);
  // The client did not ask for usage: the stream it gets must not carry the usage we added.
  strip_ = injected_ && status == 200 && resp_.chunked();
  if (strip_) {
    // Sized like the connection slab, so a stripped response always finds a slot.
    in.strip = shard_->strips().alloc();
    TT_ASSERT(in.strip != none);
    shard_->strips()[in.strip].reset();
  }
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
  if (in.strip != none) {
    shard_->strips().release(in.strip);
    in.strip = none;
  }
  shard_->inspects().release(inspect_);
  inspect_ = none;
}

}  // namespace tokentap

namespace tokentap {

// ---- include_usage injection (metrics.md "OpenAI streams and usage") -------------------------

bool Conn::hold_candidate(const HeadFacts& facts) const {
  // Only the two routes that take stream_options, with a body small enough to hold whole and
  // framed by Content-Length (chunked request bodies are forwarded untouched).
  return inspect_ != Slab<int>::none &&
         (route_ == Route::v1_chat_completions || route_ == Route::v1_completions) &&
         !facts.content_encoded && !req_.chunked() && req_.has_content_length() &&
         req_.content_length() > 0 && req_.content_length() <= inject_body_bytes_max;
}

void Conn::release_held_request() {
  hold_ = false;
  BufRing& bufs = shard_->bufs();
  SegmentPool& segs = shard_->segments();
  const std::uint64_t body_len = to_upstream_.bytes();
  InjectEdit edit;
  RequestProbe* probe = shard_->inspects()[inspect_].probe();
  injected_ = probe != nullptr &&
              plan_include_usage(*probe, route_, false, body_len, &edit) == InjectOutcome::injected;
  const int out = bufs.alloc_spare();
  if (out < 0) return close_now();
  const auto out_id = static_cast<std::uint16_t>(out);
  const Config& cfg = shard_->config();
  RewriteOptions opts{cfg.upstream_host, cfg.preserve_host};
  opts.drop_expect = expect_continue_;
  if (injected_) {
    opts.content_length =
        static_cast<std::int64_t>(body_len - edit.remove + edit.insert().size());
  }
  HeadFacts facts;
  std::size_t out_len = 0;
  const RewriteError err = rewrite_request_head(
      std::string_view(bufs.data(static_cast<std::uint16_t>(head_buf_)), head_len_), opts,
      bufs.data(out_id), buf_bytes, &out_len, &facts);
  bufs.unref(static_cast<std::uint16_t>(head_buf_));
  head_buf_ = -1;
  head_len_ = 0;
  bool ok = err == RewriteError::ok;
  if (ok && injected_) {
    const int text = bufs.alloc_spare();
    ok = text >= 0;
    if (ok) {
      const auto text_id = static_cast<std::uint16_t>(text);
      std::memcpy(bufs.data(text_id), edit.insert().data(), edit.insert().size());
      ok = to_upstream_.edit(segs, bufs, edit.at, edit.remove, text_id, 0,
                             static_cast<std::uint32_t>(edit.insert().size()));
      bufs.unref(text_id);
    }
  }
  ok = ok && to_upstream_.push_front(segs, bufs, out_id, 0, static_cast<std::uint32_t>(out_len));
  bufs.unref(out_id);
  if (!ok) return close_now();
  flush_upstream();
  update_client_recv();
}

void Conn::append_client_chunk(const char* data, std::size_t len) {
  // Layout of a chunk buffer: [size line, right-aligned in chunk_prefix_bytes][data][CRLF].
  constexpr std::uint32_t chunk_prefix_bytes = 10;  // up to 8 hex digits + CRLF
  BufRing& bufs = shard_->bufs();
  while (len > 0 && state_ == State::open) {
    if (chunk_buf_ < 0) {
      chunk_buf_ = bufs.alloc_spare();
      if (chunk_buf_ < 0) return close_now();
      chunk_len_ = 0;
    }
    const std::uint32_t room = buf_bytes - chunk_prefix_bytes - 2 - chunk_len_;
    const auto n = static_cast<std::uint32_t>(std::min<std::size_t>(len, room));
    std::memcpy(bufs.data(static_cast<std::uint16_t>(chunk_buf_)) + chunk_prefix_bytes + chunk_len_,
                data, n);
    chunk_len_ += n;
    data += n;
    len -= n;
    if (len > 0) flush_client_chunk();
  }
}

void Conn::flush_client_chunk() {
  if (chunk_buf_ < 0) return;
  constexpr std::uint32_t chunk_prefix_bytes = 10;
  BufRing& bufs = shard_->bufs();
  const auto id = static_cast<std::uint16_t>(chunk_buf_);
  chunk_buf_ = -1;
  if (chunk_len_ == 0) return bufs.unref(id);
  char* base = bufs.data(id);
  char line[chunk_prefix_bytes + 1];
  const int n = std::snprintf(line, sizeof(line), "%x\r\n", chunk_len_);
  std::memcpy(base + chunk_prefix_bytes - n, line, static_cast<std::size_t>(n));
  std::memcpy(base + chunk_prefix_bytes + chunk_len_, "\r\n", 2);
  const bool ok = to_client_.push(shard_->segments(), bufs, id,
                                  chunk_prefix_bytes - static_cast<std::uint32_t>(n),
                                  static_cast<std::uint32_t>(n) + chunk_len_ + 2);
  bufs.unref(id);
  if (!ok) close_now();
}

void Conn::end_stripped_body() {
  Inspect& in = shard_->inspects()[inspect_];
  shard_->strips()[in.strip].finish([this](const char* p, std::size_t n) { append_client_chunk(p, n); });
  flush_client_chunk();
  strip_ = false;
  if (!queue_client_text("0\r\n\r\n")) close_now();
}

}  // namespace tokentap
