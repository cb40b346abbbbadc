// digest: SHA-256 against FIPS 180-2 vectors, hex both ways, constant-time equality, base64url
// against RFC 4648 §10, and random bytes that differ between calls.
#include "tokentap/auth/digest.h"

#include <gtest/gtest.h>

#include <string>

namespace tokentap::auth {
namespace {

std::span<const std::uint8_t> bytes_of(std::string_view s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

TEST(Digest, Sha256KnownVectors) {
  EXPECT_EQ(to_hex(*sha256("")),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(to_hex(*sha256("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(to_hex(*sha256("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

TEST(Digest, HexRoundTripAndRefusals) {
  const Sha256 d = *sha256("tt-secret");
  EXPECT_EQ(parse_sha256_hex(to_hex(d)), d);
  std::string upper = to_hex(d);
  for (char& c : upper) c = static_cast<char>(std::toupper(c));
  EXPECT_EQ(parse_sha256_hex(upper), d);
  EXPECT_FALSE(parse_sha256_hex(to_hex(d).substr(1)));  // 63 digits
  EXPECT_FALSE(parse_sha256_hex(to_hex(d) + "0"));      // 65
  std::string bad = to_hex(d);
  bad[10] = 'g';
  EXPECT_FALSE(parse_sha256_hex(bad));
  EXPECT_FALSE(parse_sha256_hex(""));
}

TEST(Digest, ConstantTimeEquality) {
  const Sha256 a = *sha256("a");
  Sha256 b = a;
  EXPECT_TRUE(equal_in_constant_time(a, b));
  b[31] ^= 1;
  EXPECT_FALSE(equal_in_constant_time(a, b));
  b = a;
  b[0] ^= 0x80;
  EXPECT_FALSE(equal_in_constant_time(a, b));
}

TEST(Digest, Base64UrlRfc4648) {
  EXPECT_EQ(base64url(bytes_of("")), "");
  EXPECT_EQ(base64url(bytes_of("f")), "Zg");
  EXPECT_EQ(base64url(bytes_of("fo")), "Zm8");
  EXPECT_EQ(base64url(bytes_of("foo")), "Zm9v");
  EXPECT_EQ(base64url(bytes_of("foob")), "Zm9vYg");
  EXPECT_EQ(base64url(bytes_of("fooba")), "Zm9vYmE");
  EXPECT_EQ(base64url(bytes_of("foobar")), "Zm9vYmFy");
  const std::uint8_t url_only[] = {0xfb, 0xff};  // "+/8=" in standard base64
  EXPECT_EQ(base64url(url_only), "-_8");
}

TEST(Digest, RandomBytesDiffer) {
  std::uint8_t a[32] = {};
  std::uint8_t b[32] = {};
  std::string error;
  ASSERT_TRUE(random_bytes(a, &error)) << error;
  ASSERT_TRUE(random_bytes(b, &error)) << error;
  EXPECT_NE(std::string(a, a + 32), std::string(b, b + 32));
  EXPECT_NE(std::string(a, a + 32), std::string(32, '\0'));
}

}  // namespace
}  // namespace tokentap::auth
