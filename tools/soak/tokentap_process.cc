// TokentapProcess (see tokentap_process.h).
#include "tokentap_process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

#include <fmt/format.h>

#include "blocking_http.h"

namespace tokentap::soak {

TokentapProcess::~TokentapProcess() {
  if (pid_ > 0) {
    kill(pid_, SIGKILL);
    (void)waitpid(pid_, nullptr, 0);
  }
}

bool TokentapProcess::start(const std::string& binary, const std::vector<std::string>& args,
                            const std::string& log_path, std::string* error) {
  if (access(binary.c_str(), X_OK) != 0) {
    *error = fmt::format("{}: not executable ({})", binary, std::strerror(errno));
    return false;
  }
  std::vector<char*> argv;
  argv.push_back(const_cast<char*>(binary.c_str()));
  for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::fflush(nullptr);
  pid_ = fork();
  if (pid_ < 0) {
    *error = fmt::format("fork: {}", std::strerror(errno));
    return false;
  }
  if (pid_ == 0) {
    (void)prctl(PR_SET_PDEATHSIG, SIGKILL);
    const int log = open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    const int null_in = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (log >= 0) {
      dup2(log, STDOUT_FILENO);
      dup2(log, STDERR_FILENO);
    }
    if (null_in >= 0) dup2(null_in, STDIN_FILENO);
    execv(binary.c_str(), argv.data());
    _exit(127);
  }
  return true;
}

bool TokentapProcess::wait_healthy(std::uint16_t metrics_port, int timeout_ms) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < deadline) {
    if (!alive()) return false;
    if (healthz_ok(metrics_port)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

bool TokentapProcess::alive() {
  if (pid_ <= 0) return false;
  int status = 0;
  if (waitpid(pid_, &status, WNOHANG) == pid_) {
    reaped(status);
    return false;
  }
  return true;
}

void TokentapProcess::reaped(int status) {
  pid_ = -1;
  if (WIFEXITED(status)) {
    how_ended_ = fmt::format("exit {}", WEXITSTATUS(status));
  } else if (WIFSIGNALED(status)) {
    how_ended_ = fmt::format("signal {} ({})", WTERMSIG(status), strsignal(WTERMSIG(status)));
  } else {
    how_ended_ = fmt::format("status {:#x}", status);
  }
}

int TokentapProcess::terminate(int timeout_ms) {
  if (pid_ <= 0) return -1;
  kill(pid_, SIGTERM);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  int status = 0;
  for (;;) {
    if (waitpid(pid_, &status, WNOHANG) == pid_) break;
    if (std::chrono::steady_clock::now() > deadline) {
      kill(pid_, SIGKILL);
      (void)waitpid(pid_, &status, 0);
      reaped(status);
      return -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  reaped(status);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace tokentap::soak
