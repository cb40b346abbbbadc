// Conn: one client connection and the request/response exchange in progress on it.
//
// State machine (all transitions in on_completion and the helpers it calls, which compute but
// leave the decision to their caller where they can):
//
//   State::open  ── client EOF/error mid-exchange, upstream failure ──▶ State::closing
//     │  per exchange: Req::head ─▶ Req::body ─▶ Req::done
//     │                Resp::idle ─▶ Resp::head ─▶ Resp::body ─▶ Resp::done
//     │  both done and every queued byte sent: the upstream goes back to the pool and the next
//     │  (possibly pipelined) request starts, or the connection closes if either side asked to.
//   State::lingering: response sent, write side shut down, waiting for the client's EOF so that
//     closing never turns unread client bytes into an RST that would truncate the response.
//   State::closing: shutdown + cancel sent; the slot is freed when no op is in flight.
//
// Data flow: bytes received from the client are parsed by llhttp in place. The head is copied
// into a spare buffer and rewritten (Host, hop-by-hop headers); body bytes are forwarded by
// reference to the received buffer. Upstream response bytes are forwarded by reference as they
// arrive, so a streamed line reaches the client without waiting for more.
// One send is in flight per direction; the rest waits in that direction's SendQueue. A direction
// whose queue passes queue_high_bytes stops its source's recv until the queue drains.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>

#include "tokentap/http/http1.h"
#include "tokentap/obs/model_table.h"
#include "tokentap/base/route.h"
#include "tokentap/loop/send_queue.h"
#include "tokentap/base/slab.h"
#include "tokentap/loop/splice_pipe.h"
#include "tokentap/loop/timer_wheel.h"
#include "tokentap/loop/user_data.h"

namespace tokentap {

class Shard;

constexpr std::uint64_t queue_high_bytes = 256 * 1024;
constexpr std::uint64_t linger_timeout_ms = 5'000;  // lingering close waits this for the EOF
static_assert(queue_high_bytes >= 4 * buf_bytes, "a queue must hold a few buffers before pausing");

class Conn {
 public:
  enum class State : std::uint8_t { free, open, lingering, closing };
  enum class Req : std::uint8_t { head, body, done };
  enum class Resp : std::uint8_t { idle, head, body, done };
  // Large opaque bodies: pending_* waits for the recv on the source to stop and the queue to
  // the sink to drain (earlier bytes go first), then the body moves by splice.
  enum class Splice : std::uint8_t { off, pending_request, request, pending_response, response };

  void start(Shard* shard, std::uint32_t slot, int fd);
  // Every completion of an op on this connection's client socket or on its upstream.
  void on_completion(Op op, int res, std::uint32_t flags);
  // Buffers came back after this connection's recv stopped on ENOBUFS.
  void on_buffers_available();
  // The connection's timer fired: idle keep-alive, request head (408) or lingering close.
  void on_timer();
  // Records the client's address (getpeername) for the access log.
  void note_peer();
  TimerNode& timer() { return timer_; }
  // Teardown after the slot's last op completed (called by the shard).
  [[nodiscard]] bool ready_to_free() const;
  void release_resources();
  // Shard stop: drop the connection now, whatever it is doing.
  void shutdown() { close_now(); }
  // Graceful stop: an idle connection closes now; one with a request in progress closes after
  // its response has been sent.
  void drain();

  std::uint32_t generation() const { return generation_; }
  void bump_generation() { ++generation_; }
  State state() const { return state_; }
  int fd() const { return fd_; }
  std::uint8_t& inflight() { return inflight_; }
  bool& recv_armed() { return recv_armed_; }

 private:
  // client side
  void on_client_recv(int res, std::uint32_t flags);
  void on_client_send(int res);
  void process_client_input();
  bool feed_head(const char* data, std::uint32_t len, std::uint32_t* used);
  bool feed_body(std::uint16_t buf, std::uint32_t off, std::uint32_t len, std::uint32_t* used);
  void on_request_head();
  void on_request_done();
  void flush_client();
  void update_client_recv();
  void on_client_gone();

  // upstream side
  void attach_upstream();
  void on_upstream_connect(int res);
  void on_upstream_recv(int res, std::uint32_t flags);
  void on_upstream_send(int res);
  void on_upstream_eof(bool reset);
  void process_upstream_data(std::uint16_t buf, std::uint32_t len);
  void flush_upstream();
  void update_upstream_recv();
  void release_upstream(bool reusable);
  void cut_response();

