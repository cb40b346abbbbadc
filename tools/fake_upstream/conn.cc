// Conn I/O and lifecycle (see conn.h). Non-blocking socket, edge-triggered epoll: every read
// loop runs until a short read or EAGAIN, every write until EAGAIN (then EPOLLOUT resumes us).
#include "conn.h"

#include <errno.h>
#include <linux/sockios.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <array>

#include "../../include/tokentap/base/assert.h"
#include "render.h"
#include "worker.h"

namespace tokentap::fake {
namespace {

// GET /fake/blob sends from this buffer: byte i = (i*31+7) & 0xff repeats every 256 bytes, so
// any offset modulo 256 starts a valid slice of up to blob_slice_bytes.
constexpr std::size_t blob_slice_bytes = 1024 * 1024;
constexpr std::uint64_t reset_poll_ms = 1;

const char* blob_pattern() {
  static const auto* pattern = [] {
    auto* p = new std::array<char, blob_slice_bytes + blob_pattern_period>;
    for (std::size_t i = 0; i < p->size(); ++i) (*p)[i] = static_cast<char>((i * 31 + 7) & 0xff);
    return p;
  }();
  return pattern->data();
}

std::string_view go_error_text(HeadStatus status) {
  switch (status) {
    case HeadStatus::missing_host:
      return "400 Bad Request: missing required Host header";
    case HeadStatus::bad_version:
      return "505 HTTP Version Not Supported: unsupported protocol version";
    case HeadStatus::unsupported_te:
      return "501 Not Implemented: unsupported transfer encoding";
    default:
      return "400 Bad Request";
  }
}

}  // namespace

void Conn::open(int fd, std::uint32_t slot) {
  TT_ASSERT(phase_ == Phase::closed);
  fd_ = fd;
  slot_ = slot;
  phase_ = Phase::head;
  in_.clear();
  out_.clear();
  peer_gone_ = false;
  readable_ = true;
  fin_seen_ = false;
  reset_request();
}

void Conn::reset_request() {
  after_ = After::keep_alive;
  keep_body_ = false;
  body_overflow_ = false;
  body_left_ = 0;
  chunked_.reset();
  body_total_ = 0;
  body_fnv_ = fnv1a64_init;
  body_.clear();
  streaming_ = false;
  head_sent_ = false;
  held_ = false;
  waiting_timer_ = false;
  chunks_sent_ = 0;
  blob_left_ = 0;
  blob_pos_ = 0;
  head_only_ = false;
}

void Conn::on_events(Worker& w, std::uint32_t events) {
  if (phase_ == Phase::closed) return;
  if (events & (EPOLLHUP | EPOLLERR)) {  // reset, or both directions shut: nothing can be sent
    on_peer_gone(w);
    close_now(false);
    return;
  }
  if (events & EPOLLIN) readable_ = true;
  // A FIN that came with the last bytes gets no edge of its own: remember to read up to it.
  if (events & EPOLLRDHUP) readable_ = fin_seen_ = true;
  // While answering we do not read, but a peer FIN must still cancel the answer (Go cancels the
  // request context when its background read sees EOF).
  if ((events & EPOLLRDHUP) && phase_ == Phase::respond) on_peer_gone(w);
  drive(w);
}

void Conn::on_timer(Worker& w, std::uint32_t seq) {
  if (phase_ == Phase::closed || seq != timer_seq_) return;
  if (phase_ == Phase::linger) {
    close_now(false);
    return;
  }
  held_ = false;
  waiting_timer_ = false;
  drive(w);
}

// Every step returns true when it changed something (closing included), so the loop stops only
// when all of them wait for the kernel or a timer.
void Conn::drive(Worker& w) {
  while (phase_ != Phase::closed) {
    if (consume_input(w) || produce_output(w) || flush_output(w) || finish_response(w) ||
        read_more(w)) {
      continue;
    }
    break;
  }
  if (phase_ == Phase::closed) return;
  // A FIN seen with the request's last bytes: the answer that is now in progress is for a peer
  // that has gone (the socket is not read while answering, so the EOF itself is not).
  if (fin_seen_ && phase_ == Phase::respond) on_peer_gone(w);
  if (!peer_gone_) return;
  // The peer is gone: an answer still being generated is cancelled; a finished one is flushed
  // first (the peer may only have shut its sending side).
  const bool generating = streaming_ || held_ || waiting_timer_ || blob_left_ > 0;
  if (phase_ == Phase::linger || generating || out_.empty()) close_now(false);
}

bool Conn::consume_input(Worker& w) {
  switch (phase_) {
    case Phase::head:
      return consume_head(w);
    case Phase::body:
      return consume_body(w);
    case Phase::linger:
      in_.clear();  // after our FIN the peer's bytes are drained and dropped
      return false;
    default:
      return false;
  }
}

bool Conn::consume_head(Worker& w) {
  if (in_.empty() || out_.size() >= output_high_water_bytes) return false;
  const std::size_t end = find_head_end(in_.view());
  if (end == 0 && in_.size() <= request_head_bytes_max) return false;
  reset_request();
  if (end == 0 || end > request_head_bytes_max) {
    write_go_error(out_, "431 Request Header Fields Too Large");
    in_.clear();
    after_ = After::close;
    phase_ = Phase::respond;
    return true;
  }
  head_.clear();
  head_.append(in_.view().substr(0, end));
  in_.consume(end);
  WorkerStats::add(w.stats().requests, 1);
  const HeadStatus status = parse_request_head(head_.view(), &req_);
  if (status == HeadStatus::ok) {
    WorkerStats::add(w.stats().by_endpoint[static_cast<std::size_t>(path_endpoint(req_.path))], 1);
  }
  if (status != HeadStatus::ok) {
    write_go_error(out_, go_error_text(status));
    in_.clear();
    after_ = After::close;
    phase_ = Phase::respond;
    return true;
  }
  route_ = match_route(req_.method, req_.path);
  keep_body_ = is_inference(route_.endpoint) || is_model_admin(route_.endpoint);
  body_left_ = req_.content_length > 0 ? req_.content_length : 0;
  // Go answers Expect: 100-continue when the handler first reads the body; every handler here
  // reads it, so the interim response goes out before the body is consumed.
  if (req_.expect_continue && req_.has_body() && !req_.http10()) {
    out_.append("HTTP/1.1 100 Continue\r\n\r\n");
  }
  phase_ = Phase::body;
  return true;
}

void Conn::body_bytes(Worker& w, std::string_view data) {
  body_total_ += data.size();
  if (route_.endpoint == Endpoint::blob_upload) {
    body_fnv_ = fnv1a64(body_fnv_, data);
    WorkerStats::add(w.stats().blob_bytes_received, data.size());
  } else if (route_.endpoint == Endpoint::fake_echo) {
    body_fnv_ = fnv1a64(body_fnv_, data);
  }
  if (!keep_body_ || body_overflow_) return;
  if (body_.size() + data.size() > json_body_bytes_max) {
    body_overflow_ = true;  // answered as an unreadable body
    return;
  }
  body_.append(data);
}

bool Conn::consume_body(Worker& w) {
  if (!req_.chunked) {
    if (body_left_ > 0) {
      if (in_.empty()) return false;
      const std::size_t n = std::min<std::size_t>(in_.size(), static_cast<std::size_t>(body_left_));
      body_bytes(w, in_.view().substr(0, n));
      in_.consume(n);
      body_left_ -= static_cast<std::int64_t>(n);
      if (body_left_ > 0) return true;
    }
  } else {
    bool progress = false;
    for (;;) {
      const ChunkedDecoder::Step step = chunked_.step(in_.view());
      if (step.error) {
        write_go_error(out_, "400 Bad Request");
        in_.clear();
        after_ = After::close;
        phase_ = Phase::respond;
        return true;
      }
      if (!step.data.empty()) body_bytes(w, step.data);
      in_.consume(step.consumed);
      progress |= step.consumed > 0;
      if (step.done) break;
      if (step.consumed == 0 || in_.empty()) return progress;
    }
  }
  phase_ = Phase::respond;
  respond(w);
  return true;
}

bool Conn::produce_output(Worker& w) {
  if (!streaming_ || waiting_timer_ || out_.size() >= output_high_water_bytes) return false;
  return emit_chunk(w);
}

// Renders the next HTTP chunk of the stream; the terminator goes with the last one.
bool Conn::emit_chunk(Worker& w) {
  if (!head_sent_) write_stream_head(w);
  Script::Event event{};
  if (script_.next(&cursor_, &event)) {
    ByteBuf& payload = w.scratch();
    payload.clear();
    const Usage usage = render_event(plan_, event, payload);
    // PullModel writes the manifest before it reports success: the model is installed now.
    if (event.ev == Ev::pl_success) w.instance().add_model(model_);
    WorkerStats::add(w.stats().prompt_tokens_sent, usage.prompt);
    WorkerStats::add(w.stats().completion_tokens_sent, usage.completion);
    if (framing_ == Framing::chunked) {
      write_chunk(out_, payload.view());
    } else if (framing_ == Framing::close_delimited) {
      out_.append(payload.view());
    }
    ++chunks_sent_;
    const std::int64_t abort_after = req_.controls.abort_after;
    if (abort_after >= 0 && chunks_sent_ >= static_cast<std::uint64_t>(abort_after)) {
      streaming_ = false;  // no terminator: the connection is reset once this is flushed
      after_ = After::reset;
      return true;
    }
    Script::Cursor peek = cursor_;
    if (script_.next(&peek, &event)) {
      if (req_.controls.delay_ms > 0) {
        waiting_timer_ = true;
        arm_timer(w, req_.controls.delay_ms);
      }
      return true;
    }
  }
  if (framing_ == Framing::chunked) out_.append(last_chunk);
  streaming_ = false;
  return true;
}

bool Conn::flush_output(Worker& w) {
  if (held_ || (out_.empty() && blob_left_ == 0)) return false;
  std::array<iovec, 2> iov{};
  std::size_t count = 0;
  if (!out_.empty()) iov[count++] = {const_cast<char*>(out_.data()), out_.size()};
  if (blob_left_ > 0) {
    const std::size_t offset = blob_pos_ % blob_pattern_period;
    const std::size_t len = std::min<std::uint64_t>(blob_left_, blob_slice_bytes);
    iov[count++] = {const_cast<char*>(blob_pattern() + offset), len};
  }
  msghdr msg{};
  msg.msg_iov = iov.data();
  msg.msg_iovlen = count;
  const ssize_t sent = sendmsg(fd_, &msg, MSG_NOSIGNAL);
  if (sent < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return false;
    if (errno == EINTR) return true;
    on_peer_gone(w);  // EPIPE, ECONNRESET: the client went away
    close_now(false);
    return true;
  }
  WorkerStats::add(w.stats().bytes_sent, static_cast<std::uint64_t>(sent));
  std::size_t rest = static_cast<std::size_t>(sent);
  const std::size_t from_out = std::min(rest, out_.size());
  out_.consume(from_out);
  rest -= from_out;
  blob_pos_ += rest;
  blob_left_ -= rest;
  return true;
}

bool Conn::finish_response(Worker& w) {
  if (phase_ != Phase::respond) return false;
  if (streaming_ || held_ || waiting_timer_ || blob_left_ > 0) return false;
  end_in_flight();  // fully generated; what is left is flushing
  if (after_ == After::keep_alive) {
    // A finished answer may still sit in out_: the next pipelined answer is appended behind it,
    // so a batch of pipelined requests goes out in one send.
    if (out_.size() >= output_high_water_bytes) return false;
    phase_ = Phase::head;
    return true;
  }
  if (!out_.empty()) return false;
  if (after_ == After::reset) {
    // An RST discards what the kernel has not delivered yet; wait until the peer has it all.
    int unsent = 0;
    if (ioctl(fd_, SIOCOUTQ, &unsent) == 0 && unsent > 0) {
      arm_timer(w, reset_poll_ms);
      return false;
    }
    close_now(true);
  } else {
    begin_linger(w);
  }
  return true;
}

bool Conn::read_more(Worker& w) {
  if (!readable_ || peer_gone_ || phase_ == Phase::respond) return false;
  if (phase_ == Phase::head && out_.size() >= output_high_water_bytes) return false;
  // Large bodies (blob uploads) are read in big slices; heads in small ones, so thousands of
  // idle connections stay cheap.
  const bool big = phase_ == Phase::body && (req_.chunked || body_left_ > 64 * 1024);
  char* dst = in_.reserve_tail(big ? input_body_read_bytes : input_read_bytes);
  const std::size_t room = in_.tail_room();
  const ssize_t n = recv(fd_, dst, room, 0);
  if (n > 0) {
    in_.commit(static_cast<std::size_t>(n));
    // A short read drained the socket; edge-triggered epoll reports anything newer.
    if (static_cast<std::size_t>(n) < room) readable_ = fin_seen_;
    return true;
  }
  if (n == 0) {
    on_peer_gone(w);
    return true;
  }
  if (errno == EAGAIN || errno == EWOULDBLOCK) {
    readable_ = false;
    return false;
  }
  if (errno == EINTR) return true;
  on_peer_gone(w);
  close_now(false);
  return true;
}

void Conn::on_peer_gone(Worker& w) {
  if (peer_gone_) return;
  peer_gone_ = true;
  if (phase_ != Phase::linger) w.note_peer_close();  // after our own FIN it is no news
}

void Conn::arm_timer(Worker& w, std::uint64_t delay_ms) {
  ++timer_seq_;
  w.add_timer(monotonic_ns() + delay_ms * 1'000'000, slot_, gen_, timer_seq_);
}

void Conn::begin_linger(Worker& w) {
  if (peer_gone_) {
    close_now(false);
    return;
  }
  ::shutdown(fd_, SHUT_WR);
  phase_ = Phase::linger;
  readable_ = true;
  arm_timer(w, linger_ms);
}

void Conn::end_in_flight() {
  if (in_flight_ == nullptr) return;
  in_flight_->fetch_sub(1, std::memory_order_relaxed);
  in_flight_ = nullptr;
}

void Conn::close_now(bool reset) {
  end_in_flight();
  if (fd_ < 0) return;
  if (reset) {  // SO_LINGER 0: close() sends RST instead of FIN
    const linger lg{1, 0};
    setsockopt(fd_, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
  }
  ::close(fd_);
  fd_ = -1;
  phase_ = Phase::closed;
  ++gen_;
  ++timer_seq_;
  streaming_ = false;
}

void Conn::shutdown_close() { close_now(false); }

}  // namespace tokentap::fake
