// usage_time: the ledger's clock in text — RFC 3339 in (`--since`, `/usage?since=`), UTC out —
// and the hour and day a Unix time falls in. Pure functions over Unix seconds (UTC; Unix time
// has no leap seconds, so hours and days are plain divisions).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace tokentap::ledger {

constexpr std::int64_t seconds_per_hour = 3600;
constexpr std::int64_t seconds_per_day = 86'400;

// The start of the UTC hour / day holding `unix_s`.
[[nodiscard]] constexpr std::int64_t hour_start(std::int64_t unix_s) {
  const std::int64_t r = unix_s % seconds_per_hour;
  return unix_s - (r < 0 ? r + seconds_per_hour : r);
}
[[nodiscard]] constexpr std::int64_t day_start(std::int64_t unix_s) {
  const std::int64_t r = unix_s % seconds_per_day;
  return unix_s - (r < 0 ? r + seconds_per_day : r);
}

// RFC 3339 date-time ("2024-05-01T13:00:00Z", "2024-05-01t13:00:00.250+02:00", 'T', 't' or ' '
// between date and time) or a full date alone ("2024-05-01", midnight UTC) → Unix seconds,
// fractions dropped. nullopt for anything else, leap second 60 and out-of-range fields included.
[[nodiscard]] std::optional<std::int64_t> parse_rfc3339(std::string_view text);

// "2024-05-01T13:00:00Z".
[[nodiscard]] std::string format_utc(std::int64_t unix_s);

}  // namespace tokentap::ledger
