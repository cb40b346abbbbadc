// Cidr: parsing with inet_pton and the masked compare of cidr.h.
#include "tokentap/auth/cidr.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <charconv>
#include <cstring>

namespace tokentap::auth {
namespace {

constexpr std::uint8_t ipv6_bits = 128;
constexpr std::uint8_t ipv4_bits = 32;
constexpr std::uint8_t mapped_prefix_bits = ipv6_bits - ipv4_bits;  // ::ffff:0:0/96
constexpr std::size_t address_text_bytes_max = INET6_ADDRSTRLEN;

IpAddress mapped(const in_addr& v4) {
  IpAddress ip;
  ip.bytes[10] = 0xff;
  ip.bytes[11] = 0xff;
  std::memcpy(&ip.bytes[12], &v4, 4);
  return ip;
}

// The mask byte of byte `i` for a prefix of `bits`.
std::uint8_t mask_byte(std::size_t i, std::uint8_t bits) {
  const int left = static_cast<int>(bits) - static_cast<int>(i) * 8;
  if (left >= 8) return 0xff;
  if (left <= 0) return 0;
  return static_cast<std::uint8_t>(0xff << (8 - left));
}

// The address part alone: IPv4 dotted quad or any inet_pton IPv6 form.
bool parse_address(std::string_view text, IpAddress* out, bool* v4) {
  if (text.empty() || text.size() >= address_text_bytes_max) return false;
  char buf[address_text_bytes_max];
  std::memcpy(buf, text.data(), text.size());
  buf[text.size()] = '\0';
  in_addr a4{};
  if (inet_pton(AF_INET, buf, &a4) == 1) {
    *out = mapped(a4);
    *v4 = true;
    return true;
  }
  in6_addr a6{};
  if (inet_pton(AF_INET6, buf, &a6) == 1) {
    std::memcpy(out->bytes.data(), &a6, 16);
    *v4 = false;
    return true;
  }
  return false;
}

std::string block_text(const IpAddress& base, bool v4, std::uint8_t bits) {
  char buf[address_text_bytes_max];
  if (v4) {
    inet_ntop(AF_INET, &base.bytes[12], buf, sizeof buf);
    return std::string(buf) + "/" + std::to_string(bits - mapped_prefix_bits);
  }
  inet_ntop(AF_INET6, base.bytes.data(), buf, sizeof buf);
  return std::string(buf) + "/" + std::to_string(bits);
}

}  // namespace

std::optional<IpAddress> ip_of(const sockaddr* addr, socklen_t len) {
  if (addr == nullptr) return std::nullopt;
  if (addr->sa_family == AF_INET && len >= static_cast<socklen_t>(sizeof(sockaddr_in))) {
    return mapped(reinterpret_cast<const sockaddr_in*>(addr)->sin_addr);
  }
  if (addr->sa_family == AF_INET6 && len >= static_cast<socklen_t>(sizeof(sockaddr_in6))) {
    IpAddress ip;
    std::memcpy(ip.bytes.data(), &reinterpret_cast<const sockaddr_in6*>(addr)->sin6_addr, 16);
    return ip;
  }
  return std::nullopt;
}

std::optional<Cidr> Cidr::parse(std::string_view text, std::string* error) {
  const std::size_t slash = text.find('/');
  const std::string_view address = text.substr(0, slash);
  Cidr out;
  bool v4 = false;
  if (!parse_address(address, &out.base, &v4)) {
    *error = "'" + std::string(text) + "': not an IPv4 or IPv6 address";
    return std::nullopt;
  }
  const std::uint8_t family_bits = v4 ? ipv4_bits : ipv6_bits;
  unsigned bits = family_bits;
  if (slash != std::string_view::npos) {
    const std::string_view digits = text.substr(slash + 1);
    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), bits);
    if (digits.empty() || digits.size() > 3 || ec != std::errc{} ||
        end != digits.data() + digits.size() || bits > family_bits) {
      *error = "'" + std::string(text) + "': want a prefix length 0.." +
               std::to_string(family_bits) + " after '/'";
      return std::nullopt;
    }
  }
  out.prefix_bits = static_cast<std::uint8_t>(v4 ? bits + mapped_prefix_bits : bits);
  IpAddress masked = out.base;
  for (std::size_t i = 0; i < masked.bytes.size(); ++i) {
    masked.bytes[i] &= mask_byte(i, out.prefix_bits);
  }
  if (masked.bytes != out.base.bytes) {
    *error = "'" + std::string(text) + "': host bits set (the block is " +
             block_text(masked, v4, out.prefix_bits) + ")";
    return std::nullopt;
  }
  return out;
}

bool Cidr::contains(const IpAddress& ip) const {
  std::uint8_t diff = 0;
  for (std::size_t i = 0; i < ip.bytes.size(); ++i) {
    diff |= static_cast<std::uint8_t>((ip.bytes[i] ^ base.bytes[i]) & mask_byte(i, prefix_bits));
  }
  return diff == 0;
}

bool any_contains(std::span<const Cidr> blocks, const IpAddress& ip) {
  for (const Cidr& c : blocks) {
    if (c.contains(ip)) return true;
  }
  return false;
}

}  // namespace tokentap::auth
