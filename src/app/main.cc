// tokentap entry point: parse the configuration, start the shards, wait for SIGINT/SIGTERM.
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "tokentap/app/config_parse.h"
#include "tokentap/app/server.h"
#include "tokentap/app/subcommand.h"

namespace {

// Signals are blocked in every thread and taken synchronously here, so no handler ever runs
// on a shard thread in the middle of a loop turn.
sigset_t block_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  sigaddset(&set, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);
  return set;
}

// One upstream reads as it always did ("upstream http://127.0.0.1:11434"); several are listed
// by name ("backends gpu0=http://127.0.0.1:11500 gpu1=...").
std::string backends_banner(const tokentap::Config& cfg) {
  if (cfg.backends.size() == 1) return "upstream http://" + cfg.upstream_host;
  std::string text = "backends";
  for (const tokentap::BackendConfig& b : cfg.backends) {
    text += ' ';
    text += b.name;
    text += "=http://";
    text += b.host_header;
  }
  return text;
}

}  // namespace

int main(int argc, char** argv) {
  if (auto rc = tokentap::run_subcommand(argc, argv)) return *rc;
  using tokentap::ParseOutcome;
  const ParseOutcome parsed =
      tokentap::parse_config(argc, argv, [](const char* name) { return std::getenv(name); });
  switch (parsed.kind) {
    case ParseOutcome::Kind::help:
      std::fputs(tokentap::help_text().c_str(), stdout);
      return 0;
    case ParseOutcome::Kind::version:
      std::printf("tokentap %s\n", TOKENTAP_VERSION);
      return 0;
    case ParseOutcome::Kind::error:
      std::fprintf(stderr, "tokentap: %s\n", parsed.error.c_str());
      return 2;
    case ParseOutcome::Kind::run:
      break;
  }
  for (const std::string& w : parsed.warnings) std::fprintf(stderr, "tokentap: %s\n", w.c_str());
  const sigset_t signals = block_signals();
  tokentap::Server server(parsed.config);
  std::string error;
  if (!server.start(&error)) {
    std::fprintf(stderr, "tokentap: %s\n", error.c_str());
    return 1;
  }
  std::printf("tokentap %s listening on %s, metrics on %s, %s, %s\n", TOKENTAP_VERSION,
              parsed.config.listen.text.c_str(), parsed.config.metrics_listen.text.c_str(),
              backends_banner(parsed.config).c_str(), server.features());
  std::fflush(stdout);
  for (;;) {
    int sig = 0;
    if (sigwait(&signals, &sig) != 0) continue;
    if (sig == SIGHUP) {
      // Re-read --config FILE's backends: one line either way, never an exit.
      std::string message;
      (void)server.reload(&message);
      std::fprintf(stderr, "tokentap: %s\n", message.c_str());
      continue;
    }
    if (sig == SIGUSR1) {
      server.reopen_access_log();
      continue;
    }
    break;
  }
  // SIGTERM/SIGINT: stop accepting, let requests and streams in progress finish (bounded by
  // --drain-timeout), then exit 0.
  server.stop(parsed.config.drain_timeout_ms);
  return 0;
}
