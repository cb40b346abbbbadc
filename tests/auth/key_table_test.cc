// KeyTable: lookup by secret (every key, none, a near miss), the authentication decision for
// keys, anonymous peers and refusals, model patterns (tags, globs, case), names and ids.
#include "tokentap/auth/key_table.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>

#include <string>

namespace tokentap::auth {
namespace {

KeyConfig key(std::string name, std::string_view secret, std::vector<std::string> models = {}) {
  KeyConfig k;
  k.name = std::move(name);
  k.sha256 = *sha256(secret);
  k.models = std::move(models);
  return k;
}

KeyTable table_of(const Config& cfg) {
  KeyTable t;
  std::string error;
  EXPECT_TRUE(KeyTable::build(cfg, &t, &error)) << error;
  return t;
}

IpAddress v4(const char* text) {
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  inet_pton(AF_INET, text, &sa.sin_addr);
  return *ip_of(reinterpret_cast<const sockaddr*>(&sa), sizeof sa);
}

Credential secret(std::string_view s) { return Credential{CredentialKind::secret, s}; }

TEST(KeyTable, FindsEveryKeyAndNoOther) {
  Config cfg;
  for (int i = 0; i < 100; ++i) {
    cfg.keys.push_back(key("k" + std::to_string(i), "tt-secret-" + std::to_string(i)));
  }
  const KeyTable t = table_of(cfg);
  ASSERT_EQ(t.size(), 100u);
  for (KeyId i = 0; i < 100; ++i) EXPECT_EQ(t.find("tt-secret-" + std::to_string(i)), i);
  EXPECT_FALSE(t.find("tt-secret-100"));
  EXPECT_FALSE(t.find("tt-secret-1 "));
  EXPECT_FALSE(t.find(""));
}

TEST(KeyTable, NoKeysIsOff) {
  Config cfg;
  cfg.anonymous_from = {"127.0.0.0/8"};
  const KeyTable t = table_of(cfg);
  EXPECT_FALSE(t.enabled());
  EXPECT_EQ(t.authenticate(Credential{}, std::nullopt).verdict, AuthVerdict::off);
  EXPECT_EQ(t.authenticate(secret("x"), v4("10.0.0.1")).verdict, AuthVerdict::off);
}

TEST(KeyTable, AuthenticateDecisions) {
  Config cfg;
  cfg.keys = {key("alice", "tt-a"), key("bob", "tt-b")};
  cfg.anonymous_from = {"127.0.0.0/8", "::1/128"};
  const KeyTable t = table_of(cfg);
  const IpAddress local = v4("127.0.0.1");
  const IpAddress remote = v4("192.0.2.1");
  EXPECT_EQ(t.authenticate(secret("tt-b"), remote).verdict, AuthVerdict::key);
  EXPECT_EQ(t.authenticate(secret("tt-b"), remote).key, 1u);
  EXPECT_EQ(t.authenticate(secret("tt-a"), local).key, 0u);  // a key wins on loopback too
  EXPECT_EQ(t.authenticate(Credential{}, remote).verdict, AuthVerdict::missing);
  EXPECT_EQ(t.authenticate(secret("ollama"), remote).verdict, AuthVerdict::unknown);
  const Credential conflict{CredentialKind::conflict, {}};
  EXPECT_EQ(t.authenticate(conflict, remote).verdict, AuthVerdict::conflict);
  EXPECT_EQ(t.authenticate(Credential{}, std::nullopt).verdict, AuthVerdict::missing);
  for (const Credential& c : {Credential{}, secret("ollama"), conflict}) {
    const Authentication a = t.authenticate(c, local);
    EXPECT_EQ(a.verdict, AuthVerdict::anonymous);
    EXPECT_EQ(a.key, t.anonymous_id());
  }
  EXPECT_TRUE(refused(AuthVerdict::missing));
  EXPECT_TRUE(refused(AuthVerdict::unknown));
  EXPECT_TRUE(refused(AuthVerdict::conflict));
  EXPECT_FALSE(refused(AuthVerdict::anonymous));
  EXPECT_FALSE(refused(AuthVerdict::key));
  EXPECT_FALSE(refused(AuthVerdict::off));
}

TEST(KeyTable, NamesIdsAndLimits) {
  Config cfg;
  cfg.keys = {key("alice", "tt-a"), key("bob", "tt-b")};
  cfg.keys[1].limits.requests_per_minute = 7;
  cfg.anonymous.limits.tokens_per_day = 9;
  const KeyTable t = table_of(cfg);
  EXPECT_EQ(t.slot_count(), 3u);
  EXPECT_EQ(t.name(0), "alice");
  EXPECT_EQ(t.name(t.anonymous_id()), "anonymous");
  EXPECT_EQ(t.id_of("bob"), 1u);
  EXPECT_EQ(t.id_of("anonymous"), 2u);
  EXPECT_FALSE(t.id_of("carol"));
  const std::vector<KeyLimits> limits = t.slot_limits();
  ASSERT_EQ(limits.size(), 3u);
  EXPECT_EQ(limits[1].requests_per_minute, 7u);
  EXPECT_EQ(limits[2].tokens_per_day, 9u);
  EXPECT_EQ(limits[0].requests_per_minute, 0u);
}

TEST(KeyTable, BadCidrIsAnError) {
  Config cfg;
  cfg.keys = {key("alice", "tt-a")};
  cfg.anonymous_from = {"127.0.0.1/8"};
  KeyTable t;
  std::string error;
  EXPECT_FALSE(KeyTable::build(cfg, &t, &error));
  EXPECT_NE(error.find("host bits"), std::string::npos) << error;
}

TEST(ModelPattern, TagsAreOllamasLatest) {
  EXPECT_TRUE(model_matches("llama3", "llama3:latest"));
  EXPECT_TRUE(model_matches("llama3:latest", "llama3"));
  EXPECT_TRUE(model_matches("llama3", "llama3"));
  EXPECT_TRUE(model_matches("LLama3", "llama3:LATEST"));
  EXPECT_FALSE(model_matches("llama3", "llama3:8b"));
  EXPECT_FALSE(model_matches("llama3:8b", "llama3"));
  EXPECT_FALSE(model_matches("llama3", "llama3.1"));
  EXPECT_FALSE(model_matches("llama", "llama3"));
  // A registry port is not a tag.
  EXPECT_TRUE(model_matches("host:5000/ns/m", "host:5000/ns/m:latest"));
  EXPECT_FALSE(model_matches("host:5000/ns/m", "host:5000/ns/m:7b"));
}

TEST(ModelPattern, PrefixGlobs) {
  EXPECT_TRUE(model_matches("*", "anything:at-all"));
  EXPECT_TRUE(model_matches("llama3*", "llama3"));
  EXPECT_TRUE(model_matches("llama3*", "llama3:8b"));
  EXPECT_TRUE(model_matches("llama3*", "llama3.1:latest"));
  EXPECT_TRUE(model_matches("Llama3*", "llama3.1"));
  EXPECT_FALSE(model_matches("llama3*", "llama2"));
  EXPECT_FALSE(model_matches("llama3*", "llam"));
  // The glob reads the full name, `:latest` filled in.
  EXPECT_TRUE(model_matches("llama3:*", "llama3"));
  EXPECT_TRUE(model_matches("llama3:lat*", "llama3"));
  EXPECT_TRUE(model_matches("llama3:latest*", "llama3"));
  EXPECT_FALSE(model_matches("llama3:latest2*", "llama3"));
  EXPECT_FALSE(model_matches("llama3:8*", "llama3"));
  EXPECT_TRUE(model_matches("llama3:8*", "llama3:8b-instruct"));
  EXPECT_FALSE(model_matches("qwen*", ""));
}

TEST(ModelPattern, Validation) {
  std::string problem;
  EXPECT_TRUE(valid_model_pattern("llama3", &problem));
  EXPECT_TRUE(valid_model_pattern("llama3:8b*", &problem));
  EXPECT_TRUE(valid_model_pattern("*", &problem));
  EXPECT_FALSE(valid_model_pattern("", &problem));
  EXPECT_FALSE(valid_model_pattern("ll*ma", &problem));
  EXPECT_EQ(problem, "'*' only at the end (a prefix glob)");
  EXPECT_FALSE(valid_model_pattern("llama 3", &problem));
  EXPECT_FALSE(valid_model_pattern(std::string(257, 'a'), &problem));
  EXPECT_TRUE(valid_model_pattern(std::string(256, 'a'), &problem));
}

TEST(KeyTable, ModelAllowed) {
  Config cfg;
  cfg.keys = {key("alice", "tt-a", {"llama3", "qwen2.5*"}), key("bob", "tt-b")};
  cfg.anonymous.models = {"tiny*"};
  const KeyTable t = table_of(cfg);
  EXPECT_TRUE(t.model_allowed(0, "llama3:latest"));
  EXPECT_TRUE(t.model_allowed(0, "qwen2.5:7b"));
  EXPECT_FALSE(t.model_allowed(0, "llama3:70b"));
  EXPECT_FALSE(t.model_allowed(0, "mistral"));
  EXPECT_TRUE(t.model_allowed(1, "mistral"));  // no `models`: any
  EXPECT_TRUE(t.model_allowed(t.anonymous_id(), "tinyllama"));
  EXPECT_FALSE(t.model_allowed(t.anonymous_id(), "llama3"));
}

TEST(KeyName, Charset) {
  EXPECT_TRUE(valid_key_name("alice"));
  EXPECT_TRUE(valid_key_name("team-a.ci_1"));
  EXPECT_TRUE(valid_key_name(std::string(32, 'x')));
  EXPECT_FALSE(valid_key_name(std::string(33, 'x')));
  EXPECT_FALSE(valid_key_name(""));
  EXPECT_FALSE(valid_key_name("a b"));
  EXPECT_FALSE(valid_key_name("a\"b"));
  EXPECT_FALSE(valid_key_name("ünï"));
}

}  // namespace
}  // namespace tokentap::auth
