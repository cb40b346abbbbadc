// Conn, splice path: large opaque bodies forwarded socket → pipe → socket. See splice_pipe.h
// for why the shard polls through io_uring and splices with non-blocking syscalls.
#include <poll.h>

#include "tokentap/base/assert.h"
#include "tokentap/proxy/conn.h"
#include "tokentap/proxy/shard.h"

namespace tokentap {

bool Conn::splice_candidate(const HttpParser& p) const {
  // Metered routes are never spliced: their bodies must pass through the JSON inspection.
  return !is_inference(ex_.route) && !p.chunked() && p.has_content_length() &&
         p.content_length() >= splice_min_bytes;
}

void Conn::maybe_start_splice() {
  if (state_ != State::open || ex_.upstream == slot_none) return;
  const UpstreamConn& u = shard_->upstreams().at(ex_.upstream);
  if (ex_.splice_mode == Splice::pending_request) {
    if (ex_.req == Req::done) {
      ex_.splice_mode = Splice::off;  // the bytes already buffered held the whole body
      return update_client_recv();
    }
    if (recv_armed_ || !client_in_.empty() || !ex_.to_upstream.empty() || u.send_inflight ||
        u.state != UpstreamConn::State::active) {
      return;
    }
    ex_.splice.remaining = req_.body_remaining();
  } else if (ex_.splice_mode == Splice::pending_response) {
    if (ex_.resp == Resp::done) {
      ex_.splice_mode = Splice::off;
      return update_upstream_recv();
    }
    if (u.recv_armed || !to_client_.empty() || send_inflight_) return;
    ex_.splice.remaining = ex_.resp_parser.body_remaining();
  } else {
    return;
  }
  ex_.splice.pipe = shard_->pipes().take();
  ex_.splice.in_pipe = 0;
  const bool request = ex_.splice_mode == Splice::pending_request;
  if (ex_.splice.pipe < 0) {
    // Every pipe is busy: forward this body through buffers instead.
    ex_.splice_mode = Splice::off;
    return request ? update_client_recv() : update_upstream_recv();
  }
  ex_.splice_mode = request ? Splice::request : Splice::response;
  ex_.splice_total = ex_.splice.remaining;
  run_splice();
}

void Conn::arm_poll(bool on_client, unsigned events) {
  if (on_client) {
    shard_->arm_poll(fd_, events, UserData{slot_, generation_, Op::client_poll}.encode());
    submitted(Op::client_poll);
    return;
  }
  UpstreamConn& u = shard_->upstreams().at(ex_.upstream);
  shard_->arm_poll(u.fd, events, UserData{ex_.upstream, u.generation, Op::upstream_poll}.encode());
  u.submitted(Op::upstream_poll);
}

void Conn::run_splice() {
  TT_ASSERT(ex_.upstream != slot_none);
  const bool request = ex_.splice_mode == Splice::request;
  const int upstream_fd = shard_->upstreams().at(ex_.upstream).fd;
  const int src = request ? fd_ : upstream_fd;
  const int dst = request ? upstream_fd : fd_;
  switch (pump(src, dst, shard_->pipes().at(ex_.splice.pipe), ex_.splice)) {
    case PumpResult::done:
      return finish_splice();
    case PumpResult::want_read:
    case PumpResult::yield:
      return arm_poll(/*on_client=*/request, POLLIN);
    case PumpResult::want_write:
      return arm_poll(/*on_client=*/!request, POLLOUT);
    case PumpResult::source_eof:
    case PumpResult::error:
      if (request) {
        ex_.client_aborted = true;  // the upload broke off
      } else {
        shard_->metrics().upstream_error(UpstreamError::reset);  // download broke off: truncate
      }
      return close_now();
  }
}

void Conn::finish_splice() {
  shard_->pipes().give_back(ex_.splice.pipe, /*empty=*/true);
  ex_.splice.pipe = -1;
  const bool request = ex_.splice_mode == Splice::request;
  ex_.splice_mode = Splice::off;
  (request ? ex_.request_bytes : ex_.response_bytes) += ex_.splice_total;
  if (request) {
    req_.init_request();  // llhttp never saw the spliced bytes; the next request starts fresh
    update_client_recv();
    return on_request_done();
  }
  ex_.advance(Resp::done);
  update_upstream_recv();  // an idle pooled connection keeps a recv armed
  maybe_finish_exchange();
}

void Conn::drop_splice() {
  if (ex_.splice.pipe >= 0) {
    shard_->pipes().give_back(ex_.splice.pipe, /*empty=*/ex_.splice.in_pipe == 0);
    ex_.splice.pipe = -1;
  }
  ex_.splice_mode = Splice::off;
}

}  // namespace tokentap
