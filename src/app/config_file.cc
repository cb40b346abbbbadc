// Config file: --config FILE, a TOML 1.0 document read with toml++ (Debian libtomlplusplus-dev).
//
// Every flag is a top-level key spelled with '_' for '-' (max_models = 512), checked and stored
// by the same apply_setting as the flag, so a file key and its flag accept exactly the same
// values. Backends are the `upstream` key (a "[NAME=]URL" string or an array of them) followed
// by the [[backend]] tables (name, url, weight, max_parallel); the [[key]] tables,
// anonymous_from and [anonymous] are read by config_keys.cc. Anything else — an unknown key, a
// wrong type, a value out of range, a syntax error — is one line "FILE:LINE: KEY: problem", so
// a typo in a file never starts a proxy with a default the operator did not ask for.
//
// toml++ reports syntax errors by exception (Debian builds it with exceptions); this runs once at
// start-up and on SIGHUP, never on a shard, so the one try/catch here is off the hot path.
#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "config_settings.h"
#include "config_toml.h"
#include "tokentap/app/config_parse.h"

namespace tokentap::config_detail {

std::string at(const std::string& path, const toml::source_region& where) {
  if (where.begin.line == 0) return path + ": ";
  return fmt::format("{}:{}: ", path, where.begin.line);
}

bool tables_at(const std::string& path, const toml::table& root, std::string_view name,
               const toml::array** tables, std::string* error) {
  *tables = nullptr;
  const toml::node* node = root.get(name);
  if (node == nullptr) return true;
  const toml::array* array = node->as_array();
  if (array == nullptr || (!array->empty() && !array->is_array_of_tables())) {
    *error = fmt::format("{}{}: want [[{}]] tables, not {}", at(path, node->source()), name, name,
                         type_name(node->type()));
    return false;
  }
  *tables = array;
  return true;
}

std::string_view type_name(toml::node_type type) {
  switch (type) {
    case toml::node_type::none:
      return "nothing";
    case toml::node_type::table:
      return "a table";
    case toml::node_type::array:
      return "an array";
    case toml::node_type::string:
      return "a string";
    case toml::node_type::integer:
      return "an integer";
    case toml::node_type::floating_point:
      return "a float";
    case toml::node_type::boolean:
      return "a boolean";
    case toml::node_type::date:
      return "a date";
    case toml::node_type::time:
      return "a time";
    case toml::node_type::date_time:
      return "a date-time";
  }
  return "an unknown type";
}

bool read_file(std::string_view flag, const std::string& path, std::string* text,
               std::string* error) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) {
    *error = fmt::format("{} {}: cannot read: {}", flag, path, std::strerror(errno));
    return false;
  }
  text->resize(config_file_bytes_max + 1);
  const std::size_t n = std::fread(text->data(), 1, text->size(), f);
  const int read_errno = std::ferror(f) != 0 ? errno : 0;
  std::fclose(f);
  if (read_errno != 0) {
    *error = fmt::format("{} {}: cannot read: {}", flag, path, std::strerror(read_errno));
    return false;
  }
  if (n > config_file_bytes_max) {
    *error =
        fmt::format("{} {}: over {} bytes, not a config file", flag, path, config_file_bytes_max);
    return false;
  }
  text->resize(n);
  return true;
}

bool parse_toml(const std::string& path, std::string_view text, toml::table* out,
                std::string* error) {
  try {
    *out = toml::parse(text, path);
    return true;
  } catch (const toml::parse_error& e) {
    const toml::source_position& where = e.source().begin;
    std::string what(e.description());
    std::replace(what.begin(), what.end(), '\n', ' ');  // the error stays one line
    *error = fmt::format("{}:{}:{}: TOML syntax error: {}", path, where.line, where.column, what);
    return false;
  }
}

