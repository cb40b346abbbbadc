// splice_pipe: the pipe pool and the non-blocking splice pump; see splice_pipe.h.
#include "tokentap/loop/splice_pipe.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

namespace tokentap {

PipePool::~PipePool() {
  for (SplicePipe& p : pipes_) {
    if (p.read_fd >= 0) close(p.read_fd);
    if (p.write_fd >= 0) close(p.write_fd);
  }
}

bool PipePool::make(SplicePipe* p) {
  int fds[2];
  if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) return false;
  // A larger pipe moves more per syscall; the default 64 KiB still works if this is refused.
  (void)fcntl(fds[1], F_SETPIPE_SZ, splice_pipe_bytes);
  p->read_fd = fds[0];
  p->write_fd = fds[1];
  return true;
}

std::uint32_t PipePool::init(std::uint32_t count) {
  pipes_.reserve(count);
  free_.reserve(count);
  for (std::uint32_t i = 0; i < count; ++i) {
    SplicePipe p;
    if (!make(&p)) break;
    free_.push_back(static_cast<int>(pipes_.size()));
    pipes_.push_back(p);
  }
  return static_cast<std::uint32_t>(pipes_.size());
}

int PipePool::take() {
  if (free_.empty()) return -1;
  const int id = free_.back();
  free_.pop_back();
  return id;
}

void PipePool::give_back(int id, bool empty) {
  SplicePipe& p = at(id);
  if (!empty) {
    // Bytes of an abandoned transfer are still inside: a fresh pipe is cheaper than draining.
    close(p.read_fd);
    close(p.write_fd);
    p = SplicePipe{};
    if (!make(&p)) return;  // the pool shrinks by one; splicing continues with the rest
  }
  free_.push_back(id);
}

PumpResult pump(int src, int dst, SplicePipe& pipe, SplicePump& s) {
  std::uint64_t moved = 0;
  for (;;) {
    if (s.in_pipe > 0) {
      const ssize_t n = splice(pipe.read_fd, nullptr, dst, nullptr, s.in_pipe,
                               SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
      if (n < 0) {
        if (errno == EAGAIN) return PumpResult::want_write;
        if (errno == EINTR) continue;
        return PumpResult::error;
      }
      s.in_pipe -= static_cast<std::uint64_t>(n);
      moved += static_cast<std::uint64_t>(n);
      continue;
    }
    if (s.remaining == 0) return PumpResult::done;
    if (moved >= splice_turn_bytes_max) return PumpResult::yield;
    const std::size_t want =
        static_cast<std::size_t>(std::min<std::uint64_t>(s.remaining, splice_pipe_bytes));
    const ssize_t n = splice(src, nullptr, pipe.write_fd, nullptr, want,
                             SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    if (n == 0) return PumpResult::source_eof;
    if (n < 0) {
      if (errno == EAGAIN) return PumpResult::want_read;
      if (errno == EINTR) continue;
      return PumpResult::error;
    }
    s.remaining -= static_cast<std::uint64_t>(n);
    s.in_pipe += static_cast<std::uint64_t>(n);
  }
}

}  // namespace tokentap
