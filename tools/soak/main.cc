// soak: issue 5's load and soak driver for tokentap (see README.md and soak.h).
//   soak --tokentap build-release/tokentap [--duration 300] [--burst 10000] [--slow 5000] ...
// Prints a markdown report; exit status 0 only when every check passed.
#include <signal.h>

#include <cstdio>
#include <string>

#include "options.h"
#include "soak.h"

int main(int argc, char** argv) {
  tokentap::soak::Options options;
  bool help = false;
  std::string error;
  if (!tokentap::soak::parse_options(argc, argv, &options, &help, &error)) {
    std::fprintf(stderr, "soak: %s\n%s", error.c_str(), tokentap::soak::usage_text());
    return 2;
  }
  if (help) {
    std::fputs(tokentap::soak::usage_text(), stdout);
    return 0;
  }
  signal(SIGPIPE, SIG_IGN);
  tokentap::soak::Soak soak(options);
  return soak.run();
}