  // splice path (conn_splice.cc)
  bool splice_candidate(const HttpParser& p) const;
  void maybe_start_splice();
  void run_splice();
  void finish_splice();
  void drop_splice();
  void arm_poll(bool on_client, unsigned events);

  // exchange end and failures
  void maybe_finish_exchange();
  void reset_exchange();
  void respond_error(int status, const char* reason, const char* message);
  void respond_parse_error();
  void close_now();
  void close_gracefully();
  void record_exchange();
  // metering (conn_meter.cc)
  void meter_request_head(bool body_encoded);
  void meter_request_done();
  void meter_response_head(int status);
  void meter_fill(struct RequestRecord* r);
  bool hold_candidate(const HeadFacts& facts) const;
  void release_held_request();
  void append_client_chunk(const char* data, std::size_t len);
  void flush_client_chunk();
  void end_stripped_body();
  static void on_request_body(void* ctx, const char* data, std::size_t len);
  static void on_response_body(void* ctx, const char* data, std::size_t len);
  void arm_timer(std::uint64_t timeout_ms);
  // Copies a short text (a status line, a chunk terminator) into a spare buffer and queues it
  // for the client. False when no buffer or segment was free.
  [[nodiscard]] bool queue_client_text(std::string_view text);
  bool send_queue(int fd, SendQueue& q, msghdr& msg, iovec* iov, std::uint32_t slot,
                  std::uint32_t gen, Op op);

  Shard* shard_ = nullptr;
  std::uint32_t slot_ = 0;
  std::uint32_t generation_ = 0;
  int fd_ = -1;
  State state_ = State::free;
  Req req_state_ = Req::head;
  Resp resp_state_ = Resp::idle;
  Route route_ = Route::other;
  Splice splice_mode_ = Splice::off;
  SplicePump splice_;

  std::uint8_t inflight_ = 0;  // ops in flight on the client socket
  bool recv_armed_ = false;
  bool recv_cancel_pending_ = false;
  bool recv_starved_ = false;
  bool send_inflight_ = false;
  bool close_after_ = false;        // close the client once this response is sent
  bool upstream_dirty_ = false;     // the upstream connection must not be reused
  bool upstream_retried_ = false;   // the one stale-pool retry was used
  bool response_started_ = false;   // some response byte was queued for the client
  bool up_recv_cancel_pending_ = false;
  bool head_request_ = false;
  bool exchange_open_ = false;   // a request is in progress; request_finished is owed
  bool active_reported_ = false; // request_started was reported (active gauge)
  bool hold_ = false;            // request held (raw head + body) until include_usage is decided
  bool injected_ = false;        // include_usage was added: strip its output from the response
  bool strip_ = false;           // the response body is being re-framed without that output
  bool expect_continue_ = false; // the held request had Expect: 100-continue (answered by us)
  bool close_when_sent_ = false; // upstream cut the response: close once what came is sent
  bool local_metrics_ = false;   // GET /metrics with --metrics-on-proxy: sent to our listener
  std::int32_t chunk_buf_ = -1;  // spare buffer collecting one re-framed response chunk
  std::uint32_t chunk_len_ = 0;
  bool client_aborted_ = false;  // the client left before the response ended
  bool stream_ = false;
  std::uint16_t status_ = 0;     // status sent (or being sent) to the client
  ModelId model_ = model_unknown;
  std::uint64_t request_bytes_ = 0;
  std::uint64_t body_bytes_ = 0;   // request body bytes (framing included) forwarded so far
  std::uint32_t input_resets_ = 0;  // bumped when client_in_ is discarded mid-parse
  std::uint64_t response_bytes_ = 0;
  std::uint64_t splice_total_ = 0;

  std::uint32_t upstream_ = Slab<int>::none;  // UpstreamPool slot while attached
  std::uint32_t inspect_ = Slab<int>::none;   // Inspect slot while an inference is metered
  std::int32_t head_buf_ = -1;                // spare buffer accumulating the raw head
  std::uint32_t head_len_ = 0;
  std::uint64_t upstream_bytes_sent_ = 0;     // request bytes the upstream accepted
  std::uint64_t start_ns_ = 0;

  sockaddr_in6 peer_{};  // client address (v4 stored as AF_INET in the same bytes)
  TimerNode timer_;
  HttpParser req_;
  HttpParser resp_;
  SendQueue client_in_;    // received from the client, not yet parsed (pipelined requests)
  SendQueue to_client_;
  SendQueue to_upstream_;

  msghdr client_msg_{};
  msghdr upstream_msg_{};
  iovec client_iov_[send_iov_max];
  iovec upstream_iov_[send_iov_max];
};

}  // namespace tokentap
