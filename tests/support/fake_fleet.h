// FakeFleet: several fake Ollama instances (tools/fake_upstream) started for one test, the
// --upstream flags that put tokentap in front of them, and the requests the fleet tests send.
// Header-only: every test executable links fake_upstream_lib, the support library does not.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "fake_upstream.h"
#include "support/http_client.h"

namespace tokentap::test {

struct FakeFleet {
  std::vector<std::unique_ptr<fake::FakeUpstream>> instances;

  // One instance per model list.
  explicit FakeFleet(const std::vector<std::vector<std::string>>& models) {
    for (const auto& m : models) {
      fake::Options o;
      o.models = m;
      instances.push_back(std::make_unique<fake::FakeUpstream>(o));
      std::string error;
      EXPECT_TRUE(instances.back()->start(&error)) << error;
    }
  }
  // n instances with the one model.
  FakeFleet(std::size_t n, const std::string& model)
      : FakeFleet(std::vector<std::vector<std::string>>(n, std::vector<std::string>{model})) {}

  std::string url(std::size_t i) const {
    return "http://127.0.0.1:" + std::to_string(instances[i]->port());
  }
  // --upstream gpuI=URL for every instance after the first (TestProxy passes the first one).
  std::vector<std::string> args(std::vector<std::string> extra = {}) const {
    for (std::size_t i = 1; i < instances.size(); ++i) {
      extra.push_back("--upstream");
      extra.push_back("gpu" + std::to_string(i) + "=" + url(i));
    }
    return extra;
  }
  std::uint64_t inference(std::size_t i) const { return instances[i]->stats().inference_requests; }
};

// A POST /api/generate for `model`, whole.
inline std::string generate_request(const std::string& model, bool stream = false,
                                    const std::string& extra_headers = "") {
  const std::string body = R"({"model":")" + model + R"(","prompt":"hi","stream":)" +
                           (stream ? "true" : "false") + "}";
  return "POST /api/generate HTTP/1.1\r\nHost: x\r\n" + extra_headers +
         "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\n\r\n" + body;
}

// A non-stream generate on a connection of its own; status 0 when nothing answered.
inline Response generate(std::uint16_t port, const std::string& model,
                         const std::string& extra_headers = "") {
  HttpClient c;
  if (!c.connect(port)) return {};
  EXPECT_TRUE(c.send(generate_request(model, false, extra_headers)));
  return c.read_response();
}

// The prober reads a backend's /api/tags when it starts watching it: wait until the instance
// was asked, then a moment for the answer to become the backend's model set.
inline void wait_for_tags(const std::vector<const fake::FakeUpstream*>& instances) {
  using namespace std::chrono_literals;
  for (int i = 0; i < 200; ++i) {
    bool all = true;
    for (const fake::FakeUpstream* f : instances) all = all && f->requests_for("/api/tags") > 0;
    if (all) break;
    std::this_thread::sleep_for(10ms);
  }
  std::this_thread::sleep_for(300ms);
}
inline void wait_for_tags(const FakeFleet& fleet) {
  std::vector<const fake::FakeUpstream*> all;
  for (const auto& f : fleet.instances) all.push_back(f.get());
  wait_for_tags(all);
}

}  // namespace tokentap::test
