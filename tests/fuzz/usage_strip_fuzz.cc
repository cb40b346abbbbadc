// libFuzzer target for UsageStrip. Oracles: any split gives the same output; the output is never
// longer than the input; the hold never overflows (TT_ASSERT inside); an input in which neither
// "usage" nor "choices" appears passes through unchanged.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "tokentap/meter/usage_strip.h"

namespace {

std::string strip(const std::string& in, std::size_t step) {
  tokentap::UsageStrip s;
  std::string out;
  const auto sink = [&out](const char* p, std::size_t n) { out.append(p, n); };
  for (std::size_t at = 0; at < in.size(); at += step) {
    s.feed(in.data() + at, std::min(step, in.size() - at), sink);
  }
  s.finish(sink);
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string in(reinterpret_cast<const char*>(data), size);
  const std::string whole = strip(in, in.size() + 1);
  if (whole.size() > in.size()) std::abort();
  if (in.find("usage") == std::string::npos && in.find("choices") == std::string::npos &&
      whole != in) {
    std::abort();
  }
  for (std::size_t step : {std::size_t{1}, std::size_t{2}, std::size_t{7}, std::size_t{64}}) {
    if (strip(in, step) != whole) std::abort();
  }
  return 0;
}
