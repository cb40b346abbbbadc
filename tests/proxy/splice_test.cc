// Large Content-Length bodies, which the proxy splices through a pipe instead of copying: a
// 256 MiB upload and a 256 MiB download arrive intact (byte count and checksum).

#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "support/proxy_fixture.h"
#include "support/scripted_upstream.h"
#include "support/stream_parts.h"

namespace tokentap {
namespace {

using namespace std::chrono_literals;

using test::connect_loopback;
using test::has_head;
using test::read_to_close;
using test::read_until;
using test::ScriptedUpstream;
using test::send_all;

// The upstream-side and client-side checksums of a spliced body, chunk by chunk.
std::uint64_t fnv1a(std::uint64_t h, const char* p, std::size_t n) {
  return test::fnv1a64(std::string_view(p, n), h);
}
constexpr std::uint64_t fnv_basis = 14695981039346656037ull;

// Fills `chunk` with the bytes at stream offsets [offset, offset + size) of the pattern
// (offset * mul + add) & 0xff, so both ends can regenerate what the other sent.
void fill_pattern(std::vector<char>* chunk, std::size_t offset, unsigned mul, unsigned add) {
  for (std::size_t i = 0; i < chunk->size(); ++i) {
    (*chunk)[i] = static_cast<char>((offset + i) * mul + add);
  }
}

TEST(ProxyScripted, LargeUploadIsSplicedIntact) {
  constexpr std::size_t total = 256u << 20;  // 256 MiB
  std::atomic<std::uint64_t> upstream_hash{0};
  std::atomic<std::uint64_t> upstream_bytes{0};
  ScriptedUpstream up([&](int fd, ScriptedUpstream& self) {
    const std::string head = read_until(fd, has_head);
    const auto end = head.find("\r\n\r\n") + 4;
    std::uint64_t h = fnv1a(fnv_basis, head.data() + end, head.size() - end);
    std::uint64_t got = head.size() - end;
    std::vector<char> buf(1 << 20);
    while (got < total) {
      const ssize_t n = recv(fd, buf.data(), buf.size(), 0);
      if (n <= 0) break;
      h = fnv1a(h, buf.data(), static_cast<std::size_t>(n));
      got += static_cast<std::uint64_t>(n);
    }
    upstream_hash = h;
    upstream_bytes = got;
    send_all(fd, "HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n");
  });
  TT_START_PROXY(proxy, up.port());
  const int c = connect_loopback(proxy.port());
  send_all(c, "POST /api/blobs/sha256:big HTTP/1.1\r\nHost: x\r\nContent-Length: " +
                  std::to_string(total) + "\r\n\r\n");
  std::vector<char> chunk(1 << 20);
  std::uint64_t h = fnv_basis;
  for (std::size_t sent = 0; sent < total; sent += chunk.size()) {
    fill_pattern(&chunk, sent, 31, 7);
    h = fnv1a(h, chunk.data(), chunk.size());
    send_all(c, std::string_view(chunk.data(), chunk.size()));
  }
  bool closed = false;
  const std::string resp = read_until(c, has_head, 20000ms, &closed);
  EXPECT_EQ(resp, "HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n")
      << "closed=" << closed << "\n" << proxy.scrape();
  EXPECT_EQ(upstream_bytes.load(), total);
  EXPECT_EQ(upstream_hash.load(), h);
  close(c);
}

TEST(ProxyScripted, LargeDownloadIsSplicedIntact) {
  constexpr std::size_t total = 256u << 20;
  ScriptedUpstream up([&](int fd, ScriptedUpstream& self) {
    self.read_request(fd);
    send_all(fd, "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: " +
                     std::to_string(total) + "\r\n\r\n");
    std::vector<char> chunk(1 << 20);
    for (std::size_t sent = 0; sent < total; sent += chunk.size()) {
      fill_pattern(&chunk, sent, 13, 1);
      send_all(fd, std::string_view(chunk.data(), chunk.size()));
    }
    read_to_close(fd, 2000ms);
  });
  TT_START_PROXY(proxy, up.port());
  const int c = connect_loopback(proxy.port());
  send_all(c, "GET /model.bin HTTP/1.1\r\nHost: x\r\n\r\n");
  std::string head = read_until(c, has_head);
  const auto end = head.find("\r\n\r\n") + 4;
  std::uint64_t got = head.size() - end;
  std::uint64_t h = fnv1a(fnv_basis, head.data() + end, got);
  std::vector<char> buf(1 << 20);
  while (got < total) {
    const ssize_t n = recv(c, buf.data(), buf.size(), 0);
    if (n <= 0) break;
    h = fnv1a(h, buf.data(), static_cast<std::size_t>(n));
    got += static_cast<std::uint64_t>(n);
  }
  std::uint64_t want = fnv_basis;
  std::vector<char> chunk(1 << 20);
  for (std::size_t sent = 0; sent < total; sent += chunk.size()) {
    fill_pattern(&chunk, sent, 13, 1);
    want = fnv1a(want, chunk.data(), chunk.size());
  }
  EXPECT_EQ(got, total);
  EXPECT_EQ(h, want);
  close(c);
}

}  // namespace
}  // namespace tokentap
