// user_data: the 64-bit tag every SQE carries and every CQE returns (STYLE §7).
//
// Layout, most significant bits first:   slot:32 | generation:24 | op:8
//  - slot:       index into the shard's connection slab (or a reserved slot for shard-level ops).
//  - generation: bumped each time a slot is freed, so a CQE that arrives after its slot was reused
//                is recognised as stale and dropped instead of corrupting the new owner.
//  - op:         which operation completed, the key of every on_completion switch.
// Raw pointers never travel in user_data: a pointer to a reusable slot cannot tell reuse apart.
#pragma once

#include <cstdint>

namespace tokentap {

enum class Op : std::uint8_t {
  none = 0,
  accept,            // multishot accept on the shard listener
  client_recv,       // multishot recv from the client socket
  client_send,       // send to the client
  upstream_connect,  // connect to the upstream
  upstream_recv,     // multishot recv from the upstream socket
  upstream_send,     // send to the upstream
  client_poll,       // readiness poll on the client socket (splice source or sink)
  upstream_poll,     // readiness poll on the upstream socket (splice source or sink)
  cancel,            // async cancel; its own CQE is ignored
  timeout,           // the link timeout bounding an upstream connect; its CQE is ignored
  wakeup,            // eventfd read used to stop the shard
  count_,
};

struct UserData {
  std::uint32_t slot;
  std::uint32_t generation;  // only the low 24 bits travel
  Op op;

  static constexpr std::uint32_t generation_mask = (1u << 24) - 1;

  [[nodiscard]] constexpr std::uint64_t encode() const {
    return (std::uint64_t{slot} << 32) | (std::uint64_t{generation & generation_mask} << 8) |
           static_cast<std::uint64_t>(op);
  }

  [[nodiscard]] static constexpr UserData decode(std::uint64_t v) {
    return UserData{static_cast<std::uint32_t>(v >> 32),
                    static_cast<std::uint32_t>((v >> 8) & generation_mask),
                    static_cast<Op>(v & 0xff)};
  }

  // True when a CQE tagged with this value still belongs to a slot whose generation is `current`.
  [[nodiscard]] constexpr bool matches(std::uint32_t current) const {
    return generation == (current & generation_mask);
  }
};

static_assert(static_cast<unsigned>(Op::count_) <= 256, "op must fit in 8 bits");
static_assert(UserData::decode(UserData{7, 0xabcdef, Op::client_send}.encode()).slot == 7);
static_assert(UserData::decode(UserData{7, 0xabcdef, Op::client_send}.encode()).generation ==
              0xabcdef);
static_assert(UserData::decode(UserData{7, 0xabcdef, Op::client_send}.encode()).op ==
              Op::client_send);

}  // namespace tokentap
