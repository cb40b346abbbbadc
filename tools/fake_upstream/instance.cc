// Catalog rendering (see instance.h): /api/tags entries as Ollama's api.ListModelResponse,
// /v1/models as openai.ListCompletion, /api/ps as api.ProcessModelResponse (wire-format.md §6,
// §7.5; issue 16 "Fleet endpoints"). The default seven models
// render exactly as the fake always rendered its fixed list; any other name gets details,
// digest and modified_at derived from a hash of its name, so one model looks the same on every
// instance that has it.
#include "instance.h"

#include <cstdio>

#include "byte_buf.h"

namespace tokentap::fake {
namespace {

struct Known {
  const char* name;
  const char* family;
  const char* size;
  const char* params;
  const char* quant;
};

constexpr Known known_models[] = {
    {"llama3.2:latest", "llama", "2019393189", "3.2B", "Q4_K_M"},
    {"qwen3:8b", "qwen3", "5225376047", "8.2B", "Q4_K_M"},
    {"all-minilm:latest", "bert", "45960996", "23M", "F16"},
    {"gemma3:4b", "gemma3", "3338801804", "4.3B", "Q4_K_M"},
    {"mistral:7b", "llama", "4113301824", "7.2B", "Q4_0"},
    {"deepseek-r1:8b", "qwen3", "5225376047", "8.2B", "Q4_K_M"},
    {"phi4:latest", "phi3", "9053116391", "14.7B", "Q4_K_M"},
};

// 2026-08-20T08:11:10Z, the modified_at of the first default model, as a Unix time.
constexpr std::int64_t modified_base_unix = 1787213470;
constexpr std::uint32_t modified_slots = 2900;  // keeps 10:MM:SS within the hour
// api.ProcessModelResponse size: the file size plus what the runner allocates (KV cache...).
constexpr std::uint64_t resident_extra_bytes = 1392259931;
constexpr std::string_view expires_at = "2026-08-24T14:05:11.519610579Z";
constexpr int context_length = 4096;

struct ModelInfo {
  std::string name;  // as listed
  std::string family;
  std::uint64_t size = 0;
  std::string params;
  std::string quant;
  std::uint32_t slot = 0;  // modified_at offset in seconds
  std::string digest;
};

char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }

std::uint64_t fnv(std::string_view s, std::uint64_t seed) {
  return fnv1a64(fnv1a64_init ^ seed, s);
}

ModelInfo info_of(std::string_view listed) {
  const std::string key = normalize_model(listed);
  ModelInfo m;
  m.name = std::string(listed);
  for (std::uint32_t i = 0; i < std::size(known_models); ++i) {
    const Known& k = known_models[i];
    if (key != k.name) continue;
    m.family = k.family;
    m.size = std::stoull(k.size);
    m.params = k.params;
    m.quant = k.quant;
    m.slot = i;
    for (std::uint32_t d = 0; d < 64; ++d) m.digest += "0123456789abcdef"[(d * 7 + i * 3) % 16];
    return m;
  }
  const std::uint64_t h = fnv(key, 0);
  m.family = "llama";
  m.size = 1'000'000'000 + h % 8'000'000'000;
  m.params = "7.2B";
  m.quant = "Q4_K_M";
  m.slot = static_cast<std::uint32_t>(std::size(known_models) + h % modified_slots);
  char hex[17];
  for (std::uint64_t seed = 1; seed <= 4; ++seed) {
    std::snprintf(hex, sizeof(hex), "%016llx", static_cast<unsigned long long>(fnv(key, seed)));
    m.digest += hex;
  }
  return m;
}

// A JSON string for a name given on the command line or in Options (quotes and backslashes
// escaped, HTML-safe as Go writes it).
void put_name(std::string& out, std::string_view s) {
  out += '"';
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (u < 0x20 || c == '<' || c == '>' || c == '&') {
      char esc[8];
      std::snprintf(esc, sizeof(esc), "\\u%04x", u);
      out += esc;
    } else {
      out += c;
    }
  }
  out += '"';
}

void put_details(std::string& s, const ModelInfo& m) {
  s += R"("details":{"parent_model":"","format":"gguf","family":")" + m.family +
       R"(","families":[")" + m.family + R"("],"parameter_size":")" + m.params +
       R"(","quantization_level":")" + m.quant + R"("}})";
}

std::string modified_at(std::uint32_t slot) {
  const std::uint32_t total = 11 * 60 + 10 + slot;
  char buf[64];
  std::snprintf(buf, sizeof(buf), "2026-08-20T10:%02u:%02u.123456789+02:00", total / 60,
                total % 60);
  return buf;
}

// model.ParseName(name).Namespace: "library" unless the name has one.
std::string namespace_of(std::string_view name) {
  const std::size_t last = name.rfind('/');
  if (last == std::string_view::npos) return "library";
  const std::string_view rest = name.substr(0, last);
  const std::size_t prev = rest.rfind('/');
  return std::string(prev == std::string_view::npos ? rest : rest.substr(prev + 1));
}

