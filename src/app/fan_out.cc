// FanOutService: the abstract-socket listener, the peer check, one thread per request and the
// request reading; the fan-out itself is FanOutJob (fan_out_job.h). See fan_out.h.
//
// Linux features: abstract AF_UNIX names (no file to clean up, gone with the process),
// SO_PEERCRED (the pid of the connecting process, fixed at connect), eventfd for the stop
// wake-up, accept4 with SOCK_NONBLOCK | SOCK_CLOEXEC.
#include "tokentap/app/fan_out.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <system_error>
#include <vector>

#include "fan_out_job.h"
#include "tokentap/app/blocking_http.h"
#include "tokentap/app/fan_out_merge.h"
#include "tokentap/base/clock.h"
#include "tokentap/http/http1.h"

namespace tokentap {
namespace {

constexpr int fan_out_backlog = 64;
constexpr std::uint32_t accept_retry_ms = 10;  // after EMFILE and the like: do not spin
constexpr std::size_t request_read_bytes = 16 * 1024;
// A refused connection: how long the acceptor reads (and drops) what the proxy sent before it
// closes, so the close does not reset the connection under the refusal (see refuse_busy).
constexpr std::uint32_t refuse_linger_ms = 200;
constexpr std::size_t rewrite_slack_bytes = 1024;  // the rewritten head's growth (Via, Host)
constexpr std::string_view fan_out_host = "tokentap-fanout";
constexpr std::string_view continue_head = "HTTP/1.1 100 Continue\r\n\r\n";
static_assert(sizeof(sockaddr_un) <= sizeof(sockaddr_storage));

std::atomic<std::uint32_t> next_socket_id{0};

struct RequestRead {
  FanOutRequest request;
  int refuse_status = 0;  // != 0: answer this instead
  std::string refuse_message;
  std::string head;  // the raw head, as the parser delimited it
  bool head_done = false;
  bool body_too_large = false;
};

void collect_body(void* ctx, const char* data, std::size_t len) {
  auto* in = static_cast<RequestRead*>(ctx);
  if (in->request.body.size() + len > fan_out_body_bytes_max) {
    in->body_too_large = true;
    return;
  }
  in->request.body.append(data, len);
}

void refuse(RequestRead* in, int status, std::string_view message) {
  in->refuse_status = status;
  in->refuse_message = message;
}

// The method, target and Content-Type, read by the proxy's own head rewrite (which also
// refuses what a server must refuse). False when refused.
bool read_head(int fd, std::string_view head, RequestRead* in) {
  std::vector<char> out(head.size() + rewrite_slack_bytes);
  std::size_t out_len = 0;
  HeadFacts facts;
  RewriteOptions options;
  options.upstream_host = fan_out_host;
  const RewriteError e =
      rewrite_request_head(head, options, out.data(), out.size(), &out_len, &facts);
  if (e != RewriteError::ok) {
    const HttpRefusal r = refusal_of(e);
    refuse(in, r.status, r.message);
    return false;
  }
  in->request.method = facts.method;
  in->request.target = facts.target;
  in->request.content_type = facts.content_type;
  if (facts.expect_continue) {
    (void)send_before(fd, continue_head, monotonic_ms() + fan_out_client_send_timeout_ms);
  }
  return true;
}

// Feeds one recv()'s bytes. True when the request is complete or refused.
bool feed_request(int fd, HttpParser& parser, const char* data, std::size_t n, RequestRead* in) {
  std::size_t off = 0;
  while (off < n) {
    std::size_t used = 0;
    const HttpParser::Stop stop = parser.feed(data + off, n - off, &used);
    if (!in->head_done) in->head.append(data + off, used);
    off += used;
    if (stop == HttpParser::Stop::error) {
      refuse(in, 400, "tokentap: malformed request");
      return true;
    }
    if (!in->head_done && in->head.size() > head_bytes_max) {
      refuse(in, 431, "tokentap: request head too large");
      return true;
    }
    if (in->body_too_large) {
      refuse(in, 413, "tokentap: request body too large for a fan-out route");
      return true;
    }
    if (stop == HttpParser::Stop::head_done) {
      in->head_done = true;
      if (!read_head(fd, in->head, in)) return true;
      // llhttp checks the framing fields only after the head pause, and reports a bodyless
      // request's end only on its next feed: an empty feed does both (as the proxy does).
      static const char nothing = 0;
      std::size_t unused = 0;
      const HttpParser::Stop end = parser.feed(&nothing, 0, &unused);
      if (end == HttpParser::Stop::error) {
        refuse(in, 400, "tokentap: malformed request");
        return true;
      }
      if (end == HttpParser::Stop::message_done) return true;
    }
    if (stop == HttpParser::Stop::message_done) return true;
    if (stop == HttpParser::Stop::need_more) break;
  }
  return false;
}

// Reads the one request of a connection. False when the proxy side went away first.
bool read_request(int fd, RequestRead* in) {
  HttpParser parser;
  parser.init_request();
  parser.set_sink(&collect_body, in);
  const std::uint64_t deadline = monotonic_ms() + fan_out_request_timeout_ms;
  char buf[request_read_bytes];
  for (;;) {
    if (!wait_fd(fd, POLLIN, deadline)) {
      if (monotonic_ms() < deadline) return false;
      refuse(in, 408, "tokentap: request timed out");
      return true;
    }
    const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
    if (n <= 0) return false;
    if (feed_request(fd, parser, buf, static_cast<std::size_t>(n), in)) return true;
  }
}

bool from_this_process(int fd) {
  ucred cred{};
  socklen_t len = sizeof(cred);
  return getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 && cred.pid == getpid();
}

// Small enough for an empty socket buffer: one non-blocking send. Closing a socket whose
// request was not read resets the connection, and the peer then reads the reset, not the 503:
// so the write side is shut and the request drained until the proxy closes (it does once it
// has the reply), for at most refuse_linger_ms.
void refuse_busy(int fd) {
  const std::string bytes =
      reply_bytes(local_error(503, "tokentap: too many fan-out requests at once"));
  (void)::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  shutdown(fd, SHUT_WR);
  const std::uint64_t deadline = monotonic_ms() + refuse_linger_ms;
  char sink[request_read_bytes / 4];
  while (wait_fd(fd, POLLIN, deadline)) {
    const ssize_t n = ::recv(fd, sink, sizeof(sink), MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) break;
  }
  close(fd);
}

void reply(int fd, const FanOutReply& r) {
  (void)send_before(fd, reply_bytes(r), monotonic_ms() + fan_out_client_send_timeout_ms);
}

}  // namespace

FanOutService::FanOutService(std::function<std::vector<FanOutTarget>()> targets)
    : targets_(std::move(targets)) {}

FanOutService::~FanOutService() { stop(); }

bool FanOutService::start(std::string* error) {
  if (listen_fd_ >= 0) return true;
  const std::string name = "tokentap-fanout-" + std::to_string(getpid()) + "-" +
                           std::to_string(next_socket_id.fetch_add(1));
  endpoint_ = Endpoint{};
  auto* un = reinterpret_cast<sockaddr_un*>(&endpoint_.addr);
  un->sun_family = AF_UNIX;
  un->sun_path[0] = '\0';  // abstract: the name is the bytes after the NUL, no file
  std::memcpy(un->sun_path + 1, name.data(), name.size());
  endpoint_.addr_len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
  endpoint_.text = "@" + name;
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0 || bind(fd, reinterpret_cast<const sockaddr*>(&endpoint_.addr), endpoint_.addr_len) ||
      listen(fd, fan_out_backlog) != 0) {
    *error = "fan-out socket " + endpoint_.text + ": " + std::strerror(errno);
    if (fd >= 0) close(fd);
    return false;
  }
  wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd_ < 0) {
    *error = std::string("eventfd: ") + std::strerror(errno);
    close(fd);
    return false;
  }
  listen_fd_ = fd;
  stopping_ = false;
  acceptor_ = std::thread([this] { accept_loop(); });
  return true;
}

