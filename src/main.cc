// tokentap entry point: parse the configuration, then hand over to the server.
#include <cstdio>
#include <cstdlib>

#include "tokentap/config.h"

int main(int argc, char** argv) {
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
  std::fprintf(stderr, "tokentap: the proxy loop is not built yet\n");
  return 1;
}
