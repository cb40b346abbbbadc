// Config parsing: flags, environment and --config FILE → an immutable Config, or one clear
// error line.
//
// Two passes over argv: the first checks the command line's shape (known flags, values present)
// and answers --help/--version; the second applies the flags on top of the environment and the
// file, so a flag overrides the file wherever it stands on the line. Every setting is checked
// and stored by apply_setting, for flags and file keys alike (config_settings.h); addresses are
// resolved in config_endpoint.cc, the file read in config_file.cc.
#include "tokentap/app/config_parse.h"

#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>

#include "config_settings.h"

namespace tokentap {
namespace {

constexpr std::string_view default_listen = ":11435";
constexpr std::string_view default_upstream = "http://127.0.0.1:11434";
constexpr std::string_view default_metrics_listen = ":9836";

}  // namespace

std::string help_text() {
  return fmt::format(
      "usage: tokentap [flags]\n"
      "       tokentap keygen NAME | hash-key | usage --state-dir DIR [...]\n"
      "\n"
      "io_uring reverse proxy for Ollama / OpenAI / Anthropic servers with Prometheus metrics.\n"
      "\n"
      "  --listen ADDR          proxy address (default {}; env LISTEN_ADDR)\n"
      "  --upstream [NAME=]URL  upstream server; repeat it for more backends, NAME being the\n"
      "                         `backend` label (default {}; alias --ollama-url;\n"
      "                         env OLLAMA_UPSTREAM, a comma-separated list)\n"
      "  --config FILE          TOML file: each flag as a key ('_' for '-') and [[backend]]\n"
      "                         tables (name, url, weight, max_parallel); flags override it;\n"
      "                         SIGHUP re-reads its backends\n"
      "  --health-interval MS   active health check period per backend (default {})\n"
      "  --retries N            other backends tried before the first response byte (default {})\n"
      "  --metrics-listen ADDR  metrics address serving /metrics and /healthz (default {})\n"
      "  --threads N            shards, one per core (default: online CPUs)\n"
      "  --preserve-host        send the client's Host upstream instead of the upstream's\n"
      "  --metrics-on-proxy     also answer GET /metrics on the proxy port (as the seeds did)\n"
      "  --max-models N         distinct model label values before __overflow__ (default {})\n"
      "  --max-body BYTES       largest request body accepted (default {}; --max-body-mb N)\n"
      "  --drain-timeout MS     how long in-flight requests may finish on SIGTERM (default {})\n"
      "  --head-timeout MS      a request head must arrive within this (default {}; 408)\n"
      "  --idle-timeout MS      idle keep-alive client connections close after (default {})\n"
      "  --max-connections N    client connections per shard before refusing (default 8192)\n"
      "  --buffers N            receive buffers (16 KiB) per shard, a power of two (default 1024)\n"
      "  --sq-entries N         io_uring submission queue entries per shard (default 1024)\n"
      "  --metrics-token TOKEN  require 'Authorization: Bearer TOKEN' on /metrics\n"
      "  --metrics-token-file F the same, the token read from file F (kept out of ps)\n"
      "  --access-log FILE|-    JSON access log, one line per request\n"
      "  --keys FILE            [[key]] tables (name, sha256, models, limits) besides --config's;\n"
      "                         with any key, requests need one (docs/keys.md)\n"
      "  --state-dir DIR        keep the usage ledger in DIR/usage.sqlite3\n"
      "  --forward-auth         pass Authorization and x-api-key on to the backends\n"
      "  --help, --version\n"
      "\n"
      "Flags may be written -flag or --flag, with the value after '=' or as the next argument.\n",
      default_listen, default_upstream, health_interval_ms_default, retries_default,
      default_metrics_listen, max_models_default, max_body_bytes_default, drain_timeout_ms_default,
      head_timeout_ms_default, idle_timeout_ms_default);
}

namespace config_detail {
namespace {

constexpr std::uint64_t u32_max = std::numeric_limits<std::uint32_t>::max();
constexpr std::uint64_t u64_max = std::numeric_limits<std::uint64_t>::max();

// One row per numeric setting: its range, its unit (for the error), and where it is stored.
struct NumberRule {
  std::string_view name;
  std::uint64_t min;
  std::uint64_t max;
  std::string_view unit;
  bool power_of_two;
  void (*store)(Config*, std::uint64_t);
};

constexpr NumberRule number_rules[] = {
    {"threads", 1, threads_max, "", false,
     [](Config* c, std::uint64_t v) { c->threads = static_cast<int>(v); }},
    {"max-models", 1, u32_max, "", false,
     [](Config* c, std::uint64_t v) { c->max_models = static_cast<std::uint32_t>(v); }},
    {"max-body", 1, u64_max, " bytes", false,
     [](Config* c, std::uint64_t v) { c->max_body_bytes = v; }},
    {"max-body-mb", 1, (1ull << 40) / mib, " MiB", false,
     [](Config* c, std::uint64_t v) { c->max_body_bytes = v * mib; }},
    {"drain-timeout", 0, u32_max, " ms", false,
     [](Config* c, std::uint64_t v) { c->drain_timeout_ms = static_cast<std::uint32_t>(v); }},
    {"head-timeout", 1, u32_max, " ms", false,
     [](Config* c, std::uint64_t v) { c->head_timeout_ms = static_cast<std::uint32_t>(v); }},
    {"idle-timeout", 1, u32_max, " ms", false,
     [](Config* c, std::uint64_t v) { c->idle_timeout_ms = static_cast<std::uint32_t>(v); }},
    {"max-connections", 1, 1'000'000, "", false,
     [](Config* c, std::uint64_t v) { c->max_connections = static_cast<std::uint32_t>(v); }},
    {"buffers", 2, 32768, "", true,
     [](Config* c, std::uint64_t v) { c->ring_buffers = static_cast<std::uint32_t>(v); }},
    {"sq-entries", 4, 32768, "", false,
     [](Config* c, std::uint64_t v) { c->sq_entries = static_cast<std::uint32_t>(v); }},
    {"health-interval", health_interval_ms_min, health_interval_ms_max, " ms", false,
     [](Config* c, std::uint64_t v) { c->health_interval_ms = static_cast<std::uint32_t>(v); }},
    {"retries", 0, retries_max, "", false,
     [](Config* c, std::uint64_t v) { c->retries = static_cast<std::uint32_t>(v); }},
};

constexpr std::string_view text_settings[] = {
    "listen",     "upstream", "ollama-url", "metrics-listen", "metrics-token", "metrics-token-file",
    "access-log", "config",   "keys",       "state-dir",
};

const NumberRule* number_rule(std::string_view name) {
  for (const NumberRule& r : number_rules) {
    if (r.name == name) return &r;
  }
  return nullptr;
}

bool apply_number(const NumberRule& rule, std::string_view text, Config* cfg,
                  std::string* problem) {
  std::uint64_t v = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  const bool parsed = ec == std::errc{} && end == text.data() + text.size() && !text.empty();
  if (!parsed || v < rule.min || v > rule.max || (rule.power_of_two && (v & (v - 1)) != 0)) {
    *problem = fmt::format("want {}{}..{}{}", rule.power_of_two ? "a power of two in " : "",
                           rule.min, rule.max, rule.unit);
    return false;
  }
  rule.store(cfg, v);
  return true;
}

}  // namespace

std::optional<SettingKind> setting_kind(std::string_view name) {
  if (number_rule(name) != nullptr) return SettingKind::number;
  for (const std::string_view t : text_settings) {
    if (t == name) return SettingKind::text;
  }
  if (name == "preserve-host" || name == "metrics-on-proxy" || name == "forward-auth") {
    return SettingKind::toggle;
  }
  if (name == "help" || name == "h" || name == "version") return SettingKind::action;
  return std::nullopt;
}

bool apply_setting(std::string_view name, std::string_view value, Settings* s,
                   std::string* problem) {
  if (const NumberRule* rule = number_rule(name)) {
    return apply_number(*rule, value, &s->cfg, problem);
  }
  if (name == "preserve-host") {
    s->cfg.preserve_host = value == "true";
  } else if (name == "metrics-on-proxy") {
    s->cfg.metrics_on_proxy = value == "true";
  } else if (name == "listen" || name == "metrics-listen") {
    std::optional<Endpoint> ep = parse_endpoint(value, problem);
    if (!ep) return false;
    (name == "listen" ? s->listen : s->metrics_listen) = std::move(*ep);
  } else if (name == "metrics-token") {
    s->cfg.metrics_token = value;
  } else if (name == "metrics-token-file") {
    s->metrics_token_file = value;
  } else if (name == "access-log") {
    s->cfg.access_log = value;
  } else if (name == "forward-auth") {
    s->cfg.forward_auth = value == "true";
  } else if (name == "keys" || name == "state-dir") {
    if (value.empty()) {
      *problem = name == "keys" ? "want a file" : "want a directory";
      return false;
    }
    (name == "keys" ? s->keys_file : s->cfg.state_dir) = value;
  } else {
    *problem = "not a setting";  // upstream and config are applied by the caller
    return false;
  }
  return true;
}

}  // namespace config_detail

namespace {

using config_detail::SettingKind;
using config_detail::Settings;

ParseOutcome failure(std::string error) {
  return ParseOutcome{ParseOutcome::Kind::error, {}, std::move(error), {}};
}

constexpr std::size_t metrics_token_file_bytes_max = 4096;

// Reads the token file as Prometheus writes `credentials_file`: the token alone, trailing
// whitespace (the editor's newline) dropped.
bool read_token_file(const std::string& path, std::string* token, std::string* error) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) {
    *error = fmt::format("cannot read '{}': {}", path, std::strerror(errno));
    return false;
  }
  char buf[metrics_token_file_bytes_max + 1];
  const std::size_t n = std::fread(buf, 1, sizeof buf, f);
  const bool failed = std::ferror(f) != 0;
  std::fclose(f);
  if (failed || n > metrics_token_file_bytes_max) {
    *error = fmt::format("'{}' is not a token file (unreadable or over {} bytes)", path,
                         metrics_token_file_bytes_max);
    return false;
  }
  std::string_view text(buf, n);
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' ' ||
                           text.back() == '\t')) {
    text.remove_suffix(1);
  }
  *token = text;
  return true;
}

