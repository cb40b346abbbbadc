// Shared by the fake upstream's socket tests (fake_*_test.cc): the FakeUpstreamTest fixture,
// which starts a FakeUpstream on an ephemeral loopback port per test and talks to it through
// tests/support/http_client, and simdjson DOM helpers that keep key order, so tests can assert
// the exact field order Ollama and the OpenAI/Anthropic APIs write.
// Header-only on purpose: every .cc in this folder that is not a *_test.cc goes into the tool's
// own library, which must not depend on GoogleTest or simdjson.
#pragma once

#include <gtest/gtest.h>
#include <simdjson.h>
#include <sys/resource.h>
#include <time.h>

#include <cstdint>
#include <cstdio>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "fake_upstream.h"
#include "support/http_client.h"

namespace tokentap::fake {

inline constexpr std::string_view fixed_date = "Date: Mon, 24 Aug 2026 14:00:11 GMT\r\n";

// JSON helpers (simdjson DOM: keeps key order, so key-order assertions are possible).

inline std::vector<std::string> keys_of(std::string_view json, std::string_view pointer = "") {
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (parser.parse(json.data(), json.size()).get(doc) != simdjson::SUCCESS) return {"<invalid>"};
  simdjson::dom::object obj;
  if (doc.at_pointer(pointer).get_object().get(obj) != simdjson::SUCCESS) return {"<not object>"};
  std::vector<std::string> keys;
  for (auto field : obj) keys.emplace_back(field.key);
  return keys;
}

inline bool valid_json(std::string_view json) {
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  return parser.parse(json.data(), json.size()).get(doc) == simdjson::SUCCESS;
}

inline std::int64_t json_int(std::string_view json, std::string_view pointer) {
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  std::int64_t v = -1;
  if (parser.parse(json.data(), json.size()).get(doc) != simdjson::SUCCESS) return -2;
  if (doc.at_pointer(pointer).get_int64().get(v) != simdjson::SUCCESS) return -3;
  return v;
}

inline std::string json_str(std::string_view json, std::string_view pointer) {
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  std::string_view v;
  if (parser.parse(json.data(), json.size()).get(doc) != simdjson::SUCCESS) return "<invalid>";
  if (doc.at_pointer(pointer).get_string().get(v) != simdjson::SUCCESS) return "<missing>";
  return std::string(v);
}

inline bool has_key(std::string_view json, std::string_view pointer) {
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (parser.parse(json.data(), json.size()).get(doc) != simdjson::SUCCESS) return false;
  return doc.at_pointer(pointer).error() == simdjson::SUCCESS;
}

inline std::vector<std::string> strs(std::initializer_list<const char*> list) {
  return {list.begin(), list.end()};
}

// The chunked framing Go writes for these payloads: lowercase hex sizes, then "0\r\n\r\n".
inline std::string framed(const std::vector<std::string>& payloads) {
  std::string out;
  char hex[32];
  for (const auto& p : payloads) {
    std::snprintf(hex, sizeof(hex), "%zx\r\n", p.size());
    out += hex + p + "\r\n";
  }
  return out + "0\r\n\r\n";
}

// Raises the soft descriptor limit to the hard one; returns the soft limit now in force.
inline int raise_fd_limit() {
  rlimit lim{};
  getrlimit(RLIMIT_NOFILE, &lim);
  if (lim.rlim_cur < lim.rlim_max) {
    lim.rlim_cur = lim.rlim_max;
    setrlimit(RLIMIT_NOFILE, &lim);
    getrlimit(RLIMIT_NOFILE, &lim);
  }
  return lim.rlim_cur > 1'000'000 ? 1'000'000 : static_cast<int>(lim.rlim_cur);
}

inline std::uint64_t monotonic_now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ull +
         static_cast<std::uint64_t>(ts.tv_nsec);
}

class FakeUpstreamTest : public ::testing::Test {
 protected:
  void SetUp() override { start(Options{}); }
  void start(Options options) {
    fake_.reset();
    fake_ = std::make_unique<FakeUpstream>(std::move(options));
    std::string error;
    ASSERT_TRUE(fake_->start(&error)) << error;
    port_ = fake_->port();
  }
  std::string req(std::string_view method, std::string_view path, std::string_view body = {},
                  std::vector<test::Header> headers = {}) const {
    return test::request(method, path, body, headers, port_);
  }
  test::Response post(std::string_view path, std::string_view body,
                      std::vector<test::Header> headers = {}) {
    return test::roundtrip(port_, req("POST", path, body, std::move(headers)));
  }
  test::Response get(std::string_view path, std::vector<test::Header> headers = {}) {
    return test::roundtrip(port_, req("GET", path, {}, std::move(headers)));
  }

  std::unique_ptr<FakeUpstream> fake_;
  std::uint16_t port_ = 0;
};

}  // namespace tokentap::fake
