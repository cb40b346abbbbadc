// Server: listener set-up and shard threads; see server.h.
#include "tokentap/app/server.h"

#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fmt/format.h>
#include <future>

#include "tokentap/app/config_parse.h"
#include "tokentap/app/fan_out.h"
#include "tokentap/app/prober.h"
#include "tokentap/base/clock.h"
#include "tokentap/obs/access_log.h"
#include "tokentap/loop/buf_ring.h"
#include "tokentap/obs/metrics.h"
#include "tokentap/obs/metrics_server.h"
#include "tokentap/obs/model_table.h"
#include "tokentap/proxy/shard.h"

namespace tokentap {

void raise_fd_limit() {
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
    lim.rlim_cur = lim.rlim_max;
    (void)setrlimit(RLIMIT_NOFILE, &lim);
  }
}

namespace {

// The address a local client reaches a listener at: its own address with the bound port, or
// loopback when it listens on a wildcard.
Endpoint local_endpoint(const Endpoint& listen, std::uint16_t port) {
  Endpoint ep = listen;
  if (ep.addr.ss_family == AF_INET) {
    auto* a = reinterpret_cast<sockaddr_in*>(&ep.addr);
    if (a->sin_addr.s_addr == htonl(INADDR_ANY)) a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a->sin_port = htons(port);
  } else if (ep.addr.ss_family == AF_INET6) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ep.addr);
    if (IN6_IS_ADDR_UNSPECIFIED(&a->sin6_addr)) a->sin6_addr = in6addr_loopback;
    a->sin6_port = htons(port);
  }
  return ep;
}

}  // namespace

Server::Server(Config config) : config_(std::move(config)) {}

Server::~Server() { stop(); }

int Server::open_listener(const Endpoint& ep, std::string* error) {
  const int fd = socket(ep.addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    *error = fmt::format("socket: {}", std::strerror(errno));
    return -1;
  }
  const int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
  sockaddr_storage addr = ep.addr;
  if (port_ != 0) {
    // Every shard binds the port the first one got (port 0 asks the kernel for one).
    if (addr.ss_family == AF_INET) {
      reinterpret_cast<sockaddr_in*>(&addr)->sin_port = htons(port_);
    }
    if (addr.ss_family == AF_INET6) {
      reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port = htons(port_);
    }
  }
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), ep.addr_len) != 0 ||
      listen(fd, listen_backlog) != 0) {
    *error = fmt::format("cannot listen on {}: {}", ep.text, std::strerror(errno));
    close(fd);
    return -1;
  }
  if (port_ == 0) {
    sockaddr_storage bound{};
    socklen_t len = sizeof(bound);
    getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &len);
    port_ = ntohs(bound.ss_family == AF_INET
                      ? reinterpret_cast<sockaddr_in*>(&bound)->sin_port
                      : reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port);
  }
  return fd;
}

std::uint16_t Server::metrics_port() const {
  return metrics_server_ ? metrics_server_->port() : 0;
}

bool Server::start(std::string* error) {
  raise_fd_limit();
  models_ = std::make_unique<ModelTable>(config_.max_models);
  build_fleet();
  if (!start_fan_out(error)) return false;
  if (!config_.access_log.empty()) {
    access_log_ = std::make_unique<AccessLog>(config_.access_log,
                                              static_cast<std::size_t>(config_.threads));
    if (!access_log_->start(error)) return false;
  }
  for (int i = 0; i < config_.threads; ++i) {
    const int fd = open_listener(config_.listen, error);
    if (fd < 0) {
      stop();
      return false;
    }
    listen_fds_.push_back(fd);
    metrics_.push_back(std::make_unique<MetricsShard>());
    AccessRing* ring = access_log_ ? &access_log_->ring(static_cast<std::size_t>(i)) : nullptr;
    shards_.push_back(
        std::make_unique<Shard>(config_, i, fd, *metrics_.back(), *models_, ring));
    shards_.back()->attach_fleet(fleet_.get(), backend_counters_->data(), catalog_.get());
    shards_.back()->attach_fan_out(fan_out_->endpoint());
  }
  std::vector<const MetricsShard*> views;
  for (const auto& m : metrics_) views.push_back(m.get());
  MetricsServerOptions metrics_options{config_.metrics_listen, config_.metrics_token,
                                       TOKENTAP_VERSION};
  // One upstream keeps today's exposition (the source gives nothing then); a fleet shows every
  // backend (metrics.md), also one that a reload made a fleet.
  metrics_options.backends = [this](BackendGauge* out, const BackendCounters** counters,
                                    std::size_t max) {
    return backend_gauges(out, counters, max);
  };
  metrics_server_ = std::make_unique<MetricsServer>(views, *models_, std::move(metrics_options));
  if (!metrics_server_->start(error)) {
    *error = "--metrics-listen: " + *error;
    stop();
    return false;
  }
  config_.metrics_local = local_endpoint(config_.metrics_listen, metrics_server_->port());
  if (!start_shards(error)) {
    stop();
    return false;
  }
  prober_ = std::make_unique<Prober>(config_, *fleet_, *models_, *backend_counters_, *catalog_);
  prober_->sync();
  // Written by shard 0 during init, read here after its promise was fulfilled.
  features_ = fmt::format("{} shards, {}, multishot accept/recv, {} provided buffers of {} KiB, "
                          "splice pipes, SO_REUSEPORT",
                          shards_.size(), shards_[0]->ring().features_text(),
                          config_.ring_buffers, buf_bytes / 1024);
  return true;
}

