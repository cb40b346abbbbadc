// fan_out_merge: the fan-out service's pure policies (STYLE §22c): which route a request is,
// how each backend's outcome reads, and the one reply the merge rules of fan_out.h make of all
// of them. Plain values in, a reply out; unit-tested without sockets (fan_out_merge_test.cc).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "tokentap/base/route.h"  // FanOutRoute, fan_out_route: shared with the proxy

namespace tokentap {

// A pull request body asks for a stream: `stream` absent, null, true, or the body unreadable
// (the backends will refuse it in their own words).
[[nodiscard]] bool pull_streams(std::string_view body);

// How one backend's exchange ended.
enum class LegEnd : std::uint8_t {
  answered,      // the whole response arrived
  unreachable,   // connect refused or failed, or the request could not be sent
  timed_out,     // no head within fan_out_head_timeout_ms
  closed_early,  // the connection ended before the response did
};

struct LegOutcome {
  std::string name;
  LegEnd end = LegEnd::unreachable;
  int status = 0;    // the final head's status; 0 when none arrived
  std::string body;  // non-stream answers and non-2xx heads: the body (bounded)
  // Streaming pull: a {"status":"success"} line arrived; the first {"error":…} line's message.
  bool success_line = false;
  std::string error;
};

struct FanOutReply {
  int status = 200;
  std::string_view content_type;  // empty: no Content-Type (an empty 200)
  std::string body;
};

// What one NDJSON progress line says: success, an error (*error set), or progress.
enum class PullLine : std::uint8_t { progress, success, error };
[[nodiscard]] PullLine read_pull_line(std::string_view line, std::string* error);

// The backend's own message for a failure, or tokentap's (see fan_out.h).
[[nodiscard]] std::string leg_message(const LegOutcome& leg);
// True for a streaming-pull leg that ended with a success line and no error.
[[nodiscard]] bool pull_leg_succeeded(const LegOutcome& leg);
// A failure's reply: its status (502 without one or for a 2xx that failed, 504 timed out) and
// {"error":"<name>: <message>"}.
[[nodiscard]] FanOutReply leg_failure(const LegOutcome& leg);
// {"error":"<message>"} with `status`.
[[nodiscard]] FanOutReply local_error(int status, std::string_view message);

[[nodiscard]] FanOutReply merge_pull(const std::vector<LegOutcome>& legs);  // stream:false
[[nodiscard]] FanOutReply merge_delete(const std::vector<LegOutcome>& legs);
[[nodiscard]] FanOutReply merge_copy(const std::vector<LegOutcome>& legs);
// Streaming pull once every head is in: the index of the leg whose failure answers instead of
// a stream (the first non-2xx head; the first leg when none has a head), or -1: stream.
[[nodiscard]] int pull_head_failure(const std::vector<LegOutcome>& legs);
// Streaming pull after every leg ended: the last line, "\n" included.
[[nodiscard]] std::string pull_stream_end(const std::vector<LegOutcome>& legs);

// The reply on the wire: status line, Content-Type, Content-Length, Connection: close, body.
[[nodiscard]] std::string reply_bytes(const FanOutReply& reply);
[[nodiscard]] std::string_view status_reason(int status);

}  // namespace tokentap
