// config_settings: what the flag parser (config_parse.cc) and the TOML reader (config_file.cc)
// share: the settings being gathered, each setting's kind, and the one function that checks and
// stores a value, so a flag and its file key are validated by the same code.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tokentap/base/config.h"

namespace tokentap::config_detail {

// What a setting takes: a string, an unsigned integer, a boolean switch, or nothing (help).
enum class SettingKind { text, number, toggle, action };

// The kind of flag `name` (without dashes, '-' between words), or nullopt when it is none.
[[nodiscard]] std::optional<SettingKind> setting_kind(std::string_view name);

// Settings gathered from every source before the addresses are resolved (finish()).
struct Settings {
  Config cfg;                      // what needs no resolving or reading
  std::optional<Endpoint> listen;  // resolved when the file or a flag sets it
  std::optional<Endpoint> metrics_listen;
  std::string env_listen;          // LISTEN_ADDR, resolved only if nothing else sets it
  std::string env_upstream;        // OLLAMA_UPSTREAM as given
  std::string metrics_token_file;  // read in finish(), after every source had its say
  std::string token_file_origin;   // "--metrics-token-file" or "FILE:LINE: key", for errors
  std::vector<BackendConfig> file_backends;  // the file's `upstream` + [[backend]], resolved
  std::vector<BackendConfig> flag_backends;  // the --upstream flags, resolved
  std::vector<KeyConfig> file_keys;          // the --config file's [[key]] tables
  std::string keys_file;                     // --keys FILE, read in finish_keys()
  std::string keys_file_origin;              // "--keys" or "FILE:LINE: keys =", for errors
  std::string anonymous_origin;              // "FILE:LINE: anonymous_from" when the file set it
  std::string anonymous_table_origin;        // "FILE:LINE: anonymous" when it has that table
};

// Checks `value` for setting `name` (any kind but action, and not upstream/config, which the
// caller handles per source) and stores it; addresses are resolved here. On failure *problem
// says what was wanted, for the caller to prefix with the flag or the file's key: a number's
// problem ("want 1..256") leaves the value to the caller, a text's names it.
[[nodiscard]] bool apply_setting(std::string_view name, std::string_view value, Settings* s,
                                 std::string* problem);

// Reads the TOML file into *s: every key but `upstream` through apply_setting, the backends into
// s->file_backends. One error line naming the file, the line and the key.
[[nodiscard]] bool load_config_file(const std::string& path, Settings* s, std::string* error);

// Reads --keys FILE (only [[key]] tables) into *out, each key's origin "FILE:LINE".
[[nodiscard]] bool load_keys_file(const std::string& path, std::string_view origin,
                                  std::vector<KeyConfig>* out, std::string* error);

// After every source had its say: reads the keys file, merges its keys after the config file's
// into s->cfg.keys (names and secrets unique across both, at most keys_max), checks that
// anonymous settings come with keys, and appends a warning for each key file others may read.
[[nodiscard]] bool finish_keys(Settings* s, std::vector<std::string>* warnings, std::string* error);

}  // namespace tokentap::config_detail
