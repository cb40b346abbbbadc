// proc_sample: what the soak measures of the tokentap process from /proc, and of the kernel's
// socket table.
//  - VmRSS from /proc/PID/status (KiB): resident memory, the figure a leak would move;
//  - the number of entries of /proc/PID/fd: every socket, pipe, eventfd and io_uring fd;
//  - sockets connected to the fake upstream's port that still have an owner (/proc/net/tcp
//    inode != 0): tokentap's upstream connections, pooled or in use, since nothing else in the
//    soak connects there once the reference answers are fetched.
#pragma once

#include <sys/types.h>

#include <cstdint>

namespace tokentap::soak {

struct ProcSample {
  std::uint64_t rss_kib = 0;
  std::uint32_t fds = 0;
};

// False when the process is gone.
[[nodiscard]] bool sample_process(pid_t pid, ProcSample* out);

// Open sockets (any state but LISTEN, with an owning fd) whose remote port is `port`.
[[nodiscard]] std::uint32_t count_sockets_to(std::uint16_t port);

[[nodiscard]] inline double mib(std::uint64_t kib) { return static_cast<double>(kib) / 1024.0; }

}  // namespace tokentap::soak
