// The errors tokentap answers itself are shaped like the API that was called (issue 16
// "Errors in the client's dialect"): an upstream that is down gives a 502 each SDK parses.
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include "support/proxy_fixture.h"
#include "support/scripted_upstream.h"

namespace tokentap {
namespace {

using namespace std::chrono_literals;
using test::connect_loopback;
using test::listen_loopback;
using test::read_to_close;
using test::send_all;

// A port with nothing listening: bound, never listened on, closed.
std::uint16_t dead_port() {
  std::uint16_t port = 0;
  const int fd = listen_loopback(&port);
  close(fd);
  return port;
}

std::string post(std::uint16_t proxy_port, const std::string& path) {
  const int c = connect_loopback(proxy_port);
  const std::string body = R"({"model":"m","messages":[]})";
  send_all(c, "POST " + path + " HTTP/1.1\r\nHost: x\r\nContent-Length: " +
                  std::to_string(body.size()) + "\r\n\r\n" + body);
  std::string resp = read_to_close(c, 5000ms);
  close(c);
  return resp;
}

std::string body_of(const std::string& resp) {
  const auto at = resp.find("\r\n\r\n");
  return at == std::string::npos ? "" : resp.substr(at + 4);
}

TEST(ErrorDialect, UpstreamDownGives502InTheShapeOfTheCalledApi) {
  TT_START_PROXY(proxy, dead_port(), 1);
  const std::string ollama = post(proxy.port(), "/api/chat");
  EXPECT_EQ(ollama.substr(0, 12), "HTTP/1.1 502");
  EXPECT_NE(ollama.find("Content-Type: application/json; charset=utf-8\r\n"), std::string::npos);
  EXPECT_EQ(body_of(ollama).rfind("{\"error\":\"tokentap: ", 0), 0u) << ollama;

  const std::string openai = post(proxy.port(), "/v1/chat/completions");
  EXPECT_EQ(openai.substr(0, 12), "HTTP/1.1 502");
  EXPECT_NE(openai.find("Content-Type: application/json\r\n"), std::string::npos);
  EXPECT_EQ(body_of(openai).rfind("{\"error\":{\"message\":\"tokentap: ", 0), 0u) << openai;
  EXPECT_NE(openai.find("\"type\":\"api_error\",\"param\":null,\"code\":null}}\n"),
            std::string::npos);

  const std::string anthropic = post(proxy.port(), "/v1/messages");
  EXPECT_EQ(anthropic.substr(0, 12), "HTTP/1.1 502");
  EXPECT_EQ(body_of(anthropic).rfind("{\"type\":\"error\",\"error\":{\"type\":\"api_error\"", 0),
            0u)
      << anthropic;
  EXPECT_NE(anthropic.find("\"request_id\":\"req_"), std::string::npos);
}

}  // namespace
}  // namespace tokentap