void FanOutService::stop() {
  {
    const std::lock_guard lock(mu_);
    if (listen_fd_ < 0) return;
    stopping_ = true;
  }
  const std::uint64_t one = 1;
  (void)!write(wake_fd_, &one, sizeof(one));
  acceptor_.join();
  std::list<Job> all;
  {
    const std::lock_guard lock(mu_);
    // A job's poll() sees its proxy socket hang up and cuts its backends.
    for (Job& job : jobs_) {
      if (job.client_fd >= 0) ::shutdown(job.client_fd, SHUT_RDWR);
    }
    all.splice(all.end(), jobs_);  // list nodes keep their addresses for the running jobs
  }
  for (Job& job : all) job.thread.join();
  close(listen_fd_);
  close(wake_fd_);
  listen_fd_ = -1;
  wake_fd_ = -1;
}

void FanOutService::accept_loop() {
  for (;;) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0 && errno != EINTR) return;
    if (fds[1].revents != 0) return;
    for (;;) {
      const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd >= 0) {
        on_accept(fd);
        continue;
      }
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno != EAGAIN) ::poll(nullptr, 0, accept_retry_ms);
      break;
    }
    reap();
  }
}

void FanOutService::on_accept(int fd) {
  if (!from_this_process(fd)) {  // only the proxy in this process may start fleet-wide work
    close(fd);
    return;
  }
  const std::lock_guard lock(mu_);
  const auto active = std::count_if(jobs_.begin(), jobs_.end(), [](const Job& j) {
    return !j.done;
  });
  if (stopping_ || active >= static_cast<std::ptrdiff_t>(fan_out_jobs_max)) {
    refuse_busy(fd);
    return;
  }
  Job& job = jobs_.emplace_back();
  job.client_fd = fd;
  try {
    job.thread = std::thread([this, &job] { serve(&job); });
  } catch (const std::system_error&) {  // no thread to be had: busy, not a dead process
    jobs_.pop_back();
    refuse_busy(fd);
  }
}

void FanOutService::serve(Job* job) {
  const int fd = job->client_fd;  // only finish() closes it
  RequestRead in;
  if (read_request(fd, &in)) {
    if (in.refuse_status != 0) {
      reply(fd, local_error(in.refuse_status, in.refuse_message));
    } else if (fan_out_route(in.request.method, in.request.target) == FanOutRoute::other) {
      reply(fd, local_error(404, "tokentap: not a fan-out route"));
    } else {
      std::vector<FanOutTarget> targets = targets_();
      if (targets.empty()) {
        reply(fd, local_error(502, "tokentap: no healthy backend"));
      } else {
        FanOutJob(fd, in.request, std::move(targets)).run();
      }
    }
  }
  finish(job);
}

void FanOutService::finish(Job* job) {
  const std::lock_guard lock(mu_);
  close(job->client_fd);
  job->client_fd = -1;
  job->done = true;
}

void FanOutService::reap() {
  std::list<Job> finished;
  {
    const std::lock_guard lock(mu_);
    for (auto it = jobs_.begin(); it != jobs_.end();) {
      const auto next = std::next(it);
      if (it->done) finished.splice(finished.end(), jobs_, it);
      it = next;
    }
  }
  for (Job& job : finished) job.thread.join();
}

}  // namespace tokentap