std::string tags_body(const std::vector<ModelInfo>& models) {
  std::string s = R"({"models":[)";
  for (std::size_t i = 0; i < models.size(); ++i) {
    const ModelInfo& m = models[i];
    if (i > 0) s += ',';
    s += R"({"name":)";
    put_name(s, m.name);
    s += R"(,"model":)";
    put_name(s, m.name);
    s += R"(,"modified_at":")" + modified_at(m.slot) + R"(","size":)" + std::to_string(m.size) +
         R"(,"digest":")" + m.digest + "\",";
    put_details(s, m);
  }
  s += "]}";
  return s;
}

std::string v1_models_body(const std::vector<ModelInfo>& models) {
  if (models.empty()) return "{\"object\":\"list\",\"data\":null}\n";  // Go: a nil slice
  std::string s = R"({"object":"list","data":[)";
  for (std::size_t i = 0; i < models.size(); ++i) {
    const ModelInfo& m = models[i];
    if (i > 0) s += ',';
    s += R"({"id":)";
    put_name(s, m.name);
    s += R"(,"object":"model","created":)" + std::to_string(modified_base_unix + m.slot) +
         R"(,"owned_by":)";
    put_name(s, namespace_of(m.name));
    s += '}';
  }
  s += "]}\n";
  return s;
}

std::string ps_body(const std::vector<ModelInfo>& models) {
  std::string s = R"({"models":[)";
  for (std::size_t i = 0; i < models.size(); ++i) {
    const ModelInfo& m = models[i];
    const std::string vram = std::to_string(m.size + resident_extra_bytes);
    if (i > 0) s += ',';
    s += R"({"name":)";
    put_name(s, m.name);
    s += R"(,"model":)";
    put_name(s, m.name);
    s += R"(,"size":)" + vram + R"(,"digest":")" + m.digest + "\",";
    put_details(s, m);
    s.pop_back();  // put_details closes the model object too; more keys follow here
    s += R"(,"expires_at":")" + std::string(expires_at) + R"(","size_vram":)" + vram +
         R"(,"context_length":)" + std::to_string(context_length) + '}';
  }
  s += "]}";
  return s;
}

// The listed form of a name: ":latest" added when the last path element has no tag.
std::string with_tag(std::string_view name) {
  std::string s(name);
  const std::size_t slash = s.rfind('/');
  if (s.find(':', slash == std::string::npos ? 0 : slash) == std::string::npos) s += ":latest";
  return s;
}

}  // namespace

std::vector<std::string> default_models() {
  std::vector<std::string> names;
  for (const Known& k : known_models) names.emplace_back(k.name);
  return names;
}

std::string normalize_model(std::string_view name) {
  std::string s = with_tag(name);
  for (char& c : s) c = lower(c);
  return s;
}

bool Catalog::installed(std::string_view model) const { return !checks_models || listed(model); }

bool Catalog::listed(std::string_view model) const {
  const std::string key = normalize_model(model);
  for (const std::string& k : keys) {
    if (k == key) return true;
  }
  return false;
}

std::shared_ptr<const Catalog> make_catalog(const std::vector<std::string>& names,
                                            bool checks_models,
                                            const std::vector<std::string>& resident) {
  auto c = std::make_shared<Catalog>();
  c->checks_models = checks_models;
  std::vector<ModelInfo> listed;
  for (const std::string& name : names) {
    if (name.empty()) continue;
    listed.push_back(info_of(with_tag(name)));
    c->keys.push_back(normalize_model(name));
  }
  std::vector<ModelInfo> loaded;
  for (const std::string& name : resident) {
    if (!name.empty()) loaded.push_back(info_of(with_tag(name)));
  }
  c->tags_body = tags_body(listed);
  c->v1_models_body = v1_models_body(listed);
  c->ps_body = ps_body(loaded);
  return c;
}

void Instance::publish() {
  catalog.store(make_catalog(listed, checks_models, resident), std::memory_order_release);
}

void Instance::set_models(std::optional<std::vector<std::string>> models) {
  const std::lock_guard lock(setter_mutex);
  checks_models = models.has_value();
  listed = models ? std::move(*models) : default_models();
  publish();
}

void Instance::set_resident(std::vector<std::string> names) {
  const std::lock_guard lock(setter_mutex);
  resident = std::move(names);
  publish();
}

void Instance::add_model(std::string_view model) {
  const std::lock_guard lock(setter_mutex);
  const std::string key = normalize_model(model);
  for (const std::string& name : listed) {
    if (normalize_model(name) == key) return;
  }
  listed.emplace_back(model);
  publish();
}

bool Instance::remove_model(std::string_view model) {
  const std::lock_guard lock(setter_mutex);
  const std::string key = normalize_model(model);
  const auto before = listed.size();
  std::erase_if(listed, [&](const std::string& name) { return normalize_model(name) == key; });
  if (listed.size() == before) return false;
  publish();
  return true;
}

bool parse_health(std::string_view text, Health* out) {
  if (text == "ok") {
    *out = Health::ok;
  } else if (text == "fail") {
    *out = Health::fail;
  } else if (text == "slow") {
    *out = Health::slow;
  } else {
    return false;
  }
  return true;
}

bool parse_close_mode(std::string_view text, CloseMode* out) {
  if (text == "none") {
    *out = CloseMode::none;
  } else if (text == "before-head") {
    *out = CloseMode::before_head;
  } else if (text == "after-head") {
    *out = CloseMode::after_head;
  } else if (text == "mid-body") {
    *out = CloseMode::mid_body;
  } else {
    return false;
  }
  return true;
}

}  // namespace tokentap::fake
