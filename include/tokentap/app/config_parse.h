// config_parse: turns argv, the environment and an optional TOML file into a Config
// (base/config.h), or one error line.
//
// Parsing is pure (argv and an environment lookup in, a Config or one error line out; the only
// I/O is reading --config FILE and --metrics-token-file, and resolving host names) so it is
// unit-tested without a process. Flags accept the Go spelling of the seeds (`-upstream x`,
// `-listen=x`) as well as GNU `--flag value` / `--flag=value`, so scripts written for either seed
// keep working.
//
// Precedence, lowest first: defaults, environment (LISTEN_ADDR, OLLAMA_UPSTREAM), --config FILE,
// flags. The backends come from exactly one of these: the --upstream flags if any were given,
// else the file's `upstream` and [[backend]] entries if it has any, else OLLAMA_UPSTREAM, else
// the default http://127.0.0.1:11434.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tokentap/base/config.h"

namespace tokentap {

// What parse_config decided: run with a Config, print help/version and exit 0, or fail (exit 2).
struct ParseOutcome {
  enum class Kind { run, help, version, error } kind = Kind::error;
  Config config;
  std::string error;  // one line, no trailing newline, when kind == error
  // Lines for stderr at start when kind == run (a key file others may read), without newlines.
  std::vector<std::string> warnings;
};

using EnvLookup = std::function<const char*(const char*)>;

[[nodiscard]] ParseOutcome parse_config(int argc, const char* const* argv, const EnvLookup& env);

// Parses "host:port", ":port", "[v6]:port"; a host name is resolved with getaddrinfo.
[[nodiscard]] std::optional<Endpoint> parse_endpoint(std::string_view text, std::string* error);

// Parses "http://host[:port][/]" into an endpoint and the Host header value.
[[nodiscard]] bool parse_upstream_url(std::string_view url, Endpoint* out, std::string* host_header,
                                      std::string* error);

// A backend name as an operator writes it: [A-Za-z0-9_.-]{1,backend_name_bytes_max}.
[[nodiscard]] bool valid_backend_name(std::string_view name);

// Resolves `url` into *out (weight and max_parallel left as they are), named `name` when given
// (checked by valid_backend_name), else "host:port" of the URL (port 80 when it names none).
[[nodiscard]] bool make_backend(std::optional<std::string_view> name, std::string_view url,
                                BackendConfig* out, std::string* error);

// "[NAME=]URL", the form of --upstream, each OLLAMA_UPSTREAM item and the file's `upstream`.
[[nodiscard]] bool parse_backend_spec(std::string_view spec, BackendConfig* out,
                                      std::string* error);

// Appends `backend` unless the list already holds backends_max entries, its name, or its URL
// (compared as lower-case host:port, so http://H/ and http://h:80 are the same backend).
[[nodiscard]] bool add_backend(std::vector<BackendConfig>* list, BackendConfig backend,
                               std::string* error);

// The SIGHUP reload: reads FILE's backends (top-level `upstream`, then the [[backend]] tables)
// into *out. The whole file is validated as at start-up (syntax, unknown keys, types, ranges),
// so a file that would not start tokentap is refused here too, with the same one-line error;
// *out is left untouched then. Other settings are not returned: they need a restart. A valid
// file naming no backend gives an empty *out (the caller keeps the backends it has).
[[nodiscard]] bool load_backends_file(const std::string& path, std::vector<BackendConfig>* out,
                                      std::string* error);

// The warning for a file holding key hashes whose st_mode lets group or others read it
// (mode & 0044), or nullopt. Hashes of tokentap keygen's secrets cannot be reversed, but a
// hand-picked secret can be guessed from its hash, so the file deserves mode 0600.
[[nodiscard]] std::optional<std::string> key_file_warning(std::string_view path, unsigned mode);

[[nodiscard]] std::string help_text();

}  // namespace tokentap
