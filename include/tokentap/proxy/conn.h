// Conn: one client connection, and the Exchange (exchange.h) in progress on it.
//
// Connection states; every change goes through enter(), whose switch lists the legal ones:
//
//   free ─▶ open ── client EOF/error mid-exchange, upstream failure ──▶ closing ─▶ free
//             │ per request: a fresh Exchange (its Req and Resp machines, see exchange.h);
//             │ both done and every queued byte sent: the upstream goes back to the pool and
//             │ the next (possibly pipelined) request starts, or the connection closes if
//             │ either side asked to.
//             └─▶ lingering ─▶ closing: response sent, write side shut down, waiting for the
//                 client's EOF so that closing never turns unread client bytes into an RST
//                 that would truncate the response.
//   closing: shutdown + cancel sent; the slot is freed when no op is in flight.
//
// Data flow: bytes received from the client are parsed by llhttp in place. The request head is
// copied into a spare buffer and rewritten (http1.h); body bytes are forwarded by reference to
// the received buffer. A response head is held until it is complete and valid, rewritten
// (hop-by-hop fields) and queued; response body bytes are forwarded by reference as they
// arrive, so a streamed line reaches the client without waiting for more.
// One send is in flight per direction; the rest waits in that direction's SendQueue. A direction
// whose queue passes queue_high_bytes stops its source's recv until the queue drains.
//
// Files: conn.cc (life cycle, client socket), conn_request.cc (request head and body, local
// answers), conn_upstream.cc (upstream socket, failures), conn_response.cc (response head and
// body), conn_meter.cc (metering, the exchange record), conn_splice.cc (large opaque bodies).
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <string_view>

#include "tokentap/base/config.h"
#include "tokentap/http/http1.h"
#include "tokentap/loop/send_queue.h"
#include "tokentap/loop/timer_wheel.h"
#include "tokentap/loop/user_data.h"
#include "tokentap/proxy/exchange.h"
#include "tokentap/upstream/backend.h"

namespace tokentap {

class Shard;

constexpr std::uint64_t queue_high_bytes = 256 * 1024;
constexpr std::uint64_t linger_timeout_ms = 5'000;  // lingering close waits this for the EOF
static_assert(queue_high_bytes >= 4 * buf_bytes, "a queue must hold a few buffers before pausing");

// A reply tokentap writes itself (errors, refusals, a Max-Forwards: 0 OPTIONS).
struct LocalReply {
  int status;
  const char* reason;
  const char* message;          // JSON error message; null: an empty body
  const char* allow = nullptr;  // Allow field value, if any
};

class Conn {
 public:
  enum class State : std::uint8_t { free, open, lingering, closing };

  void start(Shard* shard, std::uint32_t slot, int fd);
  // Every completion of an op on this connection's client socket or on its upstream.
  void on_completion(Op op, int res, std::uint32_t flags);
  // In-flight accounting of this connection's client-socket ops (the shard calls it in
  // dispatch, before on_completion); `more` is the CQE's F_MORE.
  void completed(Op op, bool more);
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

 private:
  using Req = Exchange::Req;
  using Resp = Exchange::Resp;
  using Splice = Exchange::Splice;

  void enter(State next);
  void submitted(Op op);

  // client side (conn.cc)
  void on_client_recv(int res, std::uint32_t flags);
  void on_client_send(int res);
  void flush_client();
  void update_client_recv();
  void on_client_gone();

  // request (conn_request.cc)
  void process_client_input();
  bool feed_head(const char* data, std::uint32_t len, std::uint32_t* used);
  bool feed_body(std::uint16_t buf, std::uint32_t off, std::uint32_t len, std::uint32_t* used);
  void on_request_head();
  bool request_head_refused(const HeadFacts& facts, RewriteError err);
  [[nodiscard]] int settle_backend(const HeadFacts& facts, bool routed, int out,
                                   std::size_t* out_len);
  [[nodiscard]] bool hold_or_queue_head(const HeadFacts& facts, std::uint16_t out_id,
                                        std::size_t out_len);
  void on_request_done();
  // Rewrites the held raw request head into a new spare buffer; -1 (and *err) on failure.
  [[nodiscard]] int rewrite_head(const RewriteOptions& opts, std::size_t* out_len,
                                 HeadFacts* facts, RewriteError* err);
  [[nodiscard]] RewriteOptions rewrite_options() const;
  void release_held_request();
  void respond_error(int status, const char* reason, const char* message);
  void respond_local(const LocalReply& reply);
  void respond_parse_error();
  void finish_local_reply();

