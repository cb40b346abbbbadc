// credential: Bearer (scheme case, spacing), x-api-key, both equal or different, repeated
// fields, other schemes and empty values.
#include "tokentap/auth/credential.h"

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

namespace tokentap::auth {
namespace {

using Fields = std::vector<std::pair<std::string, std::string>>;

Credential from(const Fields& fields) {
  CredentialFields seen;
  for (const auto& [name, value] : fields) seen.on_field(name, value);
  return extract_credential(seen);
}

void expect_secret(const Fields& fields, std::string_view secret) {
  const Credential c = from(fields);
  EXPECT_EQ(c.kind, CredentialKind::secret);
  EXPECT_EQ(c.secret, secret);
}

TEST(Credential, BearerSchemeIsCaseInsensitive) {
  expect_secret({{"Authorization", "Bearer tt-abc"}}, "tt-abc");
  expect_secret({{"authorization", "bearer tt-abc"}}, "tt-abc");
  expect_secret({{"AUTHORIZATION", "BEARER tt-abc"}}, "tt-abc");
  expect_secret({{"Authorization", "  Bearer \t  tt-abc  "}}, "tt-abc");
}

TEST(Credential, ApiKeyHeader) {
  expect_secret({{"x-api-key", "tt-abc"}}, "tt-abc");
  expect_secret({{"X-Api-Key", " tt-abc\t"}}, "tt-abc");
}

TEST(Credential, BothEqualIsOneSecretBothDifferentIsAConflict) {
  expect_secret({{"Authorization", "Bearer tt-a"}, {"x-api-key", "tt-a"}}, "tt-a");
  EXPECT_EQ(from({{"Authorization", "Bearer tt-a"}, {"x-api-key", "tt-b"}}).kind,
            CredentialKind::conflict);
}

TEST(Credential, RepeatedFieldsWithTwoValuesConflict) {
  EXPECT_EQ(from({{"x-api-key", "tt-a"}, {"x-api-key", "tt-b"}}).kind, CredentialKind::conflict);
  EXPECT_EQ(from({{"Authorization", "Bearer tt-a"}, {"Authorization", "Bearer tt-b"}}).kind,
            CredentialKind::conflict);
  // Another scheme repeated beside a Bearer is still two credentials.
  EXPECT_EQ(from({{"Authorization", "Bearer tt-a"}, {"Authorization", "Basic dTpw"}}).kind,
            CredentialKind::conflict);
  expect_secret({{"x-api-key", "tt-a"}, {"x-api-key", "tt-a"}}, "tt-a");
}

TEST(Credential, NoSecret) {
  EXPECT_EQ(from({}).kind, CredentialKind::none);
  EXPECT_EQ(from({{"Authorization", "Basic dXNlcjpwYXNz"}}).kind, CredentialKind::none);
  EXPECT_EQ(from({{"Authorization", "Bearer"}}).kind, CredentialKind::none);
  EXPECT_EQ(from({{"Authorization", "Bearer   "}}).kind, CredentialKind::none);
  EXPECT_EQ(from({{"Authorization", "Bearertt-abc"}}).kind, CredentialKind::none);
  EXPECT_EQ(from({{"x-api-key", ""}}).kind, CredentialKind::none);
  EXPECT_EQ(from({{"x-api-key-2", "tt-a"}, {"proxy-authorization", "Bearer tt-a"}}).kind,
            CredentialKind::none);
  // A Basic Authorization beside an x-api-key: the x-api-key is the credential.
  expect_secret({{"Authorization", "Basic dTpw"}, {"x-api-key", "tt-a"}}, "tt-a");
}

TEST(Credential, OnFieldSaysWhichFieldsCarryCredentials) {
  CredentialFields f;
  EXPECT_TRUE(f.on_field("Authorization", "Basic x"));
  EXPECT_TRUE(f.on_field("X-API-KEY", "k"));
  EXPECT_FALSE(f.on_field("Content-Type", "application/json"));
  EXPECT_FALSE(f.on_field("x-api-keys", "k"));
  EXPECT_TRUE(is_credential_field("authorization"));
  EXPECT_TRUE(is_credential_field("x-Api-key"));
  EXPECT_FALSE(is_credential_field("authorizatio"));
  EXPECT_EQ(bearer_secret("Bearer a b"), "a b");  // a malformed token is no key: unknown later
}

}  // namespace
}  // namespace tokentap::auth
