// Config keys: [[key]] tables in --config and in --keys FILE, anonymous_from and [anonymous],
// --state-dir and --forward-auth, every bad key table as one line naming the file, the line and
// the field, names and secrets unique across both files, and the warning for a key file others
// may read.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdio>
#include <filesystem>
#include <regex>
#include <string>
#include <vector>

#include "config_args.h"
#include "tokentap/app/config_parse.h"
#include "tokentap/auth/digest.h"

namespace tokentap {
namespace {

using test::parse;
using test::TempFile;

// sha256("tt-alice") and sha256("tt-bob"), as `tokentap hash-key` prints them.
std::string hash_of(std::string_view secret) { return auth::to_hex(*auth::sha256(secret)); }

std::string key_table(std::string_view name, std::string_view secret, std::string extra = "") {
  return fmt::format("[[key]]\nname = \"{}\"\nsha256 = \"{}\"\n{}", name, hash_of(secret), extra);
}

ParseOutcome parse_file(const std::string& toml, std::vector<std::string> more = {}) {
  const TempFile file(toml);
  chmod(file.path.c_str(), 0600);
  more.insert(more.begin(), {"--config", file.path});
  return parse(more);
}

TEST(ConfigKeys, KeyTablesInTheConfigFile) {
  const auto out = parse_file("threads = 1\n" +
                              key_table("alice", "tt-alice",
                                        "models = [\"llama3\", \"qwen2.5*\"]\n"
                                        "requests_per_minute = 60\ntokens_per_minute = 100000\n"
                                        "tokens_per_day = 1000000000000\n") +
                              key_table("bob", "tt-bob"));
  ASSERT_EQ(out.kind, ParseOutcome::Kind::run) << out.error;
  const auto& keys = out.config.keys;
  ASSERT_EQ(keys.size(), 2u);
  EXPECT_EQ(keys[0].name, "alice");
  EXPECT_EQ(keys[0].sha256, *auth::sha256("tt-alice"));
  EXPECT_EQ(keys[0].models, (std::vector<std::string>{"llama3", "qwen2.5*"}));
  EXPECT_EQ(keys[0].limits.requests_per_minute, 60u);
  EXPECT_EQ(keys[0].limits.tokens_per_minute, 100000u);
  EXPECT_EQ(keys[0].limits.tokens_per_day, key_tokens_per_day_max);
  EXPECT_NE(keys[0].origin.find(":2"), std::string::npos) << keys[0].origin;
  EXPECT_EQ(keys[1].name, "bob");
  EXPECT_TRUE(keys[1].models.empty());
  EXPECT_EQ(keys[1].limits.requests_per_minute, 0u);  // unlimited
  EXPECT_TRUE(out.warnings.empty());
  EXPECT_FALSE(out.config.forward_auth);
  EXPECT_EQ(out.config.state_dir, "");
}

TEST(ConfigKeys, NoKeysIsAuthOff) {
  const auto out = parse({});
  ASSERT_EQ(out.kind, ParseOutcome::Kind::run) << out.error;
  EXPECT_TRUE(out.config.keys.empty());
  EXPECT_TRUE(out.config.anonymous_from.empty());
}

TEST(ConfigKeys, KeysFileMergesAfterTheConfigFiles) {
  const TempFile keys(key_table("carol", "tt-carol") + key_table("dave", "tt-dave"));
  chmod(keys.path.c_str(), 0600);
  auto out = parse_file(key_table("alice", "tt-alice"), {"--keys", keys.path});
  ASSERT_EQ(out.kind, ParseOutcome::Kind::run) << out.error;
  ASSERT_EQ(out.config.keys.size(), 3u);
  EXPECT_EQ(out.config.keys[0].name, "alice");
  EXPECT_EQ(out.config.keys[2].name, "dave");
  EXPECT_EQ(out.config.keys_file, keys.path);
  // The same from the file's `keys` setting, and with no --config at all.
  out = parse_file(fmt::format("keys = \"{}\"\n", keys.path));
  ASSERT_EQ(out.kind, ParseOutcome::Kind::run) << out.error;
  EXPECT_EQ(out.config.keys.size(), 2u);
  out = parse({"--keys", keys.path});
  ASSERT_EQ(out.kind, ParseOutcome::Kind::run) << out.error;
  EXPECT_EQ(out.config.keys.size(), 2u);
}

TEST(ConfigKeys, AnonymousBlocksAndLimits) {
  const auto out = parse_file(key_table("alice", "tt-alice") +
                              "[anonymous]\nmodels = [\"tiny*\"]\nrequests_per_minute = 5\n"
                              "tokens_per_day = 7\n");
  // Keys of the root table must come before the first [table]; here anonymous_from is missing.
  EXPECT_NE(out.error.find("anonymous: limits for no one (set anonymous_from)"), std::string::npos)
      << out.error;
  const auto ok = parse_file("anonymous_from = [\"127.0.0.0/8\", \"::1/128\"]\n" +
                             key_table("alice", "tt-alice") +
                             "[anonymous]\nmodels = [\"tiny*\"]\nrequests_per_minute = 5\n"
                             "tokens_per_day = 7\n");
  ASSERT_EQ(ok.kind, ParseOutcome::Kind::run) << ok.error;
  EXPECT_EQ(ok.config.anonymous_from, (std::vector<std::string>{"127.0.0.0/8", "::1/128"}));
  EXPECT_EQ(ok.config.anonymous.name, "anonymous");
  EXPECT_EQ(ok.config.anonymous.models, std::vector<std::string>{"tiny*"});
  EXPECT_EQ(ok.config.anonymous.limits.requests_per_minute, 5u);
  EXPECT_EQ(ok.config.anonymous.limits.tokens_per_day, 7u);
  EXPECT_EQ(ok.config.anonymous.limits.tokens_per_minute, 0u);
}

TEST(ConfigKeys, AnonymousWithoutKeysIsAnError) {
  auto out = parse_file("anonymous_from = [\"127.0.0.0/8\"]\n");
  EXPECT_NE(out.error.find(":1: anonymous_from: no [[key]] is configured"), std::string::npos)
      << out.error;
  out = parse_file("anonymous_from = [\"127.0.0.0/8\"]\n[anonymous]\nrequests_per_minute = 1\n");
  EXPECT_EQ(out.kind, ParseOutcome::Kind::error);
}

TEST(ConfigKeys, StateDirAndForwardAuth) {
  auto out = parse({"--state-dir", "/var/lib/tokentap", "--forward-auth"});
  ASSERT_EQ(out.kind, ParseOutcome::Kind::run) << out.error;
  EXPECT_EQ(out.config.state_dir, "/var/lib/tokentap");
  EXPECT_TRUE(out.config.forward_auth);
  out = parse_file("state_dir = \"/srv/tt\"\nforward_auth = true\n");
  ASSERT_EQ(out.kind, ParseOutcome::Kind::run) << out.error;
  EXPECT_EQ(out.config.state_dir, "/srv/tt");
  EXPECT_TRUE(out.config.forward_auth);
  EXPECT_EQ(parse({"--state-dir="}).error, "--state-dir: want a directory");
  EXPECT_EQ(parse({"--keys="}).error, "--keys: want a file");
  const std::string help = help_text();
  for (const char* flag : {"--keys FILE", "--state-dir DIR", "--forward-auth", "keygen NAME"}) {
    EXPECT_NE(help.find(flag), std::string::npos) << flag;
  }
}

// Each bad key table is one line: "FILE:LINE: FIELD: problem".
TEST(ConfigKeys, EachBadKeyIsOneLineNamingFileLineAndField) {
  const std::string a = hash_of("tt-a");
  struct Case {
    std::string toml;
    std::string want;  // follows "FILE"
  };
  const Case cases[] = {
      {"key = 1\n", ":1: key: want [[key]] tables, not an integer"},
      {"[key]\nname = \"a\"\n", ":1: key: want [[key]] tables, not a table"},
      {"[[key]]\nsha256 = \"" + a + "\"\n", ":1: key[0]: no name (want name = \"NAME\")"},
      {"[[key]]\nname = \"a\"\n", ":1: key[0]: no sha256 (want sha256 = \"HEX\""},
      {"[[key]]\nname = \"a b\"\nsha256 = \"" + a + "\"\n",
       ":2: key[0].name = \"a b\": want 1..32 of A-Z a-z 0-9 _ . -"},
      {"[[key]]\nname = 5\n", ":2: key[0].name: want a string, not an integer"},
      {"[[key]]\nname = \"anonymous\"\nsha256 = \"" + a + "\"\n",
       ":2: key[0].name = \"anonymous\": reserved for the anonymous_from clients"},
      {"[[key]]\nname = \"a\"\nsha256 = \"abc\"\n",
       ":3: key[0].sha256: want 64 hex digits (tokentap hash-key prints them), not 3 characters"},
      {"[[key]]\nname = \"a\"\nsha256 = \"tt-0123456789\"\n",
       ":3: key[0].sha256: that is a secret, not its hash"},
      {"[[key]]\nname = \"a\"\nsha256 = \"" + a + "\"\nnme = 1\n",
       ":4: unknown key 'key[0].nme' (want name, sha256, models"},
      {"[[key]]\nname = \"a\"\nsha256 = \"" + a + "\"\nrequests_per_minute = -1\n",
       ":4: key[0].requests_per_minute = -1: want 0..1000000000 (0 = unlimited)"},
      {"[[key]]\nname = \"a\"\nsha256 = \"" + a + "\"\ntokens_per_day = 1000000000001\n",
       ":4: key[0].tokens_per_day = 1000000000001: want 0..1000000000000 (0 = unlimited)"},
      {"[[key]]\nname = \"a\"\nsha256 = \"" + a + "\"\ntokens_per_minute = \"5\"\n",
       ":4: key[0].tokens_per_minute: want an integer, not a string"},
      {"[[key]]\nname = \"a\"\nsha256 = \"" + a + "\"\nmodels = \"llama3\"\n",
       ":4: key[0].models: want an array of strings, not a string"},
      {"[[key]]\nname = \"a\"\nsha256 = \"" + a + "\"\nmodels = [\"ok\",\n \"l*a\"]\n",
       ":5: key[0].models[1] = \"l*a\": '*' only at the end (a prefix glob)"},
      {"[[key]]\nname = \"a\"\nsha256 = \"" + a + "\"\nmodels = [3]\n",
       ":4: key[0].models[0]: want a string, not an integer"},
      {"anonymous_from = \"127.0.0.0/8\"\n",
       ":1: anonymous_from: want an array of CIDRs, not a string"},
      {"anonymous_from = [\"127.0.0.1/8\"]\n",
       ":1: anonymous_from[0]: '127.0.0.1/8': host bits set (the block is 127.0.0.0/8)"},
      {"anonymous_from = [\n\"::1/129\"]\n",
       ":2: anonymous_from[0]: '::1/129': want a prefix length 0..128 after '/'"},
      {"anonymous_from = [1]\n", ":1: anonymous_from[0]: want a string, not an integer"},
      {"anonymous = 1\n", ":1: anonymous: want an [anonymous] table, not an integer"},
      {"[anonymous]\nname = \"x\"\n",
       ":2: unknown key 'anonymous.name' (want models, requests_per_minute"},
      {"[anonymous]\nrequests_per_minute = -2\n",
       ":2: anonymous.requests_per_minute = -2: want 0..1000000000 (0 = unlimited)"},
      {"[[key]]\nname = \"a\"\nsha256 = \"" + a + "\"\n[[key]]\nname = \"a\"\nsha256 = \"" +
           hash_of("tt-b") + "\"\n",
       ":4: key 'a': the name of another key ("},
      {"[[key]]\nname = \"a\"\nsha256 = \"" + a + "\"\n[[key]]\nname = \"b\"\nsha256 = \"" + a +
           "\"\n",
       ":4: key 'b': the same sha256 as key 'a' ("},
  };
  for (const Case& c : cases) {
    const TempFile file(c.toml);
    const auto out = parse({"--config", file.path});
    ASSERT_EQ(out.kind, ParseOutcome::Kind::error) << c.toml;
    EXPECT_EQ(out.error.rfind(file.path + c.want, 0), 0u) << c.toml << "\n" << out.error;
    EXPECT_EQ(out.error.find('\n'), std::string::npos) << out.error;
    EXPECT_EQ(out.error.find("tt-0123456789"), std::string::npos) << "a secret was echoed";
  }
}

TEST(ConfigKeys, KeysFileErrors) {
  const TempFile other("threads = 2\n" + key_table("a", "tt-a"));
  auto out = parse({"--keys", other.path});
  EXPECT_EQ(out.error, other.path +
                           ":1: unknown key 'threads' (a --keys file holds only "
                           "[[key]] tables)");
  out = parse({"--keys", "/nonexistent/keys.toml"});
  EXPECT_EQ(out.error, "--keys /nonexistent/keys.toml: cannot read: No such file or directory");
  out = parse_file("keys = \"/nonexistent/keys.toml\"\n");
  EXPECT_NE(out.error.find(":1: keys = /nonexistent/keys.toml: cannot read: No such file"),
            std::string::npos)
      << out.error;
  const TempFile empty("# no keys yet\n");
  out = parse({"--keys", empty.path});
  EXPECT_EQ(out.error, "--keys " + empty.path + ": no [[key]] table, so auth would be off");
  // A name or secret of the config file's again in the keys file.
  const TempFile dup(key_table("alice", "tt-other"));
  out = parse_file(key_table("alice", "tt-alice"), {"--keys", dup.path});
  EXPECT_EQ(out.error.rfind(dup.path + ":1: key 'alice': the name of another key (", 0), 0u)
      << out.error;
  const TempFile same(key_table("bob", "tt-alice"));
  out = parse_file(key_table("alice", "tt-alice"), {"--keys", same.path});
  EXPECT_NE(out.error.find("the same sha256 as key 'alice'"), std::string::npos) << out.error;
}

TEST(ConfigKeys, AtMostKeysMax) {
  std::string toml;
  for (std::uint32_t i = 0; i <= keys_max; ++i) {
    toml += key_table(fmt::format("k{}", i), fmt::format("tt-{}", i));
  }
  auto out = parse_file(toml);
  EXPECT_NE(out.error.find("key[1024]: more than 1024 keys"), std::string::npos) << out.error;
  toml.resize(toml.rfind("[[key]]"));
  out = parse_file(toml);
  ASSERT_EQ(out.kind, ParseOutcome::Kind::run) << out.error;
  EXPECT_EQ(out.config.keys.size(), keys_max);
}

TEST(ConfigKeys, WarningForAKeyFileOthersMayRead) {
  EXPECT_FALSE(key_file_warning("/k", 0100600));
  EXPECT_FALSE(key_file_warning("/k", 0100700));
  EXPECT_FALSE(key_file_warning("/k", 0100622));  // writable by others is another matter
  EXPECT_EQ(*key_file_warning("/etc/tokentap/keys.toml", 0100644),
            "warning: /etc/tokentap/keys.toml holds API key hashes and other users may read it "
            "(mode 0644); a weak secret can be recovered from its hash: chmod 600 "
            "/etc/tokentap/keys.toml");
  EXPECT_NE(key_file_warning("/k", 0100640)->find("(mode 0640)"), std::string::npos);
  EXPECT_NE(key_file_warning("/k", 0100604)->find("(mode 0604)"), std::string::npos);
  // Through the parser: the readable file is named, the private one is not.
  const TempFile open_keys(key_table("a", "tt-a"));
  chmod(open_keys.path.c_str(), 0644);
  auto out = parse_file(key_table("b", "tt-b"), {"--keys", open_keys.path});
  ASSERT_EQ(out.kind, ParseOutcome::Kind::run) << out.error;
  ASSERT_EQ(out.warnings.size(), 1u);
  EXPECT_NE(out.warnings[0].find(open_keys.path + " holds API key hashes"), std::string::npos);
  // A config file with no keys is no key file, whatever its mode.
  const TempFile plain("threads = 1\n");
  chmod(plain.path.c_str(), 0644);
  out = parse({"--config", plain.path});
  ASSERT_EQ(out.kind, ParseOutcome::Kind::run) << out.error;
  EXPECT_TRUE(out.warnings.empty());
}

TEST(ConfigKeys, TheReloadReaderAcceptsKeyTables) {
  const TempFile file("upstream = \"http://127.0.0.1:7601\"\nanonymous_from = [\"::1\"]\n" +
                      key_table("a", "tt-a"));
  std::vector<BackendConfig> out;
  std::string error;
  ASSERT_TRUE(load_backends_file(file.path, &out, &error)) << error;
  EXPECT_EQ(out.size(), 1u);
}

}  // namespace
}  // namespace tokentap

