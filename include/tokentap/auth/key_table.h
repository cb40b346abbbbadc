// KeyTable: the configured API keys and anonymous blocks, built once from the Config and read by
// every shard without a lock (immutable after build, like the Config).
//
// A key is an index (KeyId): 0..size()-1 are the [[key]] tables in config order, size() is the
// anonymous clients (anonymous_from), so the windows, the ledger and the metrics index one array
// by the same number. The `key` label of an id is name(id); the anonymous id's is "anonymous".
//
// Lookup hashes the presented secret (SHA-256) and compares the digest with every key's in
// constant time: all keys, no early exit, a branch-free XOR-OR over each hash, the index selected
// with a mask, so the time a lookup takes says nothing about which key (or how much of one)
// matched. Cost: ~140 ns for the hash, then ~1 ns a key (bench/key_auth_bench.cc).
//
// Models (docs/keys.md "Models"): a pattern is an exact name or a prefix ending in `*` (`*`
// alone allows every model). Names compare as Ollama compares them: ASCII case-insensitively,
// and a name without a tag means its `:latest` tag, so `llama3` allows `llama3:latest` and
// `LLAMA3` (and `llama3:latest` allows `llama3`); `llama3*` allows `llama3`, `llama3:8b` and
// `llama3.1:latest`. The tag is what follows the last ':' after the last '/', so a registry
// port (`host:5000/ns/model`) is not a tag.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "tokentap/auth/cidr.h"
#include "tokentap/auth/credential.h"
#include "tokentap/auth/digest.h"
#include "tokentap/base/config.h"

namespace tokentap::auth {

using KeyId = std::uint32_t;

// The window slots: one per key and one for the anonymous clients.
constexpr std::uint32_t key_slots_max = keys_max + 1;

// [A-Za-z0-9_.-]{1,key_name_bytes_max}: a Prometheus label value that needs no escaping.
[[nodiscard]] bool valid_key_name(std::string_view name);

// An exact name or `prefix*` of 1..key_model_bytes_max bytes without spaces or controls, `*`
// only at its end; false with *problem otherwise.
[[nodiscard]] bool valid_model_pattern(std::string_view pattern, std::string* problem);

// The model rule of the file comment above.
[[nodiscard]] bool model_matches(std::string_view pattern, std::string_view model);

// Who a request is, as decided from its credential and its peer.
enum class AuthVerdict {
  off,        // no key configured: auth is off, let everything in
  key,        // a configured key (`key` set)
  anonymous,  // no valid key, from an anonymous_from block (`key` = anonymous_id())
  missing,    // refused, 401: no credential
  unknown,    // refused, 401: a credential that is no key
  conflict,   // refused, 401: two different credentials (credential.h)
};

struct Authentication {
  AuthVerdict verdict = AuthVerdict::off;
  KeyId key = 0;  // meaningful for key and anonymous
};

// True for the verdicts answered with 401 (tokentap_key_rejected_total{reason="unauthenticated"}).
[[nodiscard]] constexpr bool refused(AuthVerdict v) {
  return v == AuthVerdict::missing || v == AuthVerdict::unknown || v == AuthVerdict::conflict;
}

class KeyTable {
 public:
  KeyTable() = default;  // auth off

  // From a Config that config_parse validated; false with *error only for a CIDR that does not
  // parse or a key count over keys_max (what the parser already refuses).
  [[nodiscard]] static bool build(const Config& cfg, KeyTable* out, std::string* error);

  [[nodiscard]] bool enabled() const { return !keys_.empty(); }
  [[nodiscard]] std::uint32_t size() const { return static_cast<std::uint32_t>(keys_.size()); }
  [[nodiscard]] KeyId anonymous_id() const { return size(); }
  [[nodiscard]] std::uint32_t slot_count() const { return size() + 1; }

  [[nodiscard]] std::string_view name(KeyId id) const;
  [[nodiscard]] const KeyLimits& limits(KeyId id) const;
  // Every slot's limits, indexed by KeyId (anonymous last): what KeyWindow is built from.
  [[nodiscard]] std::vector<KeyLimits> slot_limits() const;
  // The id of a key name ("anonymous" included); nullopt when none (seeding from the ledger).
  [[nodiscard]] std::optional<KeyId> id_of(std::string_view name) const;

  // The key whose sha256 is SHA-256(secret), compared in constant time; nullopt when none.
  [[nodiscard]] std::optional<KeyId> find(std::string_view secret) const;
  [[nodiscard]] bool is_anonymous_peer(const IpAddress& ip) const;

  // The decision for a request: a configured key wins wherever the client is; otherwise a peer
  // inside anonymous_from is `anonymous` whatever it sent (SDKs insist on some key, and a local
  // OpenAI client typically sends the placeholder "ollama"); otherwise missing/unknown/conflict.
  // `peer` nullopt (a Unix socket, say) is never anonymous.
  [[nodiscard]] Authentication authenticate(const Credential& credential,
                                            std::optional<IpAddress> peer) const;

  // Whether `id` may use `model` (always true for a key without `models`).
  [[nodiscard]] bool model_allowed(KeyId id, std::string_view model) const;

 private:
  struct Entry {
    std::string name;
    Sha256 sha256{};
    std::vector<std::string> models;
    KeyLimits limits;
  };
  [[nodiscard]] const Entry& entry(KeyId id) const;

  // The keys' hashes side by side, as words, for find()'s scan: 32 KiB at keys_max.
  static constexpr std::size_t hash_words = key_sha256_bytes / sizeof(std::uint64_t);
  struct HashWords {
    std::uint64_t words[hash_words];
  };
  static_assert(sizeof(HashWords) == key_sha256_bytes);

  std::vector<Entry> keys_;
  std::vector<HashWords> hashes_;  // hashes_[i] is keys_[i].sha256
  Entry anonymous_;
  std::vector<Cidr> anonymous_from_;
};

}  // namespace tokentap::auth
