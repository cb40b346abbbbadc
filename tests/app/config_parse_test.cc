// Config parsing: defaults, both flag spellings, the seeds' aliases and environment, bad input.
#include "tokentap/app/config_parse.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <map>
#include <string>
#include <vector>

namespace tokentap {
namespace {

struct Args {
  std::vector<std::string> storage;
  std::vector<const char*> argv;
  explicit Args(std::initializer_list<std::string> list) : storage(list) {
    storage.insert(storage.begin(), "tokentap");
    for (const auto& s : storage) argv.push_back(s.c_str());
  }
};

ParseOutcome parse(std::initializer_list<std::string> list,
                   std::map<std::string, std::string> env = {}) {
  Args args(list);
  return parse_config(static_cast<int>(args.argv.size()), args.argv.data(),
                      [env](const char* name) -> const char* {
                        auto it = env.find(name);
                        return it == env.end() ? nullptr : it->second.c_str();
                      });
}

std::uint16_t port_of(const Endpoint& ep) {
  return ntohs(reinterpret_cast<const sockaddr_in*>(&ep.addr)->sin_port);
}

TEST(Config, Defaults) {
  const auto out = parse({});
  ASSERT_EQ(out.kind, ParseOutcome::Kind::run) << out.error;
  EXPECT_EQ(port_of(out.config.listen), 11435);
  EXPECT_EQ(port_of(out.config.upstream), 11434);
  EXPECT_EQ(port_of(out.config.metrics_listen), 9836);
  EXPECT_EQ(out.config.upstream_host, "127.0.0.1:11434");
  EXPECT_GE(out.config.threads, 1);
  EXPECT_FALSE(out.config.preserve_host);
  EXPECT_EQ(out.config.max_models, 512u);
}

TEST(Config, GoAndGnuSpellings) {
  const auto out = parse({"-upstream", "http://127.0.0.1:9000", "--listen=127.0.0.1:7000",
                          "-threads=3", "--preserve-host"});
  ASSERT_EQ(out.kind, ParseOutcome::Kind::run) << out.error;
  EXPECT_EQ(port_of(out.config.upstream), 9000);
  EXPECT_EQ(port_of(out.config.listen), 7000);
  EXPECT_EQ(out.config.threads, 3);
  EXPECT_TRUE(out.config.preserve_host);
}

TEST(Config, SeedAliasesAndEnvironment) {
  auto out = parse({}, {{"OLLAMA_UPSTREAM", "http://localhost:8111/"}, {"LISTEN_ADDR", ":7001"}});
  ASSERT_EQ(out.kind, ParseOutcome::Kind::run) << out.error;
  EXPECT_EQ(port_of(out.config.upstream), 8111);
  EXPECT_EQ(out.config.upstream_host, "localhost:8111");
  EXPECT_EQ(port_of(out.config.listen), 7001);
  // A flag beats the environment.
  out = parse({"--ollama-url", "http://127.0.0.1:8222"}, {{"OLLAMA_UPSTREAM", "http://x:1"}});
  ASSERT_EQ(out.kind, ParseOutcome::Kind::run) << out.error;
  EXPECT_EQ(port_of(out.config.upstream), 8222);
}

TEST(Config, MaxBodyInBytesOrMiB) {
  auto out = parse({"--max-body-mb", "32"});
  ASSERT_EQ(out.kind, ParseOutcome::Kind::run) << out.error;
  EXPECT_EQ(out.config.max_body_bytes, 32u * 1024 * 1024);
  out = parse({"--max-body=1000"});
  EXPECT_EQ(out.config.max_body_bytes, 1000u);
}

// A temporary file holding `text`, removed when the test ends.
struct TempFile {
  std::string path;
  explicit TempFile(std::string_view text) {
    char name[] = "/tmp/tokentap-config-XXXXXX";
    const int fd = mkstemp(name);
    EXPECT_GE(fd, 0);
    EXPECT_EQ(write(fd, text.data(), text.size()), static_cast<ssize_t>(text.size()));
    close(fd);
    path = name;
  }
  ~TempFile() { unlink(path.c_str()); }
};

TEST(Config, MetricsTokenFromAFileDropsTheTrailingNewline) {
  const TempFile file("s3cret-token\n");
  auto out = parse({"--metrics-token-file", file.path});
  ASSERT_EQ(out.kind, ParseOutcome::Kind::run) << out.error;
  EXPECT_EQ(out.config.metrics_token, "s3cret-token");
  out = parse({"--metrics-token=abc"});
  ASSERT_EQ(out.kind, ParseOutcome::Kind::run) << out.error;
  EXPECT_EQ(out.config.metrics_token, "abc");
}

TEST(Config, BadMetricsTokensAreRefusedAtStart) {
  const TempFile empty("\n");
  const TempFile spaced("two words\n");
  const TempFile big(std::string(5000, 'x'));
  for (auto out : {parse({"--metrics-token-file", empty.path}),
                   parse({"--metrics-token-file", spaced.path}),
                   parse({"--metrics-token-file", big.path}),
                   parse({"--metrics-token-file", "/nonexistent/token"}),
                   parse({"--metrics-token", "a b"}),
                   parse({"--metrics-token", "x", "--metrics-token-file", spaced.path})}) {
    EXPECT_EQ(out.kind, ParseOutcome::Kind::error);
    EXPECT_NE(out.error.find("token"), std::string::npos) << out.error;
  }
}

TEST(Config, UnknownFlagIsNamedEvenWithoutAValue) {
  const auto out = parse({"--bogus"});
  EXPECT_EQ(out.error, "unknown flag --bogus (see --help)");
}

TEST(Config, HelpAndVersion) {
  EXPECT_EQ(parse({"--help"}).kind, ParseOutcome::Kind::help);
  EXPECT_EQ(parse({"-h"}).kind, ParseOutcome::Kind::help);
  EXPECT_EQ(parse({"--version"}).kind, ParseOutcome::Kind::version);
}

TEST(Config, BadInputIsOneClearLine) {
  for (auto out : {parse({"--bogus", "1"}), parse({"--threads", "0"}), parse({"--threads", "x"}),
                   parse({"--upstream", "https://127.0.0.1:1"}), parse({"--upstream", "http://"}),
                   parse({"--upstream", "http://127.0.0.1:99999"}),
                   parse({"--upstream", "http://127.0.0.1:1/api"}), parse({"--listen", "nope"}),
                   parse({"--listen"}), parse({"stray"}), parse({"--bogus"})}) {
    EXPECT_EQ(out.kind, ParseOutcome::Kind::error);
    EXPECT_FALSE(out.error.empty());
    EXPECT_EQ(out.error.find('\n'), std::string::npos) << out.error;
  }
}

}  // namespace
}  // namespace tokentap