// A bearer token is compared with the header's bytes; one that could never appear in a header
// (empty, spaces, control bytes) would lock every scraper out, so it is refused at start.
bool valid_token(std::string_view token) {
  if (token.empty()) return false;
  for (const char c : token) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) return false;
  }
  return true;
}

// Appends each item of a comma-separated "[NAME=]URL" list; blanks around items and empty items
// (a trailing comma) are skipped.
bool backends_from_list(std::string_view list, std::vector<BackendConfig>* out,
                        std::string* error) {
  while (!list.empty()) {
    const auto comma = list.find(',');
    std::string_view item = list.substr(0, comma);
    list = comma == std::string_view::npos ? std::string_view{} : list.substr(comma + 1);
    while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) item.remove_prefix(1);
    while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) item.remove_suffix(1);
    if (item.empty()) continue;
    BackendConfig b;
    if (!parse_backend_spec(item, &b, error) || !add_backend(out, std::move(b), error)) {
      return false;
    }
  }
  return true;
}

// The backends come from one source: the flags, else the file, else OLLAMA_UPSTREAM, else the
// default. backends[0] is mirrored into upstream/upstream_host for single-upstream code.
bool finish_backends(Settings* s, std::string* error) {
  Config& cfg = s->cfg;
  if (!s->flag_backends.empty()) {
    cfg.backends = std::move(s->flag_backends);
    cfg.backends_from_flags = true;
  } else if (!s->file_backends.empty()) {
    cfg.backends = std::move(s->file_backends);
  } else if (!backends_from_list(s->env_upstream, &cfg.backends, error)) {
    *error = "OLLAMA_UPSTREAM: " + *error;
    return false;
  }
  if (cfg.backends.empty() && !backends_from_list(default_upstream, &cfg.backends, error)) {
    return false;
  }
  cfg.upstream = cfg.backends.front().endpoint;
  cfg.upstream_host = cfg.backends.front().host_header;
  return true;
}

