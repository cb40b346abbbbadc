// The shipped deploy/ files: the Grafana dashboard parses and queries only metric families and
// labels of the metrics contract; the Prometheus config and alert rules pass promtool (syntax
// and the alert unit tests in tests/eco/tokentap-rules.test.yml); the systemd unit is hardened
// and passes only flags tokentap accepts. Tools that are missing (promtool, systemd-analyze)
// skip their test with a message instead of passing silently.
#include <gtest/gtest.h>
#include <simdjson.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

namespace {

namespace fs = std::filesystem;

// tests/extra_tests.cmake defines TOKENTAP_SOURCE_DIR; without it, this file's own path.
fs::path repo_root() {
#ifdef TOKENTAP_SOURCE_DIR
  return fs::path(TOKENTAP_SOURCE_DIR);
#else
  return fs::path(__FILE__).parent_path().parent_path();
#endif
}

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The families of docs/metrics.md (the metrics contract), with their types.
const std::map<std::string, std::string>& contract_families() {
  static const std::map<std::string, std::string> families = {
      {"tokentap_requests_total", "counter"},
      {"tokentap_request_duration_seconds", "histogram"},
      {"tokentap_time_to_first_token_seconds", "histogram"},
      {"tokentap_time_per_output_token_seconds", "histogram"},
      {"tokentap_prompt_tokens_total", "counter"},
      {"tokentap_completion_tokens_total", "counter"},
      {"tokentap_generation_tokens_per_second", "histogram"},
      {"tokentap_prompt_eval_seconds_total", "counter"},
      {"tokentap_generation_seconds_total", "counter"},
      {"tokentap_model_load_seconds_total", "counter"},
      {"tokentap_active_requests", "gauge"},
      {"tokentap_request_bytes_total", "counter"},
      {"tokentap_response_bytes_total", "counter"},
      {"tokentap_client_aborts_total", "counter"},
      {"tokentap_upstream_errors_total", "counter"},
      {"tokentap_usage_missing_total", "counter"},
      {"tokentap_connections_open", "gauge"},
      {"tokentap_connections_total", "counter"},
      {"tokentap_connections_rejected_total", "counter"},
      {"tokentap_build_info", "gauge"},
      // Backends (docs/metrics.md "Backends").
      {"tokentap_backend_up", "gauge"},
      {"tokentap_backend_in_flight", "gauge"},
      {"tokentap_backend_slots", "gauge"},
      {"tokentap_backend_requests_total", "counter"},
      {"tokentap_backend_prompt_tokens_total", "counter"},
      {"tokentap_backend_completion_tokens_total", "counter"},
      {"tokentap_backend_time_to_first_token_seconds", "histogram"},
      {"tokentap_backend_ejections_total", "counter"},
      {"tokentap_health_checks_total", "counter"},
      {"tokentap_retries_total", "counter"},
      {"process_cpu_seconds_total", "counter"},
      {"process_resident_memory_bytes", "gauge"},
      {"process_open_fds", "gauge"},
      {"process_start_time_seconds", "gauge"},
  };
  return families;
}

// Contract labels plus what Prometheus itself attaches (job, instance, le) and what the
// shipped files add on their targets (service).
const std::set<std::string>& known_labels() {
  static const std::set<std::string> labels = {"endpoint", "model",   "stream",  "status", "kind",
                                               "reason",   "version", "backend", "result", "job",
                                               "instance", "le",      "service"};
  return labels;
}

// The family a series name belongs to, or empty when it is not part of the contract.
// _bucket/_sum/_count are accepted only on histograms.
std::string contract_family_of(const std::string& name) {
  const auto& families = contract_families();
  if (families.count(name) != 0) return name;
  for (const std::string_view suffix : {"_bucket", "_sum", "_count"}) {
    if (name.size() <= suffix.size() || !name.ends_with(suffix)) continue;
    const std::string base = name.substr(0, name.size() - suffix.size());
    const auto it = families.find(base);
    if (it != families.end() && it->second == "histogram") return base;
  }
  return {};
}

// Every tokentap_/process_ metric identifier in a PromQL expression (or any text).
std::vector<std::string> metric_names_in(const std::string& text) {
  static const std::regex name_re(R"((^|[^A-Za-z0-9_:])((tokentap|process)_[A-Za-z0-9_:]*))");
  std::vector<std::string> names;
  for (auto it = std::sregex_iterator(text.begin(), text.end(), name_re);
       it != std::sregex_iterator(); ++it) {
    names.push_back((*it)[2].str());
  }
  return names;
}

// Label names used in `by (...)`/`without (...)` groupings and in `{name=...}` matchers.
std::vector<std::string> label_names_in(const std::string& expr) {
  static const std::regex group_re(R"(\b(by|without|on|ignoring)\s*\(([^)]*)\))");
  static const std::regex matcher_re(R"(([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*")");
  static const std::regex ident_re(R"([A-Za-z_][A-Za-z0-9_]*)");
  std::vector<std::string> labels;
  for (auto it = std::sregex_iterator(expr.begin(), expr.end(), group_re);
       it != std::sregex_iterator(); ++it) {
    const std::string list = (*it)[2].str();
    for (auto id = std::sregex_iterator(list.begin(), list.end(), ident_re);
         id != std::sregex_iterator(); ++id) {
      labels.push_back(id->str());
    }
  }
  for (auto it = std::sregex_iterator(expr.begin(), expr.end(), matcher_re);
       it != std::sregex_iterator(); ++it) {
    labels.push_back((*it)[1].str());
  }
  return labels;
}

// Problems with one expression: unknown families, _bucket on a non-histogram, unknown labels.
std::vector<std::string> contract_problems(const std::string& expr) {
  std::vector<std::string> problems;
  for (const std::string& name : metric_names_in(expr)) {
    if (contract_family_of(name).empty()) problems.push_back("metric " + name);
  }
  for (const std::string& label : label_names_in(expr)) {
    if (known_labels().count(label) == 0) problems.push_back("label " + label);
  }
  return problems;
}

// Every string under a key named "expr", "query" or "definition" (panel targets and
// templating variables), with the JSON path where it was found.
void collect_queries(simdjson::dom::element element, const std::string& path,
                     std::vector<std::pair<std::string, std::string>>* out) {
  if (element.is_array()) {
    std::size_t i = 0;
    for (simdjson::dom::element child : element.get_array()) {
      collect_queries(child, path + "[" + std::to_string(i++) + "]", out);
    }
    return;
  }
  if (!element.is_object()) return;
  for (simdjson::dom::key_value_pair field : element.get_object()) {
    const std::string key(field.key);
    const bool query_key = key == "expr" || key == "query" || key == "definition";
    if (query_key && field.value.is_string()) {
      out->emplace_back(path + "." + key, std::string(field.value.get_string().value()));
    } else {
      collect_queries(field.value, path + "." + key, out);
    }
  }
}

struct Dashboard {
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  simdjson::error_code error = simdjson::SUCCESS;
  std::vector<std::pair<std::string, std::string>> queries;  // (json path, text)
};

Dashboard& dashboard() {
  static Dashboard* d = [] {
    auto* dash = new Dashboard;
    const std::string text = read_text(repo_root() / "deploy/grafana/tokentap.json");
    dash->error = dash->parser.parse(text).get(dash->root);
    if (dash->error == simdjson::SUCCESS) collect_queries(dash->root, "$", &dash->queries);
    return dash;
  }();
  return *d;
}

struct CommandResult {
  int status = -1;
  std::string output;
};

CommandResult run_command(const std::string& command) {
  CommandResult result;
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return result;
  char buf[4096];
  std::size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof(buf), pipe)) > 0) result.output.append(buf, n);
  const int raw = pclose(pipe);
  result.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
  return result;
}

