// KeyTable: building the table from the Config, the constant-time lookup, the model rule.
#include "tokentap/auth/key_table.h"

#include <cstring>

#include "tokentap/base/assert.h"

namespace tokentap::auth {
namespace {

constexpr std::string_view default_tag = "latest";

char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

// A model name split at its tag: ("llama3", "8b"); no tag gives ("llama3", "latest").
struct ModelName {
  std::string_view stem;
  std::string_view tag;
  bool tagged = false;
};

ModelName split_model(std::string_view name) {
  const std::size_t slash = name.rfind('/');
  const std::size_t colon = name.rfind(':');
  if (colon == std::string_view::npos || (slash != std::string_view::npos && colon < slash)) {
    return ModelName{name, default_tag, false};
  }
  return ModelName{name.substr(0, colon), name.substr(colon + 1), true};
}

// `prefix` is a case-insensitive prefix of the model's full name, `stem:tag` with the default
// tag filled in, without building that string.
bool prefix_of_full_name(std::string_view prefix, std::string_view model) {
  const ModelName m = split_model(model);
  if (m.tagged) {
    return prefix.size() <= model.size() && iequals(prefix, model.substr(0, prefix.size()));
  }
  if (prefix.size() <= model.size()) return iequals(prefix, model.substr(0, prefix.size()));
  if (!iequals(prefix.substr(0, model.size()), model)) return false;
  std::string_view rest = prefix.substr(model.size());  // compared with ":latest"
  if (rest.front() != ':') return false;
  rest.remove_prefix(1);
  return rest.size() <= default_tag.size() && iequals(rest, default_tag.substr(0, rest.size()));
}

}  // namespace

bool valid_key_name(std::string_view name) {
  if (name.empty() || name.size() > key_name_bytes_max) return false;
  for (const char c : name) {
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '.' || c == '-';
    if (!ok) return false;
  }
  return true;
}

bool valid_model_pattern(std::string_view pattern, std::string* problem) {
  if (pattern.empty() || pattern.size() > key_model_bytes_max) {
    *problem = "want 1.." + std::to_string(key_model_bytes_max) + " bytes";
    return false;
  }
  for (std::size_t i = 0; i < pattern.size(); ++i) {
    const auto c = static_cast<unsigned char>(pattern[i]);
    if (c <= 0x20 || c == 0x7f) {
      *problem = "spaces and control bytes are never in a model name";
      return false;
    }
    if (c == '*' && i + 1 != pattern.size()) {
      *problem = "'*' only at the end (a prefix glob)";
      return false;
    }
  }
  return true;
}

bool model_matches(std::string_view pattern, std::string_view model) {
  if (!pattern.empty() && pattern.back() == '*') {
    return prefix_of_full_name(pattern.substr(0, pattern.size() - 1), model);
  }
  const ModelName p = split_model(pattern);
  const ModelName m = split_model(model);
  return iequals(p.stem, m.stem) && iequals(p.tag, m.tag);
}

bool KeyTable::build(const Config& cfg, KeyTable* out, std::string* error) {
  if (cfg.keys.size() > keys_max) {
    *error = "more than " + std::to_string(keys_max) + " keys";
    return false;
  }
  KeyTable t;
  for (const KeyConfig& k : cfg.keys) {
    t.keys_.push_back(Entry{k.name, k.sha256, k.models, k.limits});
    HashWords h;
    std::memcpy(h.words, k.sha256.data(), sizeof h.words);
    t.hashes_.push_back(h);
  }
  t.anonymous_ =
      Entry{std::string(anonymous_key_name), {}, cfg.anonymous.models, cfg.anonymous.limits};
  for (const std::string& text : cfg.anonymous_from) {
    std::optional<Cidr> c = Cidr::parse(text, error);
    if (!c) return false;
    t.anonymous_from_.push_back(*c);
  }
  *out = std::move(t);
  return true;
}

const KeyTable::Entry& KeyTable::entry(KeyId id) const {
  TT_ASSERT(id <= keys_.size());
  return id == keys_.size() ? anonymous_ : keys_[id];
}

std::string_view KeyTable::name(KeyId id) const { return entry(id).name; }

const KeyLimits& KeyTable::limits(KeyId id) const { return entry(id).limits; }

std::vector<KeyLimits> KeyTable::slot_limits() const {
  std::vector<KeyLimits> out;
  for (KeyId id = 0; id < slot_count(); ++id) out.push_back(limits(id));
  return out;
}

std::optional<KeyId> KeyTable::id_of(std::string_view key_name) const {
  for (KeyId id = 0; id < slot_count(); ++id) {
    if (name(id) == key_name) return id;
  }
  return std::nullopt;
}

std::optional<KeyId> KeyTable::find(std::string_view secret) const {
  const std::optional<Sha256> digest = sha256(secret);
  if (!digest) return std::nullopt;
  // Every key is compared and the match picked with a mask: no branch depends on which key
  // matched or how many bytes did. Hashes are unique (config_parse refuses a repeated sha256),
  // so at most one matches. The loop is our own rather than CRYPTO_memcmp per key: the same
  // XOR-OR accumulation, inlined over 64-bit words, ~1 ns a key instead of ~19 (a function call
  // each), which is what makes 1024 keys cost about a microsecond per request.
  std::uint64_t want[hash_words];
  std::memcpy(want, digest->data(), sizeof want);
  constexpr std::uint32_t no_key = 0xffff'ffff;
  std::uint32_t found = no_key;
  for (std::uint32_t i = 0; i < hashes_.size(); ++i) {
    std::uint64_t diff = 0;
    for (std::size_t w = 0; w < hash_words; ++w) diff |= hashes_[i].words[w] ^ want[w];
    // 1 when diff == 0, else 0, without a comparison: (diff | -diff) has its top bit set
    // exactly when diff != 0.
    const std::uint64_t equal = ((diff | (0 - diff)) >> 63) ^ 1;
    const std::uint32_t mask = 0u - static_cast<std::uint32_t>(equal);
    found = (found & ~mask) | (i & mask);
  }
  if (found == no_key) return std::nullopt;
  return found;
}

bool KeyTable::is_anonymous_peer(const IpAddress& ip) const {
  return any_contains(anonymous_from_, ip);
}

Authentication KeyTable::authenticate(const Credential& credential,
                                      std::optional<IpAddress> peer) const {
  if (!enabled()) return Authentication{AuthVerdict::off, 0};
  std::optional<KeyId> id;
  if (credential.kind == CredentialKind::secret) id = find(credential.secret);
  if (id) return Authentication{AuthVerdict::key, *id};
  if (peer && is_anonymous_peer(*peer))
    return Authentication{AuthVerdict::anonymous, anonymous_id()};
  switch (credential.kind) {
    case CredentialKind::none:
      return Authentication{AuthVerdict::missing, 0};
    case CredentialKind::secret:
      return Authentication{AuthVerdict::unknown, 0};
    case CredentialKind::conflict:
      return Authentication{AuthVerdict::conflict, 0};
  }
  return Authentication{AuthVerdict::missing, 0};
}

bool KeyTable::model_allowed(KeyId id, std::string_view model) const {
  const Entry& e = entry(id);
  if (e.models.empty()) return true;
  for (const std::string& pattern : e.models) {
    if (model_matches(pattern, model)) return true;
  }
  return false;
}

}  // namespace tokentap::auth
