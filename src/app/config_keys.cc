// Config keys: the [[key]] tables, anonymous_from and [anonymous] of --config FILE, and --keys
// FILE (only [[key]] tables), read with toml++ and checked as config_file.cc checks the rest:
// every problem is one line "FILE:LINE: key[I].FIELD: problem".
//
// A [[key]] table: name ([A-Za-z0-9_.-]{1,32}, not "anonymous"), sha256 (64 hex digits of
// SHA-256(secret); tokentap never reads a secret from a file), optional models (exact names and
// `prefix*` globs, auth/key_table.h) and requests_per_minute, tokens_per_minute, tokens_per_day
// (0 = unlimited, the default). [anonymous] takes the same fields but name and sha256. Names and
// hashes are unique across both files, so a label names one key and a secret finds one key.
#include <fmt/format.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "config_settings.h"
#include "config_toml.h"
#include "tokentap/app/config_parse.h"
#include "tokentap/auth/cidr.h"
#include "tokentap/auth/digest.h"
#include "tokentap/auth/key_table.h"

namespace tokentap::config_detail {
namespace {

constexpr std::string_view limit_fields[] = {"requests_per_minute", "tokens_per_minute",
                                             "tokens_per_day"};

// "FILE:LINE" of a node, for a key's origin.
std::string origin_of(const std::string& path, const toml::source_region& where) {
  return fmt::format("{}:{}", path, where.begin.line);
}

std::uint64_t limit_max(std::string_view field) {
  if (field == "requests_per_minute") return key_requests_per_minute_max;
  if (field == "tokens_per_minute") return key_tokens_per_minute_max;
  return key_tokens_per_day_max;
}

std::uint64_t* limit_slot(KeyLimits* limits, std::string_view field) {
  if (field == "requests_per_minute") return &limits->requests_per_minute;
  if (field == "tokens_per_minute") return &limits->tokens_per_minute;
  return &limits->tokens_per_day;
}

// The three optional limits of a key (or [anonymous]) table, each 0..its ceiling.
bool load_limits(const std::string& path, const std::string& label, const toml::table& table,
                 KeyLimits* out, std::string* error) {
  for (const std::string_view field : limit_fields) {
    const toml::node* node = table.get(field);
    if (node == nullptr) continue;
    const auto* value = node->as_integer();
    const std::string where = at(path, node->source());
    if (value == nullptr) {
      *error = fmt::format("{}{}.{}: want an integer, not {}", where, label, field,
                           type_name(node->type()));
      return false;
    }
    const std::uint64_t max = limit_max(field);
    if (value->get() < 0 || static_cast<std::uint64_t>(value->get()) > max) {
      *error = fmt::format("{}{}.{} = {}: want 0..{} (0 = unlimited)", where, label, field,
                           value->get(), max);
      return false;
    }
    *limit_slot(out, field) = static_cast<std::uint64_t>(value->get());
  }
  return true;
}

bool load_models(const std::string& path, const std::string& label, const toml::table& table,
                 std::vector<std::string>* out, std::string* error) {
  const toml::node* node = table.get("models");
  if (node == nullptr) return true;
  const toml::array* list = node->as_array();
  if (list == nullptr) {
    *error = fmt::format("{}{}.models: want an array of strings, not {}", at(path, node->source()),
                         label, type_name(node->type()));
    return false;
  }
  if (list->size() > key_models_max) {
    *error = fmt::format("{}{}.models: more than {} patterns", at(path, node->source()), label,
                         key_models_max);
    return false;
  }
  for (std::size_t i = 0; i < list->size(); ++i) {
    const toml::node& item = *list->get(i);
    const auto* s = item.as_string();
    std::string problem;
    if (s == nullptr) {
      *error = fmt::format("{}{}.models[{}]: want a string, not {}", at(path, item.source()), label,
                           i, type_name(item.type()));
      return false;
    }
    if (!auth::valid_model_pattern(s->get(), &problem)) {
      *error = fmt::format("{}{}.models[{}] = \"{}\": {}", at(path, item.source()), label, i,
                           s->get(), problem);
      return false;
    }
    out->push_back(s->get());
  }
  return true;
}

bool only_fields(const std::string& path, const std::string& label, const toml::table& table,
                 std::initializer_list<std::string_view> allowed, std::string_view want,
                 std::string* error) {
  for (auto&& [key, value] : table) {
    if (std::find(allowed.begin(), allowed.end(), key.str()) != allowed.end()) continue;
    *error = fmt::format("{}unknown key '{}.{}' (want {})", at(path, key.source()), label,
                         key.str(), want);
    return false;
  }
  return true;
}

// A required string field; false with the error when it is missing or not a string.
bool required_text(const std::string& path, const std::string& label, const toml::table& table,
                   std::string_view field, std::string_view example, std::string_view* out,
                   std::string* error) {
  const toml::node* node = table.get(field);
  if (node == nullptr) {
    *error = fmt::format("{}{}: no {} (want {})", at(path, table.source()), label, field, example);
    return false;
  }
  const auto* value = node->as_string();
  if (value == nullptr) {
    *error = fmt::format("{}{}.{}: want a string, not {}", at(path, node->source()), label, field,
                         type_name(node->type()));
    return false;
  }
  *out = value->get();
  return true;
}

bool check_name(const std::string& where, const std::string& label, std::string_view name,
                std::string* error) {
  if (!auth::valid_key_name(name)) {
    *error = fmt::format("{}{}.name = \"{}\": want 1..{} of A-Z a-z 0-9 _ . -", where, label, name,
                         key_name_bytes_max);
    return false;
  }
  if (name == anonymous_key_name) {
    *error = fmt::format("{}{}.name = \"{}\": reserved for the anonymous_from clients", where,
                         label, name);
    return false;
  }
  return true;
}

bool check_sha256(const std::string& where, const std::string& label, std::string_view hex,
                  KeyConfig* out, std::string* error) {
  std::optional<auth::Sha256> digest = auth::parse_sha256_hex(hex);
  if (digest) {
    out->sha256 = *digest;
    return true;
  }
  // Never echo the value: it may be a secret pasted in the wrong place.
  const bool secret = hex.substr(0, 3) == "tt-";
  *error = secret ? fmt::format(
                        "{}{}.sha256: that is a secret, not its hash; put `tokentap "
                        "hash-key` of it here and keep the secret out of this file",
                        where, label)
                  : fmt::format(
                        "{}{}.sha256: want 64 hex digits (tokentap hash-key prints "
                        "them), not {} characters",
                        where, label, hex.size());
  return false;
}

bool load_key_table(const std::string& path, std::size_t index, const toml::table& table,
                    KeyConfig* out, std::string* error) {
  const std::string label = fmt::format("key[{}]", index);
  if (!only_fields(path, label, table,
                   {"name", "sha256", "models", "requests_per_minute", "tokens_per_minute",
                    "tokens_per_day"},
                   "name, sha256, models, requests_per_minute, tokens_per_minute, tokens_per_day",
                   error)) {
    return false;
  }
  std::string_view name;
  std::string_view hex;
  if (!required_text(path, label, table, "name", "name = \"NAME\"", &name, error) ||
      !check_name(at(path, table.get("name")->source()), label, name, error) ||
      !required_text(path, label, table, "sha256", "sha256 = \"HEX\" from tokentap keygen", &hex,
                     error) ||
      !check_sha256(at(path, table.get("sha256")->source()), label, hex, out, error) ||
      !load_models(path, label, table, &out->models, error) ||
      !load_limits(path, label, table, &out->limits, error)) {
    return false;
  }
  out->name = name;
  out->origin = origin_of(path, table.source());
  return true;
}

// The [[key]] tables of `root`, appended to *out.
bool load_key_tables(const std::string& path, const toml::table& root, std::vector<KeyConfig>* out,
                     std::string* error) {
  const toml::array* tables = nullptr;
  if (!tables_at(path, root, "key", &tables, error)) return false;
  for (std::size_t i = 0; tables != nullptr && i < tables->size(); ++i) {
    const toml::table& table = *tables->get(i)->as_table();
    if (out->size() >= keys_max) {
      *error = fmt::format("{}key[{}]: more than {} keys", at(path, table.source()), i, keys_max);
      return false;
    }
    KeyConfig key;
    if (!load_key_table(path, i, table, &key, error)) return false;
    out->push_back(std::move(key));
  }
  return true;
}

bool load_anonymous_from(const std::string& path, const toml::node& node, Settings* s,
                         std::string* error) {
  const toml::array* list = node.as_array();
  if (list == nullptr) {
    *error = fmt::format("{}anonymous_from: want an array of CIDRs, not {}",
                         at(path, node.source()), type_name(node.type()));
    return false;
  }
  if (list->size() > anonymous_cidrs_max) {
    *error = fmt::format("{}anonymous_from: more than {} blocks", at(path, node.source()),
                         anonymous_cidrs_max);
    return false;
  }
  s->cfg.anonymous_from.clear();
  for (std::size_t i = 0; i < list->size(); ++i) {
    const toml::node& item = *list->get(i);
    const auto* text = item.as_string();
    std::string problem;
    if (text == nullptr) {
      *error = fmt::format("{}anonymous_from[{}]: want a string, not {}", at(path, item.source()),
                           i, type_name(item.type()));
      return false;
    }
    if (!auth::Cidr::parse(text->get(), &problem)) {
      *error = fmt::format("{}anonymous_from[{}]: {}", at(path, item.source()), i, problem);
      return false;
    }
    s->cfg.anonymous_from.push_back(text->get());
  }
  s->anonymous_origin = at(path, node.source()) + "anonymous_from";
  return true;
}

bool load_anonymous_table(const std::string& path, const toml::node& node, Settings* s,
                          std::string* error) {
  const toml::table* table = node.as_table();
  if (table == nullptr) {
    *error = fmt::format("{}anonymous: want an [anonymous] table, not {}", at(path, node.source()),
                         type_name(node.type()));
    return false;
  }
  const std::string label = "anonymous";
  KeyConfig& a = s->cfg.anonymous;
  a = KeyConfig{};
  if (!only_fields(path, label, *table,
                   {"models", "requests_per_minute", "tokens_per_minute", "tokens_per_day"},
                   "models, requests_per_minute, tokens_per_minute, tokens_per_day", error) ||
      !load_models(path, label, *table, &a.models, error) ||
      !load_limits(path, label, *table, &a.limits, error)) {
    return false;
  }
  a.name = anonymous_key_name;
  a.origin = origin_of(path, table->source());
  s->anonymous_table_origin = at(path, table->source()) + "anonymous";
  return true;
}

}  // namespace

bool is_auth_key(std::string_view key) {
  return key == "key" || key == "anonymous_from" || key == "anonymous";
}

bool load_auth_keys(const std::string& path, const toml::table& root, Settings* s,
                    std::string* error) {
  if (const toml::node* node = root.get("anonymous_from")) {
    if (!load_anonymous_from(path, *node, s, error)) return false;
  }
  if (const toml::node* node = root.get("anonymous")) {
    if (!load_anonymous_table(path, *node, s, error)) return false;
  }
  s->file_keys.clear();
  return load_key_tables(path, root, &s->file_keys, error);
}

bool load_keys_file(const std::string& path, std::string_view origin, std::vector<KeyConfig>* out,
                    std::string* error) {
  std::string text;
  toml::table root;
  if (!read_file(origin, path, &text, error) || !parse_toml(path, text, &root, error)) {
    return false;
  }
  for (auto&& [key, value] : root) {
    if (key.str() == "key") continue;
    *error = fmt::format("{}unknown key '{}' (a --keys file holds only [[key]] tables)",
                         at(path, key.source()), key.str());
    return false;
  }
  return load_key_tables(path, root, out, error);
}

}  // namespace tokentap::config_detail

