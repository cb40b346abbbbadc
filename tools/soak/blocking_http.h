// Blocking HTTP/1.1 exchanges on 127.0.0.1 for the soak's control traffic: /healthz polls,
// /metrics scrapes and the reference answers fetched straight from the fake upstream. One
// connection per exchange (sent with Connection: close by the callers), SO_RCVTIMEO/SO_SNDTIMEO
// bound every call, so a stuck server fails the soak instead of hanging it.
//
// scrape_metrics() sums the tokentap_* families the soak compares, over all their series.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>

namespace tokentap::soak {

constexpr int http_timeout_ms = 10'000;

struct HttpResult {
  int status = 0;
  bool complete = false;  // framing ended normally (else the connection was cut)
  std::string body;       // de-chunked
  bool has_fake_checksum = false;
  std::uint64_t fake_checksum = 0;
  std::uint64_t fake_bytes = 0;
};

// Sends head then body (either may be empty) and reads one response.
[[nodiscard]] bool http_exchange(std::uint16_t port, std::string_view head, std::string_view body,
                                 HttpResult* out, std::string* error,
                                 int timeout_ms = http_timeout_ms);

// GET /healthz answered 200 "ok".
[[nodiscard]] bool healthz_ok(std::uint16_t port);

struct MetricSums {
  double requests = 0;           // tokentap_requests_total, all series
  double prompt_tokens = 0;      // tokentap_prompt_tokens_total
  double completion_tokens = 0;  // tokentap_completion_tokens_total
  double connections_open = 0;
  double connections_total = 0;
  double connections_rejected = 0;
  double active_requests = 0;
  double client_aborts = 0;
  double usage_missing = 0;
  double upstream_errors = 0;
  std::map<std::string, double> requests_by_status;  // status label → count
  std::map<std::string, double> upstream_errors_by_kind;
  std::size_t series = 0;  // sample lines in the exposition
  std::size_t bytes = 0;   // exposition size
};

[[nodiscard]] bool scrape_metrics(std::uint16_t port, MetricSums* out, std::string* error);

}  // namespace tokentap::soak
