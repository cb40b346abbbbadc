// Config parsing: flags and environment → an immutable Config, or one clear error line.
#include "tokentap/app/config_parse.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <unistd.h>

#include <charconv>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fmt/format.h>

namespace tokentap {
namespace {

constexpr std::string_view default_listen = ":11435";
constexpr std::string_view default_upstream = "http://127.0.0.1:11434";
constexpr std::string_view default_metrics_listen = ":9836";

// Port 0 is accepted only where `allow_zero` (a listener: the kernel picks a free port).
bool parse_port(std::string_view text, std::uint16_t* port, bool allow_zero = false) {
  unsigned value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || end != text.data() + text.size() || text.empty() ||
      (value == 0 && !allow_zero) || value > 65535) {
    return false;
  }
  *port = static_cast<std::uint16_t>(value);
  return true;
}

template <typename Int>
bool parse_uint(std::string_view text, Int* out) {
  Int value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || end != text.data() + text.size() || text.empty()) return false;
  *out = value;
  return true;
}

// Resolves host (empty = wildcard) and port into a sockaddr. Literal addresses never hit DNS.
bool resolve(const std::string& host, std::uint16_t port, bool passive, Endpoint* out,
             std::string* error) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = passive ? AI_PASSIVE : 0;
  addrinfo* result = nullptr;
  const std::string service = std::to_string(port);
  const char* const node = host.empty() ? nullptr : host.c_str();
  const int rc = getaddrinfo(node, service.c_str(), &hints, &result);
  if (rc != 0 || result == nullptr) {
    *error = fmt::format("cannot resolve '{}': {}", host, gai_strerror(rc));
    return false;
  }
  // Prefer IPv4 for the wildcard so ":11435" binds 0.0.0.0 as the seeds did.
  const addrinfo* pick = result;
  for (const addrinfo* ai = result; ai != nullptr; ai = ai->ai_next) {
    if (ai->ai_family == AF_INET) {
      pick = ai;
      break;
    }
  }
  std::memcpy(&out->addr, pick->ai_addr, pick->ai_addrlen);
  out->addr_len = pick->ai_addrlen;
  freeaddrinfo(result);
  return true;
}

// Splits "host:port", "[v6]:port" or ":port" into its parts.
bool split_host_port(std::string_view text, std::string* host, std::string_view* port) {
  if (!text.empty() && text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return false;
    }
    *host = std::string(text.substr(1, close - 1));
    *port = text.substr(close + 2);
    return true;
  }
  const auto colon = text.rfind(':');
  if (colon == std::string_view::npos) return false;
  *host = std::string(text.substr(0, colon));
  *port = text.substr(colon + 1);
  return host->find(':') == std::string::npos;
}

}  // namespace

std::optional<Endpoint> parse_endpoint(std::string_view text, std::string* error) {
  std::string host;
  std::string_view port_text;
  std::uint16_t port = 0;
  if (!split_host_port(text, &host, &port_text) ||
      !parse_port(port_text, &port, /*allow_zero=*/true)) {
    *error = fmt::format("invalid address '{}' (want host:port, :port or [v6]:port)", text);
    return std::nullopt;
  }
  Endpoint ep;
  if (!resolve(host, port, /*passive=*/true, &ep, error)) return std::nullopt;
  ep.text = std::string(text);
  return ep;
}