namespace tokentap {
namespace {

// The commented example in deploy/tokentap.toml, uncommented, is a valid file.
TEST(ConfigKeys, DeployExampleUncommentedParses) {
  const std::string path =
      (std::filesystem::path(__FILE__).parent_path().parent_path().parent_path() /
       "deploy/tokentap.toml")
          .string();
  std::FILE* f = std::fopen(path.c_str(), "r");
  ASSERT_NE(f, nullptr) << path;
  std::string text;
  char line[512];
  bool in_keys = false;
  static const std::regex setting(R"(^# (\[|[a-z_]+ = ))");
  while (std::fgets(line, sizeof line, f) != nullptr) {
    std::string l = line;
    if (l.rfind("# API keys", 0) == 0) in_keys = true;
    // A commented setting or table header is uncommented; prose stays a comment.
    if (in_keys && std::regex_search(l, setting)) l.erase(0, 2);
    if (in_keys && l.rfind("[[backend]]", 0) == 0) in_keys = false;
    const std::size_t hole = l.find("<64 hex digits from tokentap keygen alice>");
    if (hole != std::string::npos) l = "sha256 = \"" + hash_of("tt-alice") + "\"\n";
    text += l;
  }
  std::fclose(f);
  const auto out = parse_file(text);
  ASSERT_EQ(out.kind, ParseOutcome::Kind::run) << out.error << "\n" << text;
  ASSERT_EQ(out.config.keys.size(), 1u);
  EXPECT_EQ(out.config.keys[0].name, "alice");
  EXPECT_EQ(out.config.keys[0].limits.tokens_per_day, 2'000'000u);
  EXPECT_EQ(out.config.anonymous_from.size(), 2u);
  EXPECT_EQ(out.config.anonymous.limits.requests_per_minute, 120u);
  EXPECT_EQ(out.config.state_dir, "/var/lib/tokentap");
  EXPECT_EQ(out.config.backends.size(), 8u);
}

}  // namespace
}  // namespace tokentap
