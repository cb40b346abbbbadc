// FakeProcess (see fake_process.h).
#include "fake_process.h"

#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <new>
#include <thread>

#include <fmt/format.h>

namespace tokentap::soak {
namespace {

constexpr int child_poll_us = 2'000;         // how often the child looks at the mailbox
constexpr int start_timeout_ms = 10'000;
constexpr int answer_timeout_ms = 5'000;
constexpr std::size_t error_bytes_max = 256;

enum class ChildState : std::uint32_t { starting, ready, failed, stopped };

}  // namespace

struct FakeProcess::Shared {
  std::atomic<ChildState> state{ChildState::starting};
  std::atomic<std::uint64_t> request{0};
  std::atomic<std::uint64_t> reply{0};
  std::atomic<bool> stop{false};
  fake::Stats stats;  // written by the child before it publishes `reply`
  char error[error_bytes_max] = {};
};

FakeProcess::~FakeProcess() {
  if (pid_ > 0) {
    kill(pid_, SIGKILL);
    (void)waitpid(pid_, nullptr, 0);
  }
  if (shared_ != nullptr) munmap(shared_, sizeof(Shared));
}

void FakeProcess::child_main(Shared* shared, std::uint16_t port) {
  (void)prctl(PR_SET_PDEATHSIG, SIGKILL);
  signal(SIGPIPE, SIG_IGN);
  fake::Options options;
  options.port = port;
  options.threads = 1;
  fake::FakeUpstream upstream(options);
  std::string error;
  if (!upstream.start(&error)) {
    std::snprintf(shared->error, sizeof(shared->error), "%s", error.c_str());
    shared->state.store(ChildState::failed, std::memory_order_release);
    _exit(1);
  }
  shared->state.store(ChildState::ready, std::memory_order_release);
  for (;;) {
    const bool stopping = shared->stop.load(std::memory_order_acquire);
    if (stopping) upstream.stop();
    const std::uint64_t want = shared->request.load(std::memory_order_acquire);
    if (stopping || want != shared->reply.load(std::memory_order_relaxed)) {
      shared->stats = upstream.stats();
      shared->reply.store(want, std::memory_order_release);
    }
    if (stopping) {
      shared->state.store(ChildState::stopped, std::memory_order_release);
      _exit(0);
    }
    usleep(child_poll_us);
  }
}

bool FakeProcess::start(std::uint16_t port, std::string* error) {
  void* mem = mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                   -1, 0);
  if (mem == MAP_FAILED) {
    *error = fmt::format("mmap: {}", std::strerror(errno));
    return false;
  }
  shared_ = new (mem) Shared;
  std::fflush(nullptr);  // nothing buffered may be written twice
  pid_ = fork();
  if (pid_ < 0) {
    *error = fmt::format("fork: {}", std::strerror(errno));
    return false;
  }
  if (pid_ == 0) child_main(shared_, port);
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(start_timeout_ms);
  while (std::chrono::steady_clock::now() < deadline) {
    const ChildState s = shared_->state.load(std::memory_order_acquire);
    if (s == ChildState::ready) return true;
    if (s == ChildState::failed) {
      *error = fmt::format("fake upstream: {}", shared_->error);
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  *error = "fake upstream did not start";
  return false;
}

bool FakeProcess::stats(fake::Stats* out) {
  if (pid_ <= 0) {  // stopped: the final snapshot stays in the mapping
    *out = shared_->stats;
    return shared_->state.load(std::memory_order_acquire) == ChildState::stopped;
  }
  const std::uint64_t want = shared_->request.fetch_add(1, std::memory_order_acq_rel) + 1;
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(answer_timeout_ms);
  while (shared_->reply.load(std::memory_order_acquire) < want) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::microseconds(500));
  }
  *out = shared_->stats;
  return true;
}

bool FakeProcess::stop(std::string* error) {
  if (pid_ <= 0) return true;
  shared_->stop.store(true, std::memory_order_release);
  int status = 0;
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(answer_timeout_ms);
  for (;;) {
    const pid_t r = waitpid(pid_, &status, WNOHANG);
    if (r == pid_) break;
    if (std::chrono::steady_clock::now() > deadline) {
      kill(pid_, SIGKILL);
      (void)waitpid(pid_, &status, 0);
      pid_ = -1;
      *error = "fake upstream did not stop in time";
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  pid_ = -1;
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    *error = fmt::format("fake upstream exited with status {:#x}", status);
    return false;
  }
  return true;
}

}  // namespace tokentap::soak
