// Ring: io_uring set-up with feature probing; see ring.h for the flags and why.
#include "tokentap/loop/ring.h"

#include <fmt/format.h>

#include <cerrno>
#include <cstring>

namespace tokentap {
namespace {

struct RequiredOp {
  int op;
  const char* name;
};

constexpr RequiredOp required_ops[] = {
    {IORING_OP_ACCEPT, "accept"},     {IORING_OP_RECV, "recv"},
    {IORING_OP_SENDMSG, "sendmsg"},   {IORING_OP_SEND, "send"},
    {IORING_OP_CONNECT, "connect"},
    {IORING_OP_POLL_ADD, "poll_add"}, {IORING_OP_ASYNC_CANCEL, "async_cancel"},
    {IORING_OP_READ, "read"},         {IORING_OP_LINK_TIMEOUT, "link_timeout"},
    {IORING_OP_PROVIDE_BUFFERS, "provide_buffers"},
};

}  // namespace

Ring::~Ring() {
  if (live_) io_uring_queue_exit(&ring_);
}

bool Ring::init(unsigned sq_entries, unsigned cq_entries, std::string* error) {
  io_uring_params params{};
  params.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN |
                 IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG |
                 IORING_SETUP_SUBMIT_ALL | IORING_SETUP_CQSIZE;
  params.cq_entries = cq_entries;
  int rc = io_uring_queue_init_params(sq_entries, &ring_, &params);
  if (rc < 0) {
    *error = fmt::format("io_uring_queue_init failed: {} (kernel 6.1+ with io_uring enabled is "
                         "required; check /proc/sys/kernel/io_uring_disabled)",
                         std::strerror(-rc));
    return false;
  }
  live_ = true;
  constexpr std::uint32_t required_features = IORING_FEAT_NODROP | IORING_FEAT_FAST_POLL;
  if ((params.features & required_features) != required_features) {
    *error = "io_uring lacks FEAT_NODROP or FEAT_FAST_POLL (kernel 5.19+ required)";
    return false;
  }
  io_uring_probe* probe = io_uring_get_probe_ring(&ring_);
  if (probe == nullptr) {
    *error = "io_uring probe failed";
    return false;
  }
  for (const RequiredOp& op : required_ops) {
    if (!io_uring_opcode_supported(probe, op.op)) {
      *error = fmt::format("io_uring opcode {} is not supported by this kernel", op.name);
      io_uring_free_probe(probe);
      return false;
    }
  }
  io_uring_free_probe(probe);
  // Registering the ring fd only saves a file lookup per enter; failure is not fatal.
  const bool ring_fd_registered = io_uring_register_ring_fd(&ring_) == 1;
  fmt::format_to_n(features_, sizeof(features_) - 1,
                   "io_uring sq={} cq={} single_issuer defer_taskrun coop_taskrun{}", sq_entries,
                   params.cq_entries, ring_fd_registered ? " registered_ring_fd" : "");
  return true;
}

io_uring_sqe* Ring::sqe() {
  io_uring_sqe* s = io_uring_get_sqe(&ring_);
  if (s != nullptr) return s;
  ++sq_full_count_;
  io_uring_submit(&ring_);
  s = io_uring_get_sqe(&ring_);
  // After a submit the SQ has room again: the kernel consumed every entry (SUBMIT_ALL).
  return s;
}

void Ring::reserve(unsigned n) {
  if (io_uring_sq_space_left(&ring_) < n) {
    ++sq_full_count_;
    io_uring_submit(&ring_);
  }
}

int Ring::submit_and_wait(unsigned timeout_ms) {
  __kernel_timespec ts{};
  ts.tv_sec = timeout_ms / 1000;
  ts.tv_nsec = static_cast<long long>(timeout_ms % 1000) * 1'000'000;
  io_uring_cqe* cqe = nullptr;
  return io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, &ts, nullptr);
}

}  // namespace tokentap
