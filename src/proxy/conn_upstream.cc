// Conn, upstream side: attaching an upstream connection, forwarding the request to it, reading
// from it, and every way that can fail. See conn.h for the state machine.
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "tokentap/base/assert.h"
#include "tokentap/proxy/conn.h"
#include "tokentap/proxy/shard.h"

namespace tokentap {

void Conn::attach_upstream() {
  if (ex_.local_metrics) {
    // --metrics-on-proxy: this scrape goes to our own metrics listener, on a connection of its
    // own that never joins the upstream pool.
    ex_.upstream_dirty = true;
    ex_.upstream = shard_->connect_upstream(slot_, 0, shard_->config().metrics_local);
    if (ex_.upstream == slot_none) {
      respond_error(503, "Service Unavailable", "tokentap: no metrics");
    }
    return;
  }
  UpstreamPool& pool = shard_->upstreams();
  // No liveness probe here: an idle connection keeps a multishot recv armed, so a FIN from the
  // upstream retires it on the loop turn it arrives. A syscall per reuse to close the remaining
  // window would cost every request; that window is covered by the stale-connection retry.
  if (const std::uint32_t s = pool.take_idle(ex_.backend); s != slot_none) {
    UpstreamConn& u = pool.at(s);
    u.state = UpstreamConn::State::active;
    u.owner = slot_;
    u.reused = true;
    ex_.upstream = s;
    hold_backend();
    forget_raw_head();  // connected already: no failover needs the raw head
    // No flush here: attach_upstream runs inside process_client_input, which flushes once the
    // body bytes that arrived with the head are queued too, so head and body share one sendmsg
    // (flushing here sent the head alone and the body after its completion: 3 sends/request).
    update_upstream_recv();
    return;
  }
  ex_.upstream = shard_->connect_upstream(slot_, ex_.backend, backend_target().endpoint);
  if (ex_.upstream != slot_none) hold_backend();
  if (ex_.upstream == slot_none) {
    shard_->metrics().upstream_error(UpstreamError::connect);
    respond_error(502, "Bad Gateway", "tokentap: cannot open a connection to the upstream");
  }
}

void Conn::on_upstream_connect(int res) {
  if (res < 0) {
    const bool timed_out = res == -ECANCELED;
    shard_->metrics().upstream_error(timed_out ? UpstreamError::timeout : UpstreamError::connect);
    if (!ex_.local_metrics) report_connect_failure(res);
    release_upstream(false);
    if (fail_over()) return;
    const char* why = timed_out ? "tokentap: upstream connect timed out"
                                : "tokentap: upstream unreachable: connection refused or failed";
    return respond_error(502, "Bad Gateway", why);
  }
  shard_->upstreams().at(ex_.upstream).state = UpstreamConn::State::active;
  forget_raw_head();
  flush_upstream();
  update_upstream_recv();
  maybe_start_splice();
}

void Conn::flush_upstream() {
  if (ex_.upstream == slot_none || ex_.to_upstream.empty() || ex_.hold) return;
  UpstreamConn& u = shard_->upstreams().at(ex_.upstream);
  if (u.state != UpstreamConn::State::active || u.send_inflight) return;
  if (send_queue(u.fd, ex_.to_upstream, upstream_msg_, upstream_iov_, ex_.upstream, u.generation,
                 Op::upstream_send)) {
    u.submitted(Op::upstream_send);
  }
}

// A pooled connection the upstream closed while it was idle took nothing of this request: the
// request goes once more on a fresh connection (stale_retry_allowed decides when that is safe).
bool Conn::retry_on_fresh_upstream() {
  const UpstreamConn& u = shard_->upstreams().at(ex_.upstream);
  const bool allowed = stale_retry_allowed(StaleRetryFacts{
      u.reused, ex_.upstream_retried, u.send_inflight, ex_.response_started,
      ex_.upstream_bytes_sent});
  release_upstream(false);
  if (!allowed) return false;
  ex_.upstream_retried = true;
  ex_.upstream = shard_->connect_upstream(slot_, ex_.backend, backend_target().endpoint);
  if (ex_.upstream == slot_none) return false;
  hold_backend();
  return true;
}

void Conn::on_upstream_send(int res) {
  if (res < 0) {
    if (retry_on_fresh_upstream() || replay_elsewhere(RetryReason::reset)) return;
    shard_->metrics().upstream_error(UpstreamError::reset);
    return respond_error(502, "Bad Gateway", "tokentap: upstream closed the connection");
  }
  ex_.to_upstream.consume(shard_->segments(), shard_->bufs(), static_cast<std::uint64_t>(res));
  ex_.upstream_bytes_sent += static_cast<std::uint64_t>(res);
  flush_upstream();
  update_client_recv();
  maybe_start_splice();
  maybe_finish_exchange();
}

void Conn::update_upstream_recv() {
  if (ex_.upstream == slot_none) return;
  UpstreamConn& u = shard_->upstreams().at(ex_.upstream);
  if (u.state != UpstreamConn::State::active) return;
  const bool splicing_out =
      ex_.splice_mode == Splice::pending_response || ex_.splice_mode == Splice::response;
  const bool want = state_ == State::open && !u.recv_starved && !splicing_out &&
                    to_client_.bytes() < queue_high_bytes;
  if (want && !u.recv_armed) {
    shard_->arm_recv(u.fd, UserData{ex_.upstream, u.generation, Op::upstream_recv}.encode());
    u.submitted(Op::upstream_recv);
  } else if (!want && u.recv_armed && !ex_.up_recv_cancel_pending) {
    shard_->cancel(UserData{ex_.upstream, u.generation, Op::upstream_recv}.encode());
    ex_.up_recv_cancel_pending = true;
  }
}

void Conn::on_upstream_recv(int res, std::uint32_t flags) {
  if ((flags & IORING_CQE_F_MORE) == 0) ex_.up_recv_cancel_pending = false;
  if (res > 0) {
    BufRing& bufs = shard_->bufs();
    const std::uint16_t bid = buffer_id(flags);
    bufs.on_received(bid);
    process_upstream_data(bid, static_cast<std::uint32_t>(res));
    bufs.unref(bid);
  } else if (res == -ENOBUFS) {
    shard_->upstreams().at(ex_.upstream).recv_starved = true;
    shard_->starved_conn(UserData{slot_, generation_, Op::none}.encode());
  } else if (res != -ECANCELED) {
    return on_upstream_eof(res < 0);
  }
  update_upstream_recv();
  maybe_start_splice();
}

void Conn::on_upstream_eof(bool reset) {
  if (state_ != State::open) return;
  if (ex_.resp == Resp::body && !reset &&
      ex_.resp_parser.finish() == HttpParser::Stop::message_done) {
    // A close-delimited body ends here; the client learns its end the same way.
    ex_.close_after = true;
    on_response_done();
  }
  if (ex_.resp == Resp::done || ex_.resp == Resp::idle) {
    ex_.upstream_dirty = true;
    release_upstream(false);
    return maybe_finish_exchange();
  }
  // The response is incomplete.
  if (retry_on_fresh_upstream() || replay_elsewhere(RetryReason::reset)) return;
  // A clean close (FIN) inside a response whose framing promised more (Content-Length not
  // reached, chunked body without its last chunk) is a malformed response; an RST, or a close
  // before any response byte, is a reset connection.
  const bool short_body = !reset && ex_.response_started;
  shard_->metrics().upstream_error(short_body ? UpstreamError::malformed : UpstreamError::reset);
  if (!ex_.response_started) {
    return respond_error(502, "Bad Gateway", "tokentap: upstream closed the connection");
  }
  cut_response();
}

void Conn::cut_response() {
  // Mid-response failure: deliver what did arrive, then close without a terminating chunk, so
  // the client sees a truncated response, never a fake complete one and never less than was
  // sent.
  release_upstream(false);
  ex_.close_when_sent = true;
  if (!send_inflight_ && to_client_.empty()) return close_now();
  flush_client();
}

void Conn::release_upstream(bool reusable) {
  if (ex_.upstream == slot_none) return;
  const std::uint32_t s = ex_.upstream;
  ex_.upstream = slot_none;
  drop_backend();
  const UpstreamConn& u = shard_->upstreams().at(s);
  if (reusable && u.state == UpstreamConn::State::active && !u.send_inflight &&
      !ex_.up_recv_cancel_pending) {
    shard_->park_upstream(s);
  } else {
    shard_->retire_upstream(s);
  }
  ex_.up_recv_cancel_pending = false;
}

}  // namespace tokentap
