// fake_upstream: the fake Ollama/OpenAI/Anthropic upstream as a process, for wrk benchmarks and
// fleet scripts (one process per fake backend).
//   fake_upstream --listen 127.0.0.1:PORT --threads N [--no-deterministic] [--models a,b]
//                 [--resident a] [--busy] [--health ok|fail|slow] [--health-slow-ms MS]
//                 [--close before-head|after-head|mid-body] [--pull-fail] [--pull-delay-ms MS]
// Prints "listening HOST:PORT" once every listener is bound, then serves until SIGINT/SIGTERM.
#include <signal.h>

#include <charconv>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "fake_upstream.h"

namespace {

int usage(const char* error) {
  std::fprintf(stderr, "fake_upstream: %s\n", error);
  std::fprintf(stderr,
               "usage: fake_upstream [--listen HOST:PORT] [--threads N] [--no-deterministic]\n"
               "         [--models A,B,...] [--resident A,B,...] [--busy]\n"
               "         [--health ok|fail|slow] [--health-slow-ms MS]\n"
               "         [--close before-head|after-head|mid-body]\n"
               "         [--pull-fail] [--pull-delay-ms MS]\n");
  return 2;
}

// "a,b,c" → {a, b, c}; "" → {} (empty items dropped).
std::vector<std::string> split_list(std::string_view text) {
  std::vector<std::string> out;
  while (!text.empty()) {
    const std::size_t comma = text.find(',');
    const std::string_view item = text.substr(0, comma);
    if (!item.empty()) out.emplace_back(item);
    if (comma == std::string_view::npos) break;
    text.remove_prefix(comma + 1);
  }
  return out;
}

bool parse_int(std::string_view text, int* out) {
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), *out);
  return ec == std::errc{} && end == text.data() + text.size();
}

// "HOST:PORT", "[V6]:PORT" or ":PORT".
bool parse_listen(std::string_view text, tokentap::fake::Options* options) {
  const std::size_t colon = text.rfind(':');
  if (colon == std::string_view::npos) return false;
  std::string_view host = text.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  int port = 0;
  if (!parse_int(text.substr(colon + 1), &port) || port < 0 || port > 65535) return false;
  options->host = host.empty() ? "0.0.0.0" : std::string(host);
  options->port = static_cast<std::uint16_t>(port);
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  tokentap::fake::Options options;
  options.host = "127.0.0.1";
  options.port = 11434;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    const bool has_value = i + 1 < argc;
    if (arg == "--listen" && has_value) {
      if (!parse_listen(argv[++i], &options)) return usage("bad --listen value");
    } else if (arg == "--threads" && has_value) {
      if (!parse_int(argv[++i], &options.threads) || options.threads < 1) {
        return usage("bad --threads value");
      }
    } else if (arg == "--no-deterministic") {
      options.deterministic = false;
    } else if (arg == "--models" && has_value) {
      options.models = split_list(argv[++i]);
    } else if (arg == "--resident" && has_value) {
      options.resident = split_list(argv[++i]);
    } else if (arg == "--busy") {
      options.busy = true;
    } else if (arg == "--health" && has_value) {
      if (!tokentap::fake::parse_health(argv[++i], &options.health)) {
        return usage("bad --health value");
      }
    } else if (arg == "--health-slow-ms" && has_value) {
      int ms = 0;
      if (!parse_int(argv[++i], &ms) || ms < 0) return usage("bad --health-slow-ms value");
      options.health_slow_ms = static_cast<std::uint32_t>(ms);
    } else if (arg == "--close" && has_value) {
      if (!tokentap::fake::parse_close_mode(argv[++i], &options.close)) {
        return usage("bad --close value");
      }
    } else if (arg == "--pull-fail") {
      options.pull_fail = true;
    } else if (arg == "--pull-delay-ms" && has_value) {
      int ms = 0;
      if (!parse_int(argv[++i], &ms) || ms < 0) return usage("bad --pull-delay-ms value");
      options.pull_delay_ms = static_cast<std::uint32_t>(ms);
    } else {
      return usage("unknown argument");
    }
  }
  // Block the signals before the workers start so only sigwait() below receives them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  tokentap::fake::FakeUpstream upstream(options);
  std::string error;
  if (!upstream.start(&error)) {
    std::fprintf(stderr, "fake_upstream: %s\n", error.c_str());
    return 1;
  }
  const bool v6 = options.host.find(':') != std::string::npos;
  std::printf(v6 ? "listening [%s]:%u\n" : "listening %s:%u\n", options.host.c_str(),
              static_cast<unsigned>(upstream.port()));
  std::fflush(stdout);
  int received = 0;
  sigwait(&signals, &received);
  upstream.stop();
  const tokentap::fake::Stats s = upstream.stats();
  std::fprintf(stderr, "fake_upstream: %llu requests, %llu connections, %llu bytes sent\n",
               static_cast<unsigned long long>(s.requests),
               static_cast<unsigned long long>(s.connections_accepted),
               static_cast<unsigned long long>(s.bytes_sent));
  return 0;
}
