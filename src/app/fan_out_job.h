// FanOutJob: one fan-out request sent to every target at once and answered to the proxy, on
// the calling thread (one FanOutService job thread); see fan_out.h for the merge rules.
//
// One poll() loop over the proxy's socket and every backend's (a "leg"): connect, send the
// request, read the response with ResponseReader. A leg's connect and head are bounded by
// fan_out_head_timeout_ms; its body is not. The proxy's socket is polled for its close: then
// every leg is shut down (the backends see the abort) and nothing more is written.
//
// Streaming pull: body bytes of 2xx legs are split into NDJSON lines as they arrive (a line
// across recv()s is reassembled; at most fan_out_line_bytes_max); the lead's progress lines are
// framed as chunks at once and written after each poll() turn, so none waits for another
// backend. Other answers keep each leg's body (at most fan_out_answer_bytes_max) for the merge.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tokentap/app/blocking_http.h"
#include "tokentap/app/fan_out.h"
#include "tokentap/app/fan_out_merge.h"

namespace tokentap {

struct FanOutRequest {
  std::string method;
  std::string target;  // path and query
  std::string content_type;
  std::string body;
};

class FanOutJob {
 public:
  FanOutJob(int client_fd, const FanOutRequest& request, std::vector<FanOutTarget> targets);
  FanOutJob(const FanOutJob&) = delete;
  FanOutJob& operator=(const FanOutJob&) = delete;

  void run();

 private:
  enum class Phase : std::uint8_t { connecting, sending, reading, ended };
  struct Leg {
    FanOutJob* job = nullptr;
    std::size_t index = 0;
    int fd = -1;
    Phase phase = Phase::connecting;
    std::uint64_t deadline_ms = 0;  // connect + head; 0 once the head arrived
    std::string request;  // the bytes it is sent (its own Host)
    std::size_t sent = 0;
    ResponseReader reader;
    LegOutcome outcome;
    // Streaming pull: the line being reassembled, and the framed progress lines kept until the
    // lead is known (every head in).
    std::string line;
    bool line_too_long = false;
    std::string pending;
  };

  static void on_body(void* ctx, const char* data, std::size_t len);
  void on_line(Leg& leg);
  void start_legs();
  [[nodiscard]] bool poll_turn();  // false: the proxy side is gone
  void advance(Leg& leg, short revents);
  void on_head(Leg& leg);
  void end_leg(Leg& leg, LegEnd end);
  void cut_legs();
  [[nodiscard]] bool heads_in() const;
  [[nodiscard]] bool all_ended() const;
  [[nodiscard]] bool client_gone();
  [[nodiscard]] bool write_client(const std::string& bytes);
  [[nodiscard]] bool pull_stream_step();  // false: answered (a failure) or the proxy is gone
  void finish();
  [[nodiscard]] std::vector<LegOutcome> outcomes() const;

  int client_fd_;
  const FanOutRequest& request_;
  std::vector<FanOutTarget> targets_;
  std::vector<Leg> legs_;
  FanOutRoute route_;
  bool streaming_pull_ = false;
  bool stream_started_ = false;  // the 200 head went out
  int lead_ = -1;                // streaming pull: the leg whose progress is forwarded
  int failed_leg_ = -1;          // streaming pull: the leg whose failure is the answer
  std::string out_;  // framed chunks waiting for the next write to the proxy
};

}  // namespace tokentap
