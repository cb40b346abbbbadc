// ProcessStats: procfs readers and their pure parsers (see process_stats.h).
#include "tokentap/obs/process_stats.h"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <string>

namespace tokentap {
namespace {

// /proc/self/stat and statm are well under this; /proc/stat grows with CPUs and interrupts.
constexpr std::size_t proc_read_chunk_bytes = 4096;
constexpr std::size_t proc_stat_bytes_max = 4 * 1024 * 1024;

// Reads a whole procfs file (they report size 0, so read until EOF), bounded by bytes_max.
std::optional<std::string> read_proc_file(const char* path, std::size_t bytes_max) {
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  std::string text;
  char chunk[proc_read_chunk_bytes];
  for (;;) {
    const ssize_t n = ::read(fd, chunk, sizeof chunk);
    if (n < 0) {
      ::close(fd);
      return std::nullopt;
    }
    if (n == 0 || text.size() + static_cast<std::size_t>(n) > bytes_max) break;
    text.append(chunk, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return text;
}

// Splits off the next space-separated token of `rest`.
std::string_view next_token(std::string_view& rest) {
  const auto start = rest.find_first_not_of(' ');
  if (start == std::string_view::npos) {
    rest = {};
    return {};
  }
  rest.remove_prefix(start);
  const auto end = std::min(rest.find_first_of(" \n"), rest.size());
  const std::string_view token = rest.substr(0, end);
  rest.remove_prefix(end);
  return token;
}

bool to_u64(std::string_view token, std::uint64_t* out) {
  if (token.empty()) return false;
  const auto [end, ec] = std::from_chars(token.data(), token.data() + token.size(), *out);
  return ec == std::errc{} && end == token.data() + token.size();
}

std::optional<std::uint64_t> cached_boot_time() {
  static const std::optional<std::uint64_t> boot = [] {
    const auto text = read_proc_file("/proc/stat", proc_stat_bytes_max);
    return text ? parse_boot_time(*text) : std::nullopt;
  }();
  return boot;
}

std::optional<std::uint64_t> count_open_fds() {
  DIR* dir = ::opendir("/proc/self/fd");
  if (dir == nullptr) return std::nullopt;
  std::uint64_t count = 0;
  while (const dirent* e = ::readdir(dir)) {
    if (e->d_name[0] != '.') ++count;
  }
  ::closedir(dir);
  return count > 0 ? count - 1 : 0;  // the directory stream's own descriptor
}

}  // namespace

std::optional<ProcStat> parse_proc_stat(std::string_view text) {
  // Field 2 is "(comm)" and comm may contain ") ", so fields resume after the last ')'.
  const auto paren = text.rfind(')');
  if (paren == std::string_view::npos) return std::nullopt;
  std::string_view rest = text.substr(paren + 1);
  ProcStat out;
  // After ')' comes field 3 (state); utime, stime and starttime are fields 14, 15 and 22.
  for (int field = 3; field <= 22; ++field) {
    const std::string_view token = next_token(rest);
    if (token.empty()) return std::nullopt;
    std::uint64_t* target = field == 14   ? &out.utime_ticks
                            : field == 15 ? &out.stime_ticks
                            : field == 22 ? &out.starttime_ticks
                                          : nullptr;
    if (target != nullptr && !to_u64(token, target)) return std::nullopt;
  }
  return out;
}

std::optional<std::uint64_t> parse_boot_time(std::string_view proc_stat) {
  constexpr std::string_view key = "btime ";
  std::size_t pos = 0;
  while (pos < proc_stat.size()) {
    const auto eol = std::min(proc_stat.find('\n', pos), proc_stat.size());
    std::string_view line = proc_stat.substr(pos, eol - pos);
    if (line.starts_with(key)) {
      line.remove_prefix(key.size());
      std::uint64_t value = 0;
      if (to_u64(next_token(line), &value)) return value;
      return std::nullopt;
    }
    pos = eol + 1;
  }
  return std::nullopt;
}

std::optional<std::uint64_t> parse_statm_resident_pages(std::string_view text) {
  next_token(text);  // size
  std::uint64_t pages = 0;
  if (!to_u64(next_token(text), &pages)) return std::nullopt;
  return pages;
}

ProcessStats read_process_stats() {
  ProcessStats out;
  const long ticks_per_s = ::sysconf(_SC_CLK_TCK);
  const long page_bytes = ::sysconf(_SC_PAGESIZE);
  if (const auto text = read_proc_file("/proc/self/stat", proc_read_chunk_bytes)) {
    if (const auto stat = parse_proc_stat(*text); stat && ticks_per_s > 0) {
      const auto ticks = static_cast<double>(ticks_per_s);
      out.cpu_seconds = static_cast<double>(stat->utime_ticks + stat->stime_ticks) / ticks;
      if (const auto boot = cached_boot_time()) {
        out.start_time_seconds =
            static_cast<double>(*boot) + static_cast<double>(stat->starttime_ticks) / ticks;
      }
    }
  }
  if (const auto text = read_proc_file("/proc/self/statm", proc_read_chunk_bytes)) {
    if (const auto pages = parse_statm_resident_pages(*text); pages && page_bytes > 0) {
      out.resident_bytes = *pages * static_cast<std::uint64_t>(page_bytes);
    }
  }
  out.open_fds = count_open_fds();
  return out;
}

}  // namespace tokentap
