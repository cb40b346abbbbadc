// Test helper: a strict little reader of the Prometheus text format, used to check what
// prom_text writes (labels unescaped, families, duplicates) independently of its writer.
#pragma once

#include <cmath>
#include <cstdlib>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace tokentap::testing {

using Labels = std::map<std::string, std::string>;

struct Sample {
  std::string name;
  Labels labels;
  double value = 0;
};

struct Exposition {
  std::vector<Sample> samples;
  std::map<std::string, std::string> types;  // family -> type
  std::map<std::string, int> help_lines;     // family -> count of # HELP
  std::vector<std::string> family_order;     // by # TYPE
  std::string error;                         // first problem found, empty if none
};

// The family a sample belongs to: histograms own _bucket/_sum/_count.
inline std::string family_of(const Exposition& e, const std::string& name) {
  for (const char* suffix : {"_bucket", "_sum", "_count"}) {
    const std::string_view s(suffix);
    if (name.size() > s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0) {
      const std::string base = name.substr(0, name.size() - s.size());
      auto it = e.types.find(base);
      if (it != e.types.end() && it->second == "histogram") return base;
    }
  }
  return name;
}

inline bool parse_labels(std::string_view& rest, Labels* out, std::string* error) {
  rest.remove_prefix(1);  // '{'
  while (!rest.empty() && rest.front() != '}') {
    const auto eq = rest.find("=\"");
    if (eq == std::string_view::npos) return *error = "label without =\"", false;
    const std::string key(rest.substr(0, eq));
    rest.remove_prefix(eq + 2);
    std::string value;
    while (!rest.empty() && rest.front() != '"') {
      char c = rest.front();
      if (c == '\n') return *error = "raw newline in label value", false;
      if (c == '\\') {
        rest.remove_prefix(1);
        if (rest.empty()) return *error = "dangling escape", false;
        c = rest.front() == 'n' ? '\n' : rest.front();
        if (rest.front() != 'n' && rest.front() != '\\' && rest.front() != '"') {
          return *error = "bad escape", false;
        }
      }
      value += c;
      rest.remove_prefix(1);
    }
    if (rest.empty()) return *error = "unterminated label value", false;
    rest.remove_prefix(1);  // closing quote
    if (!out->emplace(key, value).second) return *error = "duplicate label " + key, false;
    if (!rest.empty() && rest.front() == ',') rest.remove_prefix(1);
  }
  if (rest.empty()) return *error = "unterminated label set", false;
  rest.remove_prefix(1);  // '}'
  return true;
}

inline void parse_comment(Exposition& e, std::string_view line) {
  const bool help = line.starts_with("# HELP ");
  const bool type = line.starts_with("# TYPE ");
  if (!help && !type) return;
  std::string_view rest = line.substr(7);
  const std::string name(rest.substr(0, rest.find(' ')));
  if (help) {
    ++e.help_lines[name];
    return;
  }
  if (e.types.count(name) != 0 && e.error.empty()) e.error = "second TYPE for " + name;
  e.types[name] = std::string(rest.substr(rest.find(' ') + 1));
  e.family_order.push_back(name);
}

inline Exposition parse_exposition(std::string_view text) {
  Exposition e;
  std::set<std::string> seen;
  std::string current_family;
  while (!text.empty() && e.error.empty()) {
    const auto eol = text.find('\n');
    if (eol == std::string_view::npos) return e.error = "missing final newline", e;
    const std::string_view line = text.substr(0, eol);
    text.remove_prefix(eol + 1);
    if (line.starts_with("#")) {
      parse_comment(e, line);
      continue;
    }
    Sample s;
    std::string_view rest = line;
    const auto name_end = rest.find_first_of("{ ");
    s.name = std::string(rest.substr(0, name_end));
    rest.remove_prefix(name_end == std::string_view::npos ? rest.size() : name_end);
    if (!rest.empty() && rest.front() == '{' && !parse_labels(rest, &s.labels, &e.error)) break;
    if (rest.size() < 2 || rest.front() != ' ')
      return e.error = "no value: " + std::string(line), e;
    const std::string value(rest.substr(1));
    s.value = value == "+Inf" ? HUGE_VAL : std::strtod(value.c_str(), nullptr);
    const std::string family = family_of(e, s.name);
    if (e.types.count(family) == 0) return e.error = "sample before TYPE: " + s.name, e;
    if (family != current_family && !current_family.empty() && seen.count("#" + family)) {
      return e.error = "family not contiguous: " + family, e;
    }
    current_family = family;
    seen.insert("#" + family);
    std::string id = s.name;
    for (const auto& [k, v] : s.labels) id += "|" + k + "=" + v;
    if (!seen.insert(id).second) return e.error = "duplicate series: " + id, e;
    e.samples.push_back(std::move(s));
  }
  return e;
}

// The value of the one sample with exactly these labels.
inline std::optional<double> value_of(const Exposition& e, std::string_view name,
                                      const Labels& labels = {}) {
  for (const Sample& s : e.samples) {
    if (s.name == name && s.labels == labels) return s.value;
  }
  return std::nullopt;
}

inline std::size_t series_count(const Exposition& e, std::string_view name) {
  std::size_t n = 0;
  for (const Sample& s : e.samples) n += s.name == name ? 1 : 0;
  return n;
}

inline std::set<std::string> label_values(const Exposition& e, std::string_view family,
                                          const std::string& label) {
  std::set<std::string> out;
  for (const Sample& s : e.samples) {
    if (family_of(e, s.name) != family) continue;
    auto it = s.labels.find(label);
    if (it != s.labels.end()) out.insert(it->second);
  }
  return out;
}

}  // namespace tokentap::testing