bool have_tool(const std::string& tool) {
  return run_command("command -v " + tool + " >/dev/null").status == 0;
}

std::string quoted(const fs::path& path) { return "'" + path.string() + "'"; }

// The checker itself must catch what it is meant to catch, or the tests below prove nothing.
TEST(DeployContract, CheckerRejectsUnknownFamiliesSuffixesAndLabels) {
  EXPECT_TRUE(contract_problems("sum by (model) (rate(tokentap_prompt_tokens_total[5m]))")
                  .empty());
  EXPECT_TRUE(contract_problems("histogram_quantile(0.9, sum by (le) "
                                "(rate(tokentap_time_to_first_token_seconds_bucket[1m])))")
                  .empty());
  EXPECT_EQ(contract_problems("rate(tokentap_tokens_total[1m])").size(), 1u);
  EXPECT_EQ(contract_problems("rate(tokentap_requests_total_bucket[1m])").size(), 1u);
  EXPECT_EQ(contract_problems("sum by (user) (tokentap_active_requests)").size(), 1u);
  EXPECT_EQ(contract_problems("tokentap_active_requests{path=\"/x\"}").size(), 1u);
  EXPECT_EQ(contract_problems("process_virtual_memory_bytes").size(), 1u);
  // "xtokentap_a" is not a tokentap identifier; "$job" in a value is not a label name.
  EXPECT_TRUE(contract_problems("xtokentap_a{job=~\"$job\"}").empty());
}

