// Options: the soak's command line. Defaults are issue 5's figures (10,000-connection burst,
// 5-minute mixed soak); tools/soak/run.sh --quick passes a shorter set.
#pragma once

#include <cstdint>
#include <string>

namespace tokentap::soak {

struct Options {
  std::string tokentap = "build-release/tokentap";
  std::uint32_t duration_s = 300;  // phase 2, mixed traffic
  std::uint32_t slow = 5'000;      // phase 2 concurrent slow streams (see README: fd budget)
  std::uint32_t burst = 10'000;    // phase 1 concurrent client connections
  std::uint32_t fast = 32;         // phase 2 back-to-back connections
  std::uint32_t warmup = 4'000;    // phase 0 mixed requests before the RSS baseline
  std::uint16_t port_base = 19'400;  // proxy, metrics = +1, fake upstream = +2
  std::uint64_t seed = 1;
  std::uint32_t threads = 2;       // tokentap shards
  // Send each blob upload on a new connection: avoids the tokentap crash on an unmetered
  // request body after a metered request on the same keep-alive connection (README, Findings).
  bool upload_fresh_conn = false;
  std::string report;              // markdown written here too (stdout always)
  std::string tokentap_log = "build-release/soak-tokentap.log";
};

// Fills *out from argv; false with *error on a bad flag. --help sets *help.
[[nodiscard]] bool parse_options(int argc, char** argv, Options* out, bool* help,
                                 std::string* error);
[[nodiscard]] const char* usage_text();

}  // namespace tokentap::soak
