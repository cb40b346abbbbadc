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
#include <mutex>
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
  Instance instance;
  std::uint16_t port = 0;
  bool running = false;
  std::unique_ptr<WorkerStats[]> stats;
  std::size_t stats_count = 0;  // kept after stop() so counters stay readable
  SharedStats shared;
  std::vector<std::unique_ptr<Worker>> workers;
  std::vector<std::thread> threads;
};

FakeUpstream::FakeUpstream(Options options) : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.options = std::move(options);
  Instance& in = m.instance;
  in.busy.store(m.options.busy, std::memory_order_relaxed);
  in.health.store(m.options.health, std::memory_order_relaxed);
  in.close.store(m.options.close, std::memory_order_relaxed);
  in.pull_fail.store(m.options.pull_fail, std::memory_order_relaxed);
  in.pull_delay_ms.store(m.options.pull_delay_ms, std::memory_order_relaxed);
  in.health_slow_ms = m.options.health_slow_ms;
  in.resident = m.options.resident;
  in.set_models(m.options.models);
}

FakeUpstream::~FakeUpstream() { stop(); }

bool FakeUpstream::start(std::string* error) {
  Impl& m = *impl_;
  if (m.running) return true;
  const int threads = m.options.threads < 1 ? 1 : std::min(m.options.threads, threads_max);
  sockaddr_storage addr{};
  socklen_t len = 0;
  // A restart binds the port the instance had (an ephemeral one included).
  const std::uint16_t want_port = m.options.port != 0 ? m.options.port : m.port;
  if (!resolve(m.options.host, want_port, &addr, &len, error)) return false;
  // Ollama checks Host only when it listens on loopback (wire-format.md §1.6).
  const bool host_check = is_loopback(addr);
  if (!m.stats) {  // kept across stop()/start(), so counters carry on
    m.stats = std::make_unique<WorkerStats[]>(static_cast<std::size_t>(threads));
    m.stats_count = static_cast<std::size_t>(threads);
  }
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
    const std::size_t block = static_cast<std::size_t>(i) % m.stats_count;
    auto worker = std::make_unique<Worker>(m.options, fds[static_cast<std::size_t>(i)], host_check,
                                           &m.stats[block], &m.shared, &m.instance);
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

bool FakeUpstream::running() const { return impl_->running; }

void FakeUpstream::set_busy(bool busy) {
  impl_->instance.busy.store(busy, std::memory_order_relaxed);
}

void FakeUpstream::set_health(Health health) {
  impl_->instance.health.store(health, std::memory_order_relaxed);
}

void FakeUpstream::set_close(CloseMode mode) {
  impl_->instance.close.store(mode, std::memory_order_relaxed);
}

void FakeUpstream::set_models(std::optional<std::vector<std::string>> models) {
  impl_->instance.set_models(std::move(models));
}

void FakeUpstream::set_resident(std::vector<std::string> resident) {
  impl_->instance.set_resident(std::move(resident));
}

void FakeUpstream::set_pull_fail(bool fail) {
  impl_->instance.pull_fail.store(fail, std::memory_order_relaxed);
}

void FakeUpstream::set_pull_delay_ms(std::uint32_t ms) {
  impl_->instance.pull_delay_ms.store(ms, std::memory_order_relaxed);
}

std::vector<std::string> FakeUpstream::installed_models() const {
  const std::shared_ptr<const Catalog> c = impl_->instance.load_catalog();
  return c->keys;
}

bool FakeUpstream::busy() const { return impl_->instance.busy.load(std::memory_order_relaxed); }

Health FakeUpstream::health() const {
  return impl_->instance.health.load(std::memory_order_relaxed);
}

CloseMode FakeUpstream::close_mode() const {
  return impl_->instance.close.load(std::memory_order_relaxed);
}

std::uint64_t FakeUpstream::requests_for(std::string_view path) const {
  const Impl& m = *impl_;
  const auto e = static_cast<std::size_t>(path_endpoint(path));
  std::uint64_t n = 0;
  for (std::size_t i = 0; i < m.stats_count; ++i) {
    n += m.stats[i].by_endpoint[e].load(std::memory_order_relaxed);
  }
  return n;
}

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
    s.inference_requests += load(w.inference_requests);
    s.busy_answers += load(w.busy_answers);
    s.model_not_found_answers += load(w.model_not_found_answers);
    s.health_checks += load(w.health_checks);
    s.pull_requests += load(w.pull_requests);
    s.delete_requests += load(w.delete_requests);
    s.copy_requests += load(w.copy_requests);
    s.inference_in_flight += w.inference_in_flight.load(std::memory_order_relaxed);
  }
  s.last_peer_close_ns = load(m.shared.last_peer_close_ns);
  s.blob_checksum_last = load(m.shared.blob_checksum_last);
  return s;
}

void FakeUpstream::reset_stats() {
  Impl& m = *impl_;
  for (std::size_t i = 0; i < m.stats_count; ++i) {
    WorkerStats& w = m.stats[i];
    for (auto* a :
         {&w.requests, &w.connections_accepted, &w.connections_closed_by_peer,
          &w.prompt_tokens_sent, &w.completion_tokens_sent, &w.blob_bytes_received, &w.bytes_sent,
          &w.inference_requests, &w.busy_answers, &w.model_not_found_answers, &w.health_checks,
          &w.pull_requests, &w.delete_requests, &w.copy_requests}) {
      a->store(0, std::memory_order_relaxed);
    }
    for (auto& a : w.by_endpoint) a.store(0, std::memory_order_relaxed);
  }
  m.shared.last_peer_close_ns.store(0, std::memory_order_relaxed);
  m.shared.blob_checksum_last.store(0, std::memory_order_relaxed);
}

}  // namespace tokentap::fake
