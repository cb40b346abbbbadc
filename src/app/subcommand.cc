// subcommand: keygen, hash-key and usage (subcommand.h). Nothing here runs in the proxy; the
// work is in the auth layer (secrets and hashes) and the ledger layer (the totals).
#include "tokentap/app/subcommand.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <vector>

#include "tokentap/auth/digest.h"
#include "tokentap/auth/key_table.h"
#include "tokentap/ledger/ledger_store.h"
#include "tokentap/ledger/usage_time.h"

namespace tokentap {
namespace {

constexpr std::string_view keygen_usage = "usage: tokentap keygen NAME";
constexpr std::string_view hash_key_usage = "usage: printf %s \"$SECRET\" | tokentap hash-key";
constexpr std::string_view usage_usage =
    "usage: tokentap usage --state-dir DIR [--key NAME] [--since RFC3339] "
    "[--by model|hour|backend]";

SubcommandResult failed(int status, std::string err) {
  return SubcommandResult{status, {}, std::move(err) + "\n"};
}

// A secret must travel in a header value: visible ASCII, no spaces.
bool sendable(std::string_view secret) {
  return std::all_of(secret.begin(), secret.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u > 0x20 && u < 0x7f;
  });
}

}  // namespace

std::string keygen_text(std::string_view name, std::string_view secret) {
  const std::optional<auth::Sha256> digest = auth::sha256(secret);
  return fmt::format(
      "{}\n"
      "\n"
      "# The line above is the secret for key '{}': give it to the client (Authorization:\n"
      "# Bearer SECRET, or x-api-key). It is not shown again; tokentap keeps only its sha256.\n"
      "# Paste this table into the --config or --keys file:\n"
      "[[key]]\n"
      "name = \"{}\"\n"
      "sha256 = \"{}\"\n"
      "# models = [\"llama3\", \"qwen2.5*\"]\n"
      "# requests_per_minute = 60\n"
      "# tokens_per_minute = 100000\n"
      "# tokens_per_day = 2000000\n",
      secret, name, name, digest ? auth::to_hex(*digest) : std::string());
}

SubcommandResult keygen(std::span<const std::string_view> args) {
  if (args.size() != 1 || args[0].starts_with("-")) return failed(2, std::string(keygen_usage));
  const std::string_view name = args[0];
  if (!auth::valid_key_name(name)) {
    return failed(2, fmt::format("tokentap keygen: '{}': want 1..{} of A-Z a-z 0-9 _ . -", name,
                                 key_name_bytes_max));
  }
  if (name == anonymous_key_name) {
    return failed(2, "tokentap keygen: 'anonymous' is reserved for the anonymous_from clients");
  }
  std::uint8_t random[secret_random_bytes];
  std::string error;
  if (!auth::random_bytes(random, &error)) return failed(1, "tokentap keygen: " + error);
  const std::string secret = std::string(secret_prefix) + auth::base64url(random);
  if (!auth::sha256(secret)) return failed(1, "tokentap keygen: SHA-256 failed (libcrypto)");
  return SubcommandResult{0, keygen_text(name, secret), {}};
}

SubcommandResult hash_key(std::span<const std::string_view> args, std::string_view input) {
  if (!args.empty()) {
    return failed(2, fmt::format("tokentap hash-key reads the secret on stdin (an argument "
                                 "would show in ps and the shell's history)\n{}",
                                 hash_key_usage));
  }
  if (input.size() > secret_bytes_max) {
    return failed(2, fmt::format("tokentap hash-key: over {} bytes on stdin, not a secret",
                                 secret_bytes_max));
  }
  if (input.ends_with("\n")) input.remove_suffix(1);  // echo's or the editor's newline
  if (input.ends_with("\r")) input.remove_suffix(1);
  if (input.empty()) return failed(2, "tokentap hash-key: no secret on stdin");
  if (!sendable(input)) {
    return failed(2,
                  "tokentap hash-key: a secret with spaces or control bytes cannot be sent in "
                  "a header");
  }
  const std::optional<auth::Sha256> digest = auth::sha256(input);
  if (!digest) return failed(1, "tokentap hash-key: SHA-256 failed (libcrypto)");
  return SubcommandResult{0, auth::to_hex(*digest) + "\n", {}};
}