namespace {

// A scalar setting's value as apply_setting takes it (what a flag would carry), or nullopt when
// its TOML type is not the one the setting's kind wants.
std::optional<std::string> setting_text(SettingKind kind, const toml::node& value) {
  switch (kind) {
    case SettingKind::text:
      if (const auto* s = value.as_string()) return s->get();
      break;
    case SettingKind::number:
      if (const auto* i = value.as_integer()) return std::to_string(i->get());
      break;
    case SettingKind::toggle:
      if (const auto* b = value.as_boolean()) return std::string(b->get() ? "true" : "false");
      break;
    case SettingKind::action:
      break;
  }
  return std::nullopt;
}

std::string_view kind_want(SettingKind kind) {
  switch (kind) {
    case SettingKind::text:
      return "a string";
    case SettingKind::number:
      return "an integer";
    case SettingKind::toggle:
      return "true or false";
    case SettingKind::action:
      break;
  }
  return "nothing";
}

bool unknown_key(const std::string& where, std::string_view key, std::string* error) {
  std::string flag(key);
  std::replace(flag.begin(), flag.end(), '-', '_');
  if (key.find('-') != std::string_view::npos) {
    *error = fmt::format("{}unknown key '{}' (keys use '_' for '-': {})", where, key, flag);
  } else if (key == "config") {
    *error = fmt::format("{}unknown key 'config' (a config file names no other)", where);
  } else {
    *error = fmt::format("{}unknown key '{}' (see --help; '_' for '-')", where, key);
  }
  return false;
}

// One top-level key other than the backends: a flag's name with '_' for '-'.
bool apply_key(const std::string& path, const toml::key& key, const toml::node& value, Settings* s,
               std::string* error) {
  const std::string where = at(path, key.source());
  std::string name(key.str());
  std::replace(name.begin(), name.end(), '_', '-');
  const std::optional<SettingKind> kind = setting_kind(name);
  if (key.str().find('-') != std::string_view::npos || !kind || *kind == SettingKind::action ||
      name == "config") {
    return unknown_key(where, key.str(), error);
  }
  const std::optional<std::string> text = setting_text(*kind, value);
  if (!text) {
    *error = fmt::format("{}{}: want {}, not {}", where, key.str(), kind_want(*kind),
                         type_name(value.type()));
    return false;
  }
  std::string problem;
  if (!apply_setting(name, *text, s, &problem)) {
    // A text's problem names the value already ("invalid address 'x' ...").
    *error = *kind == SettingKind::text
                 ? fmt::format("{}{}: {}", where, key.str(), problem)
                 : fmt::format("{}{} = {}: {}", where, key.str(), *text, problem);
    return false;
  }
  if (name == "metrics-token-file") s->token_file_origin = where + std::string(key.str());
  if (name == "keys") s->keys_file_origin = where + "keys =";
  return true;
}

bool is_backend_key(std::string_view key) {
  return key == "upstream" || key == "ollama_url" || key == "backend";
}

// One "[NAME=]URL" of the `upstream` key.
bool add_spec(const std::string& path, const std::string& label,
              const toml::value<std::string>& spec, std::vector<BackendConfig>* out,
              std::string* error) {
  BackendConfig b;
  if (!parse_backend_spec(spec.get(), &b, error) || !add_backend(out, std::move(b), error)) {
    *error = fmt::format("{}{}: {}", at(path, spec.source()), label, *error);
    return false;
  }
  return true;
}

bool load_upstream(const std::string& path, std::string_view key, const toml::node& value,
                   std::vector<BackendConfig>* out, std::string* error) {
  if (const auto* spec = value.as_string()) {
    return add_spec(path, std::string(key), *spec, out, error);
  }
  const auto* list = value.as_array();
  if (list == nullptr) {
    *error = fmt::format("{}{}: want a string or an array of strings, not {}",
                         at(path, value.source()), key, type_name(value.type()));
    return false;
  }
  for (std::size_t i = 0; i < list->size(); ++i) {
    const std::string label = fmt::format("{}[{}]", key, i);
    const toml::node& item = *list->get(i);
    const auto* spec = item.as_string();
    if (spec == nullptr) {
      *error = fmt::format("{}{}: want a string, not {}", at(path, item.source()), label,
                           type_name(item.type()));
      return false;
    }
    if (!add_spec(path, label, *spec, out, error)) return false;
  }
  return true;
}

// An optional integer field of a [[backend]] table, in 1..max.
bool backend_number(const std::string& path, const std::string& label, const toml::table& table,
                    std::string_view key, std::uint32_t max, std::uint32_t* out,
                    std::string* error) {
  const toml::node* node = table.get(key);
  if (node == nullptr) return true;
  const auto* value = node->as_integer();
  if (value == nullptr) {
    *error = fmt::format("{}{}.{}: want an integer, not {}", at(path, node->source()), label, key,
                         type_name(node->type()));
    return false;
  }
  if (value->get() < 1 || value->get() > static_cast<std::int64_t>(max)) {
    *error = fmt::format("{}{}.{} = {}: want 1..{}", at(path, node->source()), label, key,
                         value->get(), max);
    return false;
  }
  *out = static_cast<std::uint32_t>(value->get());
  return true;
}

// A string field of a [[backend]] table; *out stays nullopt when the table lacks it.
bool backend_text(const std::string& path, const std::string& label, const toml::table& table,
                  std::string_view key, std::optional<std::string_view>* out, std::string* error) {
  const toml::node* node = table.get(key);
  if (node == nullptr) return true;
  const auto* value = node->as_string();
  if (value == nullptr) {
    *error = fmt::format("{}{}.{}: want a string, not {}", at(path, node->source()), label, key,
                         type_name(node->type()));
    return false;
  }
  *out = value->get();
  return true;
}

bool load_backend_table(const std::string& path, std::size_t index, const toml::table& table,
                        std::vector<BackendConfig>* out, std::string* error) {
  const std::string label = fmt::format("backend[{}]", index);
  for (auto&& [key, value] : table) {
    const std::string_view k = key.str();
    if (k != "name" && k != "url" && k != "weight" && k != "max_parallel") {
      *error = fmt::format("{}unknown key '{}.{}' (want name, url, weight, max_parallel)",
                           at(path, key.source()), label, k);
      return false;
    }
  }
  BackendConfig b;
  std::optional<std::string_view> name;
  std::optional<std::string_view> url;
  if (!backend_text(path, label, table, "name", &name, error) ||
      !backend_text(path, label, table, "url", &url, error) ||
      !backend_number(path, label, table, "weight", backend_weight_max, &b.weight, error) ||
      !backend_number(path, label, table, "max_parallel", backend_max_parallel_max, &b.max_parallel,
                      error)) {
    return false;
  }
  if (!url) {
    *error = fmt::format("{}{}: no url (want url = \"http://host:port\")", at(path, table.source()),
                         label);
    return false;
  }
  if (name && !valid_backend_name(*name)) {
    *error =
        fmt::format("{}{}.name = \"{}\": want 1..{} of A-Z a-z 0-9 _ . -",
                    at(path, table.get("name")->source()), label, *name, backend_name_bytes_max);
    return false;
  }
  if (!make_backend(name, *url, &b, error)) {
    *error = fmt::format("{}{}.url: {}", at(path, table.get("url")->source()), label, *error);
    return false;
  }
  if (!add_backend(out, std::move(b), error)) {
    *error = fmt::format("{}{}: {}", at(path, table.source()), label, *error);
    return false;
  }
  return true;
}

// The backends in file order: `upstream` (and its alias `ollama_url`), then [[backend]].
bool load_backends(const std::string& path, const toml::table& root,
                   std::vector<BackendConfig>* out, std::string* error) {
  for (const std::string_view key : {"upstream", "ollama_url"}) {
    const toml::node* node = root.get(key);
    if (node != nullptr && !load_upstream(path, key, *node, out, error)) return false;
  }
  const toml::array* tables = nullptr;
  if (!tables_at(path, root, "backend", &tables, error)) return false;
  for (std::size_t i = 0; tables != nullptr && i < tables->size(); ++i) {
    if (!load_backend_table(path, i, *tables->get(i)->as_table(), out, error)) return false;
  }
  return true;
}

}  // namespace

bool load_config_file(const std::string& path, Settings* s, std::string* error) {
  std::string text;
  toml::table root;
  if (!read_file("--config", path, &text, error) || !parse_toml(path, text, &root, error)) {
    return false;
  }
  for (auto&& [key, value] : root) {
    if (is_backend_key(key.str()) || is_auth_key(key.str())) continue;
    if (!apply_key(path, key, value, s, error)) return false;
  }
  return load_backends(path, root, &s->file_backends, error) &&
         load_auth_keys(path, root, s, error);
}

}  // namespace tokentap::config_detail

namespace tokentap {

bool load_backends_file(const std::string& path, std::vector<BackendConfig>* out,
                        std::string* error) {
  // Validate everything into scratch settings; only the backends leave.
  config_detail::Settings scratch;
  if (!config_detail::load_config_file(path, &scratch, error)) return false;
  *out = std::move(scratch.file_backends);
  return true;
}

}  // namespace tokentap
