// Config addresses: listener endpoints, upstream URLs, and backends ("[NAME=]URL") with the
// rules that keep a backend list well-formed (at most backends_max, names and URLs unique).
//
// Pure but for getaddrinfo: a host name is resolved once, here, at start-up (or on a reload),
// never on a shard. Literal addresses never reach DNS.
#include <arpa/inet.h>
#include <fmt/format.h>
#include <netdb.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstring>

#include "tokentap/app/config_parse.h"

namespace tokentap {
namespace {

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

namespace {

// Whether the authority of an upstream URL ("h", "h:1", "[v6]", "[v6]:1") names a port: the
// rule parse_upstream_url splits by.
bool names_port(std::string_view authority) {
  return !authority.empty() && authority.back() != ']' &&
         authority.rfind(':') != std::string_view::npos;
}

std::uint16_t port_of(const Endpoint& ep) {
  // sin_port and sin6_port sit at the same offset; both families are in network order.
  return ntohs(reinterpret_cast<const sockaddr_in*>(&ep.addr)->sin_port);
}

// What two backends are compared by: lower-case host and the port as a number, so
// "http://H:0080/" and "http://h" are one backend.
std::string authority_key(const BackendConfig& b) {
  std::string_view host = b.host_header;
  if (names_port(host)) host = host.substr(0, host.rfind(':'));
  std::string key = fmt::format("{}:{}", host, port_of(b.endpoint));
  std::transform(key.begin(), key.end(), key.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return key;
}

}  // namespace

bool valid_backend_name(std::string_view name) {
  if (name.empty() || name.size() > backend_name_bytes_max) return false;
  return std::all_of(name.begin(), name.end(), [](unsigned char c) {
    return std::isalnum(c) != 0 || c == '_' || c == '.' || c == '-';
  });
}

bool make_backend(std::optional<std::string_view> name, std::string_view url, BackendConfig* out,
                  std::string* error) {
  if (name && !valid_backend_name(*name)) {
    *error = fmt::format("invalid backend name '{}': want 1..{} of A-Z a-z 0-9 _ . -", *name,
                         backend_name_bytes_max);
    return false;
  }
  if (!parse_upstream_url(url, &out->endpoint, &out->host_header, error)) return false;
  out->url = std::string(url);
  if (name) {
    out->name = std::string(*name);
  } else {
    out->name = names_port(out->host_header) ? out->host_header : out->host_header + ":80";
  }
  return true;
}

bool parse_backend_spec(std::string_view spec, BackendConfig* out, std::string* error) {
  // NAME=URL when an '=' comes before the scheme; a URL we accept holds no '=' of its own.
  const auto eq = spec.find('=');
  const auto scheme = spec.find("://");
  if (eq != std::string_view::npos && (scheme == std::string_view::npos || eq < scheme)) {
    return make_backend(spec.substr(0, eq), spec.substr(eq + 1), out, error);
  }
  return make_backend(std::nullopt, spec, out, error);
}

bool add_backend(std::vector<BackendConfig>* list, BackendConfig backend, std::string* error) {
  if (list->size() >= backends_max) {
    *error = fmt::format("more than {} backends", backends_max);
    return false;
  }
  const std::string key = authority_key(backend);
  // The URL first: two unnamed entries for one server share a default name too, and the URL is
  // what the operator repeated.
  for (const BackendConfig& b : *list) {
    if (authority_key(b) == key) {
      *error = fmt::format("duplicate backend URL '{}' (same server as '{}')", backend.url, b.url);
      return false;
    }
  }
  for (const BackendConfig& b : *list) {
    if (b.name == backend.name) {
      *error = fmt::format("duplicate backend name '{}'", backend.name);
      return false;
    }
  }
  list->push_back(std::move(backend));
  return true;
}

}  // namespace tokentap
