// AccessLog: per-shard rings drained by one writer thread; see access_log.h.
#include "tokentap/obs/access_log.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fmt/format.h>

namespace tokentap {

static_assert((access_log_ring_records & (access_log_ring_records - 1)) == 0);

AccessRing::AccessRing() : records_(access_log_ring_records) {}

bool AccessRing::push(const AccessRecord& r) {
  const std::uint64_t tail = tail_.load(std::memory_order_relaxed);
  if (tail - head_.load(std::memory_order_acquire) >= access_log_ring_records) {
    dropped_.store(dropped_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    return false;
  }
  records_[tail & (access_log_ring_records - 1)] = r;
  tail_.store(tail + 1, std::memory_order_release);
  return true;
}

namespace {

void append_json_string(std::string& out, std::string_view s) {
  out.push_back('"');
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (u < 0x20) {
      fmt::format_to(std::back_inserter(out), "\\u{:04x}", u);
    } else {
      out.push_back(c);
    }
  }
  out.push_back('"');
}

void append_address(std::string& out, const sockaddr_storage& a) {
  char text[INET6_ADDRSTRLEN] = "";
  std::uint16_t port = 0;
  if (a.ss_family == AF_INET) {
    const auto* v4 = reinterpret_cast<const sockaddr_in*>(&a);
    inet_ntop(AF_INET, &v4->sin_addr, text, sizeof(text));
    port = ntohs(v4->sin_port);
  } else if (a.ss_family == AF_INET6) {
    const auto* v6 = reinterpret_cast<const sockaddr_in6*>(&a);
    inet_ntop(AF_INET6, &v6->sin6_addr, text, sizeof(text));
    port = ntohs(v6->sin6_port);
  }
  fmt::format_to(std::back_inserter(out), "\"{}:{}\"", text, port);
}

}  // namespace

void format_access_record(const AccessRecord& r, std::string& out) {
  const auto secs = r.unix_ms / 1000;
  const auto ms = r.unix_ms % 1000;
  tm utc;
  const time_t t = static_cast<time_t>(secs);
  gmtime_r(&t, &utc);
  fmt::format_to(std::back_inserter(out),
                 "{{\"time\":\"{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z\",\"endpoint\":\"{}\","
                 "\"model\":",
                 utc.tm_year + 1900, utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min,
                 utc.tm_sec, ms, route_label(r.route));
  append_json_string(out, std::string_view(r.model.data(), r.model_len));
  fmt::format_to(std::back_inserter(out),
                 ",\"status\":{},\"stream\":{},\"prompt_tokens\":{},\"completion_tokens\":{},"
                 "\"ttft_s\":{},\"duration_s\":{:.6f},\"request_bytes\":{},\"response_bytes\":{},"
                 "\"client\":",
                 r.status, r.stream, r.prompt_tokens, r.completion_tokens,
                 r.ttft_s < 0 ? std::string("null") : fmt::format("{:.6f}", r.ttft_s),
                 r.duration_s, r.request_bytes, r.response_bytes);
  append_address(out, r.client);
  if (r.backend_len > 0) {
    out += ",\"backend\":";
    append_json_string(out, std::string_view(r.backend.data(), r.backend_len));
    fmt::format_to(std::back_inserter(out), ",\"attempts\":{}", r.attempts);
  }
  out += "}\n";
}

AccessLog::AccessLog(std::string path, std::size_t shards) : path_(std::move(path)) {
  for (std::size_t i = 0; i < shards; ++i) rings_.push_back(std::make_unique<AccessRing>());
  reported_drops_.assign(shards, 0);
  buffer_.reserve(access_log_ring_records * 256);
}

AccessLog::~AccessLog() { stop(); }

bool AccessLog::open_file(std::string* error) {
  if (path_ == "-") {
    fd_ = STDOUT_FILENO;
    return true;
  }
  const int fd = open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
  if (fd < 0) {
    *error = fmt::format("--access-log: cannot open {}: {}", path_, std::strerror(errno));
    return false;
  }
  if (fd_ > STDERR_FILENO) close(fd_);
  fd_ = fd;
  return true;
}

bool AccessLog::start(std::string* error) {
  if (!open_file(error)) return false;
  thread_ = std::thread([this] { run(); });
  return true;
}

void AccessLog::stop() {
  if (!thread_.joinable()) return;
  stop_.store(true, std::memory_order_release);
  thread_.join();
  if (fd_ > STDERR_FILENO) close(fd_);
  fd_ = -1;
}

void AccessLog::run() {
  for (;;) {
    const bool last = stop_.load(std::memory_order_acquire);
    if (reopen_.exchange(false, std::memory_order_acq_rel)) {
      std::string error;
      if (!open_file(&error)) fmt::print(stderr, "tokentap: {}\n", error);  // keep the old file
    }
    flush();
    if (last) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(access_log_flush_ms));
  }
}

void AccessLog::flush() {
  buffer_.clear();
  for (std::size_t i = 0; i < rings_.size(); ++i) {
    rings_[i]->drain([this](const AccessRecord& r) { format_access_record(r, buffer_); });
    const std::uint64_t dropped = rings_[i]->dropped();
    if (dropped != reported_drops_[i]) {
      fmt::format_to(std::back_inserter(buffer_), "{{\"dropped\":{},\"shard\":{}}}\n",
                     dropped - reported_drops_[i], i);
      reported_drops_[i] = dropped;
    }
  }
  for (std::size_t off = 0; off < buffer_.size();) {
    const ssize_t n = write(fd_, buffer_.data() + off, buffer_.size() - off);
    if (n <= 0) {
      if (n < 0 && errno == EINTR) continue;
      return;  // a full disk loses log lines, never requests
    }
    off += static_cast<std::size_t>(n);
  }
}

}  // namespace tokentap