TEST(DeployDashboard, IsValidGrafanaJson) {
  Dashboard& d = dashboard();
  ASSERT_EQ(d.error, simdjson::SUCCESS) << simdjson::error_message(d.error);
  std::string_view uid;
  ASSERT_EQ(d.root["uid"].get(uid), simdjson::SUCCESS);
  EXPECT_FALSE(uid.empty());
  simdjson::dom::array panels;
  ASSERT_EQ(d.root["panels"].get(panels), simdjson::SUCCESS);
  std::set<std::int64_t> ids;
  for (simdjson::dom::element panel : panels) {
    std::int64_t id = 0;
    ASSERT_EQ(panel["id"].get(id), simdjson::SUCCESS);
    EXPECT_TRUE(ids.insert(id).second) << "duplicate panel id " << id;
    simdjson::dom::object grid;
    EXPECT_EQ(panel["gridPos"].get(grid), simdjson::SUCCESS) << "panel " << id;
    std::string_view type;
    ASSERT_EQ(panel["type"].get(type), simdjson::SUCCESS);
    if (type == "row") continue;
    simdjson::dom::array targets;
    ASSERT_EQ(panel["targets"].get(targets), simdjson::SUCCESS) << "panel " << id;
    std::set<std::string> ref_ids;
    for (simdjson::dom::element target : targets) {
      std::string_view ref_id, expr;
      ASSERT_EQ(target["refId"].get(ref_id), simdjson::SUCCESS) << "panel " << id;
      EXPECT_TRUE(ref_ids.insert(std::string(ref_id)).second) << "panel " << id;
      ASSERT_EQ(target["expr"].get(expr), simdjson::SUCCESS) << "panel " << id;
      EXPECT_FALSE(expr.empty()) << "panel " << id;
    }
    EXPECT_FALSE(ref_ids.empty()) << "panel " << id << " has no query";
  }
  EXPECT_GE(ids.size(), 10u);
}

TEST(DeployDashboard, QueriesUseOnlyContractFamiliesAndLabels) {
  Dashboard& d = dashboard();
  ASSERT_EQ(d.error, simdjson::SUCCESS);
  ASSERT_FALSE(d.queries.empty());
  for (const auto& [path, text] : d.queries) {
    for (const std::string& problem : contract_problems(text)) {
      ADD_FAILURE() << path << ": " << problem << " is not in the metrics contract\n  " << text;
    }
  }
}

// The panels the dashboard promises: tokens/s per model, TTFT/TPOT quantiles, requests and
// errors, active requests, model load time, client aborts and bytes.
TEST(DeployDashboard, CoversTheAdvertisedPanels) {
  Dashboard& d = dashboard();
  ASSERT_EQ(d.error, simdjson::SUCCESS);
  std::set<std::string> used;
  std::set<std::string> quantiled;
  for (const auto& [path, text] : d.queries) {
    for (const std::string& name : metric_names_in(text)) {
      const std::string family = contract_family_of(name);
      used.insert(family);
      if (name.ends_with("_bucket") && text.find("histogram_quantile(") != std::string::npos) {
        quantiled.insert(family);
      }
    }
  }
  for (const char* family :
       {"tokentap_completion_tokens_total", "tokentap_prompt_tokens_total",
        "tokentap_requests_total", "tokentap_active_requests",
        "tokentap_model_load_seconds_total", "tokentap_client_aborts_total",
        "tokentap_request_bytes_total", "tokentap_response_bytes_total",
        "tokentap_upstream_errors_total", "tokentap_usage_missing_total"}) {
    EXPECT_EQ(used.count(family), 1u) << family << " has no panel";
  }
  EXPECT_EQ(quantiled.count("tokentap_time_to_first_token_seconds"), 1u);
  EXPECT_EQ(quantiled.count("tokentap_time_per_output_token_seconds"), 1u);
  // The per-backend row: up, in flight, tokens/s and TTFT p95 by backend.
  for (const char* family : {"tokentap_backend_up", "tokentap_backend_in_flight",
                             "tokentap_backend_completion_tokens_total"}) {
    EXPECT_EQ(used.count(family), 1u) << family << " has no panel";
  }
  EXPECT_EQ(quantiled.count("tokentap_backend_time_to_first_token_seconds"), 1u);
}

