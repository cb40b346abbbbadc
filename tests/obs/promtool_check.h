// promtool_check: `promtool check metrics` (Debian: prometheus) on an exposition, for the tests
// that hold tokentap's text to the real parser's rules. Header-only test helper.
#pragma once

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

namespace tokentap::test {

// The promtool binary, or "" when it is not installed (the caller skips).
inline std::string promtool_path() {
  for (const char* p : {"/usr/bin/promtool", "/usr/local/bin/promtool"}) {
    if (::access(p, X_OK) == 0) return p;
  }
  return {};
}

struct PromtoolResult {
  int status = -1;     // promtool's exit status (0: accepted)
  std::string output;  // what it printed (empty when every rule holds)
};

inline PromtoolResult promtool_check(const std::string& promtool, const std::string& text) {
  PromtoolResult r;
  char path[] = "/tmp/tokentap_promtool_XXXXXX";
  const int fd = ::mkstemp(path);
  if (fd < 0) return r;
  const bool written = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  ::close(fd);
  FILE* pipe = written ? ::popen((promtool + " check metrics < " + path + " 2>&1").c_str(), "r")
                       : nullptr;
  if (pipe != nullptr) {
    char buf[512];
    while (std::fgets(buf, sizeof buf, pipe) != nullptr) r.output += buf;
    r.status = ::pclose(pipe);
  }
  ::unlink(path);
  return r;
}

}  // namespace tokentap::test
