// temp_dir: a fresh directory under /tmp for one test, removed with everything in it at the end
// (header-only test helper).
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <string>

namespace tokentap::test {

struct TempDir {
  std::string path;
  TempDir() {
    char name[] = "/tmp/tokentap-ledger-XXXXXX";
    EXPECT_NE(mkdtemp(name), nullptr);
    path = name;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
};

}  // namespace tokentap::test
