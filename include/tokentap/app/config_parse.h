// config_parse: turns argv and the environment into a Config (base/config.h), or one error line.
//
// Parsing is pure (argv and an environment lookup in, a Config or one error line out) so it is
// unit-tested without a process. Flags accept the Go spelling of the seeds (`-upstream x`,
// `-listen=x`) as well as GNU `--flag value` / `--flag=value`, so scripts written for either seed
// keep working.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "tokentap/base/config.h"

namespace tokentap {

// What parse_config decided: run with a Config, print help/version and exit 0, or fail (exit 2).
struct ParseOutcome {
  enum class Kind { run, help, version, error } kind = Kind::error;
  Config config;
  std::string error;  // one line, no trailing newline, when kind == error
};

using EnvLookup = std::function<const char*(const char*)>;

[[nodiscard]] ParseOutcome parse_config(int argc, const char* const* argv, const EnvLookup& env);

// Parses "host:port", ":port", "[v6]:port"; a host name is resolved with getaddrinfo.
[[nodiscard]] std::optional<Endpoint> parse_endpoint(std::string_view text, std::string* error);

// Parses "http://host[:port][/]" into an endpoint and the Host header value.
[[nodiscard]] bool parse_upstream_url(std::string_view url, Endpoint* out, std::string* host_header,
                                      std::string* error);

[[nodiscard]] std::string help_text();

}  // namespace tokentap
