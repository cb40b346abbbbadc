// Conn: one client connection of the fake upstream, an HTTP/1.1 server state machine.
//
// Phases: head (waiting for a request head) → body (streaming the request body into the JSON
// buffer or a checksum) → respond (one answer in progress) → head again for keep-alive, or
// linger (after our FIN, draining until the peer's EOF) → closed. Requests are answered strictly
// in order; while an answer is in progress the socket is not read (pipelined requests wait in
// the kernel), but EPOLLRDHUP/EPOLLHUP still report a peer that went away, so a client abort is
// seen at once (Stats::last_peer_close_ns).
//
// All work happens in drive(): consume input, produce output, flush, finish, read more, until
// nothing progresses. Output is produced lazily: a stream renders its next chunk only when the
// output buffer is below output_high_water_bytes (or, with X-Fake-Delay-Ms, when its timer
// fires), so a stream of any length or a 256 MiB download uses bounded memory.
//
// The member functions that choose and write answers live in respond.cc (respond_admin.cc for
// /api/pull, /api/delete and /api/copy).
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>

#include "byte_buf.h"
#include "plan.h"
#include "request_head.h"
#include "wire.h"

namespace tokentap::fake {

class Worker;

constexpr std::size_t output_high_water_bytes = 256 * 1024;
constexpr std::size_t input_read_bytes = 16 * 1024;        // per recv() for heads
constexpr std::size_t input_body_read_bytes = 256 * 1024;  // per recv() inside a large body
constexpr std::size_t json_body_bytes_max = 64 * 1024 * 1024;
constexpr std::uint32_t linger_ms = 1000;         // wait for EOF after our FIN
constexpr std::size_t blob_pattern_period = 256;  // byte i = (i*31+7) & 0xff

class Conn {
 public:
  void open(int fd, std::uint32_t slot);
  void on_events(Worker& w, std::uint32_t events);
  void on_timer(Worker& w, std::uint32_t seq);
  // Closes the socket without counting anything (worker shutdown).
  void shutdown_close();

  [[nodiscard]] bool closed() const { return phase_ == Phase::closed; }
  [[nodiscard]] std::uint32_t gen() const { return gen_; }
  [[nodiscard]] std::uint32_t slot() const { return slot_; }

 private:
  enum class Phase : std::uint8_t { head, body, respond, linger, closed };
  enum class After : std::uint8_t { keep_alive, close, reset };

  // conn.cc: I/O and lifecycle.
  void drive(Worker& w);
  [[nodiscard]] bool consume_input(Worker& w);
  [[nodiscard]] bool consume_head(Worker& w);
  [[nodiscard]] bool consume_body(Worker& w);
  void body_bytes(Worker& w, std::string_view data);
  [[nodiscard]] bool produce_output(Worker& w);
  [[nodiscard]] bool emit_chunk(Worker& w);
  [[nodiscard]] bool flush_output(Worker& w);
  [[nodiscard]] bool finish_response(Worker& w);
  [[nodiscard]] bool read_more(Worker& w);
  void on_peer_gone(Worker& w);
  void arm_timer(Worker& w, std::uint64_t delay_ms);
  void close_now(bool reset);
  void begin_linger(Worker& w);
  void reset_request();

  // respond.cc: answers.
  void respond(Worker& w);
  void respond_version(Worker& w);
  void respond_inference(Worker& w);
  [[nodiscard]] bool refuse_inference(Worker& w);
  void apply_close_mode(Worker& w);
  void end_in_flight();
  void respond_blob_upload(Worker& w);
  void respond_fake_blob(Worker& w);
  void respond_echo(Worker& w);
  // respond_admin.cc: /api/pull, /api/delete, /api/copy.
  void respond_pull(Worker& w);
  void respond_delete(Worker& w);
  void respond_copy(Worker& w);
  [[nodiscard]] bool admin_fields(Worker& w, RequestFields* fields);
  void reply_admin_error(Worker& w, int status, std::string_view message);
  void reply_single(Worker& w, int status, const HandlerHeaders& headers, std::string_view body,
                    std::uint64_t hold_ms);
  void reply_flushed(Worker& w, int status, const HandlerHeaders& headers, std::string_view body,
                     std::uint64_t hold_ms);
  void start_stream(Worker& w);
  void write_stream_head(Worker& w);
  void apply_abort(std::size_t head_start, std::size_t head_bytes);

  int fd_ = -1;
  std::uint32_t slot_ = 0;
  std::uint32_t gen_ = 0;
  std::uint32_t timer_seq_ = 0;
  Phase phase_ = Phase::closed;
  After after_ = After::keep_alive;

  ByteBuf in_;
  ByteBuf out_;
  ByteBuf head_;  // a copy of the current request head; req_ points into it
  ByteBuf body_;  // the JSON body of inference requests
  RequestHead req_;
  RouteMatch route_;
  ReplyMeta meta_;

  // Request body.
  bool keep_body_ = false;
  bool body_overflow_ = false;
  std::int64_t body_left_ = 0;
  ChunkedDecoder chunked_;
  std::uint64_t body_total_ = 0;
  std::uint64_t body_fnv_ = fnv1a64_init;

  // Answer in progress.
  bool streaming_ = false;
  bool head_sent_ = false;
  bool held_ = false;           // a complete answer waits in out_ for its delay
  bool waiting_timer_ = false;  // a stream waits for its next chunk's delay
  Framing framing_ = Framing::chunked;
  std::uint64_t chunks_sent_ = 0;
  std::uint64_t blob_left_ = 0;  // GET /fake/blob bytes still to send
  std::uint64_t blob_pos_ = 0;
  Stamp stamp_;
  std::string model_;
  Plan plan_;
  Script script_;
  Script::Cursor cursor_;

  bool head_only_ = false;  // close mode after-head: the head, then RST
  // WorkerStats::inference_in_flight while this connection's inference answer is generated.
  std::atomic<std::int64_t>* in_flight_ = nullptr;

  bool peer_gone_ = false;  // EOF or RST seen
  bool readable_ = true;    // input may be waiting (edge seen, no short read since)
  bool fin_seen_ = false;   // EPOLLRDHUP arrived: read until the 0 even after a short read
};

}  // namespace tokentap::fake
