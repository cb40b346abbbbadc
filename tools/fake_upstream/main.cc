// fake_upstream: the fake Ollama/OpenAI/Anthropic upstream as a process, for wrk benchmarks.
//   fake_upstream --listen 127.0.0.1:PORT --threads N [--no-deterministic]
// Prints "listening HOST:PORT" once every listener is bound, then serves until SIGINT/SIGTERM.
#include <signal.h>

#include <charconv>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>

#include "fake_upstream.h"

namespace {

int usage(const char* error) {
  std::fprintf(stderr, "fake_upstream: %s\n", error);
  std::fprintf(stderr,
               "usage: fake_upstream [--listen HOST:PORT] [--threads N] [--no-deterministic]\n");
  return 2;
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
