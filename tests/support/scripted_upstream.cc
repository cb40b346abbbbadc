#include "support/scripted_upstream.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace tokentap::test {

int listen_loopback(std::uint16_t* port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 || listen(fd, 4096) != 0) {
    return -1;
  }
  socklen_t len = sizeof(a);
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  *port = ntohs(a.sin_port);
  return fd;
}

int connect_loopback(std::uint16_t port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    close(fd);
    return -1;
  }
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  return fd;
}

void send_all(int fd, std::string_view s) {
  while (!s.empty()) {
    const ssize_t n = send(fd, s.data(), s.size(), MSG_NOSIGNAL);
    if (n <= 0) return;
    s.remove_prefix(static_cast<std::size_t>(n));
  }
}

std::string read_until(int fd, const std::function<bool(const std::string&)>& done,
                       std::chrono::milliseconds deadline, bool* closed) {
  std::string data;
  const auto end = std::chrono::steady_clock::now() + deadline;
  if (closed != nullptr) *closed = false;
  while (!done(data)) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        end - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(left.count())) <= 0) break;
    char buf[65536];
    const ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) {
      if (closed != nullptr) *closed = true;
      break;
    }
    data.append(buf, static_cast<std::size_t>(n));
  }
  return data;
}

std::string read_to_close(int fd, std::chrono::milliseconds deadline, bool* closed) {
  return read_until(
      fd, [](const std::string&) { return false; }, deadline, closed);
}

bool has_head(const std::string& data) { return data.find("\r\n\r\n") != std::string::npos; }

std::string read_ok(int fd) {
  return read_until(fd, [](const std::string& d) { return d.size() >= std::strlen(ok_body); });
}

std::string chunk(const std::string& data) {
  char size[16];
  std::snprintf(size, sizeof(size), "%zx\r\n", data.size());
  return size + data + "\r\n";
}

std::string dechunk(const std::string& message) {
  std::size_t at = message.find("\r\n\r\n");
  if (at == std::string::npos) return "";
  at += 4;
  std::string body;
  for (;;) {
    const std::size_t eol = message.find("\r\n", at);
    if (eol == std::string::npos) return body;
    const std::size_t size = std::stoul(message.substr(at, eol - at), nullptr, 16);
    if (size == 0) return body;
    body += message.substr(eol + 2, size);
    at = eol + 2 + size + 2;
  }
}

ScriptedUpstream::ScriptedUpstream(Script script) : script_(std::move(script)) {
  fd_ = listen_loopback(&port_);
  thread_ = std::thread([this] { accept_loop(); });
}

ScriptedUpstream::~ScriptedUpstream() {
  shutdown(fd_, SHUT_RDWR);
  close(fd_);
  thread_.join();
  for (auto& w : workers_) w.join();
}

void ScriptedUpstream::accept_loop() {
  for (;;) {
    const int c = accept(fd_, nullptr, nullptr);
    if (c < 0) return;
    ++accepted;
    workers_.emplace_back([this, c] {
      script_(c, *this);
      close(c);
    });
  }
}

std::string ScriptedUpstream::read_request(int fd) {
  std::string req = read_until(fd, [](const std::string& d) {
    const auto h = d.find("\r\n\r\n");
    if (h == std::string::npos) return false;
    const auto cl = d.find("Content-Length: ");
    if (cl == std::string::npos || cl > h) return true;
    return d.size() >= h + 4 + std::stoul(d.substr(cl + 16));
  });
  std::lock_guard<std::mutex> lock(mu_);
  requests_.push_back(req);
  return req;
}

std::vector<std::string> ScriptedUpstream::requests() {
  std::lock_guard<std::mutex> lock(mu_);
  return requests_;
}

ScriptedUpstream::Script ScriptedUpstream::answer_each(std::string response, int times) {
  return [response = std::move(response), times](int fd, ScriptedUpstream& self) {
    for (int i = 0; i < times; ++i) {
      if (self.read_request(fd).empty()) return;
      send_all(fd, response);
    }
  };
}

int status_of(std::string_view raw) {
  if (raw.size() < 12 || raw.substr(0, 5) != "HTTP/") return 0;
  return std::atoi(std::string(raw.substr(9, 3)).c_str());
}

Outcome send_and_read_to_close(std::uint16_t port, std::string_view request) {
  const int fd = connect_loopback(port);
  send_all(fd, request);
  Outcome o;
  o.response = read_to_close(fd, std::chrono::milliseconds(3000), &o.closed);
  close(fd);
  return o;
}

std::vector<std::string> ScriptedUpstream::nonempty_requests() {
  std::vector<std::string> out;
  for (std::string& r : requests()) {
    if (!r.empty()) out.push_back(std::move(r));
  }
  return out;
}

}  // namespace tokentap::test
