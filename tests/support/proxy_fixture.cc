// TestProxy; see proxy_fixture.h.
#include "support/proxy_fixture.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tokentap/app/config_parse.h"

namespace tokentap::test {

TestProxy::TestProxy(std::uint16_t upstream_port, int threads,
                     std::vector<std::string> extra_args) {
  std::vector<std::string> args = {"tokentap", "--listen", "127.0.0.1:0", "--metrics-listen",
                                    "127.0.0.1:0", "--threads", std::to_string(threads)};
  if (upstream_port != 0) {
    args.push_back("--upstream");
    args.push_back("http://127.0.0.1:" + std::to_string(upstream_port));
  }
  args.insert(args.end(), extra_args.begin(), extra_args.end());
  std::vector<const char*> argv;
  for (const auto& a : args) argv.push_back(a.c_str());
  const ParseOutcome parsed = parse_config(static_cast<int>(argv.size()), argv.data(),
                                           [](const char*) -> const char* { return nullptr; });
  if (parsed.kind != ParseOutcome::Kind::run) {
    error_ = parsed.error;
    return;
  }
  server_ = std::make_unique<Server>(parsed.config);
  started_ = server_->start(&error_);
}

std::string TestProxy::scrape() const {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(server_->metrics_port());
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string out;
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0) {
    const std::string req = "GET /metrics HTTP/1.0\r\n\r\n";
    if (send(fd, req.data(), req.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(req.size())) {
      char buf[65536];
      for (;;) {
        pollfd p{fd, POLLIN, 0};
        if (poll(&p, 1, 3000) <= 0) break;
        const ssize_t n = recv(fd, buf, sizeof(buf), 0);
        if (n <= 0) break;
        out.append(buf, static_cast<std::size_t>(n));
      }
    }
  }
  close(fd);
  return out;
}

double metric(const std::string& exposition, const std::string& series) {
  const auto at = exposition.find("\n" + series + " ");
  if (at == std::string::npos) return -1;
  return std::stod(exposition.substr(at + series.size() + 2));
}

double metric_sum(const std::string& exposition, const std::string& family,
                  const std::string& filter) {
  double sum = 0;
  std::size_t at = 0;
  const std::string start = "\n" + family;
  while ((at = exposition.find(start, at)) != std::string::npos) {
    const std::size_t eol = exposition.find('\n', at + 1);
    const std::string line = exposition.substr(at + 1, eol - at - 1);
    at = eol;
    const char next = line.size() > family.size() ? line[family.size()] : '\0';
    if (next != '{' && next != ' ') continue;  // another family sharing the prefix
    if (line.find(filter) == std::string::npos) continue;
    sum += std::stod(line.substr(line.rfind(' ') + 1));
  }
  return sum;
}

}  // namespace tokentap::test