bool finish_token(Settings* s, std::string* error) {
  Config& cfg = s->cfg;
  if (!s->metrics_token_file.empty()) {
    if (!cfg.metrics_token.empty()) {
      *error = "--metrics-token and --metrics-token-file exclude each other";
      return false;
    }
    if (!read_token_file(s->metrics_token_file, &cfg.metrics_token, error)) {
      *error = fmt::format("{}: {}", s->token_file_origin, *error);
      return false;
    }
    if (cfg.metrics_token.empty()) {
      *error = fmt::format("{}: the file holds no token", s->token_file_origin);
      return false;
    }
  }
  if (!cfg.metrics_token.empty() && !valid_token(cfg.metrics_token)) {
    *error = "metrics token: spaces and control bytes cannot be sent in a header";
    return false;
  }
  return true;
}

ParseOutcome finish(Settings s) {
  std::string error;
  if (!s.listen) {
    const bool env = !s.env_listen.empty();
    s.listen = parse_endpoint(env ? std::string_view(s.env_listen) : default_listen, &error);
    if (!s.listen) return failure(fmt::format("{}: {}", env ? "LISTEN_ADDR" : "--listen", error));
  }
  if (!s.metrics_listen) s.metrics_listen = parse_endpoint(default_metrics_listen, &error);
  if (!s.metrics_listen) return failure("--metrics-listen: " + error);
  std::vector<std::string> warnings;
  if (!finish_backends(&s, &error) || !finish_token(&s, &error) ||
      !config_detail::finish_keys(&s, &warnings, &error)) {
    return failure(error);
  }
  Config& cfg = s.cfg;
  cfg.listen = std::move(*s.listen);
  cfg.metrics_listen = std::move(*s.metrics_listen);
  if (cfg.threads == 0) {
    const long online = sysconf(_SC_NPROCESSORS_ONLN);
    cfg.threads = online < 1 ? 1 : (online > threads_max ? threads_max : static_cast<int>(online));
  }
  return ParseOutcome{ParseOutcome::Kind::run, std::move(cfg), {}, std::move(warnings)};
}

