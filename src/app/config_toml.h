// config_toml: the pieces of the TOML reader (config_file.cc) that the [[key]] reader
// (config_keys.cc) shares: where a node stands, what its type is called, reading and parsing a
// file, each with the one-line errors of config_file.cc.
#pragma once

#include <toml++/toml.h>

#include <string>
#include <string_view>

#include "config_settings.h"

namespace tokentap::config_detail {

// A config or key file is a few KiB; anything this large is a wrong path.
constexpr std::size_t config_file_bytes_max = 1 * mib;

// "FILE:LINE: " for a node or key toml++ placed (lines count from 1), "FILE: " otherwise.
[[nodiscard]] std::string at(const std::string& path, const toml::source_region& where);
[[nodiscard]] std::string_view type_name(toml::node_type type);
// The [[name]] tables under root's key `name`: *tables is null when the key is absent. False,
// with the one-line error, when the key holds anything but an array of tables.
[[nodiscard]] bool tables_at(const std::string& path, const toml::table& root,
                             std::string_view name, const toml::array** tables,
                             std::string* error);

// Reads at most config_file_bytes_max; errors start with "FLAG PATH: " ("--config /x: ...").
[[nodiscard]] bool read_file(std::string_view flag, const std::string& path, std::string* text,
                             std::string* error);
[[nodiscard]] bool parse_toml(const std::string& path, std::string_view text, toml::table* out,
                              std::string* error);

// The auth keys of a --config file: `key` ([[key]] tables), `anonymous_from`, `anonymous`.
[[nodiscard]] bool is_auth_key(std::string_view key);
// Reads them from the file's root into s->file_keys, s->cfg.anonymous_from, s->cfg.anonymous.
[[nodiscard]] bool load_auth_keys(const std::string& path, const toml::table& root, Settings* s,
                                  std::string* error);

}  // namespace tokentap::config_detail
