// FakeProcess: the fake upstream (tokentap::fake::FakeUpstream, one worker thread) in a forked
// child of the soak, with its Stats published through a shared anonymous mapping.
//
// Why a child and not a thread: RLIMIT_NOFILE's hard limit in this environment is 20,000 and
// cannot be raised (no CAP_SYS_RESOURCE). The soak's 10,000 client sockets plus the fake's
// 10,000 upstream sockets would not fit one descriptor table; two processes get one each.
//
// Protocol over the mapping (all atomics, the child is the only writer of stats/reply):
//  - the parent bumps `request`, the child copies FakeUpstream::stats() and then stores
//    reply = request (release), so a snapshot read after `reply` caught up is complete;
//  - the parent sets `stop`; the child stops the fake (closing every socket), publishes a final
//    snapshot, and exits 0. The child dies with the parent (PR_SET_PDEATHSIG).
// start() must run before the parent starts any thread (fork copies only the calling thread).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>

#include "fake_upstream.h"

namespace tokentap::soak {

class FakeProcess {
 public:
  FakeProcess() = default;
  ~FakeProcess();
  FakeProcess(const FakeProcess&) = delete;
  FakeProcess& operator=(const FakeProcess&) = delete;

  // Forks, starts the fake on 127.0.0.1:port and waits until it listens.
  [[nodiscard]] bool start(std::uint16_t port, std::string* error);
  // A consistent snapshot of the fake's counters (false if the child does not answer).
  [[nodiscard]] bool stats(fake::Stats* out);
  // Stops the fake (every socket closed) and reaps the child; false unless it exited 0.
  [[nodiscard]] bool stop(std::string* error);
  [[nodiscard]] pid_t pid() const { return pid_; }

 private:
  struct Shared;
  [[noreturn]] static void child_main(Shared* shared, std::uint16_t port);

  Shared* shared_ = nullptr;
  pid_t pid_ = -1;
};

}  // namespace tokentap::soak