namespace tokentap::config_detail {
namespace {

// Names and hashes are unique: a label names one key, a secret finds one key.
bool check_unique(const std::vector<KeyConfig>& keys, std::string* error) {
  for (std::size_t i = 0; i < keys.size(); ++i) {
    for (std::size_t j = 0; j < i; ++j) {
      if (keys[i].name == keys[j].name) {
        *error = fmt::format("{}: key '{}': the name of another key ({})", keys[i].origin,
                             keys[i].name, keys[j].origin);
        return false;
      }
      if (keys[i].sha256 == keys[j].sha256) {
        *error = fmt::format(
            "{}: key '{}': the same sha256 as key '{}' ({}); each key needs its "
            "own secret",
            keys[i].origin, keys[i].name, keys[j].name, keys[j].origin);
        return false;
      }
    }
  }
  return true;
}

bool anonymous_needs_keys(const Settings& s, bool have_keys, std::string* error) {
  if (!have_keys && !s.anonymous_origin.empty()) {
    *error = s.anonymous_origin +
             ": no [[key]] is configured, so auth is off and every client is let in anyway";
    return false;
  }
  if (!have_keys && !s.anonymous_table_origin.empty()) {
    *error = s.anonymous_table_origin + ": no [[key]] is configured, so auth is off";
    return false;
  }
  if (!s.anonymous_table_origin.empty() && s.cfg.anonymous_from.empty()) {
    *error = s.anonymous_table_origin + ": limits for no one (set anonymous_from)";
    return false;
  }
  return true;
}

void warn_if_readable(const std::string& path, std::vector<std::string>* warnings) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) return;  // it was just read; a race is no reason to fail
  if (std::optional<std::string> w = key_file_warning(path, st.st_mode)) {
    warnings->push_back(std::move(*w));
  }
}

}  // namespace

