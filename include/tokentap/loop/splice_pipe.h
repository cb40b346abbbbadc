// splice_pipe: zero-copy forwarding of large opaque bodies, socket → pipe → socket.
//
// Used for bodies with a Content-Length of at least splice_min_bytes on routes that are not
// metered (blob uploads, model downloads): the payload pages move between the two sockets
// without ever being copied into user space.
//
// Why splice(2) syscalls and not IORING_OP_SPLICE: io_uring always punts splice to an io-wq
// worker thread, which then blocks on the socket. Instead the shard polls the sockets through
// io_uring (IORING_OP_POLL_ADD) and, once one is ready, issues non-blocking splice calls on its
// own thread until they would block. No worker thread is ever parked on a socket.
//
// Pipes come from a per-shard pool created at start-up and enlarged with F_SETPIPE_SZ. A pipe
// goes back to the pool only when empty; one abandoned with bytes inside is closed and replaced.
#pragma once

#include <cstdint>
#include <vector>

namespace tokentap {

constexpr std::uint64_t splice_min_bytes = 64 * 1024;
constexpr int splice_pipe_bytes = 1024 * 1024;  // F_SETPIPE_SZ; the kernel may cap it lower
constexpr std::uint32_t splice_pipes_per_shard = 16;
constexpr std::uint64_t splice_turn_bytes_max = 4 * 1024 * 1024;  // then yield to the loop

struct SplicePipe {
  int read_fd = -1;
  int write_fd = -1;
};

class PipePool {
 public:
  PipePool() = default;
  PipePool(const PipePool&) = delete;
  PipePool& operator=(const PipePool&) = delete;
  ~PipePool();

  // Creates the pipes. Returns how many could be made (0 disables splicing).
  std::uint32_t init(std::uint32_t count);
  // An empty pipe, or -1 when all are in use (the caller forwards through buffers instead).
  [[nodiscard]] int take();
  void give_back(int id, bool empty);
  SplicePipe& at(int id) { return pipes_[static_cast<std::size_t>(id)]; }

 private:
  [[nodiscard]] static bool make(SplicePipe* p);
  std::vector<SplicePipe> pipes_;
  std::vector<int> free_;
};

// One direction of a splice transfer in progress.
struct SplicePump {
  int pipe = -1;             // PipePool id
  std::uint64_t remaining = 0;  // bytes still to read from the source
  std::uint64_t in_pipe = 0;    // bytes read into the pipe, not yet written to the sink
};

enum class PumpResult : std::uint8_t {
  done,         // every byte reached the sink
  want_read,    // the source would block: poll it for POLLIN
  want_write,   // the sink would block: poll it for POLLOUT
  yield,        // budget for this turn spent: poll the source again
  source_eof,   // the source closed before `remaining` reached 0
  error,        // a socket error on either side
};

// Moves bytes until done, blocked, or splice_turn_bytes_max moved.
[[nodiscard]] PumpResult pump(int src, int dst, SplicePipe& pipe, SplicePump& s);

}  // namespace tokentap