// The list above and the contract document name the same families: a family documented in
// docs/metrics.md is usable here, and nothing is usable here that the document does not name.
TEST(DeployContract, FamilyListMatchesDocsMetrics) {
  const std::string doc = read_text(repo_root() / "docs/metrics.md");
  ASSERT_FALSE(doc.empty());
  // A family is named alone in backticks (`tokentap_requests_total`); file names and PromQL
  // examples are not family names.
  static const std::regex family_re(R"(`((tokentap|process)_[a-z0-9_]+)`)");
  std::set<std::string> documented;
  for (auto it = std::sregex_iterator(doc.begin(), doc.end(), family_re);
       it != std::sregex_iterator(); ++it) {
    documented.insert((*it)[1].str());
  }
  for (const auto& [family, type] : contract_families()) {
    EXPECT_EQ(documented.count(family), 1u) << family << " is not in docs/metrics.md";
  }
  for (const std::string& name : documented) {
    EXPECT_FALSE(contract_family_of(name).empty()) << name << " (docs/metrics.md) is not listed";
  }
}

TEST(DeployRules, NameOnlyContractFamilies) {
  const std::string rules = read_text(repo_root() / "deploy/prometheus/tokentap-rules.yml");
  ASSERT_FALSE(rules.empty());
  const std::vector<std::string> names = metric_names_in(rules);
  EXPECT_GE(names.size(), 5u);
  for (const std::string& name : names) {
    EXPECT_FALSE(contract_family_of(name).empty()) << name << " is not in the metrics contract";
  }
}

TEST(DeployRules, BackendAlertsAreShipped) {
  const std::string rules = read_text(repo_root() / "deploy/prometheus/tokentap-rules.yml");
  for (const char* alert :
       {"TokentapBackendDown", "TokentapBackendEjected", "TokentapNoHealthyBackend"}) {
    EXPECT_NE(rules.find(std::string("alert: ") + alert), std::string::npos) << alert;
  }
}

TEST(DeployRules, PromtoolChecksRulesAndConfig) {
  if (!have_tool("promtool")) GTEST_SKIP() << "promtool not installed (Debian: prometheus)";
  const fs::path dir = repo_root() / "deploy/prometheus";
  const CommandResult rules = run_command("promtool check rules " +
                                          quoted(dir / "tokentap-rules.yml"));
  EXPECT_EQ(rules.status, 0) << rules.output;
  // check config also loads every rule file the config names.
  const CommandResult config = run_command("promtool check config " +
                                           quoted(dir / "prometheus.yml"));
  EXPECT_EQ(config.status, 0) << config.output;
  EXPECT_NE(config.output.find("1 rule files found"), std::string::npos) << config.output;
}

TEST(DeployRules, AlertsFireOnSyntheticSeries) {
  if (!have_tool("promtool")) GTEST_SKIP() << "promtool not installed (Debian: prometheus)";
  const CommandResult result = run_command(
      "promtool test rules " + quoted(repo_root() / "tests/eco/tokentap-rules.test.yml"));
  EXPECT_EQ(result.status, 0) << result.output;
}

// The unit's [Service] settings; a repeated key keeps every value, in order.
std::multimap<std::string, std::string> unit_settings(const std::string& unit) {
  std::multimap<std::string, std::string> settings;
  std::istringstream in(unit);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#' || line[0] == ';' || line[0] == '[') continue;
    const std::size_t eq = line.find('=');
    if (eq == std::string::npos) continue;
    settings.emplace(line.substr(0, eq), line.substr(eq + 1));
  }
  return settings;
}

