// libFuzzer target for RequestProbe and inject_include_usage. Oracles: any split gives the same
// facts; an injected body is at most inject_growth_bytes_max longer, and probing it gives the
// same model and stream with include_usage now true.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "tokentap/meter/request_probe.h"

namespace {

std::string facts(tokentap::Route route, const std::string& body, std::size_t step) {
  tokentap::RequestProbe p;
  p.init(route, false);
  for (std::size_t at = 0; at < body.size(); at += step) {
    p.feed(body.data() + at, std::min(step, body.size() - at));
  }
  p.finish();
  const auto m = p.model();
  if (m && !tokentap::valid_model_name(*m)) std::abort();
  return (m ? std::string(*m) : "?") + (p.stream() ? "S" : "s") + (p.include_usage() ? "U" : "u");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const auto route = static_cast<tokentap::Route>(data[0] % tokentap::route_count);
  const std::string body(reinterpret_cast<const char*>(data) + 1, size - 1);
  const std::string whole = facts(route, body, body.size() + 1);
  for (std::size_t step : {std::size_t{1}, std::size_t{5}, std::size_t{33}}) {
    if (facts(route, body, step) != whole) std::abort();
  }
  std::string out(body.size() + tokentap::inject_growth_bytes_max, '\0');
  std::size_t len = 0;
  const auto chat =
      (data[0] & 1) != 0 ? tokentap::Route::v1_chat_completions : tokentap::Route::v1_completions;
  if (tokentap::inject_include_usage(body, chat, false, out.data(), out.size(), &len) ==
      tokentap::InjectOutcome::injected) {
    if (len > body.size() + tokentap::inject_growth_bytes_max) std::abort();
    out.resize(len);
    const std::string before = facts(chat, body, body.size() + 1);
    const std::string after = facts(chat, out, out.size() + 1);
    if (before.substr(0, before.size() - 1) != after.substr(0, after.size() - 1)) std::abort();
    if (after.back() != 'U') std::abort();
  }
  return 0;
}
