// FakeUpstream: binds one SO_REUSEPORT listener per worker, runs the workers, sums their stats.
#include "fake_upstream.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <thread>
#include <vector>

#include "worker.h"

namespace tokentap::fake {
namespace {

constexpr int listen_backlog = 4096;
constexpr int threads_max = 256;

// A listener bound to host:port with SO_REUSEPORT, so every worker can own one on the same port.
int bind_listener(const sockaddr_storage& addr, socklen_t len, std::string* error) {
  const int fd = socket(addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    *error = std::string("socket: ") + std::strerror(errno);
    return -1;
  }
  const int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
  if (bind(fd, reinterpret_cast<const sockaddr*>(&addr), len) != 0 ||
      listen(fd, listen_backlog) != 0) {
    *error = std::string("bind/listen: ") + std::strerror(errno);
    ::close(fd);
    return -1;
  }
  return fd;
}

bool resolve(const std::string& host, std::uint16_t port, sockaddr_storage* addr, socklen_t* len,
             std::string* error) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* result = nullptr;
  const std::string service = std::to_string(port);
  const int rc =
      getaddrinfo(host.empty() ? nullptr : host.c_str(), service.c_str(), &hints, &result);
  if (rc != 0 || result == nullptr) {
    *error = "cannot resolve '" + host + "': " + gai_strerror(rc);
    return false;
  }
  std::memcpy(addr, result->ai_addr, result->ai_addrlen);
  *len = result->ai_addrlen;
  freeaddrinfo(result);
  return true;
}

bool is_loopback(const sockaddr_storage& addr) {
  if (addr.ss_family == AF_INET) {
    const auto* v4 = reinterpret_cast<const sockaddr_in*>(&addr);
    return (ntohl(v4->sin_addr.s_addr) >> 24) == 127;
  }
  const auto* v6 = reinterpret_cast<const sockaddr_in6*>(&addr);
  return IN6_IS_ADDR_LOOPBACK(&v6->sin6_addr);
}

void set_port(sockaddr_storage* addr, std::uint16_t port) {
  if (addr->ss_family == AF_INET) {
    reinterpret_cast<sockaddr_in*>(addr)->sin_port = htons(port);
  } else {
    reinterpret_cast<sockaddr_in6*>(addr)->sin6_port = htons(port);
  }
}

std::uint16_t bound_port(int fd) {
  sockaddr_storage addr{};
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  if (addr.ss_family == AF_INET) return ntohs(reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
  return ntohs(reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port);
}

}  // namespace

struct FakeUpstream::Impl {
  Options options;
  std::uint16_t port = 0;
  bool running = false;
  std::unique_ptr<WorkerStats[]> stats;
  std::size_t stats_count = 0;  // kept after stop() so counters stay readable
  SharedStats shared;
  std::vector<std::unique_ptr<Worker>> workers;
  std::vector<std::thread> threads;
};

FakeUpstream::FakeUpstream(Options options) : impl_(std::make_unique<Impl>()) {
  impl_->options = std::move(options);
}

FakeUpstream::~FakeUpstream() { stop(); }

bool FakeUpstream::start(std::string* error) {
  Impl& m = *impl_;
  if (m.running) return true;
  const int threads = m.options.threads < 1 ? 1 : std::min(m.options.threads, threads_max);
  sockaddr_storage addr{};
  socklen_t len = 0;
  if (!resolve(m.options.host, m.options.port, &addr, &len, error)) return false;
  // Ollama checks Host only when it listens on loopback (wire-format.md §1.6).
  const bool host_check = is_loopback(addr);
  m.stats = std::make_unique<WorkerStats[]>(static_cast<std::size_t>(threads));
  m.stats_count = static_cast<std::size_t>(threads);
  std::vector<int> fds;
  for (int i = 0; i < threads; ++i) {
    const int fd = bind_listener(addr, len, error);
    if (fd < 0) {
      for (const int open_fd : fds) ::close(open_fd);
      return false;
    }
    if (i == 0) set_port(&addr, bound_port(fd));  // the others join the ephemeral port
    fds.push_back(fd);
  }
  m.port = bound_port(fds[0]);
  for (int i = 0; i < threads; ++i) {
    auto worker = std::make_unique<Worker>(m.options, fds[static_cast<std::size_t>(i)], host_check,
                                           &m.stats[static_cast<std::size_t>(i)], &m.shared);
    fds[static_cast<std::size_t>(i)] = -1;  // owned by the worker now
    if (!worker->init(error)) {
      for (const int fd : fds) {
        if (fd >= 0) ::close(fd);
      }
      m.workers.clear();
      return false;
    }
    m.workers.push_back(std::move(worker));
  }
  for (auto& worker : m.workers) m.threads.emplace_back([w = worker.get()] { w->run(); });
  m.running = true;
  return true;
}

std::uint16_t FakeUpstream::port() const { return impl_->port; }

void FakeUpstream::stop() {
  Impl& m = *impl_;
  if (!m.running) return;
  for (auto& worker : m.workers) worker->request_stop();
  for (auto& thread : m.threads) thread.join();
  m.threads.clear();
  m.workers.clear();  // closes listeners, connections, epoll and eventfds
  m.running = false;
}

Stats FakeUpstream::stats() const {
  const Impl& m = *impl_;
  Stats s;
  const auto load = [](const std::atomic<std::uint64_t>& a) {
    return a.load(std::memory_order_relaxed);
  };
  for (std::size_t i = 0; i < m.stats_count; ++i) {
    const WorkerStats& w = m.stats[i];
    s.requests += load(w.requests);
    s.connections_accepted += load(w.connections_accepted);
    s.connections_closed_by_peer += load(w.connections_closed_by_peer);
    s.prompt_tokens_sent += load(w.prompt_tokens_sent);
    s.completion_tokens_sent += load(w.completion_tokens_sent);
    s.blob_bytes_received += load(w.blob_bytes_received);
    s.bytes_sent += load(w.bytes_sent);
  }
  s.last_peer_close_ns = load(m.shared.last_peer_close_ns);
  s.blob_checksum_last = load(m.shared.blob_checksum_last);
  return s;
}

void FakeUpstream::reset_stats() {
  Impl& m = *impl_;
  for (std::size_t i = 0; i < m.stats_count; ++i) {
    WorkerStats& w = m.stats[i];
    for (auto* a : {&w.requests, &w.connections_accepted, &w.connections_closed_by_peer,
                    &w.prompt_tokens_sent, &w.completion_tokens_sent, &w.blob_bytes_received,
                    &w.bytes_sent}) {
      a->store(0, std::memory_order_relaxed);
    }
  }
  m.shared.last_peer_close_ns.store(0, std::memory_order_relaxed);
  m.shared.blob_checksum_last.store(0, std::memory_order_relaxed);
}

}  // namespace tokentap::fake
