// --config FILE: every flag as a TOML key, `upstream` and [[backend]] tables, precedence (env <
// file < flags), each bad file as one line naming the file, the line and the key, the shipped
// deploy/tokentap.toml, and load_backends_file (the SIGHUP reload's reader).
#include <arpa/inet.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "config_args.h"
#include "tokentap/app/config_parse.h"

namespace tokentap {
namespace {

namespace fs = std::filesystem;

using test::parse;
using test::port_of;

using test::TempFile;

ParseOutcome parse_file(std::string_view toml, std::vector<std::string> more = {},
                        std::map<std::string, std::string> env = {}) {
  const TempFile file(toml);
  more.insert(more.begin(), {"--config", file.path});
  return parse(more, env);
}

fs::path repo_root() { return fs::path(__FILE__).parent_path().parent_path().parent_path(); }

TEST(ConfigFile, EveryFlagIsAKey) {
  const TempFile token("file-token\n");
  const std::string toml = fmt::format(R"(
listen = "127.0.0.1:7100"
metrics_listen = "127.0.0.1:7101"
threads = 3
preserve_host = true
metrics_on_proxy = true
max_models = 7
max_body_mb = 2
drain_timeout = 1234
head_timeout = 2345
idle_timeout = 3456
max_connections = 99
buffers = 64
sq_entries = 128
health_interval = 500
retries = 5
metrics_token_file = "{}"
access_log = "-"
upstream = "http://127.0.0.1:7102"
)",
                                       token.path);
  const TempFile file(toml);
  const auto out = parse({"--config", file.path});
  ASSERT_EQ(out.kind, ParseOutcome::Kind::run) << out.error;
  const Config& c = out.config;
  EXPECT_EQ(c.config_file, file.path);
  EXPECT_EQ(port_of(c.listen), 7100);
  EXPECT_EQ(port_of(c.metrics_listen), 7101);
  EXPECT_EQ(c.threads, 3);
  EXPECT_TRUE(c.preserve_host);
  EXPECT_TRUE(c.metrics_on_proxy);
  EXPECT_EQ(c.max_models, 7u);
  EXPECT_EQ(c.max_body_bytes, 2 * mib);
  EXPECT_EQ(c.drain_timeout_ms, 1234u);
  EXPECT_EQ(c.head_timeout_ms, 2345u);
  EXPECT_EQ(c.idle_timeout_ms, 3456u);
  EXPECT_EQ(c.max_connections, 99u);
  EXPECT_EQ(c.ring_buffers, 64u);
  EXPECT_EQ(c.sq_entries, 128u);
  EXPECT_EQ(c.health_interval_ms, 500u);
  EXPECT_EQ(c.retries, 5u);
  EXPECT_EQ(c.metrics_token, "file-token");
  EXPECT_EQ(c.access_log, "-");
  ASSERT_EQ(c.backends.size(), 1u);
  EXPECT_EQ(c.upstream_host, "127.0.0.1:7102");
}

TEST(ConfigFile, TheRemainingKeys) {
  auto out = parse_file("max_body = 1000\nmetrics_token = \"abc\"\npreserve_host = false\n");
  ASSERT_EQ(out.kind, ParseOutcome::Kind::run) << out.error;
  EXPECT_EQ(out.config.max_body_bytes, 1000u);
  EXPECT_EQ(out.config.metrics_token, "abc");
  EXPECT_FALSE(out.config.preserve_host);
  out = parse_file("ollama_url = \"http://127.0.0.1:7103\"\n");  // the seeds' alias
  ASSERT_EQ(out.kind, ParseOutcome::Kind::run) << out.error;
  EXPECT_EQ(port_of(out.config.upstream), 7103);
}

TEST(ConfigFile, UpstreamArrayThenBackendTables) {
  const auto out = parse_file(R"(
upstream = ["a=http://127.0.0.1:7200", "http://127.0.0.1:7201"]

[[backend]]
url = "http://127.0.0.1:7202"

[[backend]]
name = "big"
url = "http://localhost:7203/"
weight = 1000
max_parallel = 1024
)");
  ASSERT_EQ(out.kind, ParseOutcome::Kind::run) << out.error;
  const auto& bs = out.config.backends;
  ASSERT_EQ(bs.size(), 4u);
  EXPECT_EQ(bs[0].name, "a");
  EXPECT_EQ(bs[1].name, "127.0.0.1:7201");
  EXPECT_EQ(bs[2].name, "127.0.0.1:7202");
  EXPECT_EQ(bs[2].weight, 1u);
  EXPECT_EQ(bs[2].max_parallel, 1u);
  EXPECT_EQ(bs[3].name, "big");
  EXPECT_EQ(bs[3].url, "http://localhost:7203/");
  EXPECT_EQ(bs[3].host_header, "localhost:7203");
  EXPECT_EQ(bs[3].weight, 1000u);
  EXPECT_EQ(bs[3].max_parallel, 1024u);
  for (std::size_t i = 0; i < bs.size(); ++i) EXPECT_EQ(port_of(bs[i].endpoint), 7200 + i);
  EXPECT_EQ(out.config.upstream_host, "127.0.0.1:7200");
}

TEST(ConfigFile, FlagsOverrideTheFileWhereverTheyStand) {
  const TempFile file(
      "threads = 3\nretries = 1\nlisten = \"127.0.0.1:7300\"\n"
      "[[backend]]\nname = \"f0\"\nurl = \"http://127.0.0.1:7301\"\n"
      "[[backend]]\nname = \"f1\"\nurl = \"http://127.0.0.1:7302\"\n");
  auto out = parse({"--threads", "5", "--config", file.path, "--retries=4"});
  ASSERT_EQ(out.kind, ParseOutcome::Kind::run) << out.error;
  EXPECT_EQ(out.config.threads, 5);
  EXPECT_EQ(out.config.retries, 4u);
  EXPECT_EQ(port_of(out.config.listen), 7300);
  ASSERT_EQ(out.config.backends.size(), 2u);
  // A command-line --upstream replaces all the file's backends.
  out = parse({"--config", file.path, "--upstream", "c=http://127.0.0.1:7303"});
  ASSERT_EQ(out.kind, ParseOutcome::Kind::run) << out.error;
  ASSERT_EQ(out.config.backends.size(), 1u);
  EXPECT_EQ(out.config.backends[0].name, "c");
  // The same name as the file's is no duplicate: the file's backends are gone.
  out = parse({"--config", file.path, "--upstream", "f0=http://127.0.0.1:7301"});
  ASSERT_EQ(out.kind, ParseOutcome::Kind::run) << out.error;
  EXPECT_EQ(out.config.backends.size(), 1u);
}

TEST(ConfigFile, TheFileOverridesTheEnvironment) {
  const std::map<std::string, std::string> env = {{"OLLAMA_UPSTREAM", "http://127.0.0.1:7400"},
                                                  {"LISTEN_ADDR", "127.0.0.1:7401"}};
  auto out =
      parse_file("upstream = \"http://127.0.0.1:7402\"\nlisten = \"127.0.0.1:7403\"\n", {}, env);
  ASSERT_EQ(out.kind, ParseOutcome::Kind::run) << out.error;
  EXPECT_EQ(port_of(out.config.upstream), 7402);
  EXPECT_EQ(port_of(out.config.listen), 7403);
  // A file without backends or listener leaves the environment's.
  out = parse_file("threads = 2\n", {}, env);
  ASSERT_EQ(out.kind, ParseOutcome::Kind::run) << out.error;
  EXPECT_EQ(port_of(out.config.upstream), 7400);
  EXPECT_EQ(port_of(out.config.listen), 7401);
}

TEST(ConfigFile, TokenFlagReplacesTheFilesToken) {
  const TempFile token("flag-token\n");
  auto out = parse_file("metrics_token = \"file-token\"\n", {"--metrics-token-file", token.path});
  ASSERT_EQ(out.kind, ParseOutcome::Kind::run) << out.error;
  EXPECT_EQ(out.config.metrics_token, "flag-token");
  out = parse_file(fmt::format("metrics_token = \"a\"\nmetrics_token_file = \"{}\"\n", token.path));
  EXPECT_NE(out.error.find("exclude each other"), std::string::npos) << out.error;
  out = parse_file("metrics_token_file = \"/nonexistent/token\"\n");
  EXPECT_NE(out.error.find(":1: metrics_token_file: cannot read '/nonexistent/token'"),
            std::string::npos)
      << out.error;
}

TEST(ConfigFile, AnEmptyFileChangesNothing) {
  const auto out = parse_file("# nothing but a comment\n");
  ASSERT_EQ(out.kind, ParseOutcome::Kind::run) << out.error;
  EXPECT_EQ(out.config.backends.size(), 1u);
  EXPECT_EQ(out.config.backends[0].name, "127.0.0.1:11434");
  EXPECT_EQ(port_of(out.config.listen), 11435);
}

// Each bad file is one line: "FILE:LINE: KEY...: problem" (the column too for a syntax error).
TEST(ConfigFile, EachBadFileIsOneLineNamingFileLineAndKey) {
  struct Case {
    const char* toml;
    const char* want;  // follows "FILE"
  };
  const Case cases[] = {
      {"threads = \n", ":1:"},  // syntax, checked below
      {"listen = \":1\"\nthread = 2\n", ":2: unknown key 'thread'"},
      {"max-models = 3\n", ":1: unknown key 'max-models' (keys use '_' for '-': max_models)"},
      {"config = \"other.toml\"\n", ":1: unknown key 'config'"},
      {"help = true\n", ":1: unknown key 'help'"},
      {"[server]\nlisten = \":1\"\n", ":1: unknown key 'server'"},
      {"threads = \"2\"\n", ":1: threads: want an integer, not a string"},
      {"threads = 2.5\n", ":1: threads: want an integer, not a float"},
      {"preserve_host = 1\n", ":1: preserve_host: want true or false, not an integer"},
      {"listen = 11435\n", ":1: listen: want a string, not an integer"},
      {"threads = 0\n", ":1: threads = 0: want 1..256"},
      {"max_models = -1\n", ":1: max_models = -1: want 1..4294967295"},
      {"buffers = 3\n", ":1: buffers = 3: want a power of two in 2..32768"},
      {"retries = 9\n", ":1: retries = 9: want 0..8"},
      {"health_interval = 99\n", ":1: health_interval = 99: want 100..3600000 ms"},
      {"\n\nlisten = \"nope\"\n", ":3: listen: invalid address 'nope'"},
      {"upstream = 5\n", ":1: upstream: want a string or an array of strings, not an integer"},
      {"upstream = [\n  \"http://127.0.0.1:1\",\n  2,\n]\n", ":3: upstream[1]: want a string"},
      {"upstream = \"https://127.0.0.1:1\"\n", ":1: upstream: invalid upstream URL"},
      {"upstream = [\"a b=http://127.0.0.1:1\"]\n", ":1: upstream[0]: invalid backend name"},
      {"backend = \"x\"\n", ":1: backend: want [[backend]] tables, not a string"},
      {"[backend]\nurl = \"http://127.0.0.1:1\"\n",
       ":1: backend: want [[backend]] tables, not a table"},
      {"[[backend]]\nurl = \"http://127.0.0.1:1\"\nweigth = 2\n",
       ":3: unknown key 'backend[0].weigth' (want name, url, weight, max_parallel)"},
      {"[[backend]]\nname = \"a\"\n", ":1: backend[0]: no url"},
      {"[[backend]]\nurl = 7\n", ":2: backend[0].url: want a string, not an integer"},
      {"[[backend]]\nurl = \"http://127.0.0.1:1/v1\"\n",
       ":2: backend[0].url: invalid upstream URL"},
      {"[[backend]]\nurl = \"http://127.0.0.1:1\"\nweight = 0\n",
       ":3: backend[0].weight = 0: want 1..1000"},
      {"[[backend]]\nurl = \"http://127.0.0.1:1\"\nweight = 1001\n",
       ":3: backend[0].weight = 1001: want 1..1000"},
      {"[[backend]]\nurl = \"http://127.0.0.1:1\"\nweight = \"2\"\n",
       ":3: backend[0].weight: want an integer, not a string"},
      {"[[backend]]\nurl = \"http://127.0.0.1:1\"\nmax_parallel = 1025\n",
       ":3: backend[0].max_parallel = 1025: want 1..1024"},
      {"[[backend]]\nurl = \"http://127.0.0.1:1\"\nmax_parallel = 0\n",
       ":3: backend[0].max_parallel = 0: want 1..1024"},
      {"[[backend]]\nname = \"a b\"\nurl = \"http://127.0.0.1:1\"\n",
       ":2: backend[0].name = \"a b\": want 1..32 of A-Z a-z 0-9 _ . -"},
      {"[[backend]]\nname = 3\nurl = \"http://127.0.0.1:1\"\n",
       ":2: backend[0].name: want a string, not an integer"},
      {"[[backend]]\nname = \"a\"\nurl = \"http://127.0.0.1:1\"\n"
       "[[backend]]\nname = \"a\"\nurl = \"http://127.0.0.1:2\"\n",
       ":4: backend[1]: duplicate backend name 'a'"},
      {"upstream = \"http://127.0.0.1:1\"\n[[backend]]\nurl = \"http://127.0.0.1:1/\"\n",
       ":2: backend[0]: duplicate backend URL"},
      {"upstream = [\"x=http://127.0.0.1:1\", \"x=http://127.0.0.1:2\"]\n",
       ":1: upstream[1]: duplicate backend name 'x'"},
  };
  for (const Case& c : cases) {
    const TempFile file(c.toml);
    const auto out = parse({"--config", file.path});
    ASSERT_EQ(out.kind, ParseOutcome::Kind::error) << c.toml;
    EXPECT_EQ(out.error.rfind(file.path + c.want, 0), 0u) << c.toml << "\n" << out.error;
    EXPECT_EQ(out.error.find('\n'), std::string::npos) << out.error;
    // The reload refuses the same file with the same line.
    std::vector<BackendConfig> kept(1);
    std::string error;
    EXPECT_FALSE(load_backends_file(file.path, &kept, &error)) << c.toml;
    if (std::string_view(c.want).find("listen") == std::string_view::npos) {
      EXPECT_EQ(error, out.error);
    }
    EXPECT_EQ(kept.size(), 1u);  // untouched
  }
}

TEST(ConfigFile, SyntaxErrorsGiveLineAndColumn) {
  const TempFile file("listen = \":1\"\nthreads = \n");
  const auto out = parse({"--config", file.path});
  ASSERT_EQ(out.kind, ParseOutcome::Kind::error);
  EXPECT_EQ(out.error.rfind(file.path + ":2:", 0), 0u) << out.error;
  EXPECT_NE(out.error.find("TOML syntax error: "), std::string::npos) << out.error;
  EXPECT_EQ(out.error.find('\n'), std::string::npos) << out.error;
  const TempFile twice("threads = 1\nthreads = 2\n");
  EXPECT_EQ(parse({"--config", twice.path}).error.rfind(twice.path + ":2:", 0), 0u);
}

TEST(ConfigFile, UnreadableFilesAreOneLine) {
  auto out = parse({"--config", "/nonexistent/tokentap.toml"});
  EXPECT_EQ(out.error,
            "--config /nonexistent/tokentap.toml: cannot read: No such file or directory");
  out = parse({"--config", "/tmp"});
  EXPECT_EQ(out.error, "--config /tmp: cannot read: Is a directory");
  out = parse({"--config="});
  EXPECT_EQ(out.error, "flag --config needs a file (see --help)");
  out = parse({"--config"});
  EXPECT_EQ(out.error, "flag --config needs a value (see --help)");
  const TempFile big(std::string(2 * mib, '#'));
  out = parse({"--config", big.path});
  EXPECT_NE(out.error.find("over 1048576 bytes"), std::string::npos) << out.error;
  if (geteuid() != 0) {  // root reads a mode-000 file anyway
    const TempFile locked("threads = 1\n");
    chmod(locked.path.c_str(), 0);
    out = parse({"--config", locked.path});
    EXPECT_EQ(out.error, "--config " + locked.path + ": cannot read: Permission denied");
  }
}

TEST(ConfigFile, AtMostBackendsMaxInAFile) {
  std::string toml;
  for (std::uint32_t i = 0; i <= backends_max; ++i) {
    toml += fmt::format("[[backend]]\nurl = \"http://127.0.0.1:{}\"\n", 20000 + i);
  }
  auto out = parse_file(toml);
  EXPECT_NE(out.error.find("backend[64]: more than 64 backends"), std::string::npos) << out.error;
  toml.resize(toml.rfind("[[backend]]"));
  out = parse_file(toml);
  ASSERT_EQ(out.kind, ParseOutcome::Kind::run) << out.error;
  EXPECT_EQ(out.config.backends.size(), backends_max);
}

// The shipped example: 8 backends gpu0..gpu7 on 127.0.0.1:11500-11507, max_parallel 2.
TEST(ConfigFile, DeployExampleParses) {
  const std::string path = (repo_root() / "deploy/tokentap.toml").string();
  const auto out = parse({"--config", path});
  ASSERT_EQ(out.kind, ParseOutcome::Kind::run) << out.error;
  const auto& bs = out.config.backends;
  ASSERT_EQ(bs.size(), 8u);
  for (std::size_t i = 0; i < bs.size(); ++i) {
    EXPECT_EQ(bs[i].name, fmt::format("gpu{}", i));
    EXPECT_EQ(bs[i].url, fmt::format("http://127.0.0.1:{}", 11500 + i));
    EXPECT_EQ(port_of(bs[i].endpoint), 11500 + i);
    EXPECT_EQ(bs[i].max_parallel, 2u);
    EXPECT_EQ(bs[i].weight, 1u);
  }
  EXPECT_EQ(port_of(out.config.listen), 11435);
  EXPECT_EQ(port_of(out.config.metrics_listen), 9836);
  EXPECT_EQ(out.config.health_interval_ms, 2000u);
  EXPECT_EQ(out.config.retries, 2u);
  EXPECT_EQ(out.config.upstream_host, "127.0.0.1:11500");
  std::vector<BackendConfig> reloaded;
  std::string error;
  ASSERT_TRUE(load_backends_file(path, &reloaded, &error)) << error;
  EXPECT_EQ(reloaded.size(), 8u);
}

TEST(ConfigFile, LoadBackendsFileReadsOnlyTheBackends) {
  const TempFile file(
      "threads = 3\nlisten = \"127.0.0.1:7500\"\n"
      "upstream = \"u=http://127.0.0.1:7501\"\n"
      "[[backend]]\nname = \"t\"\nurl = \"http://127.0.0.1:7502\"\nweight = 3\nmax_parallel = 4\n");
  std::vector<BackendConfig> out;
  std::string error;
  ASSERT_TRUE(load_backends_file(file.path, &out, &error)) << error;
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].name, "u");
  EXPECT_EQ(port_of(out[0].endpoint), 7501);
  EXPECT_EQ(out[1].name, "t");
  EXPECT_EQ(out[1].host_header, "127.0.0.1:7502");
  EXPECT_EQ(out[1].weight, 3u);
  EXPECT_EQ(out[1].max_parallel, 4u);
  // No backends: success with an empty list, the caller keeps its own.
  const TempFile none("threads = 3\n");
  ASSERT_TRUE(load_backends_file(none.path, &out, &error)) << error;
  EXPECT_TRUE(out.empty());
  // The token file is not read on a reload (it may be a start-up-only credential path).
  const TempFile token_path("metrics_token_file = \"/nonexistent/token\"\n");
  EXPECT_TRUE(load_backends_file(token_path.path, &out, &error)) << error;
  out.assign(2, BackendConfig{});
  EXPECT_FALSE(load_backends_file("/nonexistent/tokentap.toml", &out, &error));
  EXPECT_EQ(error, "--config /nonexistent/tokentap.toml: cannot read: No such file or directory");
  EXPECT_EQ(out.size(), 2u);
}

}  // namespace
}  // namespace tokentap
