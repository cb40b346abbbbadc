// Cidr: parsing (IPv4, IPv6, bare addresses, refusals naming the text), matching at the prefix
// edges, and peers from sockaddr — AF_INET, AF_INET6 and IPv4-mapped IPv6 matching IPv4 rules.
#include "tokentap/auth/cidr.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>

#include <string>

namespace tokentap::auth {
namespace {

Cidr block(std::string_view text) {
  std::string error;
  std::optional<Cidr> c = Cidr::parse(text, &error);
  EXPECT_TRUE(c) << text << ": " << error;
  return c.value_or(Cidr{});
}

IpAddress v4(const char* text) {
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  EXPECT_EQ(inet_pton(AF_INET, text, &sa.sin_addr), 1);
  return *ip_of(reinterpret_cast<const sockaddr*>(&sa), sizeof sa);
}

IpAddress v6(const char* text) {
  sockaddr_in6 sa{};
  sa.sin6_family = AF_INET6;
  EXPECT_EQ(inet_pton(AF_INET6, text, &sa.sin6_addr), 1);
  return *ip_of(reinterpret_cast<const sockaddr*>(&sa), sizeof sa);
}

TEST(Cidr, Ipv4Blocks) {
  const Cidr loopback = block("127.0.0.0/8");
  EXPECT_TRUE(loopback.contains(v4("127.0.0.1")));
  EXPECT_TRUE(loopback.contains(v4("127.255.255.255")));
  EXPECT_FALSE(loopback.contains(v4("128.0.0.0")));
  EXPECT_FALSE(loopback.contains(v4("126.255.255.255")));
  const Cidr odd = block("10.1.2.0/23");  // a prefix inside a byte
  EXPECT_TRUE(odd.contains(v4("10.1.3.255")));
  EXPECT_FALSE(odd.contains(v4("10.1.4.0")));
  EXPECT_FALSE(odd.contains(v4("10.1.1.255")));
  const Cidr all = block("0.0.0.0/0");
  EXPECT_TRUE(all.contains(v4("203.0.113.9")));
  EXPECT_FALSE(all.contains(v6("2001:db8::1")));  // every IPv4 address, no IPv6 one
  const Cidr host = block("192.0.2.7");
  EXPECT_EQ(host.prefix_bits, 128);
  EXPECT_TRUE(host.contains(v4("192.0.2.7")));
  EXPECT_FALSE(host.contains(v4("192.0.2.6")));
}

TEST(Cidr, Ipv6Blocks) {
  const Cidr one = block("::1/128");
  EXPECT_TRUE(one.contains(v6("::1")));
  EXPECT_FALSE(one.contains(v6("::2")));
  EXPECT_FALSE(one.contains(v4("127.0.0.1")));
  const Cidr ula = block("fd00::/8");
  EXPECT_TRUE(ula.contains(v6("fdff:ffff::1")));
  EXPECT_FALSE(ula.contains(v6("fe00::1")));
  const Cidr doc = block("2001:db8:abcd::/49");
  EXPECT_TRUE(doc.contains(v6("2001:db8:abcd:7fff::1")));
  EXPECT_FALSE(doc.contains(v6("2001:db8:abcd:8000::1")));
  EXPECT_TRUE(block("::/0").contains(v4("8.8.8.8")));  // ::/0 is everything, mapped IPv4 too
}

TEST(Cidr, MappedIpv6PeersMatchIpv4Rules) {
  const Cidr loopback = block("127.0.0.0/8");
  EXPECT_TRUE(loopback.contains(v6("::ffff:127.0.0.1")));
  EXPECT_FALSE(loopback.contains(v6("::ffff:10.0.0.1")));
  EXPECT_FALSE(loopback.contains(v6("::127.0.0.1")));  // IPv4-compatible is not mapped
  // And the other way round: a mapped rule matches an AF_INET peer.
  EXPECT_TRUE(block("::ffff:10.0.0.0/104").contains(v4("10.9.9.9")));
}

TEST(Cidr, RefusalsNameTheText) {
  std::string error;
  EXPECT_FALSE(Cidr::parse("10.0.0.5/8", &error));
  EXPECT_EQ(error, "'10.0.0.5/8': host bits set (the block is 10.0.0.0/8)");
  EXPECT_FALSE(Cidr::parse("fd00::1/8", &error));
  EXPECT_EQ(error, "'fd00::1/8': host bits set (the block is fd00::/8)");
  EXPECT_FALSE(Cidr::parse("127.0.0.0/33", &error));
  EXPECT_EQ(error, "'127.0.0.0/33': want a prefix length 0..32 after '/'");
  EXPECT_FALSE(Cidr::parse("::/129", &error));
  EXPECT_EQ(error, "'::/129': want a prefix length 0..128 after '/'");
  for (const char* bad : {"", "/8", "127.0.0.1/", "127.0.0.1/-1", "127.0.0.1/8x", "localhost",
                          "127.1", "1.2.3.4.5", "fe80::1%eth0", "127.0.0.0 /8", "::1/0128"}) {
    EXPECT_FALSE(Cidr::parse(bad, &error)) << bad;
    EXPECT_NE(error.find('\''), std::string::npos) << bad;
  }
}

TEST(Cidr, PeersOfOtherFamiliesAreNone) {
  sockaddr_storage ss{};
  ss.ss_family = AF_UNIX;
  EXPECT_FALSE(ip_of(reinterpret_cast<const sockaddr*>(&ss), sizeof ss));
  EXPECT_FALSE(ip_of(nullptr, 0));
  ss.ss_family = AF_INET;  // too short to be a sockaddr_in
  EXPECT_FALSE(ip_of(reinterpret_cast<const sockaddr*>(&ss), 4));
}

TEST(Cidr, AnyContains) {
  const Cidr blocks[] = {block("127.0.0.0/8"), block("::1/128")};
  EXPECT_TRUE(any_contains(blocks, v4("127.0.0.1")));
  EXPECT_TRUE(any_contains(blocks, v6("::1")));
  EXPECT_FALSE(any_contains(blocks, v4("192.168.1.1")));
  EXPECT_FALSE(any_contains({}, v4("127.0.0.1")));
}

}  // namespace
}  // namespace tokentap::auth
