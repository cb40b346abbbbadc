// Conn, splice path: large opaque bodies forwarded socket → pipe → socket. See splice_pipe.h
// for why the shard polls through io_uring and splices with non-blocking syscalls.
#include <poll.h>

#include "tokentap/base/assert.h"
#include "tokentap/proxy/conn.h"
#include "tokentap/proxy/shard.h"

namespace tokentap {

bool Conn::splice_candidate(const HttpParser& p) const {
  // Metered routes are never spliced: their bodies must pass through the JSON inspection.
  return !is_inference(route_) && !p.chunked() && p.has_content_length() &&
         p.content_length() >= splice_min_bytes;
}

void Conn::maybe_start_splice() {
  if (state_ != State::open || upstream_ == Slab<Conn>::none) return;
  const UpstreamConn& u = shard_->upstreams().at(upstream_);
  if (splice_mode_ == Splice::pending_request) {
    if (req_state_ == Req::done) {
      splice_mode_ = Splice::off;  // the bytes already buffered held the whole body
      return update_client_recv();
    }
    if (recv_armed_ || !client_in_.empty() || !to_upstream_.empty() || u.send_inflight ||
        u.state != UpstreamConn::State::active) {
      return;
    }
    splice_.remaining = req_.body_remaining();
  } else if (splice_mode_ == Splice::pending_response) {
    if (resp_state_ == Resp::done) {
      splice_mode_ = Splice::off;
      return update_upstream_recv();
    }
    if (u.recv_armed || !to_client_.empty() || send_inflight_) return;
    splice_.remaining = resp_.body_remaining();
  } else {
    return;
  }
  splice_.pipe = shard_->pipes().take();
  splice_.in_pipe = 0;
  const bool request = splice_mode_ == Splice::pending_request;
  if (splice_.pipe < 0) {
    // Every pipe is busy: forward this body through buffers instead.
    splice_mode_ = Splice::off;
    return request ? update_client_recv() : update_upstream_recv();
  }
  splice_mode_ = request ? Splice::request : Splice::response;
  splice_total_ = splice_.remaining;
  run_splice();
}

void Conn::arm_poll(bool on_client, unsigned events) {
  if (on_client) {
    shard_->arm_poll(fd_, events, UserData{slot_, generation_, Op::client_poll}.encode());
    ++inflight_;
    return;
  }
  UpstreamConn& u = shard_->upstreams().at(upstream_);
  shard_->arm_poll(u.fd, events, UserData{upstream_, u.generation, Op::upstream_poll}.encode());
  ++u.inflight;
}

void Conn::run_splice() {
  TT_ASSERT(upstream_ != Slab<Conn>::none);
  const bool request = splice_mode_ == Splice::request;
  const int upstream_fd = shard_->upstreams().at(upstream_).fd;
  const int src = request ? fd_ : upstream_fd;
  const int dst = request ? upstream_fd : fd_;
  switch (pump(src, dst, shard_->pipes().at(splice_.pipe), splice_)) {
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
        client_aborted_ = true;  // the upload broke off
      } else {
        shard_->metrics().upstream_error(UpstreamError::reset);  // download broke off: truncate
      }
      return close_now();
  }
}

void Conn::finish_splice() {
  shard_->pipes().give_back(splice_.pipe, /*empty=*/true);
  splice_.pipe = -1;
  const bool request = splice_mode_ == Splice::request;
  splice_mode_ = Splice::off;
  (request ? request_bytes_ : response_bytes_) += splice_total_;
  if (request) {
    req_.init_request();  // llhttp never saw the spliced bytes; the next request starts fresh
    update_client_recv();
    return on_request_done();
  }
  resp_state_ = Resp::done;
  update_upstream_recv();  // an idle pooled connection keeps a recv armed
  maybe_finish_exchange();
}

void Conn::drop_splice() {
  if (splice_.pipe >= 0) {
    shard_->pipes().give_back(splice_.pipe, /*empty=*/splice_.in_pipe == 0);
    splice_.pipe = -1;
  }
  splice_mode_ = Splice::off;
}

}  // namespace tokentap