struct Flag {
  std::string_view name;
  std::string_view value;  // "true"/"false" for a switch
};

// Pass 1: the command line's shape. Returns an outcome to stop with (help, version, error), or
// nullopt with every flag and its value in *flags.
std::optional<ParseOutcome> read_flags(int argc, const char* const* argv,
                                       std::vector<Flag>* flags) {
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg.size() < 2 || arg[0] != '-') {
      return failure(fmt::format("unexpected argument '{}' (see --help)", arg));
    }
    arg.remove_prefix(arg[1] == '-' ? 2 : 1);
    std::string_view name = arg;
    std::optional<std::string_view> value;
    if (const auto eq = arg.find('='); eq != std::string_view::npos) {
      name = arg.substr(0, eq);
      value = arg.substr(eq + 1);
    }
    const std::optional<SettingKind> kind = config_detail::setting_kind(name);
    if (!kind) return failure(fmt::format("unknown flag --{} (see --help)", name));
    if (*kind == SettingKind::action) {
      const bool help = name == "help" || name == "h";
      return ParseOutcome{
          help ? ParseOutcome::Kind::help : ParseOutcome::Kind::version, {}, {}, {}};
    }
    if (*kind == SettingKind::toggle) {
      const bool on = !value || *value == "true" || *value == "1";
      flags->push_back(Flag{name, on ? "true" : "false"});
      continue;
    }
    if (!value) {
      if (i + 1 >= argc) return failure(fmt::format("flag --{} needs a value (see --help)", name));
      value = std::string_view(argv[++i]);
    }
    flags->push_back(Flag{name, *value});
  }
  return std::nullopt;
}

// Pass 2: the flags over the environment and the file. The first --upstream replaces the file's
// backends (they are chosen by source in finish_backends); the first token flag drops the
// file's token, so `--metrics-token-file` on the line wins over `metrics_token` in the file.
bool apply_flags(const std::vector<Flag>& flags, Settings* s, std::string* error) {
  bool token_flag_seen = false;
  for (const Flag& f : flags) {
    if (f.name == "config") continue;
    if (f.name == "upstream" || f.name == "ollama-url") {
      BackendConfig b;
      if (!parse_backend_spec(f.value, &b, error) ||
          !add_backend(&s->flag_backends, std::move(b), error)) {
        *error = fmt::format("--{}: {}", f.name, *error);
        return false;
      }
      continue;
    }
    if ((f.name == "metrics-token" || f.name == "metrics-token-file") && !token_flag_seen) {
      token_flag_seen = true;
      s->cfg.metrics_token.clear();
      s->metrics_token_file.clear();
    }
    std::string problem;
    if (!config_detail::apply_setting(f.name, f.value, s, &problem)) {
      // A text's problem names the value already ("invalid address 'x' ...").
      *error = config_detail::setting_kind(f.name) == SettingKind::text
                   ? fmt::format("--{}: {}", f.name, problem)
                   : fmt::format("invalid value '{}' for --{}: {}", f.value, f.name, problem);
      return false;
    }
    if (f.name == "metrics-token-file") s->token_file_origin = "--metrics-token-file";
    if (f.name == "keys") s->keys_file_origin = "--keys";
  }
  return true;
}

}  // namespace

ParseOutcome parse_config(int argc, const char* const* argv, const EnvLookup& env) {
  std::vector<Flag> flags;
  if (std::optional<ParseOutcome> stop = read_flags(argc, argv, &flags)) return std::move(*stop);
  Settings s;
  if (const char* v = env("LISTEN_ADDR"); v != nullptr) s.env_listen = v;
  if (const char* v = env("OLLAMA_UPSTREAM"); v != nullptr) s.env_upstream = v;
  std::optional<std::string_view> config_path;
  for (const Flag& f : flags) {
    if (f.name == "config") config_path = f.value;  // the last one, as for every flag
  }
  std::string error;
  if (config_path) {
    if (config_path->empty()) return failure("flag --config needs a file (see --help)");
    s.cfg.config_file = *config_path;
    if (!config_detail::load_config_file(s.cfg.config_file, &s, &error)) return failure(error);
  }
  if (!apply_flags(flags, &s, &error)) return failure(error);
  return finish(std::move(s));
}

}  // namespace tokentap
