// SIGHUP to the tokentap binary (issue 16): the signal re-reads --config FILE, writes one log
// line, and the new backend takes requests; an invalid file is one refusal line and the process
// keeps serving. The rest of reloading is tested in-process (tests/proxy/backend_reload_test.cc).
#include <gtest/gtest.h>

#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <thread>

#include "fake_upstream.h"
#include "support/fake_fleet.h"
#include "support/http_client.h"

namespace tokentap {
namespace {

using namespace std::chrono_literals;

// A port nobody listens on right now (bound, then released: tokentap binds it next).
std::uint16_t free_port() {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(a);
  (void)!bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  close(fd);
  return ntohs(a.sin_port);
}

// The binary as a child, its stderr on a pipe this test reads lines from.
class Child {
 public:
  Child(const char* binary, const std::vector<std::string>& args) {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) return;
    pid_ = fork();
    if (pid_ == 0) {
      dup2(fds[1], STDERR_FILENO);
      std::vector<char*> argv{const_cast<char*>(binary)};
      for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      execv(binary, argv.data());
      _exit(127);
    }
    close(fds[1]);
    err_fd_ = fds[0];
  }
  ~Child() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    if (err_fd_ >= 0) close(err_fd_);
  }
  void signal(int sig) const { kill(pid_, sig); }
  bool alive() const { return pid_ > 0 && waitpid(pid_, nullptr, WNOHANG) == 0; }
  // The next stderr line containing `want`, within timeout_ms ("" if none came).
  std::string line_with(const std::string& want, int timeout_ms = 3000) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    for (;;) {
      for (std::size_t nl; (nl = buffered_.find('\n')) != std::string::npos;) {
        std::string line = buffered_.substr(0, nl);
        buffered_.erase(0, nl + 1);
        if (line.find(want) != std::string::npos) return line;
      }
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      pollfd p{err_fd_, POLLIN, 0};
      if (left.count() <= 0 || poll(&p, 1, static_cast<int>(left.count())) <= 0) return "";
      char buf[4096];
      const ssize_t n = read(err_fd_, buf, sizeof(buf));
      if (n <= 0) return "";
      buffered_.append(buf, static_cast<std::size_t>(n));
    }
  }

 private:
  pid_t pid_ = -1;
  int err_fd_ = -1;
  std::string buffered_;
};

int generate_status(std::uint16_t port) { return test::generate(port, "llama3.2").status; }

TEST(Sighup, ReloadsTheConfigFileAndRefusesAnInvalidOneWithOneLine) {
  const char* binary = std::getenv("TOKENTAP_BINARY");
  if (binary == nullptr) GTEST_SKIP() << "TOKENTAP_BINARY not set (run through ctest)";
  fake::FakeUpstream a{fake::Options{}};
  fake::FakeUpstream b{fake::Options{}};
  std::string error;
  ASSERT_TRUE(a.start(&error) && b.start(&error)) << error;
  const std::string path = ::testing::TempDir() + "sighup_test.toml";
  const auto write = [&](bool both) {
    std::ofstream out(path, std::ios::trunc);
    out << "[[backend]]\nname = \"a\"\nurl = \"http://127.0.0.1:" << a.port() << "\"\n";
    if (both) out << "[[backend]]\nname = \"b\"\nurl = \"http://127.0.0.1:" << b.port() << "\"\n";
  };
  write(false);
  const std::uint16_t port = free_port();
  Child child(binary, {"--listen", "127.0.0.1:" + std::to_string(port), "--metrics-listen",
                       "127.0.0.1:0", "--threads", "1", "--config", path});
  bool up = false;
  for (int i = 0; i < 100 && !(up = generate_status(port) == 200); ++i) {
    std::this_thread::sleep_for(20ms);
  }
  ASSERT_TRUE(up) << "tokentap did not start";
  write(true);
  child.signal(SIGHUP);
  const std::string reloaded = child.line_with("SIGHUP");
  EXPECT_NE(reloaded.find("added b"), std::string::npos) << reloaded;
  // A new backend takes a model's requests once its /api/tags is known (polled as it starts).
  test::wait_for_tags({&b});
  const std::uint64_t before = b.stats().inference_requests;
  for (int i = 0; i < 10; ++i) ASSERT_EQ(generate_status(port), 200);
  EXPECT_GT(b.stats().inference_requests, before) << "the added backend takes requests";
  std::ofstream(path, std::ios::trunc) << "[[backend]]\nname = \"bad name!\"\nurl = \"x\"\n";
  child.signal(SIGHUP);
  const std::string refused = child.line_with("SIGHUP");
  EXPECT_NE(refused.find("running configuration stays"), std::string::npos) << refused;
  EXPECT_TRUE(child.alive());
  EXPECT_EQ(generate_status(port), 200);
  std::remove(path.c_str());
}

}  // namespace
}  // namespace tokentap