  // upstream side (conn_upstream.cc)
  void attach_upstream();
  void on_upstream_connect(int res);
  void on_upstream_send(int res);
  void on_upstream_recv(int res, std::uint32_t flags);
  void on_upstream_eof(bool reset);
  [[nodiscard]] bool retry_on_fresh_upstream();
  void flush_upstream();
  void update_upstream_recv();
  void release_upstream(bool reusable);
  void cut_response();

  // routing (conn_route.cc)
  [[nodiscard]] bool fleet_routing() const;
  [[nodiscard]] const BackendTarget& backend_target() const;
  [[nodiscard]] std::uint32_t next_backend();
  [[nodiscard]] bool choose_backend();
  [[nodiscard]] std::uint32_t backend_after_failure();
  [[nodiscard]] bool resend(RetryReason why);
  void hold_backend();
  void drop_backend();
  void forget_raw_head();
  void report_connect_failure(int res);
  void report_response_head(int status);
  [[nodiscard]] bool fail_over();
  [[nodiscard]] bool queue_upstream_head();
  void keep_replay_copy();
  [[nodiscard]] bool serve_catalog(const HeadFacts& facts);
  void respond_with_body(std::string_view content_type, std::string_view body);
  void end_replay();
  [[nodiscard]] bool replay_elsewhere(RetryReason why);

  // response (conn_response.cc)
  void process_upstream_data(std::uint16_t buf, std::uint32_t len);
  bool feed_response_head(std::uint16_t buf, std::uint32_t off, const char* data,
                          std::uint32_t len, std::uint32_t* used, bool* ended);
  bool hold_response_head(const char* data, std::size_t n, bool complete,
                          std::string_view* head);
  bool on_response_head(std::string_view head, bool message_done, std::int32_t in_place_buf,
                        std::uint32_t in_place_off);
  bool queue_rewritten_response_head(std::string_view head, const ResponseRewriteOptions& opts,
                                     ResponseFacts* facts);
  bool feed_response_body(std::uint16_t buf, const char* data, std::uint32_t off,
                          std::uint32_t len, std::uint32_t* used);
  void on_response_done();
  void fail_response(const char* message);
  [[nodiscard]] bool response_length_known() const;
  void drop_response_head();

  // splice path (conn_splice.cc)
  bool splice_candidate(const HttpParser& p) const;
  void maybe_start_splice();
  void run_splice();
  void finish_splice();
  void drop_splice();
  void arm_poll(bool on_client, unsigned events);

  // exchange end (conn.cc) and metering (conn_meter.cc)
  void maybe_finish_exchange();
  void next_exchange();
  void close_now();
  void close_gracefully();
  void record_exchange();
  void log_exchange(const struct RequestRecord& r);
  void meter_request_head(bool body_encoded);
  void meter_request_done();
  void meter_response_head(int status);
  void meter_fill(struct RequestRecord* r);
  void end_stripped_body();
  [[nodiscard]] bool write_body(const char* data, std::size_t len);
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

  std::uint8_t inflight_ = 0;  // ops in flight on the client socket
  bool recv_armed_ = false;
  bool recv_cancel_pending_ = false;
  bool recv_starved_ = false;
  bool send_inflight_ = false;
  std::uint32_t input_resets_ = 0;  // bumped when client_in_ is discarded mid-parse

  sockaddr_in6 peer_{};  // client address (v4 stored as AF_INET in the same bytes)
  TimerNode timer_;
  HttpParser req_;         // spans the connection's requests (pipelining)
  SendQueue client_in_;    // received from the client, not yet parsed (pipelined requests)
  SendQueue to_client_;
  Exchange ex_;            // the request in progress

  msghdr client_msg_{};
  msghdr upstream_msg_{};
  iovec client_iov_[send_iov_max];
  iovec upstream_iov_[send_iov_max];
};

}  // namespace tokentap
