// Conn, upstream side: attaching an upstream connection, forwarding the request to it and its
// response back, and every way that can fail. See conn.h for the state machine.
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "tokentap/base/assert.h"
#include "tokentap/proxy/conn.h"
#include "tokentap/proxy/shard.h"

namespace tokentap {
namespace {

constexpr std::uint32_t none = Slab<Conn>::none;

}  // namespace

void Conn::attach_upstream() {
  if (local_metrics_) {
    // --metrics-on-proxy: this scrape goes to our own metrics listener, on a connection of its
    // own that never joins the upstream pool.
    upstream_dirty_ = true;
    upstream_ = shard_->connect_upstream(slot_, shard_->config().metrics_local);
    if (upstream_ == none) respond_error(503, "Service Unavailable", "tokentap: no metrics");
    return;
  }
  UpstreamPool& pool = shard_->upstreams();
  // No liveness probe here: an idle connection keeps a multishot recv armed, so a FIN from the
  // upstream retires it on the loop turn it arrives. A syscall per reuse to close the remaining
  // window would cost every request; that window is covered by the stale-connection retry.
  if (const std::uint32_t s = pool.take_idle(); s != none) {
    UpstreamConn& u = pool.at(s);
    u.state = UpstreamConn::State::active;
    u.owner = slot_;
    u.reused = true;
    upstream_ = s;
    // No flush here: attach_upstream runs inside process_client_input, which flushes once the
    // body bytes that arrived with the head are queued too, so head and body share one sendmsg
    // (flushing here sent the head alone and the body after its completion: 3 sends/request).
    update_upstream_recv();
    return;
  }
  upstream_ = shard_->connect_upstream(slot_, shard_->config().upstream);
  if (upstream_ == none) {
    shard_->metrics().upstream_error(UpstreamError::connect);
    respond_error(502, "Bad Gateway", "tokentap: cannot open a connection to the upstream");
  }
}

void Conn::on_upstream_connect(int res) {
  if (res < 0) {
    const bool timed_out = res == -ECANCELED;
    shard_->metrics().upstream_error(timed_out ? UpstreamError::timeout : UpstreamError::connect);
    release_upstream(false);
    return respond_error(502, "Bad Gateway",
                         timed_out ? "tokentap: upstream connect timed out"
                                   : "tokentap: upstream unreachable: connection refused or failed");
  }
  shard_->upstreams().at(upstream_).state = UpstreamConn::State::active;
  flush_upstream();
  update_upstream_recv();
  maybe_start_splice();
}

void Conn::flush_upstream() {
  if (upstream_ == none || to_upstream_.empty() || hold_) return;
  UpstreamConn& u = shard_->upstreams().at(upstream_);
  if (u.state != UpstreamConn::State::active || u.send_inflight) return;
  if (send_queue(u.fd, to_upstream_, upstream_msg_, upstream_iov_, upstream_, u.generation,
                 Op::upstream_send)) {
    u.send_inflight = true;
    ++u.inflight;
  }
}

void Conn::on_upstream_send(int res) {
  if (res < 0) {
    const UpstreamConn& u = shard_->upstreams().at(upstream_);
    // A pooled connection the upstream closed meanwhile: nothing of this request reached it,
    // so one retry on a fresh connection is safe.
    const bool stale = u.reused && upstream_bytes_sent_ == 0 && !upstream_retried_ &&
                       (res == -EPIPE || res == -ECONNRESET);
    release_upstream(false);
    if (stale) {
      upstream_retried_ = true;
      upstream_ = shard_->connect_upstream(slot_, shard_->config().upstream);
      if (upstream_ != none) return;
    }
    shard_->metrics().upstream_error(UpstreamError::reset);
    return respond_error(502, "Bad Gateway", "tokentap: upstream closed the connection");
  }
  to_upstream_.consume(shard_->segments(), shard_->bufs(), static_cast<std::uint64_t>(res));
  upstream_bytes_sent_ += static_cast<std::uint64_t>(res);
  flush_upstream();
  update_client_recv();
  maybe_start_splice();
  maybe_finish_exchange();
}

void Conn::update_upstream_recv() {
  if (upstream_ == none) return;
  UpstreamConn& u = shard_->upstreams().at(upstream_);
  if (u.state != UpstreamConn::State::active) return;
  const bool splicing_out =
      splice_mode_ == Splice::pending_response || splice_mode_ == Splice::response;
  const bool want = state_ == State::open && !u.recv_starved && !splicing_out &&
                    to_client_.bytes() < queue_high_bytes;
  if (want && !u.recv_armed) {
    shard_->arm_recv(u.fd, UserData{upstream_, u.generation, Op::upstream_recv}.encode());
    u.recv_armed = true;
    ++u.inflight;
  } else if (!want && u.recv_armed && !up_recv_cancel_pending_) {
    shard_->cancel(UserData{upstream_, u.generation, Op::upstream_recv}.encode());
    up_recv_cancel_pending_ = true;
  }
}

void Conn::on_upstream_recv(int res, std::uint32_t flags) {
  if ((flags & IORING_CQE_F_MORE) == 0) up_recv_cancel_pending_ = false;
  if (res > 0) {
    BufRing& bufs = shard_->bufs();
    const auto bid = static_cast<std::uint16_t>(flags >> IORING_CQE_BUFFER_SHIFT);
    bufs.on_received(bid);
    process_upstream_data(bid, static_cast<std::uint32_t>(res));
    bufs.unref(bid);
  } else if (res == -ENOBUFS) {
    shard_->upstreams().at(upstream_).recv_starved = true;
    shard_->starved_conn(UserData{slot_, generation_, Op::none}.encode());
  } else if (res != -ECANCELED) {
    return on_upstream_eof(res < 0);
  }
  update_upstream_recv();
  maybe_start_splice();
}

void Conn::process_upstream_data(std::uint16_t buf, std::uint32_t len) {
  BufRing& bufs = shard_->bufs();
  const char* data = bufs.data(buf);
  std::uint32_t off = 0;
  // After a head, llhttp reports the end of a bodyless message (Content-Length: 0, 204, 304)
  // only on its next feed, so one more (possibly empty) feed always follows a head.
  bool after_head = false;
  while ((off < len || after_head) && state_ == State::open) {
    after_head = false;
    if (resp_state_ != Resp::head && resp_state_ != Resp::body) {
      upstream_dirty_ = true;  // bytes after the response: never reuse this connection
      break;
    }
    std::size_t used = 0;
    const HttpParser::Stop stop = resp_.feed(data + off, len - off, &used);
    // A broken head is never forwarded in part: the client gets a clean 502 instead.
    if (stop == HttpParser::Stop::error && resp_state_ == Resp::head) used = 0;
    if (used > 0) {
      // A stripped body reaches the client re-framed by the body sink, not as raw bytes.
      if (strip_) {
        flush_client_chunk();
      } else if (!to_client_.push(shard_->segments(), bufs, buf, off,
                                  static_cast<std::uint32_t>(used))) {
        return close_now();
      }
      response_started_ = true;
      off += static_cast<std::uint32_t>(used);
    }
    if (stop == HttpParser::Stop::error) {
      shard_->metrics().upstream_error(UpstreamError::malformed);
      upstream_dirty_ = true;
      // After some bytes went out a status can no longer be sent: deliver them, then cut.
      if (response_started_) return cut_response();
      return respond_error(502, "Bad Gateway", "tokentap: malformed response from upstream");
    }
    if (stop == HttpParser::Stop::head_done) {
      after_head = true;
      // 1xx (100 Continue) is forwarded and the final response follows on the same parser.
      const int status = resp_.status();
      if (status >= 200 || status == 101) {
        resp_state_ = Resp::body;
        status_ = static_cast<std::uint16_t>(status);
        meter_response_head(status);
      }
      if (resp_state_ == Resp::body && !head_request_ && splice_candidate(resp_)) {
        splice_mode_ = Splice::pending_response;
      }
    } else if (stop == HttpParser::Stop::message_done) {
      const int status = resp_.status();
      if (status < 200 && status != 101) continue;
      if (strip_) end_stripped_body();
      resp_state_ = Resp::done;
      status_ = static_cast<std::uint16_t>(status);
      if (!resp_.keep_alive()) {
        upstream_dirty_ = true;
        close_after_ = true;
      }
    }
  }
  flush_client();
  maybe_finish_exchange();
}

void Conn::on_upstream_eof(bool reset) {
  if (state_ != State::open) return;
  if (resp_state_ == Resp::body && !reset && resp_.finish() == HttpParser::Stop::message_done) {
    // A close-delimited body ends here; the client learns its end the same way.
    resp_state_ = Resp::done;
    close_after_ = true;
  }
  if (resp_state_ == Resp::done || resp_state_ == Resp::idle) {
    upstream_dirty_ = true;
    release_upstream(false);
    return maybe_finish_exchange();
  }
  // The response is incomplete.
  const UpstreamConn& u = shard_->upstreams().at(upstream_);
  const bool retryable = u.reused && !response_started_ && upstream_bytes_sent_ == 0 &&
                         !u.send_inflight && !upstream_retried_;
  release_upstream(false);
  if (retryable) {
    upstream_retried_ = true;
    upstream_ = shard_->connect_upstream(slot_, shard_->config().upstream);
    if (upstream_ != none) return;
  }
  // A clean close (FIN) inside a response whose framing promised more (Content-Length not
  // reached, chunked body without its last chunk) is a malformed response; an RST, or a close
  // before any response byte, is a reset connection.
  const bool short_body = !reset && response_started_;
  shard_->metrics().upstream_error(short_body ? UpstreamError::malformed : UpstreamError::reset);
  if (!response_started_) {
    return respond_error(502, "Bad Gateway", "tokentap: upstream closed the connection");
  }
  cut_response();
}

void Conn::cut_response() {
  // Mid-response failure: deliver what did arrive, then close without a terminating chunk, so
  // the client sees a truncated response, never a fake complete one and never less than was
  // sent.
  release_upstream(false);
  close_when_sent_ = true;
  if (!send_inflight_ && to_client_.empty()) return close_now();
  flush_client();
}

void Conn::release_upstream(bool reusable) {
  if (upstream_ == none) return;
  const std::uint32_t s = upstream_;
  upstream_ = none;
  const UpstreamConn& u = shard_->upstreams().at(s);
  if (reusable && u.state == UpstreamConn::State::active && !u.send_inflight &&
      !up_recv_cancel_pending_) {
    shard_->park_upstream(s);
  } else {
    shard_->retire_upstream(s);
  }
  up_recv_cancel_pending_ = false;
}

}  // namespace tokentap
