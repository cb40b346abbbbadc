// Access log: the JSON line format, and lines written by a real proxy for real requests,
// including a reopen after the file was moved away (logrotate).
#include "tokentap/obs/access_log.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <thread>

#include "fake_upstream.h"
#include "support/http_client.h"
#include "support/proxy_fixture.h"

namespace tokentap {
namespace {

TEST(AccessLogFormat, OneJsonLineWithEscapedModel) {
  AccessRecord r;
  r.unix_ms = 1787580011123;  // 2026-08-24T14:00:11.123Z
  r.duration_s = 0.25;
  r.ttft_s = 0.0125;
  r.prompt_tokens = 46;
  r.completion_tokens = 75;
  r.request_bytes = 100;
  r.response_bytes = 2000;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&r.client);
  v4->sin_family = AF_INET;
  v4->sin_port = htons(40000);
  inet_pton(AF_INET, "127.0.0.1", &v4->sin_addr);
  r.route = Route::api_chat;
  r.status = 200;
  r.stream = true;
  const std::string model = "we\"ird\\name";
  r.model_len = static_cast<std::uint8_t>(model.size());
  std::copy(model.begin(), model.end(), r.model.begin());
  std::string out;
  format_access_record(r, out);
  EXPECT_EQ(out,
            "{\"time\":\"2026-08-24T14:00:11.123Z\",\"endpoint\":\"/api/chat\","
            "\"model\":\"we\\\"ird\\\\name\",\"status\":200,\"stream\":true,\"prompt_tokens\":46,"
            "\"completion_tokens\":75,\"ttft_s\":0.012500,\"duration_s\":0.250000,"
            "\"request_bytes\":100,\"response_bytes\":2000,\"client\":\"127.0.0.1:40000\"}\n");
  // With several backends the line names the one that served it and the backends tried.
  const std::string backend = "gpu3";
  r.backend_len = static_cast<std::uint8_t>(backend.size());
  std::copy(backend.begin(), backend.end(), r.backend.begin());
  r.attempts = 2;
  out.clear();
  format_access_record(r, out);
  EXPECT_NE(out.find(",\"client\":\"127.0.0.1:40000\",\"backend\":\"gpu3\",\"attempts\":2}\n"),
            std::string::npos)
      << out;
}

TEST(AccessLogRing, FullRingDropsAndCounts) {
  AccessRing ring;
  AccessRecord r;
  for (std::uint32_t i = 0; i < access_log_ring_records; ++i) ASSERT_TRUE(ring.push(r));
  EXPECT_FALSE(ring.push(r));
  EXPECT_EQ(ring.dropped(), 1u);
  std::uint32_t seen = 0;
  ring.drain([&](const AccessRecord&) { ++seen; });
  EXPECT_EQ(seen, access_log_ring_records);
  EXPECT_TRUE(ring.push(r));
}

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(AccessLogProxy, WritesOneLinePerRequestAndReopens) {
  fake::FakeUpstream up(fake::Options{});
  std::string error;
  ASSERT_TRUE(up.start(&error)) << error;
  char dir[] = "/tmp/tokentap-accesslog-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  const std::string path = std::string(dir) + "/access.log";
  {
    TT_START_PROXY(proxy, up.port(), 1, {"--access-log", path});
    const auto r1 = test::roundtrip(
        proxy.port(), test::request("POST", "/api/chat",
                                    R"({"model":"qwen3:8b","messages":[{"role":"user","content":"secret prompt"}]})"));
    ASSERT_EQ(r1.status, 200);
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    ASSERT_EQ(std::rename(path.c_str(), (path + ".1").c_str()), 0);
    proxy.reopen_access_log();
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    const auto r2 = test::roundtrip(proxy.port(), test::request("GET", "/api/tags"));
    ASSERT_EQ(r2.status, 200);
    proxy.stop(0);
  }
  const std::string rotated = slurp(path + ".1");
  const std::string fresh = slurp(path);
  EXPECT_NE(rotated.find("\"endpoint\":\"/api/chat\",\"model\":\"qwen3:8b\",\"status\":200,"
                         "\"stream\":true"), std::string::npos) << rotated;
  EXPECT_NE(rotated.find("\"client\":\"127.0.0.1:"), std::string::npos);
  EXPECT_EQ(rotated.find("secret prompt"), std::string::npos) << "no prompt text, ever";
  EXPECT_NE(fresh.find("\"endpoint\":\"other\""), std::string::npos) << fresh;
  EXPECT_EQ(std::count(fresh.begin(), fresh.end(), '\n'), 1);
  std::remove((path + ".1").c_str());
  std::remove(path.c_str());
  rmdir(dir);
}

}  // namespace
}  // namespace tokentap
