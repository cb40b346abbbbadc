// config_args: the argv/env plumbing and temporary files the config tests share (header-only
// test helper).
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "tokentap/app/config_parse.h"

namespace tokentap::test {

// parse_config over `tokentap <list…>` with `env` as the environment.
inline ParseOutcome parse(std::vector<std::string> list,
                          std::map<std::string, std::string> env = {}) {
  list.insert(list.begin(), "tokentap");
  std::vector<const char*> argv;
  for (const auto& s : list) argv.push_back(s.c_str());
  return parse_config(static_cast<int>(argv.size()), argv.data(),
                      [env](const char* name) -> const char* {
                        auto it = env.find(name);
                        return it == env.end() ? nullptr : it->second.c_str();
                      });
}

inline std::uint16_t port_of(const Endpoint& ep) {
  return ntohs(reinterpret_cast<const sockaddr_in*>(&ep.addr)->sin_port);
}

// A temporary file holding `text` (a config or token file), removed when the test ends.
struct TempFile {
  std::string path;
  explicit TempFile(std::string_view text) {
    char name[] = "/tmp/tokentap-config-XXXXXX";
    const int fd = mkstemp(name);
    EXPECT_GE(fd, 0);
    EXPECT_EQ(write(fd, text.data(), text.size()), static_cast<ssize_t>(text.size()));
    close(fd);
    path = name;
  }
  ~TempFile() { unlink(path.c_str()); }
};

}  // namespace tokentap::test
