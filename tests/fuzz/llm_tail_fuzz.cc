// libFuzzer target for TailScanner. The first byte picks the route (and status); the rest is the
// body. Oracle: any split of the body gives the same Usage as one feed; fields stay consistent.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "tokentap/meter/llm_tail.h"

namespace {

tokentap::PieceParser& parser() {
  static tokentap::PieceParser p;
  return p;
}

std::string scan(tokentap::Route route, int status, const std::string& body, std::size_t step) {
  tokentap::TailScanner t;
  t.init(route, status, &parser());
  for (std::size_t at = 0; at < body.size(); at += step) {
    const std::size_t n = std::min(step, body.size() - at);
    t.feed(body.data() + at, n, 5);
  }
  const tokentap::Usage& u = t.finish();
  if (u.usage_found && u.usage_missing) std::abort();
  if (u.output_events > body.size()) std::abort();
  std::string s;
  for (std::size_t i = 0; i < tokentap::usage_field_count; ++i) {
    const auto v = u.get(static_cast<tokentap::UsageField>(i));
    s += v ? std::to_string(*v) : "-";
    s += ",";
  }
  return s + std::to_string(u.output_events) + (u.usage_found ? "F" : "") +
         (u.usage_missing ? "M" : "") + (u.error_seen ? "E" : "");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const auto route = static_cast<tokentap::Route>(data[0] % tokentap::route_count);
  const int status = (data[0] & 0x80) != 0 ? 500 : 200;
  const std::string body(reinterpret_cast<const char*>(data) + 1, size - 1);
  const std::string whole = scan(route, status, body, body.size() + 1);
  for (std::size_t step : {std::size_t{1}, std::size_t{3}, std::size_t{17}}) {
    if (scan(route, status, body, step) != whole) std::abort();
  }
  return 0;
}