namespace {

struct UsageArgs {
  std::string state_dir;
  ledger::UsageQuery query;
  bool since_given = false;
};

// The value of `--name value` or `--name=value` at args[*i]; nullopt when args[*i] is not it.
std::optional<std::string_view> flag_value(std::span<const std::string_view> args, std::size_t* i,
                                           std::string_view name, bool* missing) {
  const std::string_view arg = args[*i];
  if (arg == name) {
    if (*i + 1 >= args.size()) {
      *missing = true;
      return std::nullopt;
    }
    return args[++*i];
  }
  if (arg.size() > name.size() && arg.starts_with(name) && arg[name.size()] == '=') {
    return arg.substr(name.size() + 1);
  }
  return std::nullopt;
}

std::optional<ledger::UsageGroup> group_of(std::string_view by) {
  if (by == "model") return ledger::UsageGroup::model;
  if (by == "hour") return ledger::UsageGroup::hour;
  if (by == "backend") return ledger::UsageGroup::backend;
  return std::nullopt;
}

// One argument into *out; "" when it was fine, else the problem.
std::string usage_arg(std::span<const std::string_view> args, std::size_t* i, UsageArgs* out) {
  bool missing = false;
  if (auto v = flag_value(args, i, "--state-dir", &missing)) {
    out->state_dir = *v;
  } else if (auto v = flag_value(args, i, "--key", &missing)) {
    out->query.key = *v;
  } else if (auto v = flag_value(args, i, "--since", &missing)) {
    const std::optional<std::int64_t> t = ledger::parse_rfc3339(*v);
    if (!t) return fmt::format("--since '{}': want RFC 3339 (2024-05-01T00:00:00Z) or a date", *v);
    out->query.since_unix_s = *t;
    out->since_given = true;
  } else if (auto v = flag_value(args, i, "--by", &missing)) {
    const std::optional<ledger::UsageGroup> by = group_of(*v);
    if (!by) return fmt::format("--by '{}': want model, hour or backend", *v);
    out->query.by = *by;
  } else if (missing) {
    return fmt::format("{} needs a value", args[*i]);
  } else {
    return fmt::format("unexpected argument '{}'", args[*i]);
  }
  return {};
}

std::string_view group_title(ledger::UsageGroup by) {
  switch (by) {
    case ledger::UsageGroup::model:
      return "model";
    case ledger::UsageGroup::hour:
      return "hour";
    case ledger::UsageGroup::backend:
      return "backend";
  }
  return "group";
}

// The rows as aligned columns, a total line last.
std::string usage_table(const std::vector<ledger::UsageRow>& rows, ledger::UsageGroup by) {
  std::vector<std::vector<std::string>> cells = {{"key", std::string(group_title(by)), "requests",
                                                  "prompt_tokens", "completion_tokens", "errors"}};
  ledger::UsageTotals total;
  for (const ledger::UsageRow& r : rows) {
    cells.push_back({r.key, r.group, std::to_string(r.totals.requests),
                     std::to_string(r.totals.prompt_tokens),
                     std::to_string(r.totals.completion_tokens), std::to_string(r.totals.errors)});
    total.requests += r.totals.requests;
    total.prompt_tokens += r.totals.prompt_tokens;
    total.completion_tokens += r.totals.completion_tokens;
    total.errors += r.totals.errors;
  }
  cells.push_back({"total", "", std::to_string(total.requests), std::to_string(total.prompt_tokens),
                   std::to_string(total.completion_tokens), std::to_string(total.errors)});
  std::size_t width[6] = {};
  for (const auto& line : cells) {
    for (std::size_t c = 0; c < line.size(); ++c) width[c] = std::max(width[c], line[c].size());
  }
  std::string out;
  for (const auto& line : cells) {
    std::string text;
    for (std::size_t c = 0; c < line.size(); ++c) {
      // Names left-aligned, numbers right-aligned, two spaces between columns.
      text += c < 2 ? fmt::format("{:<{}}  ", line[c], width[c])
                    : fmt::format("{:>{}}  ", line[c], width[c]);
    }
    while (!text.empty() && text.back() == ' ') text.pop_back();
    out += text + "\n";
  }
  return out;
}

}  // namespace

SubcommandResult usage(std::span<const std::string_view> args, std::int64_t now_unix_s) {
  UsageArgs a;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string problem = usage_arg(args, &i, &a);
    if (!problem.empty())
      return failed(2, fmt::format("tokentap usage: {}\n{}", problem, usage_usage));
  }
  if (a.state_dir.empty()) {
    return failed(2, fmt::format("tokentap usage: --state-dir DIR is required\n{}", usage_usage));
  }
  if (!a.since_given) a.query.since_unix_s = ledger::day_start(now_unix_s);
  std::string error;
  const auto store =
      ledger::LedgerStore::open(a.state_dir, ledger::LedgerStore::Mode::read, &error);
  std::vector<ledger::UsageRow> rows;
  if (!store || !store->totals(a.query, &rows, &error))
    return failed(1, "tokentap usage: " + error);
  const std::string since = ledger::format_utc(ledger::hour_start(a.query.since_unix_s));
  const std::string who = a.query.key.empty() ? "every key" : "key " + a.query.key;
  if (rows.empty())
    return SubcommandResult{0, fmt::format("no usage by {} since {}\n", who, since), {}};
  return SubcommandResult{
      0,
      fmt::format("usage by {} since {}, by {}\n\n", who, since, group_title(a.query.by)) +
          usage_table(rows, a.query.by),
      {}};
}

namespace {

std::string read_stdin() {
  std::string text(secret_bytes_max + 1, '\0');
  std::size_t n = 0;
  while (n < text.size()) {
    const ssize_t r = read(STDIN_FILENO, text.data() + n, text.size() - n);
    if (r <= 0) break;  // EOF, or an error: what was read is judged as it is
    n += static_cast<std::size_t>(r);
  }
  text.resize(n);
  return text;
}

}  // namespace

std::optional<int> run_subcommand(int argc, char** argv) {
  if (argc < 2) return std::nullopt;
  const std::string_view command = argv[1];
  std::vector<std::string_view> args(argv + 2, argv + argc);
  SubcommandResult r;
  if (command == "keygen") {
    r = keygen(args);
  } else if (command == "hash-key") {
    r = hash_key(args, args.empty() ? read_stdin() : std::string());
  } else if (command == "usage") {
    r = usage(args, static_cast<std::int64_t>(std::time(nullptr)));
  } else {
    return std::nullopt;
  }
  std::fputs(r.out.c_str(), stdout);
  std::fputs(r.err.c_str(), stderr);
  std::fflush(stdout);
  return r.status;
}

}  // namespace tokentap
