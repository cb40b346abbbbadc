// Conn: the connection's life cycle and its client socket; see conn.h for the states.
#include "tokentap/proxy/conn.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "tokentap/base/assert.h"
#include "tokentap/base/clock.h"
#include "tokentap/proxy/shard.h"

namespace tokentap {

void Conn::enter(State next) {
  bool legal = false;
  switch (state_) {
    case State::free:
      legal = next == State::open;
      break;
    case State::open:
      legal = next == State::lingering || next == State::closing;
      break;
    case State::lingering:
      legal = next == State::closing;
      break;
    case State::closing:
      legal = next == State::free;
      break;
  }
  TT_ASSERT(legal && "connection transition");
  state_ = next;
}

void Conn::start(Shard* shard, std::uint32_t slot, int fd) {
  shard_ = shard;
  slot_ = slot;
  fd_ = fd;
  enter(State::open);
  inflight_ = 0;
  recv_armed_ = recv_cancel_pending_ = recv_starved_ = send_inflight_ = false;
  TT_ASSERT(!ex_.holds_resources());
  ex_ = Exchange{};
  req_.init_request();
  timer_.set_owner(slot);
  arm_timer(shard_->config().idle_timeout_ms);
  update_client_recv();
}

void Conn::submitted(Op op) {
  ++inflight_;
  if (op == Op::client_recv) recv_armed_ = true;
  if (op == Op::client_send) send_inflight_ = true;
}

void Conn::completed(Op op, bool more) {
  if (op == Op::client_recv && more) return;  // the multishot recv stays armed
  TT_ASSERT(inflight_ > 0);
  --inflight_;
  if (op == Op::client_recv) recv_armed_ = false;
  if (op == Op::client_send) send_inflight_ = false;
}

void Conn::arm_timer(std::uint64_t timeout_ms) {
  shard_->timers().arm(timer_, shard_->now_ns() / ns_per_ms + timeout_ms);
}

void Conn::note_peer() {
  socklen_t len = sizeof(peer_);
  if (getpeername(fd_, reinterpret_cast<sockaddr*>(&peer_), &len) != 0) peer_ = sockaddr_in6{};
}

void Conn::drain() {
  if (state_ != State::open) return;
  if (ex_.not_started() && client_in_.empty()) return close_now();
  ex_.close_after = true;
}

void Conn::on_timer() {
  if (state_ == State::lingering) return close_now();
  if (state_ != State::open || ex_.req != Req::head) return;  // exchanges are never cut
  if (ex_.head_len == 0 && client_in_.empty()) return close_now();  // idle keep-alive
  shard_->metrics().connection_rejected(RejectReason::timeout);
  respond_error(408, "Request Timeout", "tokentap: request head not received in time");
}

void Conn::on_completion(Op op, int res, std::uint32_t flags) {
  switch (op) {
    case Op::client_recv:
      return on_client_recv(res, flags);
    case Op::client_send:
      return on_client_send(res);
    case Op::upstream_connect:
      return on_upstream_connect(res);
    case Op::upstream_recv:
      return on_upstream_recv(res, flags);
    case Op::upstream_send:
      return on_upstream_send(res);
    case Op::client_poll:
    case Op::upstream_poll:
      if (state_ == State::open &&
          (ex_.splice_mode == Splice::request || ex_.splice_mode == Splice::response)) {
        run_splice();
      }
      return;
    default:
      TT_ASSERT(false && "op not owned by Conn");
  }
}

bool Conn::ready_to_free() const { return state_ == State::closing && inflight_ == 0; }

void Conn::release_resources() {
  TT_ASSERT(ex_.upstream == slot_none);
  TT_DASSERT(ex_.inspect == slot_none);  // meter_fill gave the metering slot (and any strip) back
  SegmentPool& segs = shard_->segments();
  BufRing& bufs = shard_->bufs();
  client_in_.clear(segs, bufs);
  to_client_.clear(segs, bufs);
  ex_.to_upstream.clear(segs, bufs);
  ex_.replay.clear(segs, bufs);
  ex_.replayable = false;
  if (ex_.head_buf >= 0) bufs.unref(static_cast<std::uint16_t>(ex_.head_buf));
  ex_.head_buf = -1;
  drop_response_head();
  ex_.body_out.release(bufs);
  drop_splice();
  shard_->timers().cancel(timer_);
  close(fd_);
  fd_ = -1;
  enter(State::free);
}

void Conn::on_buffers_available() {
  recv_starved_ = false;
  if (ex_.upstream != slot_none) shard_->upstreams().at(ex_.upstream).recv_starved = false;
  update_client_recv();
  update_upstream_recv();
}

// ---- client side ----------------------------------------------------------------------------

void Conn::update_client_recv() {
  const bool splicing_in =
      ex_.splice_mode == Splice::pending_request || ex_.splice_mode == Splice::request;
  // A held request body must fit whole before anything is sent, so its limit is the body's.
  const std::uint64_t upstream_limit =
      ex_.hold ? inject_body_bytes_max + buf_bytes : queue_high_bytes;
  const bool want = (state_ == State::open || state_ == State::lingering) && !recv_starved_ &&
                    !splicing_in && client_in_.bytes() < queue_high_bytes &&
                    ex_.to_upstream.bytes() < upstream_limit;
  if (want && !recv_armed_) {
    shard_->arm_recv(fd_, UserData{slot_, generation_, Op::client_recv}.encode());
    submitted(Op::client_recv);
  } else if (!want && recv_armed_ && !recv_cancel_pending_ && state_ == State::open) {
    shard_->cancel(UserData{slot_, generation_, Op::client_recv}.encode());
    recv_cancel_pending_ = true;
  }
}

void Conn::on_client_recv(int res, std::uint32_t flags) {
  if ((flags & IORING_CQE_F_MORE) == 0) recv_cancel_pending_ = false;
  BufRing& bufs = shard_->bufs();
  if (res > 0) {
    const std::uint16_t bid = buffer_id(flags);
    bufs.on_received(bid);
    if (state_ == State::open) {
      const bool queued = client_in_.push(shard_->segments(), bufs, bid, 0,
                                          static_cast<std::uint32_t>(res));
      bufs.unref(bid);
      if (!queued) return close_now();
      process_client_input();
    } else {
      bufs.unref(bid);  // lingering or closing: the client's bytes no longer matter
    }
  } else if (res == -ENOBUFS) {
    recv_starved_ = true;
    shard_->starved_conn(UserData{slot_, generation_, Op::none}.encode());
  } else if (res != -ECANCELED) {
    return on_client_gone();  // EOF, reset or any other error: the client is gone
  }
  update_client_recv();
  maybe_start_splice();
}

void Conn::on_client_gone() {
  if (state_ == State::closing) return;
  if (state_ == State::open && !ex_.not_started()) ex_.client_aborted = true;
  close_now();
}

bool Conn::queue_client_text(std::string_view text) {
  TT_ASSERT(text.size() <= buf_bytes);
  BufRing& bufs = shard_->bufs();
  const int b = bufs.alloc_spare();
  if (b < 0) return false;
  const auto id = static_cast<std::uint16_t>(b);
  std::memcpy(bufs.data(id), text.data(), text.size());
  const bool ok = to_client_.push(shard_->segments(), bufs, id, 0,
                                  static_cast<std::uint32_t>(text.size()));
  bufs.unref(id);
  return ok;
}

bool Conn::send_queue(int fd, SendQueue& q, msghdr& msg, iovec* iov, std::uint32_t slot,
                      std::uint32_t gen, Op op) {
  const std::uint32_t n = q.gather(shard_->segments(), shard_->bufs(), iov, send_iov_max);
  if (n == 0) return false;
  io_uring_sqe* sqe = shard_->ring().sqe();
  if (n == 1) {
    // One segment (a response piece, a whole small request): a plain SEND spares the kernel
    // the msghdr and iovec import that SENDMSG pays on every submission.
    io_uring_prep_send(sqe, fd, iov[0].iov_base, iov[0].iov_len, MSG_NOSIGNAL);
  } else {
    msg = msghdr{};
    msg.msg_iov = iov;
    msg.msg_iovlen = n;
    io_uring_prep_sendmsg(sqe, fd, &msg, MSG_NOSIGNAL);
  }
  io_uring_sqe_set_data64(sqe, UserData{slot, gen, op}.encode());
  return true;
}

void Conn::flush_client() {
  if (state_ != State::open || send_inflight_ || to_client_.empty()) return;
  if (send_queue(fd_, to_client_, client_msg_, client_iov_, slot_, generation_,
                 Op::client_send)) {
    submitted(Op::client_send);
  }
}

void Conn::on_client_send(int res) {
  if (state_ != State::open) return;
  if (res < 0) return on_client_gone();
  to_client_.consume(shard_->segments(), shard_->bufs(), static_cast<std::uint64_t>(res));
  ex_.response_bytes += static_cast<std::uint64_t>(res);
  flush_client();
  if (ex_.close_when_sent && !send_inflight_ && to_client_.empty()) return close_now();
  update_upstream_recv();
  maybe_start_splice();
  maybe_finish_exchange();
}

// ---- exchange end ---------------------------------------------------------------------------

void Conn::maybe_finish_exchange() {
  if (state_ != State::open || ex_.resp != Resp::done) return;
  if (send_inflight_ || !to_client_.empty()) return;
  if (ex_.req != Req::done) {
    // The upstream answered before reading the whole request (403, 413…): the rest of the
    // request has nowhere to go, so neither connection can carry another exchange.
    release_upstream(false);
    record_exchange();
    return close_gracefully();
  }
  if (ex_.upstream != slot_none) {
    const UpstreamConn& u = shard_->upstreams().at(ex_.upstream);
    if (u.send_inflight || !ex_.to_upstream.empty()) return;
  }
  release_upstream(!ex_.upstream_dirty && !ex_.close_after);
  record_exchange();
  if (ex_.close_after) return close_gracefully();
  next_exchange();
}

void Conn::next_exchange() {
  TT_ASSERT(!ex_.holds_resources());
  ex_ = Exchange{};  // by value: nothing of the finished request reaches the next one
  arm_timer(shard_->config().idle_timeout_ms);
  process_client_input();
  update_client_recv();
}

void Conn::close_gracefully() {
  enter(State::lingering);
  drop_splice();
  arm_timer(linger_timeout_ms);
  client_in_.clear(shard_->segments(), shard_->bufs());
  ++input_resets_;
  // FIN after the last response byte; keep reading until the client's EOF so unread request
  // bytes never make close() send an RST that could destroy the response in flight.
  ::shutdown(fd_, SHUT_WR);
  update_client_recv();
}

void Conn::close_now() {
  if (state_ == State::closing || state_ == State::free) return;
  record_exchange();
  shard_->timers().cancel(timer_);
  enter(State::closing);
  release_upstream(false);
  ::shutdown(fd_, SHUT_RDWR);
  if (inflight_ > 0) shard_->cancel_fd(fd_);
}

}  // namespace tokentap
