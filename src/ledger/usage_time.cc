// usage_time: RFC 3339 parsing and UTC formatting with <chrono>'s civil calendar (no time zone
// database and no TZ environment involved: every time here is UTC or a fixed offset).
#include "tokentap/ledger/usage_time.h"

#include <chrono>
#include <cstdio>

namespace tokentap::ledger {
namespace {

// `n` decimal digits at `*pos`, advancing it; -1 when they are not all digits.
int digits(std::string_view text, std::size_t* pos, std::size_t n) {
  if (*pos + n > text.size()) return -1;
  int v = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const char c = text[*pos + i];
    if (c < '0' || c > '9') return -1;
    v = v * 10 + (c - '0');
  }
  *pos += n;
  return v;
}

bool expect(std::string_view text, std::size_t* pos, char c) {
  if (*pos >= text.size() || text[*pos] != c) return false;
  ++*pos;
  return true;
}

std::optional<std::int64_t> days_of(int y, int m, int d) {
  const std::chrono::year_month_day ymd{std::chrono::year{y},
                                        std::chrono::month{static_cast<unsigned>(m)},
                                        std::chrono::day{static_cast<unsigned>(d)}};
  if (!ymd.ok()) return std::nullopt;
  return std::chrono::sys_days{ymd}.time_since_epoch().count();
}

// "Z", "z" or "+hh:mm" / "-hh:mm" at *pos: the offset east of UTC in seconds.
std::optional<std::int64_t> offset_of(std::string_view text, std::size_t* pos) {
  if (*pos < text.size() && (text[*pos] == 'Z' || text[*pos] == 'z')) {
    ++*pos;
    return 0;
  }
  if (*pos >= text.size() || (text[*pos] != '+' && text[*pos] != '-')) return std::nullopt;
  const int sign = text[*pos] == '-' ? -1 : 1;
  ++*pos;
  const int oh = digits(text, pos, 2);
  if (oh < 0 || oh > 23 || !expect(text, pos, ':')) return std::nullopt;
  const int om = digits(text, pos, 2);
  if (om < 0 || om > 59) return std::nullopt;
  return sign * (oh * seconds_per_hour + om * 60);
}

}  // namespace

std::optional<std::int64_t> parse_rfc3339(std::string_view text) {
  std::size_t pos = 0;
  const int y = digits(text, &pos, 4);
  if (y < 0 || !expect(text, &pos, '-')) return std::nullopt;
  const int mo = digits(text, &pos, 2);
  if (mo < 0 || !expect(text, &pos, '-')) return std::nullopt;
  const int d = digits(text, &pos, 2);
  if (d < 0) return std::nullopt;
  const std::optional<std::int64_t> days = days_of(y, mo, d);
  if (!days) return std::nullopt;
  if (pos == text.size()) return *days * seconds_per_day;  // a date alone: midnight UTC
  if (text[pos] != 'T' && text[pos] != 't' && text[pos] != ' ') return std::nullopt;
  ++pos;
  const int h = digits(text, &pos, 2);
  if (h < 0 || h > 23 || !expect(text, &pos, ':')) return std::nullopt;
  const int mi = digits(text, &pos, 2);
  if (mi < 0 || mi > 59 || !expect(text, &pos, ':')) return std::nullopt;
  const int s = digits(text, &pos, 2);
  if (s < 0 || s > 59) return std::nullopt;  // a leap second has no Unix time of its own
  if (pos < text.size() && text[pos] == '.') {
    const std::size_t start = ++pos;
    while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') ++pos;
    if (pos == start) return std::nullopt;
  }
  const std::optional<std::int64_t> offset = offset_of(text, &pos);
  if (!offset || pos != text.size()) return std::nullopt;
  return *days * seconds_per_day + h * seconds_per_hour + mi * 60 + s - *offset;
}

std::string format_utc(std::int64_t unix_s) {
  const std::int64_t day = day_start(unix_s);
  const std::int64_t in_day = unix_s - day;
  const std::chrono::year_month_day ymd{
      std::chrono::sys_days{std::chrono::days{day / seconds_per_day}}};
  char buf[32];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02uT%02d:%02d:%02dZ", static_cast<int>(ymd.year()),
                static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
                static_cast<int>(in_day / seconds_per_hour),
                static_cast<int>(in_day % seconds_per_hour / 60), static_cast<int>(in_day % 60));
  return buf;
}

}  // namespace tokentap::ledger