bool parse_upstream_url(std::string_view url, Endpoint* out, std::string* host_header,
                        std::string* error) {
  constexpr std::string_view scheme = "http://";
  if (url.substr(0, scheme.size()) != scheme) {
    *error = fmt::format("invalid upstream URL '{}': only http:// is supported", url);
    return false;
  }
  std::string_view rest = url.substr(scheme.size());
  while (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  if (rest.empty() || rest.find('/') != std::string_view::npos ||
      rest.find('@') != std::string_view::npos || rest.find('?') != std::string_view::npos) {
    *error = fmt::format("invalid upstream URL '{}': want http://host[:port] with no path", url);
    return false;
  }
  std::string host;
  std::string_view port_text = "80";
  const bool has_port = rest.back() != ']' && rest.rfind(':') != std::string_view::npos;
  if (has_port) {
    if (!split_host_port(rest, &host, &port_text)) {
      *error = fmt::format("invalid upstream URL '{}'", url);
      return false;
    }
  } else {
    host = std::string(rest);
    if (host.size() > 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
  }
  std::uint16_t port = 0;
  if (host.empty() || !parse_port(port_text, &port)) {
    *error = fmt::format("invalid upstream URL '{}': bad host or port", url);
    return false;
  }
  if (!resolve(host, port, /*passive=*/false, out, error)) return false;
  out->text = std::string(rest);
  *host_header = std::string(rest);
  return true;
}

std::string help_text() {
  return fmt::format(
      "usage: tokentap [flags]\n"
      "\n"
      "io_uring reverse proxy for Ollama / OpenAI / Anthropic servers with Prometheus metrics.\n"
      "\n"
      "  --listen ADDR          proxy address (default {}; env LISTEN_ADDR)\n"
      "  --upstream URL         upstream server (default {}; alias --ollama-url;\n"
      "                         env OLLAMA_UPSTREAM)\n"
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
      "  --help, --version\n"
      "\n"
      "Flags may be written -flag or --flag, with the value after '=' or as the next argument.\n",
      default_listen, default_upstream, default_metrics_listen, max_models_default,
      max_body_bytes_default, drain_timeout_ms_default, head_timeout_ms_default,
      idle_timeout_ms_default);
}

namespace {

struct RawFlags {
  std::string listen{default_listen};
  std::string upstream{default_upstream};
  std::string metrics_listen{default_metrics_listen};
  std::string metrics_token_file;
};

// A token file is a secret of a few dozen bytes; anything larger is a wrong path.
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

// Applies one flag with its value; returns false with *error set when the flag is unknown or bad.
bool apply_flag(std::string_view name, std::string_view value, RawFlags* raw, Config* cfg,
                std::string* error) {
  auto bad = [&](std::string_view want) {
    *error = fmt::format("invalid value '{}' for --{}: want {}", value, name, want);
    return false;
  };
  if (name == "listen") {
    raw->listen = value;
  } else if (name == "upstream" || name == "ollama-url") {
    raw->upstream = value;
  } else if (name == "metrics-listen") {
    raw->metrics_listen = value;
  } else if (name == "threads") {
    if (!parse_uint(value, &cfg->threads) || cfg->threads < 1 || cfg->threads > threads_max) {
      return bad(fmt::format("1..{}", threads_max));
    }
  } else if (name == "max-models") {
    if (!parse_uint(value, &cfg->max_models) || cfg->max_models < 1) return bad("a count >= 1");
  } else if (name == "max-body") {
    if (!parse_uint(value, &cfg->max_body_bytes) || cfg->max_body_bytes < 1) return bad("bytes");
  } else if (name == "max-body-mb") {
    std::uint64_t mb = 0;
    if (!parse_uint(value, &mb) || mb < 1 || mb > (1ull << 40) / mib) return bad("MiB >= 1");
    cfg->max_body_bytes = mb * mib;
  } else if (name == "drain-timeout") {
    if (!parse_uint(value, &cfg->drain_timeout_ms)) return bad("milliseconds");
  } else if (name == "buffers") {
    if (!parse_uint(value, &cfg->ring_buffers) || cfg->ring_buffers < 2 ||
        cfg->ring_buffers > 32768 || (cfg->ring_buffers & (cfg->ring_buffers - 1)) != 0) {
      return bad("a power of two in 2..32768");
    }
  } else if (name == "max-connections") {
    if (!parse_uint(value, &cfg->max_connections) || cfg->max_connections < 1 ||
        cfg->max_connections > 1'000'000) {
      return bad("1..1000000");
    }
  } else if (name == "sq-entries") {
    if (!parse_uint(value, &cfg->sq_entries) || cfg->sq_entries < 4 || cfg->sq_entries > 32768) {
      return bad("4..32768");
    }
  } else if (name == "head-timeout") {
    if (!parse_uint(value, &cfg->head_timeout_ms) || cfg->head_timeout_ms < 1) {
      return bad("milliseconds >= 1");
    }
  } else if (name == "idle-timeout") {
    if (!parse_uint(value, &cfg->idle_timeout_ms) || cfg->idle_timeout_ms < 1) {
      return bad("milliseconds >= 1");
    }
  } else if (name == "metrics-token") {
    cfg->metrics_token = value;
  } else if (name == "metrics-token-file") {
    raw->metrics_token_file = value;
  } else if (name == "access-log") {
    cfg->access_log = value;
  } else {
    *error = fmt::format("unknown flag --{} (see --help)", name);
    return false;
  }
  return true;
}

bool is_switch(std::string_view name) {
  return name == "preserve-host" || name == "metrics-on-proxy" || name == "help" || name == "h" ||
         name == "version";
}

constexpr std::string_view valued_flags[] = {
    "listen",       "upstream",      "ollama-url",   "metrics-listen",  "threads",
    "max-models",   "max-body",      "max-body-mb",  "drain-timeout",   "metrics-token",
    "access-log",   "head-timeout",  "idle-timeout", "max-connections", "buffers",
    "sq-entries",   "metrics-token-file",
};

bool is_valued(std::string_view name) {
  for (const std::string_view f : valued_flags) {
    if (f == name) return true;
  }
  return false;
}

ParseOutcome finish(RawFlags raw, Config cfg) {
  ParseOutcome out;
  std::string error;
  auto listen = parse_endpoint(raw.listen, &error);
  if (!listen) return ParseOutcome{ParseOutcome::Kind::error, {}, "--listen: " + error};
  auto metrics = parse_endpoint(raw.metrics_listen, &error);
  if (!metrics) return ParseOutcome{ParseOutcome::Kind::error, {}, "--metrics-listen: " + error};
  if (!parse_upstream_url(raw.upstream, &cfg.upstream, &cfg.upstream_host, &error)) {
    return ParseOutcome{ParseOutcome::Kind::error, {}, "--upstream: " + error};
  }
  if (!raw.metrics_token_file.empty()) {
    if (!cfg.metrics_token.empty()) {
      return ParseOutcome{ParseOutcome::Kind::error, {},
                          "--metrics-token and --metrics-token-file exclude each other"};
    }
    if (!read_token_file(raw.metrics_token_file, &cfg.metrics_token, &error)) {
      return ParseOutcome{ParseOutcome::Kind::error, {}, "--metrics-token-file: " + error};
    }
    if (cfg.metrics_token.empty()) {
      return ParseOutcome{ParseOutcome::Kind::error, {},
                          "--metrics-token-file: the file holds no token"};
    }
  }
  if (!cfg.metrics_token.empty() && !valid_token(cfg.metrics_token)) {
    return ParseOutcome{ParseOutcome::Kind::error, {},
                        "metrics token: spaces and control bytes cannot be sent in a header"};
  }
  cfg.listen = std::move(*listen);
  cfg.metrics_listen = std::move(*metrics);
  if (cfg.threads == 0) {
    const long online = sysconf(_SC_NPROCESSORS_ONLN);
    cfg.threads = online < 1 ? 1 : (online > threads_max ? threads_max : static_cast<int>(online));
  }
  out.kind = ParseOutcome::Kind::run;
  out.config = std::move(cfg);
  return out;
}

}  // namespace

ParseOutcome parse_config(int argc, const char* const* argv, const EnvLookup& env) {
  RawFlags raw;
  Config cfg;
  if (const char* v = env("LISTEN_ADDR"); v != nullptr && *v != '\0') raw.listen = v;
  if (const char* v = env("OLLAMA_UPSTREAM"); v != nullptr && *v != '\0') raw.upstream = v;

  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg.size() < 2 || arg[0] != '-') {
      return ParseOutcome{ParseOutcome::Kind::error, {},
                          fmt::format("unexpected argument '{}' (see --help)", arg)};
    }
    arg.remove_prefix(arg[1] == '-' ? 2 : 1);
    std::string_view name = arg;
    std::optional<std::string_view> value;
    if (const auto eq = arg.find('='); eq != std::string_view::npos) {
      name = arg.substr(0, eq);
      value = arg.substr(eq + 1);
    }
    if (!is_switch(name) && !is_valued(name)) {
      return ParseOutcome{ParseOutcome::Kind::error, {},
                          fmt::format("unknown flag --{} (see --help)", name)};
    }
    if (is_switch(name)) {
      if (name == "help" || name == "h") return ParseOutcome{ParseOutcome::Kind::help, {}, {}};
      if (name == "version") return ParseOutcome{ParseOutcome::Kind::version, {}, {}};
      const bool on = !value || *value == "true" || *value == "1";
      (name == "preserve-host" ? cfg.preserve_host : cfg.metrics_on_proxy) = on;
      continue;
    }
    if (!value) {
      if (i + 1 >= argc) {
        return ParseOutcome{ParseOutcome::Kind::error, {},
                            fmt::format("flag --{} needs a value (see --help)", name)};
      }
      value = std::string_view(argv[++i]);
    }
    std::string error;
    if (!apply_flag(name, *value, &raw, &cfg, &error)) {
      return ParseOutcome{ParseOutcome::Kind::error, {}, error};
    }
  }
  return finish(std::move(raw), std::move(cfg));
}

}  // namespace tokentap
