// Conn: the client connection state machine; see conn.h for the states and the data flow.
#include "tokentap/proxy/conn.h"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fmt/format.h>

#include "tokentap/base/assert.h"
#include "tokentap/base/clock.h"
#include "tokentap/proxy/shard.h"

namespace tokentap {
namespace {

constexpr std::uint32_t none = Slab<Conn>::none;

std::uint16_t buffer_id(std::uint32_t flags) {
  return static_cast<std::uint16_t>(flags >> IORING_CQE_BUFFER_SHIFT);
}

}  // namespace

void Conn::start(Shard* shard, std::uint32_t slot, int fd) {
  shard_ = shard;
  slot_ = slot;
  fd_ = fd;
  state_ = State::open;
  inflight_ = 0;
  recv_armed_ = recv_cancel_pending_ = recv_starved_ = send_inflight_ = false;
  upstream_ = none;
  head_buf_ = -1;
  head_len_ = 0;
  reset_exchange();
  req_.init_request();
  timer_.set_owner(slot);
  arm_timer(shard_->config().idle_timeout_ms);
  update_client_recv();
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
  const bool idle = req_state_ == Req::head && head_len_ == 0 && client_in_.empty() &&
                    resp_state_ == Resp::idle;
  if (idle) return close_now();
  close_after_ = true;
}

void Conn::on_timer() {
  if (state_ == State::lingering) return close_now();
  if (state_ != State::open || req_state_ != Req::head) return;  // exchanges are never cut
  if (head_len_ == 0 && client_in_.empty()) return close_now();  // idle keep-alive
  shard_->metrics().connection_rejected(RejectReason::timeout);
  respond_error(408, "Request Timeout", "tokentap: request head not received in time");
}

void Conn::on_completion(Op op, int res, std::uint32_t flags) {
  switch (op) {
    case Op::client_recv:
      on_client_recv(res, flags);
      return;
    case Op::client_send:
      on_client_send(res);
      return;
    case Op::upstream_connect:
      on_upstream_connect(res);
      return;
    case Op::upstream_recv:
      on_upstream_recv(res, flags);
      return;
    case Op::upstream_send:
      on_upstream_send(res);
      return;
    case Op::client_poll:
    case Op::upstream_poll:
      if (state_ == State::open && (splice_mode_ == Splice::request ||
                                    splice_mode_ == Splice::response)) {
        run_splice();
      }
      return;
    default:
      TT_ASSERT(false && "op not owned by Conn");
  }
}

bool Conn::ready_to_free() const { return state_ == State::closing && inflight_ == 0; }

void Conn::release_resources() {
  TT_ASSERT(upstream_ == none);
  TT_DASSERT(inspect_ == none);  // meter_fill gave the metering slot (and any strip) back
  SegmentPool& segs = shard_->segments();
  BufRing& bufs = shard_->bufs();
  client_in_.clear(segs, bufs);
  to_client_.clear(segs, bufs);
  to_upstream_.clear(segs, bufs);
  if (head_buf_ >= 0) bufs.unref(static_cast<std::uint16_t>(head_buf_));
  head_buf_ = -1;
  if (chunk_buf_ >= 0) bufs.unref(static_cast<std::uint16_t>(chunk_buf_));
  chunk_buf_ = -1;
  drop_splice();
  shard_->timers().cancel(timer_);
  close(fd_);
  fd_ = -1;
  state_ = State::free;
}

void Conn::on_buffers_available() {
  recv_starved_ = false;
  if (upstream_ != none) shard_->upstreams().at(upstream_).recv_starved = false;
  update_client_recv();
  update_upstream_recv();
}

// ---- client side ----------------------------------------------------------------------------

void Conn::update_client_recv() {
  const bool splicing_in = splice_mode_ == Splice::pending_request || splice_mode_ == Splice::request;
  // A held request body must fit whole before anything is sent, so its limit is the body's.
  const std::uint64_t upstream_limit = hold_ ? inject_body_bytes_max + buf_bytes : queue_high_bytes;
  const bool want = (state_ == State::open || state_ == State::lingering) && !recv_starved_ &&
                    !splicing_in && client_in_.bytes() < queue_high_bytes &&
                    to_upstream_.bytes() < upstream_limit;
  if (want && !recv_armed_) {
    shard_->arm_recv(fd_, UserData{slot_, generation_, Op::client_recv}.encode());
    recv_armed_ = true;
    ++inflight_;
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
  const bool mid_exchange =
      state_ == State::open && (head_len_ > 0 || req_state_ != Req::head || resp_state_ != Resp::idle);
  if (mid_exchange) client_aborted_ = true;
  close_now();
}

void Conn::process_client_input() {
  SegmentPool& segs = shard_->segments();
  BufRing& bufs = shard_->bufs();
  while (state_ == State::open && req_state_ != Req::done && !client_in_.empty()) {
    const Segment s = segs.at(client_in_.head());
    std::uint32_t used = 0;
    const std::uint32_t resets = input_resets_;
    const bool ok = req_state_ == Req::head
                        ? feed_head(bufs.data(s.buf) + s.off, s.len, &used)
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
  if (head_len_ == 0 && start_ns_ == 0) {
    start_ns_ = shard_->now_ns();
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
  if (head_buf_ < 0) {
    head_buf_ = bufs.alloc_spare();
    if (head_buf_ < 0) {
      respond_error(503, "Service Unavailable", "tokentap: no buffer for the request head");
      return false;
    }
  }
  if (head_len_ + n > head_bytes_max) {
    respond_error(431, "Request Header Fields Too Large", "tokentap: request head too large");
    return false;
  }
  std::memcpy(bufs.data(static_cast<std::uint16_t>(head_buf_)) + head_len_, data, n);
  head_len_ += static_cast<std::uint32_t>(n);
  request_bytes_ += n;
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
  if (n > 0 && !to_upstream_.push(shard_->segments(), bufs, buf, off, static_cast<std::uint32_t>(n))) {
    close_now();
    return false;
  }
  *used = static_cast<std::uint32_t>(n);
  request_bytes_ += n;
  body_bytes_ += n;
  if (body_bytes_ > shard_->config().max_body_bytes) {
    // Only a chunked body gets here (a Content-Length one was refused at its head); its head
    // is already upstream, so the exchange cannot end with a status: cut both sides.
    return close_now(), false;
  }
  if (stop == HttpParser::Stop::message_done) on_request_done();
  return state_ == State::open;
}

void Conn::on_request_head() {
  // llhttp checks the framing headers (Transfer-Encoding codings…) only after the head pause,
  // and reports a bodyless request's end only on its next feed: an empty feed does both,
  // before anything is forwarded.
  static const char nothing = 0;
  std::size_t unused = 0;
  const HttpParser::Stop head_end = req_.feed(&nothing, 0, &unused);
  if (head_end == HttpParser::Stop::error) return respond_parse_error();
  BufRing& bufs = shard_->bufs();
  const int out = bufs.alloc_spare();
  if (out < 0) {
    respond_error(503, "Service Unavailable", "tokentap: no buffer for the request head");
    return;
  }
  const Config& cfg = shard_->config();
  const RewriteOptions opts{cfg.upstream_host, cfg.preserve_host};
  HeadFacts facts;
  std::size_t out_len = 0;
  const auto out_id = static_cast<std::uint16_t>(out);
  const RewriteError err = rewrite_request_head(
      std::string_view(bufs.data(static_cast<std::uint16_t>(head_buf_)), head_len_), opts,
      bufs.data(out_id), buf_bytes, &out_len, &facts);
  if (err != RewriteError::ok) {
    bufs.unref(out_id);
    if (err == RewriteError::too_large) {
      respond_error(431, "Request Header Fields Too Large", "tokentap: request head too large");
    } else {
      respond_error(400, "Bad Request", "tokentap: malformed request head");
    }
    return;
  }
  route_ = route_of(facts.target);
  local_metrics_ = cfg.metrics_on_proxy && is_metrics_path(facts.target);
  head_request_ = facts.method == "HEAD";
  if (req_.has_content_length() && req_.content_length() > cfg.max_body_bytes) {
    bufs.unref(out_id);
    return respond_error(413, "Request Entity Too Large",
                         "tokentap: request body larger than --max-body");
  }
  expect_continue_ = facts.expect_continue;
  shard_->timers().cancel(timer_);  // a request in progress, stream or upload, is never cut
  // The model and stream flag come from the body (request_probe); until it is read the
  // request counts under `unknown` and the route's default.
  model_ = model_unknown;
  stream_ = route_info(route_).stream_default;
  exchange_open_ = true;
  meter_request_head(facts.content_encoded);
  close_after_ = !req_.keep_alive();
  if (hold_candidate(facts)) {
    // The raw head stays in head_buf_ and is rewritten once the body is known (its
    // Content-Length may change); the body collects behind it without being sent.
    hold_ = true;
    bufs.unref(out_id);
    if (expect_continue_) {
      // The client waits for this before sending the body we must see first.
      if (!queue_client_text("HTTP/1.1 100 Continue\r\n\r\n")) return close_now();
      flush_client();
    }
  } else {
    bufs.unref(static_cast<std::uint16_t>(head_buf_));
    head_buf_ = -1;
    head_len_ = 0;
    const bool queued = to_upstream_.push(shard_->segments(), bufs, out_id, 0,
                                          static_cast<std::uint32_t>(out_len));
    bufs.unref(out_id);
    if (!queued) return close_now();
  }
  resp_.init_response();
  resp_.set_no_body(head_request_);
  req_state_ = Req::body;
  resp_state_ = Resp::head;
  if (splice_candidate(req_)) splice_mode_ = Splice::pending_request;
  attach_upstream();
  if (state_ != State::open) return;
  if (head_end == HttpParser::Stop::message_done) on_request_done();
}

void Conn::respond_parse_error() {
  if (req_.error_code() == HPE_INVALID_TRANSFER_ENCODING) {
    // RFC 9112 §6.1: a transfer coding the proxy does not understand is 501, not 400.
    return respond_error(501, "Not Implemented", "tokentap: unsupported Transfer-Encoding");
  }
  respond_error(400, "Bad Request", req_.error_reason());
}

void Conn::on_request_done() {
  req_state_ = Req::done;
  meter_request_done();
  if (hold_) release_held_request();
  if (state_ != State::open) return;
  maybe_finish_exchange();
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
    send_inflight_ = true;
    ++inflight_;
  }
}

void Conn::on_client_send(int res) {
  send_inflight_ = false;
  if (state_ != State::open) return;
  if (res < 0) return on_client_gone();
  to_client_.consume(shard_->segments(), shard_->bufs(), static_cast<std::uint64_t>(res));
  response_bytes_ += static_cast<std::uint64_t>(res);
  flush_client();
  if (close_when_sent_ && !send_inflight_ && to_client_.empty()) return close_now();
  update_upstream_recv();
  maybe_start_splice();
  maybe_finish_exchange();
}

// ---- exchange end and failures ----------------------------------------------------------------

void Conn::maybe_finish_exchange() {
  if (state_ != State::open || resp_state_ != Resp::done) return;
  if (send_inflight_ || !to_client_.empty()) return;
  if (req_state_ != Req::done) {
    // The upstream answered before reading the whole request (403, 413…): the rest of the
    // request has nowhere to go, so neither connection can carry another exchange.
    release_upstream(false);
    record_exchange();
    return close_gracefully();
  }
  if (upstream_ != none) {
    const UpstreamConn& u = shard_->upstreams().at(upstream_);
    if (u.send_inflight || !to_upstream_.empty()) return;
  }
  release_upstream(!upstream_dirty_ && !close_after_);
  record_exchange();
  if (close_after_) return close_gracefully();
  reset_exchange();
  arm_timer(shard_->config().idle_timeout_ms);
  process_client_input();
  update_client_recv();
}

void Conn::reset_exchange() {
  req_state_ = Req::head;
  resp_state_ = Resp::idle;
  route_ = Route::other;
  close_after_ = upstream_dirty_ = upstream_retried_ = response_started_ = local_metrics_ = false;
  up_recv_cancel_pending_ = head_request_ = false;
  upstream_bytes_sent_ = 0;
  start_ns_ = 0;
  exchange_open_ = client_aborted_ = active_reported_ = false;
  hold_ = injected_ = strip_ = expect_continue_ = close_when_sent_ = false;
  status_ = 0;
  request_bytes_ = response_bytes_ = body_bytes_ = 0;
  splice_mode_ = Splice::off;
}

void Conn::respond_error(int status, const char* reason, const char* message) {
  release_upstream(false);
  if (response_started_) return close_now();  // too late for a status: truncate instead
  if (status == 400) shard_->metrics().connection_rejected(RejectReason::bad_request);
  if (status == 431) shard_->metrics().connection_rejected(RejectReason::header_too_large);
  exchange_open_ = true;  // a request refused before its head was read still counts
  status_ = static_cast<std::uint16_t>(status);
  BufRing& bufs = shard_->bufs();
  const int b = bufs.alloc_spare(/*urgent=*/true);
  if (b < 0) return close_now();
  const auto id = static_cast<std::uint16_t>(b);
  // The message goes inside a JSON string: keep it to characters that need no escaping.
  char text_buf[256];
  std::size_t text_len = 0;
  for (const char* p = message != nullptr ? message : "error";
       *p != '\0' && text_len < sizeof(text_buf); ++p) {
    const auto u = static_cast<unsigned char>(*p);
    text_buf[text_len++] = (u < 0x20 || *p == '"' || *p == '\\') ? ' ' : *p;
  }
  const std::string_view text(text_buf, text_len);
  // Ollama's own error shape (wire-format §5), so clients parse it as they would Ollama's.
  const std::size_t body_len = text.size() + 12;  // {"error":"…"}
  const auto r = fmt::format_to_n(
      bufs.data(id), buf_bytes,
      "HTTP/1.1 {} {}\r\nContent-Type: application/json; charset=utf-8\r\n"
      "Content-Length: {}\r\nConnection: close\r\n\r\n{{\"error\":\"{}\"}}",
      status, reason, body_len, text);
  SegmentPool& segs = shard_->segments();
  to_upstream_.clear(segs, bufs);
  client_in_.clear(segs, bufs);
  ++input_resets_;
  const bool queued = to_client_.push(segs, bufs, id, 0, static_cast<std::uint32_t>(r.size));
  bufs.unref(id);
  if (!queued) return close_now();
  response_started_ = true;
  req_state_ = Req::done;
  resp_state_ = Resp::done;
  close_after_ = true;
  flush_client();
}

void Conn::close_gracefully() {
  state_ = State::lingering;
  drop_splice();
  arm_timer(linger_timeout_ms);
  client_in_.clear(shard_->segments(), shard_->bufs());
  ++input_resets_;
  // FIN after the last response byte; keep reading until the client's EOF so unread request
  // bytes never make close() send an RST that could destroy the response in flight.
  ::shutdown(fd_, SHUT_WR);
  update_client_recv();
}

void Conn::record_exchange() {
  if (!exchange_open_) return;
  exchange_open_ = false;
  RequestRecord r;
  r.route = route_;
  std::uint16_t status = status_;
  if (status == 0) status = client_aborted_ ? 499 : 502;  // nothing was sent: nginx's codes
  r.status = status < 100 || status > 999 ? 502 : status;
  r.client_aborted = client_aborted_;
  r.duration_s = start_ns_ == 0 ? 0.0 : static_cast<double>(shard_->now_ns() - start_ns_) / 1e9;
  r.request_bytes = request_bytes_;
  r.response_bytes = response_bytes_;
  meter_fill(&r);
  shard_->metrics().request_finished(r);
  if (AccessRing* log = shard_->access_log()) {
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
    (void)log->push(a);  // a full ring drops the line and counts it; the request is unaffected
  }
}

void Conn::close_now() {
  if (state_ == State::closing || state_ == State::free) return;
  record_exchange();
  shard_->timers().cancel(timer_);
  state_ = State::closing;
  release_upstream(false);
  ::shutdown(fd_, SHUT_RDWR);
  if (inflight_ > 0) shard_->cancel_fd(fd_);
}

}  // namespace tokentap
