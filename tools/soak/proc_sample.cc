// /proc readers (see proc_sample.h).
#include "proc_sample.h"

#include <dirent.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace tokentap::soak {
namespace {

constexpr unsigned tcp_state_listen = 0x0A;

bool read_rss(pid_t pid, std::uint64_t* kib) {
  char path[64];
  std::snprintf(path, sizeof(path), "/proc/%d/status", static_cast<int>(pid));
  FILE* f = std::fopen(path, "re");
  if (f == nullptr) return false;
  char line[256];
  bool found = false;
  while (std::fgets(line, sizeof(line), f) != nullptr) {
    if (std::strncmp(line, "VmRSS:", 6) == 0) {
      *kib = std::strtoull(line + 6, nullptr, 10);
      found = true;
      break;
    }
  }
  std::fclose(f);
  return found;
}

bool count_fds(pid_t pid, std::uint32_t* count) {
  char path[64];
  std::snprintf(path, sizeof(path), "/proc/%d/fd", static_cast<int>(pid));
  DIR* d = opendir(path);
  if (d == nullptr) return false;
  std::uint32_t n = 0;
  while (const dirent* e = readdir(d)) {
    if (e->d_name[0] != '.') ++n;
  }
  closedir(d);
  *count = n;
  return true;
}

}  // namespace

bool sample_process(pid_t pid, ProcSample* out) {
  return read_rss(pid, &out->rss_kib) && count_fds(pid, &out->fds);
}

// Line format: "  sl  local_address rem_address   st tx_queue:rx_queue tr:tm->when retrnsmt
// uid  timeout inode", addresses as HEXIP:HEXPORT.
std::uint32_t count_sockets_to(std::uint16_t port) {
  FILE* f = std::fopen("/proc/net/tcp", "re");
  if (f == nullptr) return 0;
  char line[512];
  std::uint32_t n = 0;
  (void)std::fgets(line, sizeof(line), f);  // header
  while (std::fgets(line, sizeof(line), f) != nullptr) {
    unsigned local_ip = 0, local_port = 0, rem_ip = 0, rem_port = 0, state = 0;
    unsigned long inode = 0;
    int sl = 0;
    // sl: local rem st tx:rx tr:when retr uid timeout inode
    if (std::sscanf(line, " %d: %x:%x %x:%x %x %*x:%*x %*x:%*x %*x %*u %*u %lu", &sl, &local_ip,
                    &local_port, &rem_ip, &rem_port, &state, &inode) != 7) {
      continue;
    }
    if (rem_port == port && state != tcp_state_listen && inode != 0) ++n;
  }
  std::fclose(f);
  return n;
}

}  // namespace tokentap::soak