// Each shard on its own thread (SINGLE_ISSUER rings are created there); waits until every one
// is accepting or one failed.
bool Server::start_shards(std::string* error) {
  std::vector<std::promise<std::string>> ready(shards_.size());
  std::vector<std::future<std::string>> results;
  for (auto& p : ready) results.push_back(p.get_future());
  for (std::size_t i = 0; i < shards_.size(); ++i) {
    threads_.emplace_back([this, i, promise = &ready[i]]() mutable {
      std::string err;
      if (!shards_[i]->init(&err)) {
        promise->set_value(err.empty() ? "shard init failed" : err);
        return;
      }
      promise->set_value("");
      shards_[i]->run();
    });
  }
  bool ok = true;
  for (std::size_t i = 0; i < results.size(); ++i) {
    std::string err = results[i].get();
    if (!err.empty() && ok) {
      *error = fmt::format("shard {}: {}", i, err);
      ok = false;
    }
  }
  return ok;
}

void Server::build_fleet() {
  if (config_.backends.empty()) {
    // A Config built in code rather than parsed: its one upstream is the fleet.
    BackendConfig b;
    b.name = config_.upstream.text;
    b.endpoint = config_.upstream;
    b.host_header = config_.upstream_host;
    config_.backends.push_back(std::move(b));
  }
  fleet_ = std::make_unique<Fleet>();
  catalog_ = std::make_unique<Catalog>();
  backend_counters_ = std::make_unique<std::array<BackendCounters, backends_max>>();
  for (const BackendConfig& b : config_.backends) {
    const std::uint32_t slot = fleet_->add(b);
    TT_ASSERT(slot != no_backend && "config_parse validated names and count");
  }
}

// The service that applies pull, delete and copy to every backend in rotation (fan_out.h):
// started whatever the fleet's size, since a reload can make one upstream a fleet.
bool Server::start_fan_out(std::string* error) {
  fan_out_ = std::make_unique<FanOutService>([this] {
    std::vector<FanOutTarget> targets;
    const std::uint64_t now = monotonic_ms();
    for (std::uint32_t i = 0; i < fleet_->size(); ++i) {
      if (!fleet_->healthy(i, now)) continue;
      BackendTarget t;
      std::uint32_t generation = 0;
      fleet_->copy_target(i, &t, &generation);
      targets.push_back(FanOutTarget{std::string(fleet_->name(i)), t.endpoint, t.host_header});
    }
    return targets;
  });
  if (fan_out_->start(error)) return true;
  *error = "fan-out service: " + *error;
  return false;
}

std::size_t Server::backend_gauges(BackendGauge* out, const BackendCounters** counters,
                                   std::size_t max) const {
  const std::size_t n = fill_backend_gauges(*fleet_, monotonic_ms(), out, max);
  for (std::size_t i = 0; i < n; ++i) counters[i] = &(*backend_counters_)[i];
  return n;
}

namespace {

std::string names_text(const std::vector<std::string>& names) {
  std::string text;
  for (const std::string& n : names) text += (text.empty() ? "" : ",") + n;
  return text;
}

std::string change_text(const FleetChange& c) {
  std::string text;
  if (!c.added.empty()) text += " added " + names_text(c.added) + ";";
  if (!c.removed.empty()) text += " removed " + names_text(c.removed) + ";";
  if (!c.changed.empty()) text += " changed " + names_text(c.changed) + ";";
  if (text.empty()) return " no backend changed";
  text.pop_back();
  return text;
}

}  // namespace

bool Server::reload(std::string* message) {
  if (fleet_ == nullptr) {
    *message = "SIGHUP: not started";
    return false;
  }
  if (config_.config_file.empty()) {
    *message = "SIGHUP: no --config file to re-read; nothing reloaded";
    return false;
  }
  if (config_.backends_from_flags) {
    *message = "SIGHUP: the backends come from --upstream, which overrides " +
               config_.config_file + "; nothing reloaded";
    return false;
  }
  std::vector<BackendConfig> wanted;
  std::string error;
  if (!load_backends_file(config_.config_file, &wanted, &error)) {
    *message = "SIGHUP: " + error + "; the running configuration stays";
    return false;
  }
  if (wanted.empty()) {
    *message = "SIGHUP: " + config_.config_file + " names no backend; the running one stays";
    return false;
  }
  FleetChange change;
  if (!fleet_->apply(wanted, monotonic_ms(), &change, &error)) {
    *message = "SIGHUP: " + error + "; the running configuration stays";
    return false;
  }
  for (auto& shard : shards_) shard->notify_targets();
  if (prober_) prober_->sync();
  *message = "SIGHUP: reloaded " + config_.config_file + ":" + change_text(change);
  return true;
}

void Server::stop(std::uint32_t drain_ms) {
  if (prober_) prober_->stop();
  for (auto& s : shards_) s->request_stop(drain_ms);
  for (int fd : listen_fds_) shutdown(fd, SHUT_RD);  // refuse new connections during a drain
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
  threads_.clear();
  if (metrics_server_) metrics_server_->stop();
  shards_.clear();
  if (fan_out_) fan_out_->stop();  // after the shards: none of them sends to it any more
  metrics_server_.reset();
  metrics_.clear();
  if (access_log_) access_log_->stop();  // after the shards: their last lines are written
  for (int fd : listen_fds_) close(fd);
  listen_fds_.clear();
}

const char* Server::features() const { return features_.c_str(); }

void Server::reopen_access_log() {
  if (access_log_) access_log_->reopen();
}

}  // namespace tokentap
