// AccessLog: one JSON line per request (--access-log FILE|-), written off the data path.
//
// Each shard appends fixed-size records to its own single-producer/single-consumer ring; a
// dedicated writer thread drains every ring every access_log_flush_ms, formats the lines into
// one buffer and writes it with a single write(2). The shard never blocks and never allocates:
// when its ring is full the record is dropped and counted, and the writer reports the count in
// the log itself. SIGUSR1 (via reopen()) makes the writer reopen FILE for logrotate.
// No prompt or response text is ever recorded: only labels, counts, timings and the address.
#pragma once

#include <sys/socket.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "tokentap/base/route.h"

namespace tokentap {

constexpr std::uint32_t access_log_ring_records = 4096;  // per shard, a power of two
constexpr std::uint32_t access_log_flush_ms = 100;
constexpr std::size_t access_log_model_bytes = 96;  // longer model names are cut in the log
constexpr std::size_t access_log_backend_bytes = 32;  // a backend name's limit (config.h)

struct AccessRecord {
  std::int64_t unix_ms = 0;
  double duration_s = 0;
  double ttft_s = -1;  // < 0: not a streamed inference with output
  std::uint64_t prompt_tokens = 0;
  std::uint64_t completion_tokens = 0;
  std::uint64_t request_bytes = 0;
  std::uint64_t response_bytes = 0;
  sockaddr_storage client{};
  Route route = Route::other;
  std::uint16_t status = 0;
  bool stream = false;
  std::uint8_t model_len = 0;
  std::array<char, access_log_model_bytes> model{};
  // Several backends: the one that served the request and how many were tried (issue 16).
  // backend_len 0: one upstream, and the line has neither field.
  std::uint8_t backend_len = 0;
  std::uint8_t attempts = 0;
  std::array<char, access_log_backend_bytes> backend{};
};

// One shard's ring. push() is called by the shard only, drain() by the writer only.
class AccessRing {
 public:
  AccessRing();
  [[nodiscard]] bool push(const AccessRecord& r);
  template <typename Fn>
  void drain(Fn&& fn) {
    const std::uint64_t tail = tail_.load(std::memory_order_acquire);
    std::uint64_t head = head_.load(std::memory_order_relaxed);
    for (; head != tail; ++head) fn(records_[head & (access_log_ring_records - 1)]);
    head_.store(head, std::memory_order_release);
  }
  std::uint64_t dropped() const { return dropped_.load(std::memory_order_relaxed); }

 private:
  std::vector<AccessRecord> records_;
  alignas(64) std::atomic<std::uint64_t> head_{0};  // next to read (writer thread)
  alignas(64) std::atomic<std::uint64_t> tail_{0};  // next to write (shard)
  std::atomic<std::uint64_t> dropped_{0};
};

class AccessLog {
 public:
  // path: a file (appended to) or "-" for stdout.
  AccessLog(std::string path, std::size_t shards);
  ~AccessLog();
  AccessLog(const AccessLog&) = delete;
  AccessLog& operator=(const AccessLog&) = delete;

  [[nodiscard]] bool start(std::string* error);
  void stop();  // drains what is left, then joins
  void reopen() { reopen_.store(true, std::memory_order_release); }
  AccessRing& ring(std::size_t shard) { return *rings_[shard]; }

 private:
  void run();
  void flush();
  [[nodiscard]] bool open_file(std::string* error);

  std::string path_;
  std::vector<std::unique_ptr<AccessRing>> rings_;
  std::vector<std::uint64_t> reported_drops_;
  std::string buffer_;
  int fd_ = -1;
  std::atomic<bool> stop_{false};
  std::atomic<bool> reopen_{false};
  std::thread thread_;
};

// Appends one record as a JSON line (exposed for tests).
void format_access_record(const AccessRecord& r, std::string& out);

}  // namespace tokentap
