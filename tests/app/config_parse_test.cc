// Config parsing: defaults, both flag spellings, the seeds' aliases and environment, bad input,
// and backends from flags and OLLAMA_UPSTREAM (names, duplicates, limits). The --config file has
// its own suite, config_file_test.cc.
#include "config_args.h"
#include "tokentap/app/config_parse.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <map>
#include <string>
#include <vector>

namespace tokentap {
namespace {

using test::parse;
using test::port_of;

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
  EXPECT_EQ(out.config.health_interval_ms, 2000u);
  EXPECT_EQ(out.config.retries, 2u);
  EXPECT_EQ(out.config.config_file, "");
  ASSERT_EQ(out.config.backends.size(), 1u);
  const BackendConfig& b = out.config.backends[0];
  EXPECT_EQ(b.name, "127.0.0.1:11434");
  EXPECT_EQ(b.url, "http://127.0.0.1:11434");
  EXPECT_EQ(b.host_header, "127.0.0.1:11434");
  EXPECT_EQ(port_of(b.endpoint), 11434);
  EXPECT_EQ(b.weight, 1u);
  EXPECT_EQ(b.max_parallel, 1u);
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

using test::TempFile;

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
  for (auto out :
       {parse({"--metrics-token-file", empty.path}), parse({"--metrics-token-file", spaced.path}),
        parse({"--metrics-token-file", big.path}),
        parse({"--metrics-token-file", "/nonexistent/token"}), parse({"--metrics-token", "a b"}),
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

// The seeds' one `-upstream x` gives exactly today's configuration: one backend, mirrored.
TEST(ConfigBackends, OneUpstreamIsBackendZeroAndTheMirror) {
  const auto out = parse({"-upstream", "http://localhost:9000/"});
  ASSERT_EQ(out.kind, ParseOutcome::Kind::run) << out.error;
  ASSERT_EQ(out.config.backends.size(), 1u);
  const BackendConfig& b = out.config.backends[0];
  EXPECT_EQ(b.name, "localhost:9000");
  EXPECT_EQ(b.url, "http://localhost:9000/");
  EXPECT_EQ(b.host_header, "localhost:9000");
  EXPECT_EQ(out.config.upstream_host, "localhost:9000");
  EXPECT_EQ(port_of(out.config.upstream), 9000);
  EXPECT_EQ(out.config.upstream.text, b.endpoint.text);
}

TEST(ConfigBackends, RepeatedUpstreamKeepsOrderAndNames) {
  const auto out =
      parse({"--upstream", "gpu0=http://127.0.0.1:11500", "--upstream=http://127.0.0.1:11501",
             "-upstream", "gpu.2_x-y=http://localhost:11502/", "--ollama-url=http://[::1]:11503"});
  ASSERT_EQ(out.kind, ParseOutcome::Kind::run) << out.error;
  const auto& bs = out.config.backends;
  ASSERT_EQ(bs.size(), 4u);
  EXPECT_EQ(bs[0].name, "gpu0");
  EXPECT_EQ(bs[0].url, "http://127.0.0.1:11500");
  EXPECT_EQ(bs[1].name, "127.0.0.1:11501");
  EXPECT_EQ(bs[2].name, "gpu.2_x-y");
  EXPECT_EQ(bs[2].host_header, "localhost:11502");
  EXPECT_EQ(bs[3].name, "[::1]:11503");
  EXPECT_EQ(bs[3].endpoint.addr.ss_family, AF_INET6);
  for (std::size_t i = 0; i < bs.size(); ++i) EXPECT_EQ(port_of(bs[i].endpoint), 11500 + i);
  EXPECT_EQ(out.config.upstream_host, "127.0.0.1:11500");
  EXPECT_EQ(port_of(out.config.upstream), 11500);
}

TEST(ConfigBackends, DefaultNameCarriesPort80) {
  const auto out = parse({"--upstream", "http://localhost"});
  ASSERT_EQ(out.kind, ParseOutcome::Kind::run) << out.error;
  EXPECT_EQ(out.config.backends[0].name, "localhost:80");
  EXPECT_EQ(out.config.backends[0].host_header, "localhost");  // the Host sent, as today
}

TEST(ConfigBackends, EnvironmentListIsUsedOnlyWithoutAnUpstreamFlag) {
  const std::map<std::string, std::string> env = {
      {"OLLAMA_UPSTREAM",
       " a=http://127.0.0.1:11500, http://127.0.0.1:11501 ,,b=http://localhost:11502,"}};
  auto out = parse({}, env);
  ASSERT_EQ(out.kind, ParseOutcome::Kind::run) << out.error;
  ASSERT_EQ(out.config.backends.size(), 3u);
  EXPECT_EQ(out.config.backends[0].name, "a");
  EXPECT_EQ(out.config.backends[1].name, "127.0.0.1:11501");
  EXPECT_EQ(out.config.backends[2].name, "b");
  EXPECT_EQ(out.config.upstream_host, "127.0.0.1:11500");
  out = parse({"--upstream", "http://127.0.0.1:9"}, env);
  ASSERT_EQ(out.kind, ParseOutcome::Kind::run) << out.error;
  ASSERT_EQ(out.config.backends.size(), 1u);
  EXPECT_EQ(port_of(out.config.backends[0].endpoint), 9);
  // Blank or only commas: the default, as an empty variable was before.
  for (const char* blank : {"", " , ,"}) {
    out = parse({}, {{"OLLAMA_UPSTREAM", blank}});
    ASSERT_EQ(out.kind, ParseOutcome::Kind::run) << out.error;
    ASSERT_EQ(out.config.backends.size(), 1u);
    EXPECT_EQ(out.config.backends[0].name, "127.0.0.1:11434");
  }
  out = parse({}, {{"OLLAMA_UPSTREAM", "http://127.0.0.1:1,bad name=http://127.0.0.1:2"}});
  ASSERT_EQ(out.kind, ParseOutcome::Kind::error);
  EXPECT_EQ(out.error.rfind("OLLAMA_UPSTREAM: invalid backend name 'bad name'", 0), 0u)
      << out.error;
}

TEST(ConfigBackends, NamesFollowTheCharset) {
  EXPECT_TRUE(valid_backend_name("gpu0"));
  EXPECT_TRUE(valid_backend_name("A-z_0.9"));
  EXPECT_TRUE(valid_backend_name(std::string(32, 'n')));
  EXPECT_FALSE(valid_backend_name(std::string(33, 'n')));
  EXPECT_FALSE(valid_backend_name(""));
  for (const char* bad : {"a b", "a/b", "a:b", "gpü", "a=b", "a,b"}) {
    EXPECT_FALSE(valid_backend_name(bad)) << bad;
  }
  const std::vector<std::string> bad_specs = {"=http://127.0.0.1:1", "a b=http://127.0.0.1:1",
                                              std::string(33, 'n') + "=http://127.0.0.1:1",
                                              "a/b=http://127.0.0.1:1"};
  for (const std::string& spec : bad_specs) {
    const auto out = parse({"--upstream", spec});
    ASSERT_EQ(out.kind, ParseOutcome::Kind::error) << spec;
    EXPECT_EQ(out.error.rfind("--upstream: invalid backend name", 0), 0u) << out.error;
  }
  const auto out = parse({"--upstream", std::string(32, 'n') + "=http://127.0.0.1:1"});
  EXPECT_EQ(out.kind, ParseOutcome::Kind::run) << out.error;
}

TEST(ConfigBackends, DuplicateNamesAndUrlsAreRefused) {
  struct Case {
    std::vector<std::string> specs;
    std::string want;
  };
  const Case cases[] = {
      {{"a=http://127.0.0.1:1", "a=http://127.0.0.1:2"}, "duplicate backend name 'a'"},
      {{"http://127.0.0.1:1", "http://127.0.0.1:1/"}, "duplicate backend URL"},
      {{"a=http://127.0.0.1:1", "b=http://127.0.0.1:1"}, "duplicate backend URL"},
      {{"http://LocalHost", "http://localhost:80"}, "duplicate backend URL"},
      {{"http://127.0.0.1:0080", "http://127.0.0.1:80"}, "duplicate backend URL"},
      // An explicit name equal to another's default cannot happen: ':' is not in the charset.
  };
  for (const Case& c : cases) {
    std::vector<std::string> argv;
    for (const auto& spec : c.specs) {
      argv.push_back("--upstream");
      argv.push_back(spec);
    }
    const auto out = parse(argv);
    ASSERT_EQ(out.kind, ParseOutcome::Kind::error) << c.specs[0];
    EXPECT_NE(out.error.find(c.want), std::string::npos) << out.error;
    EXPECT_EQ(out.error.rfind("--upstream: ", 0), 0u) << out.error;
  }
  // Different hosts or ports are different backends.
  const auto out = parse({"--upstream", "http://127.0.0.1:1", "--upstream", "http://127.0.0.2:1",
                          "--upstream", "http://127.0.0.1:2"});
  EXPECT_EQ(out.kind, ParseOutcome::Kind::run) << out.error;
}

TEST(ConfigBackends, AtMostBackendsMax) {
  std::vector<BackendConfig> list;
  std::string error;
  for (std::uint32_t i = 0; i < backends_max; ++i) {
    BackendConfig b;
    ASSERT_TRUE(
        parse_backend_spec(fmt::format("b{}=http://127.0.0.1:{}", i, 20000 + i), &b, &error))
        << error;
    ASSERT_TRUE(add_backend(&list, std::move(b), &error)) << error;
  }
  BackendConfig extra;
  ASSERT_TRUE(parse_backend_spec("http://127.0.0.1:30000", &extra, &error)) << error;
  EXPECT_FALSE(add_backend(&list, extra, &error));
  EXPECT_EQ(error, "more than 64 backends");
  EXPECT_EQ(list.size(), backends_max);
}

TEST(ConfigBackends, SpecWithoutAName) {
  BackendConfig b;
  std::string error;
  ASSERT_TRUE(parse_backend_spec("http://127.0.0.1:7/", &b, &error)) << error;
  EXPECT_EQ(b.name, "127.0.0.1:7");
  EXPECT_EQ(b.url, "http://127.0.0.1:7/");
  EXPECT_FALSE(parse_backend_spec("gpu0=https://127.0.0.1:7", &b, &error));
  EXPECT_NE(error.find("only http://"), std::string::npos) << error;
  EXPECT_FALSE(parse_backend_spec("gpu0", &b, &error));  // no scheme: a URL, and a bad one
  EXPECT_NE(error.find("invalid upstream URL 'gpu0'"), std::string::npos) << error;
}

TEST(Config, HealthIntervalAndRetries) {
  auto out = parse({"--health-interval", "100", "--retries=0"});
  ASSERT_EQ(out.kind, ParseOutcome::Kind::run) << out.error;
  EXPECT_EQ(out.config.health_interval_ms, 100u);
  EXPECT_EQ(out.config.retries, 0u);
  out = parse({"-health-interval=3600000", "-retries", "8"});
  ASSERT_EQ(out.kind, ParseOutcome::Kind::run) << out.error;
  EXPECT_EQ(out.config.health_interval_ms, 3'600'000u);
  EXPECT_EQ(out.config.retries, 8u);
  EXPECT_EQ(parse({"--health-interval", "99"}).error,
            "invalid value '99' for --health-interval: want 100..3600000 ms");
  EXPECT_EQ(parse({"--health-interval", "3600001"}).kind, ParseOutcome::Kind::error);
  EXPECT_EQ(parse({"--retries", "9"}).error, "invalid value '9' for --retries: want 0..8");
  EXPECT_EQ(parse({"--retries", "-1"}).kind, ParseOutcome::Kind::error);
  EXPECT_EQ(parse({"--retries"}).error, "flag --retries needs a value (see --help)");
}

TEST(Config, HelpNamesTheNewFlags) {
  const std::string help = help_text();
  for (const char* flag :
       {"--upstream [NAME=]URL", "--config FILE", "--health-interval MS", "--retries N"}) {
    EXPECT_NE(help.find(flag), std::string::npos) << flag;
  }
  std::size_t start = 0;
  while (start < help.size()) {
    const auto end = help.find('\n', start);
    EXPECT_LE(end - start, 100u) << help.substr(start, end - start);
    start = end + 1;
  }
}

TEST(Config, ListenFromFlagBeatsABadEnvironment) {
  // LISTEN_ADDR is resolved only when nothing else sets the listener.
  auto out = parse({"--listen", ":7002"}, {{"LISTEN_ADDR", "nope"}});
  ASSERT_EQ(out.kind, ParseOutcome::Kind::run) << out.error;
  EXPECT_EQ(port_of(out.config.listen), 7002);
  out = parse({}, {{"LISTEN_ADDR", "nope"}});
  EXPECT_EQ(out.error.rfind("LISTEN_ADDR: invalid address 'nope'", 0), 0u) << out.error;
  EXPECT_EQ(parse({"--listen", "nope"}).error.rfind("--listen: invalid address 'nope'", 0), 0u);
}

}  // namespace
}  // namespace tokentap
