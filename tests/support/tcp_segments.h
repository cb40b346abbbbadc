// TCP segment counts of a socket, from the kernel's TCP_INFO: lets a test see how many sends
// the peer made, which no byte-stream read can tell.
#pragma once

#include <cstdint>
#include <optional>

namespace tokentap::test {

// Segments carrying data that `fd` has received so far (tcpi_data_segs_in, Linux 4.6+);
// nullopt when the kernel does not report it.
[[nodiscard]] std::optional<std::uint32_t> data_segments_in(int fd);

}  // namespace tokentap::test