std::string unit_value(const std::multimap<std::string, std::string>& settings,
                       const std::string& key) {
  const auto it = settings.find(key);
  return it == settings.end() ? std::string("<missing>") : it->second;
}

const fs::path& unit_path() {
  static const fs::path path = repo_root() / "deploy/systemd/tokentap.service";
  return path;
}

TEST(DeploySystemd, UnitIsHardenedAndAllowsIoUring) {
  const auto settings = unit_settings(read_text(unit_path()));
  ASSERT_FALSE(settings.empty());
  EXPECT_EQ(unit_value(settings, "DynamicUser"), "yes");
  EXPECT_EQ(unit_value(settings, "NoNewPrivileges"), "yes");
  EXPECT_EQ(unit_value(settings, "ProtectSystem"), "strict");
  EXPECT_EQ(unit_value(settings, "CapabilityBoundingSet"), "");
  EXPECT_EQ(unit_value(settings, "Restart"), "on-failure");
  EXPECT_GE(std::atoll(unit_value(settings, "LimitNOFILE").c_str()), 65536);
  // A syscall allow-list without io_uring would make tokentap fail at its first ring.
  bool allows_uring = false;
  const auto [first, last] = settings.equal_range("SystemCallFilter");
  for (auto it = first; it != last; ++it) {
    const std::string& v = it->second;
    const bool deny_list = !v.empty() && v[0] == '~';
    if (!deny_list && v.find("io_uring_setup") != std::string::npos &&
        v.find("io_uring_enter") != std::string::npos &&
        v.find("io_uring_register") != std::string::npos) {
      allows_uring = true;
    }
    if (deny_list) {
      EXPECT_EQ(v.find("io_uring"), std::string::npos) << v;
    }
  }
  EXPECT_TRUE(allows_uring) << "SystemCallFilter must allow io_uring_{setup,enter,register}";
}

// Every flag the unit passes is one `tokentap --help` documents.
TEST(DeploySystemd, PassesOnlyFlagsTokentapAccepts) {
  const char* binary = std::getenv("TOKENTAP_BINARY");
  if (binary == nullptr) GTEST_SKIP() << "TOKENTAP_BINARY not set (run through ctest)";
  const CommandResult help = run_command(quoted(binary) + " --help");
  ASSERT_NE(help.output.find("--upstream"), std::string::npos) << help.output;
  const std::string unit = read_text(unit_path());
  static const std::regex flag_re(R"((^|[\s"=])(--[a-z][a-z-]*))");
  int flags = 0;
  for (const auto& [key, value] : unit_settings(unit)) {
    if (key != "Environment" && key != "ExecStart") continue;
    for (auto it = std::sregex_iterator(value.begin(), value.end(), flag_re);
         it != std::sregex_iterator(); ++it, ++flags) {
      const std::string flag = (*it)[2].str();
      EXPECT_NE(help.output.find(flag + " "), std::string::npos) << flag << " is not a flag";
    }
  }
  EXPECT_GE(flags, 3);
}

TEST(DeploySystemd, SystemdAnalyzeVerifies) {
  const char* binary = std::getenv("TOKENTAP_BINARY");
  if (binary == nullptr) GTEST_SKIP() << "TOKENTAP_BINARY not set (run through ctest)";
  if (!have_tool("systemd-analyze")) GTEST_SKIP() << "systemd-analyze not installed";
  // verify wants ExecStart's binary to exist: point it at the one just built.
  std::string unit = read_text(unit_path());
  const std::string installed = "/usr/local/bin/tokentap";
  const std::size_t at = unit.find("ExecStart=" + installed);
  ASSERT_NE(at, std::string::npos);
  unit.replace(at + 10, installed.size(), fs::absolute(binary).string());
  const fs::path dir = fs::temp_directory_path() /
                       ("tokentap-deploy-test-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::ofstream(dir / "tokentap.service") << unit;
  const CommandResult result =
      run_command("SYSTEMD_LOG_LEVEL=warning systemd-analyze verify " +
                  quoted(dir / "tokentap.service"));
  fs::remove_all(dir);
  EXPECT_EQ(result.status, 0) << result.output;
}

}  // namespace
