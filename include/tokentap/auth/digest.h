// digest: SHA-256 of a secret, hex in and out, constant-time comparison, and random bytes for new
// secrets. The only place tokentap touches OpenSSL's libcrypto (Debian libssl-dev): a
// well-kept SHA-256 and CRYPTO_memcmp, because crypto is never hand-written here.
//
// Cost: one SHA-256 of a ~50-byte secret per request that carries a credential (never per byte).
// OpenSSL 3 allocates a digest context per EVP_Digest call; the digest itself is fetched once
// (EVP_MD_fetch) so no call takes the provider store's lock.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "tokentap/base/config.h"

namespace tokentap::auth {

using Sha256 = std::array<std::uint8_t, key_sha256_bytes>;

// SHA-256 of `data`; nullopt only when libcrypto cannot run (out of memory).
[[nodiscard]] std::optional<Sha256> sha256(std::string_view data);

// Lower-case hex, 64 characters.
[[nodiscard]] std::string to_hex(const Sha256& digest);

// 64 hex digits (either case) → the digest; nullopt for anything else.
[[nodiscard]] std::optional<Sha256> parse_sha256_hex(std::string_view hex);

// True when a == b, in time that depends only on the length (CRYPTO_memcmp).
[[nodiscard]] bool equal_in_constant_time(const Sha256& a, const Sha256& b);

// Fills `out` from the kernel's CSPRNG (getrandom(2)); false with *error on failure.
[[nodiscard]] bool random_bytes(std::span<std::uint8_t> out, std::string* error);

// RFC 4648 §5 base64url without padding (the secret's text form).
[[nodiscard]] std::string base64url(std::span<const std::uint8_t> bytes);

}  // namespace tokentap::auth
