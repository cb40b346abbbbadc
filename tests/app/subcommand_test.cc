// subcommand: keygen (a fresh secret whose printed table parses and whose hash matches),
// hash-key (newline handling, refusals), usage (each grouping as a table, filters, defaults,
// errors), and the binary dispatching them from main()'s first line.
#include "tokentap/app/subcommand.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "config_args.h"
#include "ledger/temp_dir.h"
#include "tokentap/app/config_parse.h"
#include "tokentap/auth/digest.h"
#include "tokentap/ledger/ledger_store.h"

namespace tokentap {
namespace {

using Args = std::vector<std::string_view>;

constexpr std::int64_t may1 = 1'714'521'600;  // 2024-05-01T00:00:00Z

TEST(Keygen, PrintsAFreshSecretAndATableThatParses) {
  const SubcommandResult a = keygen(Args{"alice"});
  ASSERT_EQ(a.status, 0) << a.err;
  EXPECT_EQ(a.err, "");
  const std::string secret = a.out.substr(0, a.out.find('\n'));
  EXPECT_EQ(secret.size(), secret_prefix.size() + 43);  // 32 bytes in unpadded base64url
  EXPECT_EQ(secret.rfind("tt-", 0), 0u);
  EXPECT_EQ(secret.find_first_not_of("tt-ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                     "0123456789_-"),
            std::string::npos);
  EXPECT_NE(a.out.find("sha256 = \"" + auth::to_hex(*auth::sha256(secret)) + "\""),
            std::string::npos);
  const SubcommandResult b = keygen(Args{"alice"});
  EXPECT_NE(b.out.substr(0, b.out.find('\n')), secret);
  // Everything from the table on is a key file; the secret itself is not in it.
  const std::string table = a.out.substr(a.out.find("[[key]]"));
  EXPECT_EQ(table.find(secret), std::string::npos);
  const test::TempFile file(table);
  chmod(file.path.c_str(), 0600);
  const ParseOutcome out = test::parse({"--keys", file.path});
  ASSERT_EQ(out.kind, ParseOutcome::Kind::run) << out.error;
  ASSERT_EQ(out.config.keys.size(), 1u);
  EXPECT_EQ(out.config.keys[0].name, "alice");
  EXPECT_EQ(out.config.keys[0].sha256, *auth::sha256(secret));
}

TEST(Keygen, TextForAGivenSecret) {
  const std::string text = keygen_text("bob", "tt-x");
  EXPECT_EQ(text.rfind("tt-x\n\n", 0), 0u);
  EXPECT_NE(text.find("[[key]]\nname = \"bob\"\nsha256 = \"" + auth::to_hex(*auth::sha256("tt-x")) +
                      "\"\n"),
            std::string::npos);
}

TEST(Keygen, Refusals) {
  EXPECT_EQ(keygen(Args{}).status, 2);
  EXPECT_EQ(keygen(Args{}).err, "usage: tokentap keygen NAME\n");
  EXPECT_EQ(keygen(Args{"a", "b"}).status, 2);
  EXPECT_EQ(keygen(Args{"--help"}).status, 2);
  EXPECT_EQ(keygen(Args{"a b"}).err, "tokentap keygen: 'a b': want 1..32 of A-Z a-z 0-9 _ . -\n");
  EXPECT_EQ(keygen(Args{"anonymous"}).status, 2);
  EXPECT_EQ(keygen(Args{"anonymous"}).out, "");
}

TEST(HashKey, StripsOneTrailingNewline) {
  const std::string want = auth::to_hex(*auth::sha256("tt-secret")) + "\n";
  EXPECT_EQ(hash_key(Args{}, "tt-secret").out, want);
  EXPECT_EQ(hash_key(Args{}, "tt-secret\n").out, want);
  EXPECT_EQ(hash_key(Args{}, "tt-secret\r\n").out, want);
  EXPECT_EQ(hash_key(Args{}, "tt-secret").status, 0);
  // Only one: a second newline is part of what was given, and no header can carry it.
  EXPECT_EQ(hash_key(Args{}, "tt-secret\n\n").status, 2);
  EXPECT_EQ(hash_key(Args{}, " tt-secret").status, 2);
}

TEST(HashKey, Refusals) {
  SubcommandResult r = hash_key(Args{"tt-secret"}, "");
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("reads the secret on stdin"), std::string::npos);
  EXPECT_EQ(r.err.find("tt-secret"), std::string::npos);  // never echoed
  EXPECT_EQ(hash_key(Args{}, "").err, "tokentap hash-key: no secret on stdin\n");
  EXPECT_EQ(hash_key(Args{}, "\n").status, 2);
  EXPECT_EQ(hash_key(Args{}, "a\tb").status, 2);
  EXPECT_EQ(hash_key(Args{}, std::string(secret_bytes_max + 1, 'a')).status, 2);
  EXPECT_EQ(hash_key(Args{}, std::string(secret_bytes_max, 'a')).status, 0);
}

// alice: llama3 on gpu0 at 00:00 and qwen on gpu1 at 01:00 on May 1; bob: llama3 on May 2.
void fill_ledger(const std::string& dir) {
  std::string error;
  auto store = ledger::LedgerStore::open(dir, ledger::LedgerStore::Mode::write, &error);
  ASSERT_TRUE(store) << error;
  const std::vector<ledger::UsageDelta> rows = {
      {"alice", "llama3", "gpu0", may1, {2, 100, 2000, 0}},
      {"alice", "qwen2.5:7b", "gpu1", may1 + 3600, {1, 5, 7, 1}},
      {"bob", "llama3", "gpu1", may1 + 86'400, {30, 3, 4, 0}},
  };
  ASSERT_TRUE(store->add(rows, &error)) << error;
}

TEST(Usage, TablesByModelBackendAndHour) {
  const test::TempDir dir;
  fill_ledger(dir.path);
  const std::string state = "--state-dir=" + dir.path;
  SubcommandResult r = usage(Args{state, "--since", "2024-05-01"}, may1 + 2 * 86'400);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out,
            "usage by every key since 2024-05-01T00:00:00Z, by model\n"
            "\n"
            "key    model       requests  prompt_tokens  completion_tokens  errors\n"
            "alice  llama3             2            100               2000       0\n"
            "alice  qwen2.5:7b         1              5                  7       1\n"
            "bob    llama3            30              3                  4       0\n"
            "total                    33            108               2011       1\n");
  r = usage(Args{"--state-dir", dir.path, "--key", "alice", "--by", "backend", "--since",
                 "2024-05-01T00:00:00Z"},
            may1);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out,
            "usage by key alice since 2024-05-01T00:00:00Z, by backend\n"
            "\n"
            "key    backend  requests  prompt_tokens  completion_tokens  errors\n"
            "alice  gpu0            2            100               2000       0\n"
            "alice  gpu1            1              5                  7       1\n"
            "total                  3            105               2007       1\n");
  r = usage(Args{state, "--key=alice", "--by=hour", "--since=2024-05-01T01:30:00+00:00"}, may1);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out,
            "usage by key alice since 2024-05-01T01:00:00Z, by hour\n"
            "\n"
            "key    hour                  requests  prompt_tokens  completion_tokens  errors\n"
            "alice  2024-05-01T01:00:00Z         1              5                  7       1\n"
            "total                               1              5                  7       1\n");
}

TEST(Usage, SinceDefaultsToTodayUtc) {
  const test::TempDir dir;
  fill_ledger(dir.path);
  // "Now" on May 2: only bob's row is today's.
  SubcommandResult r = usage(Args{"--state-dir", dir.path}, may1 + 86'400 + 5000);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("since 2024-05-02T00:00:00Z"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("bob "), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("alice"), std::string::npos) << r.out;
  r = usage(Args{"--state-dir", dir.path}, may1 + 5 * 86'400);
  EXPECT_EQ(r.out, "no usage by every key since 2024-05-06T00:00:00Z\n");
}

TEST(Usage, Errors) {
  const test::TempDir dir;
  SubcommandResult r = usage(Args{}, may1);
  EXPECT_EQ(r.status, 2);
  EXPECT_EQ(r.err.rfind("tokentap usage: --state-dir DIR is required\n", 0), 0u);
  r = usage(Args{"--state-dir", dir.path}, may1);
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("usage.sqlite3: no ledger here"), std::string::npos) << r.err;
  fill_ledger(dir.path);
  EXPECT_EQ(usage(Args{"--state-dir", dir.path, "--by", "day"}, may1)
                .err.rfind("tokentap usage: --by 'day': want model, hour or backend\n", 0),
            0u);
  EXPECT_EQ(usage(Args{"--state-dir", dir.path, "--since", "yesterday"}, may1).status, 2);
  EXPECT_EQ(usage(Args{"--state-dir", dir.path, "--key"}, may1)
                .err.rfind("tokentap usage: --key needs a value\n", 0),
            0u);
  EXPECT_EQ(usage(Args{"--state-dir", dir.path, "extra"}, may1).status, 2);
}

// The binary: main()'s first line sends subcommands here and everything else to the proxy.
std::string run(const std::string& command, int* status) {
  std::FILE* p = popen(command.c_str(), "r");
  std::string out;
  char buf[4096];
  std::size_t n = 0;
  while (p != nullptr && (n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  const int rc = p == nullptr ? -1 : pclose(p);
  *status = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
  return out;
}

TEST(Subcommand, TheBinaryDispatches) {
  const char* binary = std::getenv("TOKENTAP_BINARY");
  if (binary == nullptr) GTEST_SKIP() << "TOKENTAP_BINARY is set by ctest";
  int status = 0;
  EXPECT_EQ(run("printf tt-x | " + std::string(binary) + " hash-key", &status),
            auth::to_hex(*auth::sha256("tt-x")) + "\n");
  EXPECT_EQ(status, 0);
  EXPECT_NE(run(std::string(binary) + " keygen carol", &status).find("name = \"carol\""),
            std::string::npos);
  EXPECT_EQ(status, 0);
  run(std::string(binary) + " keygen 2>/dev/null", &status);
  EXPECT_EQ(status, 2);
  EXPECT_NE(run(std::string(binary) + " --help", &status).find("usage: tokentap [flags]"),
            std::string::npos);
  EXPECT_EQ(status, 0);
  run(std::string(binary) + " unknown-word 2>/dev/null", &status);  // the proxy's parser says no
  EXPECT_EQ(status, 2);
}

}  // namespace
}  // namespace tokentap
