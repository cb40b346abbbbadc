// Cidr: an address block of anonymous_from ("127.0.0.0/8", "::1/128"), parsed once at start and
// matched against a client's peer address per request.
//
// Every address is held in IPv6 form: an IPv4 block a.b.c.d/n is the IPv4-mapped block
// ::ffff:a.b.c.d/(96+n), and an AF_INET peer is mapped the same way, so a client that reaches a
// dual-stack listener as ::ffff:127.0.0.1 matches the rule "127.0.0.0/8" exactly as an AF_INET
// peer does. Matching is a 16-byte masked compare: no allocation, no system call.
//
// Parsing is strict: inet_pton's forms only (no zone ids, no shortened IPv4), a prefix length in
// range, and no host bits set ("10.0.0.5/8" is refused with the block it probably meant), so a
// typo never quietly widens who gets in without a key. A bare address is a one-address block.
#pragma once

#include <sys/socket.h>

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace tokentap::auth {

// An address in IPv6 form (IPv4 as ::ffff:a.b.c.d).
struct IpAddress {
  std::array<std::uint8_t, 16> bytes{};
};

// The peer of an accepted socket (AF_INET or AF_INET6) in IPv6 form; nullopt for other families.
[[nodiscard]] std::optional<IpAddress> ip_of(const sockaddr* addr, socklen_t len);

struct Cidr {
  IpAddress base;                // host bits zero
  std::uint8_t prefix_bits = 0;  // 0..128, in the IPv6 form

  // "ADDR/BITS" or "ADDR"; on failure nullopt and *error says why (naming the text).
  [[nodiscard]] static std::optional<Cidr> parse(std::string_view text, std::string* error);

  [[nodiscard]] bool contains(const IpAddress& ip) const;
};

// True when some block of `blocks` contains `ip`.
[[nodiscard]] bool any_contains(std::span<const Cidr> blocks, const IpAddress& ip);

}  // namespace tokentap::auth
