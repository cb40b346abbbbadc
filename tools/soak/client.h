// Client: the soak's load generator. One thread, one epoll instance (edge-triggered), thousands
// of non-blocking connections to tokentap, each a small state machine:
//
//   free → connecting → idle ⇄ busy → (closed: slot free again, generation bumped)
//
// A request (a Catalog template variant, prebuilt bytes) may be started while the connection is
// still connecting; it is sent as soon as the connect completes. The answer is parsed by a
// ResponseReader and compared byte by byte with the template's reference body as it arrives
// (no buffering). Every request ends in exactly one Outcome (tally.h); the client never decides
// what comes next: it appends a Done to done() and the phase driver reacts after poll() returns,
// so no callback ever re-enters a connection's handler.
//
// Limits: capacity connections (a fixed slab), events_per_poll per epoll_wait, one shared
// receive buffer. Each request has a deadline (Template::deadline_ms); expire() turns overdue
// ones into unexpected outcomes. Connection-level surprises (connect failure, an idle
// connection closed by tokentap, bytes nobody asked for) are unexpected outcomes too.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "catalog.h"
#include "response_reader.h"
#include "tally.h"

namespace tokentap::soak {

constexpr std::uint32_t conn_none = UINT32_MAX;
constexpr int events_per_poll = 1024;
constexpr std::size_t recv_buffer_bytes = 256 * 1024;
constexpr std::uint64_t connect_deadline_ms = 15'000;

struct Done {
  std::uint32_t id;
  Outcome outcome;
  bool open;                // the connection is still usable (idle); else its slot is free
  const Template* tpl;      // null for a connection-level event
};

class Client {
 public:
  Client(std::uint16_t port, std::uint32_t capacity, const Catalog& catalog, Tally& tally);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  [[nodiscard]] bool init(std::string* error);

  // Starts a non-blocking connect. conn_none when out of slots or descriptors (counted).
  [[nodiscard]] std::uint32_t open(std::uint64_t now_ms);
  // Sends template variant on an idle or connecting connection. With abort_early the client
  // closes the connection as soon as the first body bytes arrive (a client abort).
  void start(std::uint32_t id, const Template& t, std::uint32_t variant, bool abort_early,
             std::uint64_t now_ms);
  // Closes a connection that has no request in flight (idle or connecting).
  void close_idle(std::uint32_t id);
  // Closes every connection; requests in flight count as unexpected.
  void close_all();

  // Waits up to timeout_ms for socket events and handles them all.
  void poll(int timeout_ms, std::uint64_t now_ms);
  // Requests and connects past their deadline become unexpected outcomes.
  void expire(std::uint64_t now_ms);
  [[nodiscard]] std::vector<Done>& done() { return done_; }

  [[nodiscard]] bool busy(std::uint32_t id) const;
  [[nodiscard]] bool connected(std::uint32_t id) const;
  [[nodiscard]] std::uint32_t generation(std::uint32_t id) const { return conns_[id].gen; }
  [[nodiscard]] std::uint32_t open_count() const { return open_count_; }
  [[nodiscard]] std::uint32_t busy_count() const { return busy_count_; }
  [[nodiscard]] std::uint32_t connecting_count() const { return connecting_count_; }
  [[nodiscard]] std::uint32_t capacity() const { return static_cast<std::uint32_t>(conns_.size()); }

 private:
  enum class State : std::uint8_t { free, connecting, idle, busy };

  struct Conn {
    int fd = -1;
    std::uint32_t gen = 0;
    State state = State::free;
    bool pending = false;      // a request waits for the connect to finish
    bool abort_early = false;
    bool mismatch = false;
    std::uint32_t variant = 0;
    const Template* tpl = nullptr;
    std::size_t sent = 0;      // request bytes sent (head, then upload body)
    std::uint64_t ref_off = 0;  // body bytes compared so far
    std::uint64_t mismatch_at = 0;
    std::uint64_t deadline_ms = 0;
    ResponseReader reader;
  };

  void on_event(std::uint32_t id, std::uint32_t events);
  void on_connected(std::uint32_t id);
  [[nodiscard]] bool try_send(std::uint32_t id);
  void on_readable(std::uint32_t id);
  [[nodiscard]] bool feed(std::uint32_t id, const char* p, std::size_t n);
  void on_body(Conn& c, const char* p, std::size_t n);
  void on_response_done(std::uint32_t id, std::size_t extra);
  void on_peer_closed(std::uint32_t id, int err);
  [[nodiscard]] std::string verify(const Conn& c) const;
  void finish(std::uint32_t id, Outcome o, bool keep_open);
  void fail(std::uint32_t id, std::string_view reason, std::string detail);
  void release(std::uint32_t id);
  static bool in_flight(const Conn& c);
  void set_state(Conn& c, State s, bool pending);

  std::uint16_t port_;
  const Catalog& catalog_;
  Tally& tally_;
  int epoll_fd_ = -1;
  std::vector<Conn> conns_;
  std::vector<std::uint32_t> free_;
  std::vector<Done> done_;
  std::vector<char> recv_buf_;
  std::uint32_t open_count_ = 0;
  std::uint32_t busy_count_ = 0;
  std::uint32_t connecting_count_ = 0;
};

}  // namespace tokentap::soak