bool finish_keys(Settings* s, std::vector<std::string>* warnings, std::string* error) {
  std::vector<KeyConfig> keys = std::move(s->file_keys);
  const bool config_has_keys = !keys.empty();
  if (!s->keys_file.empty()) {
    std::vector<KeyConfig> more;
    if (!load_keys_file(s->keys_file, s->keys_file_origin, &more, error)) return false;
    if (more.empty()) {
      *error = fmt::format("{} {}: no [[key]] table, so auth would be off", s->keys_file_origin,
                           s->keys_file);
      return false;
    }
    if (keys.size() + more.size() > keys_max) {
      *error = fmt::format("{} {}: more than {} keys with the config file's", s->keys_file_origin,
                           s->keys_file, keys_max);
      return false;
    }
    for (KeyConfig& k : more) keys.push_back(std::move(k));
  }
  if (!check_unique(keys, error) || !anonymous_needs_keys(*s, !keys.empty(), error)) {
    return false;
  }
  if (config_has_keys) warn_if_readable(s->cfg.config_file, warnings);
  if (!s->keys_file.empty()) warn_if_readable(s->keys_file, warnings);
  s->cfg.keys = std::move(keys);
  s->cfg.keys_file = s->keys_file;
  return true;
}

}  // namespace tokentap::config_detail

namespace tokentap {

std::optional<std::string> key_file_warning(std::string_view path, unsigned mode) {
  if ((mode & 0044) == 0) return std::nullopt;
  return fmt::format(
      "warning: {} holds API key hashes and other users may read it (mode {:04o}); a weak "
      "secret can be recovered from its hash: chmod 600 {}",
      path, mode & 07777, path);
}

}  // namespace tokentap
