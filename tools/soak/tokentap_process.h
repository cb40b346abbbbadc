// TokentapProcess: the proxy under test as a child process (fork + execv), its output sent to a
// log file so it never mixes with the report, SIGTERM and the exit status at the end.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace tokentap::soak {

class TokentapProcess {
 public:
  TokentapProcess() = default;
  ~TokentapProcess();  // kills a child still running
  TokentapProcess(const TokentapProcess&) = delete;
  TokentapProcess& operator=(const TokentapProcess&) = delete;

  [[nodiscard]] bool start(const std::string& binary, const std::vector<std::string>& args,
                           const std::string& log_path, std::string* error);
  // Polls GET /healthz on the metrics port until it answers ok or the timeout passes.
  [[nodiscard]] bool wait_healthy(std::uint16_t metrics_port, int timeout_ms);
  [[nodiscard]] bool alive();
  // SIGTERM, then waits up to timeout_ms. The exit status, or -1 (killed, signalled, timeout).
  [[nodiscard]] int terminate(int timeout_ms);
  [[nodiscard]] pid_t pid() const { return pid_; }
  // How the child ended ("exit 0", "signal 11"), once it has been reaped.
  [[nodiscard]] const std::string& how_ended() const { return how_ended_; }

 private:
  void reaped(int status);

  pid_t pid_ = -1;
  std::string how_ended_;
};

}  // namespace tokentap::soak
