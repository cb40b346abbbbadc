// FanOutJob: one request to every backend at once, merged into one answer; see fan_out_job.h.
#include "fan_out_job.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>

#include "tokentap/base/assert.h"
#include "tokentap/base/clock.h"

namespace tokentap {
namespace {

constexpr std::string_view stream_head =
    "HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n"
    "Connection: close\r\n\r\n";
constexpr std::string_view last_chunk = "0\r\n\r\n";
constexpr std::size_t client_drain_bytes = 4096;  // bytes past the request are read and dropped

bool ok_status(int status) { return status >= 200 && status < 300; }

void append_chunk(std::string& out, std::string_view line) {
  char size[20];
  const int n = std::snprintf(size, sizeof(size), "%zx\r\n", line.size() + 1);  // + newline
  out.append(size, static_cast<std::size_t>(n));
  out.append(line);
  out.append("\n\r\n");
}

std::string wire_request(const FanOutRequest& r, const FanOutTarget& t) {
  std::string s = r.method + " " + r.target + " HTTP/1.1\r\nHost: " + t.host_header +
                  "\r\nUser-Agent: tokentap-fanout\r\n";
  if (!r.content_type.empty()) s += "Content-Type: " + r.content_type + "\r\n";
  s += "Content-Length: " + std::to_string(r.body.size()) + "\r\nConnection: close\r\n\r\n";
  s += r.body;
  return s;
}

}  // namespace

FanOutJob::FanOutJob(int client_fd, const FanOutRequest& request,
                     std::vector<FanOutTarget> targets)
    : client_fd_(client_fd),
      request_(request),
      targets_(std::move(targets)),
      legs_(targets_.size()),  // never resized: each reader's sink points at its leg
      route_(fan_out_route(request.method, request.target)) {
  streaming_pull_ = route_ == FanOutRoute::pull && pull_streams(request.body);
}

void FanOutJob::run() {
  start_legs();
  while (!all_ended()) {
    if (!poll_turn() || (streaming_pull_ && !pull_stream_step())) {
      cut_legs();  // the proxy side is gone: nothing more to say to it
      return;
    }
  }
  if (streaming_pull_ && !pull_stream_step()) return;
  finish();
}

void FanOutJob::start_legs() {
  const std::uint64_t deadline = monotonic_ms() + fan_out_head_timeout_ms;
  for (std::size_t i = 0; i < legs_.size(); ++i) {
    Leg& leg = legs_[i];
    leg.job = this;
    leg.index = i;
    leg.outcome.name = targets_[i].name;
    leg.request = wire_request(request_, targets_[i]);
    leg.reader.start(&FanOutJob::on_body, &leg);
    leg.deadline_ms = deadline;
    leg.fd = connect_start(targets_[i].endpoint);
    if (leg.fd < 0) end_leg(leg, LegEnd::unreachable);
  }
}

bool FanOutJob::poll_turn() {
  std::vector<pollfd> fds;
  std::vector<Leg*> polled;
  fds.reserve(legs_.size() + 1);
  fds.push_back(pollfd{client_fd_, POLLIN | POLLRDHUP, 0});
  std::uint64_t next = std::numeric_limits<std::uint64_t>::max();
  for (Leg& leg : legs_) {
    if (leg.phase == Phase::ended) continue;
    const short events = leg.phase == Phase::reading ? POLLIN : POLLOUT;
    fds.push_back(pollfd{leg.fd, events, 0});
    polled.push_back(&leg);
    if (leg.deadline_ms != 0) next = std::min(next, leg.deadline_ms);
  }
  const std::uint64_t now = monotonic_ms();
  const int timeout = next == std::numeric_limits<std::uint64_t>::max() ? -1
                      : next > now ? static_cast<int>(next - now)
                                   : 0;
  const int rc = ::poll(fds.data(), fds.size(), timeout);
  if (rc < 0 && errno != EINTR) return false;
  if (rc > 0 && fds[0].revents != 0 && client_gone()) return false;
  for (std::size_t i = 0; rc > 0 && i < polled.size(); ++i) {
    if (fds[i + 1].revents != 0) advance(*polled[i], fds[i + 1].revents);
  }
  const std::uint64_t after = monotonic_ms();
  for (Leg& leg : legs_) {
    if (leg.phase != Phase::ended && leg.deadline_ms != 0 && after >= leg.deadline_ms) {
      end_leg(leg, LegEnd::timed_out);
    }
  }
  return true;
}

// The proxy sends one request; after it, only its close can arrive (bytes are dropped).
bool FanOutJob::client_gone() {
  char buf[client_drain_bytes];
  const ssize_t n = ::recv(client_fd_, buf, sizeof(buf), MSG_DONTWAIT);
  if (n > 0) return false;
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return false;
  return true;
}

void FanOutJob::advance(Leg& leg, short revents) {
  switch (leg.phase) {
    case Phase::connecting:
      if (!connect_result(leg.fd)) {
        end_leg(leg, LegEnd::unreachable);
        return;
      }
      leg.phase = Phase::sending;
      [[fallthrough]];
    case Phase::sending: {
      const ssize_t n = ::send(leg.fd, leg.request.data() + leg.sent,
                               leg.request.size() - leg.sent, MSG_NOSIGNAL);
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
      if (n <= 0) {
        end_leg(leg, LegEnd::unreachable);
        return;
      }
      leg.sent += static_cast<std::size_t>(n);
      if (leg.sent == leg.request.size()) leg.phase = Phase::reading;
      return;
    }
    case Phase::reading: {
      const ResponseReader::State state = leg.reader.on_readable(leg.fd);
      const bool has_head =
          state == ResponseReader::State::body || state == ResponseReader::State::done;
      if (has_head && leg.deadline_ms != 0) on_head(leg);
      if (state == ResponseReader::State::done) end_leg(leg, LegEnd::answered);
      if (state == ResponseReader::State::failed) end_leg(leg, LegEnd::closed_early);
      return;
    }
    case Phase::ended:
      return;
  }
}

void FanOutJob::on_head(Leg& leg) {
  leg.deadline_ms = 0;  // a pull may now run for as long as it takes
  leg.outcome.status = leg.reader.status();
}

void FanOutJob::end_leg(Leg& leg, LegEnd end) {
  if (leg.phase == Phase::ended) return;
  if (leg.fd >= 0) {
    // Cut legs are shut down first, so the backend sees the abort even if a copy of the fd
    // lingers; an answered one just closes.
    if (end != LegEnd::answered) ::shutdown(leg.fd, SHUT_RDWR);
    ::close(leg.fd);
    leg.fd = -1;
  }
  if (streaming_pull_ && end == LegEnd::answered && !leg.line.empty() && !leg.line_too_long) {
    on_line(leg);  // a last line without its newline
  }
  leg.line.clear();
  leg.phase = Phase::ended;
  leg.outcome.end = end;
}

void FanOutJob::cut_legs() {
  for (Leg& leg : legs_) end_leg(leg, LegEnd::closed_early);
}

void FanOutJob::on_body(void* ctx, const char* data, std::size_t len) {
  Leg& leg = *static_cast<Leg*>(ctx);
  if (!leg.job->streaming_pull_ || !ok_status(leg.reader.status())) {
    const std::size_t room = fan_out_answer_bytes_max - leg.outcome.body.size();
    leg.outcome.body.append(data, std::min(room, len));
    return;
  }
  while (len > 0) {
    const auto* nl = static_cast<const char*>(std::memchr(data, '\n', len));
    const std::size_t part = nl != nullptr ? static_cast<std::size_t>(nl - data) : len;
    if (leg.line.size() + part > fan_out_line_bytes_max) leg.line_too_long = true;
    if (!leg.line_too_long) leg.line.append(data, part);
    if (nl == nullptr) return;
    if (leg.line_too_long && leg.outcome.error.empty()) {
      leg.outcome.error = "tokentap: progress line too long";
    } else if (!leg.line.empty() && !leg.line_too_long) {
      leg.job->on_line(leg);
    }
    leg.line.clear();
    leg.line_too_long = false;
    data += part + 1;
    len -= part + 1;
  }
}

void FanOutJob::on_line(Leg& leg) {
  std::string error;
  switch (read_pull_line(leg.line, &error)) {
    case PullLine::error:
      if (leg.outcome.error.empty()) leg.outcome.error = std::move(error);
      return;
    case PullLine::success:
      leg.outcome.success_line = true;
      return;
    case PullLine::progress:
      break;
  }
  if (lead_ >= 0 && static_cast<int>(leg.index) != lead_) return;
  std::string& to = lead_ >= 0 ? out_ : leg.pending;
  // Progress only: a line dropped while the proxy is slow, or before the lead is known, loses
  // nothing the client needs.
  if (to.size() + leg.line.size() > fan_out_answer_bytes_max) return;
  append_chunk(to, leg.line);
}

bool FanOutJob::heads_in() const {
  return std::all_of(legs_.begin(), legs_.end(), [](const Leg& leg) {
    return leg.phase == Phase::ended || leg.outcome.status != 0;
  });
}

bool FanOutJob::all_ended() const {
  return std::all_of(legs_.begin(), legs_.end(),
                     [](const Leg& leg) { return leg.phase == Phase::ended; });
}

// Streaming pull, after each poll() turn: decide once every head is in, then write what the
// lead said. False when the proxy side is gone.
bool FanOutJob::pull_stream_step() {
  if (!stream_started_ && failed_leg_ < 0) {
    if (!heads_in()) return true;
    failed_leg_ = pull_head_failure(outcomes());
    if (failed_leg_ >= 0) {
      for (Leg& leg : legs_) {  // the others are cut; the failing one's body is awaited
        if (static_cast<int>(leg.index) != failed_leg_) end_leg(leg, LegEnd::closed_early);
      }
      return true;
    }
    for (const Leg& leg : legs_) {
      if (ok_status(leg.outcome.status)) {
        lead_ = static_cast<int>(leg.index);
        break;
      }
    }
    TT_ASSERT(lead_ >= 0);  // pull_head_failure chose to stream: some head is 2xx
    out_ = std::string(stream_head) + legs_[static_cast<std::size_t>(lead_)].pending + out_;
    for (Leg& leg : legs_) leg.pending.clear();
    stream_started_ = true;
  }
  if (!stream_started_ || out_.empty()) return true;
  const bool sent = write_client(out_);
  out_.clear();
  return sent;
}

void FanOutJob::finish() {
  const std::vector<LegOutcome> all = outcomes();
  if (streaming_pull_) {
    if (failed_leg_ >= 0) {
      (void)write_client(reply_bytes(leg_failure(all[static_cast<std::size_t>(failed_leg_)])));
      return;
    }
    const std::string end = pull_stream_end(all);
    std::string tail;
    append_chunk(tail, std::string_view(end).substr(0, end.size() - 1));  // adds the newline
    tail.append(last_chunk);
    (void)write_client(tail);
    return;
  }
  const FanOutReply reply = route_ == FanOutRoute::pull           ? merge_pull(all)
                            : route_ == FanOutRoute::delete_model ? merge_delete(all)
                                                                  : merge_copy(all);
  (void)write_client(reply_bytes(reply));
}

bool FanOutJob::write_client(const std::string& bytes) {
  return send_before(client_fd_, bytes, monotonic_ms() + fan_out_client_send_timeout_ms);
}

std::vector<LegOutcome> FanOutJob::outcomes() const {
  std::vector<LegOutcome> all;
  all.reserve(legs_.size());
  for (const Leg& leg : legs_) all.push_back(leg.outcome);
  return all;
}

}  // namespace tokentap
