// Kept in its own file: <linux/tcp.h> has the full struct tcp_info but clashes with
// <netinet/tcp.h>, whose copy stops before the data-segment counters.
#include "support/tcp_segments.h"

#include <linux/tcp.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstddef>

namespace tokentap::test {

std::optional<std::uint32_t> data_segments_in(int fd) {
  tcp_info info{};
  socklen_t len = sizeof(info);
  if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) != 0) return std::nullopt;
  const std::size_t need = offsetof(tcp_info, tcpi_data_segs_in) + sizeof(info.tcpi_data_segs_in);
  if (len < need) return std::nullopt;
  return info.tcpi_data_segs_in;
}

}  // namespace tokentap::test
