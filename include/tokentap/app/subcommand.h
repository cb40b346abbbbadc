// subcommand: `tokentap keygen NAME`, `tokentap hash-key`, `tokentap usage --state-dir DIR …`,
// the commands a person runs beside the proxy (docs/keys.md "Subcommands").
//
// run_subcommand is main()'s first line: it answers when argv[1] names a subcommand and returns
// nullopt otherwise, so every proxy command line (which starts with a flag or nothing) is
// untouched. Each subcommand is a function from its arguments (and stdin's text, the clock) to
// a SubcommandResult, so tests run them without a process; run_subcommand only does the I/O.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace tokentap {

// A secret's text: "tt-" and 32 random bytes in base64url (43 characters, 256 bits).
constexpr std::string_view secret_prefix = "tt-";
constexpr std::size_t secret_random_bytes = 32;
// hash-key reads at most this much; a secret is a header value, never a file.
constexpr std::size_t secret_bytes_max = 4096;

struct SubcommandResult {
  int status = 0;   // the exit status: 0, or 2 for a usage error, 1 when the work failed
  std::string out;  // for stdout
  std::string err;  // for stderr, one line per problem
};

// Runs argv[1]'s subcommand with real stdin, stdout, stderr and clock, returning its status;
// nullopt when argv[1] is no subcommand.
[[nodiscard]] std::optional<int> run_subcommand(int argc, char** argv);

// `keygen NAME`: a new secret from getrandom(2), then the [[key]] table to paste.
[[nodiscard]] SubcommandResult keygen(std::span<const std::string_view> args);
// The same output for a given secret (what keygen prints after drawing one).
[[nodiscard]] std::string keygen_text(std::string_view name, std::string_view secret);

// `hash-key`: stdin's secret (one trailing newline dropped) → its sha256 in hex.
[[nodiscard]] SubcommandResult hash_key(std::span<const std::string_view> args,
                                        std::string_view input);

// `usage --state-dir DIR [--key NAME] [--since RFC3339] [--by model|hour|backend]`: the
// ledger's totals as a table; `since` defaults to 00:00 UTC of `now_unix_s`'s day.
[[nodiscard]] SubcommandResult usage(std::span<const std::string_view> args,
                                     std::int64_t now_unix_s);

}  // namespace tokentap
