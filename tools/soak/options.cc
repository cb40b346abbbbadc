// Command-line parsing for the soak (see options.h).
#include "options.h"

#include <charconv>
#include <string_view>

#include <fmt/format.h>

namespace tokentap::soak {
namespace {

template <typename T>
bool parse_number(std::string_view text, T* out, T min, T max) {
  T v{};
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc{} || end != text.data() + text.size() || v < min || v > max) return false;
  *out = v;
  return true;
}

}  // namespace

const char* usage_text() {
  return "usage: soak [--tokentap PATH] [--duration S] [--burst N] [--slow N] [--fast N]\n"
         "            [--warmup N] [--port-base P] [--seed N] [--threads N] [--report FILE]\n"
         "            [--tokentap-log FILE] [--upload-fresh-conn]\n"
         "Runs tokentap against an in-process fake upstream: warm-up, a burst of N concurrent\n"
         "slow streams, a mixed soak of S seconds, then checks RSS, fds and token counters.\n";
}

bool parse_options(int argc, char** argv, Options* out, bool* help, std::string* error) {
  *help = false;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    std::string_view value;
    const std::size_t eq = arg.find('=');
    if (eq != std::string_view::npos) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
    }
    if (arg == "--help" || arg == "-h") {
      *help = true;
      return true;
    }
    if (arg == "--upload-fresh-conn") {
      out->upload_fresh_conn = true;
      continue;
    }
    if (eq == std::string_view::npos) {
      if (i + 1 >= argc) {
        *error = fmt::format("{} needs a value", arg);
        return false;
      }
      value = argv[++i];
    }
    bool ok = true;
    if (arg == "--tokentap") {
      out->tokentap = std::string(value);
    } else if (arg == "--report") {
      out->report = std::string(value);
    } else if (arg == "--tokentap-log") {
      out->tokentap_log = std::string(value);
    } else if (arg == "--duration") {
      ok = parse_number<std::uint32_t>(value, &out->duration_s, 1, 86'400);
    } else if (arg == "--burst") {
      ok = parse_number<std::uint32_t>(value, &out->burst, 1, 100'000);
    } else if (arg == "--slow") {
      ok = parse_number<std::uint32_t>(value, &out->slow, 0, 100'000);
    } else if (arg == "--fast") {
      ok = parse_number<std::uint32_t>(value, &out->fast, 1, 1'000);
    } else if (arg == "--warmup") {
      ok = parse_number<std::uint32_t>(value, &out->warmup, 1, 1'000'000);
    } else if (arg == "--threads") {
      ok = parse_number<std::uint32_t>(value, &out->threads, 1, 64);
    } else if (arg == "--port-base") {
      ok = parse_number<std::uint16_t>(value, &out->port_base, 1024, 65'000);
    } else if (arg == "--seed") {
      ok = parse_number<std::uint64_t>(value, &out->seed, 0, UINT64_MAX);
    } else {
      *error = fmt::format("unknown flag {}", arg);
      return false;
    }
    if (!ok) {
      *error = fmt::format("bad value for {}: {}", arg, value);
      return false;
    }
  }
  return true;
}

}  // namespace tokentap::soak
