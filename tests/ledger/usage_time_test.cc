// usage_time: RFC 3339 accepted forms (offsets, fractions, lower case, a date alone), refusals,
// UTC formatting, and hour/day starts including before 1970.
#include "tokentap/ledger/usage_time.h"

#include <gtest/gtest.h>

namespace tokentap::ledger {
namespace {

constexpr std::int64_t may1 = 1'714'521'600;  // 2024-05-01T00:00:00Z

TEST(UsageTime, Rfc3339Forms) {
  EXPECT_EQ(parse_rfc3339("2024-05-01T00:00:00Z"), may1);
  EXPECT_EQ(parse_rfc3339("2024-05-01"), may1);
  EXPECT_EQ(parse_rfc3339("2024-05-01T12:34:56Z"), may1 + 45'296);
  EXPECT_EQ(parse_rfc3339("2024-05-01t12:34:56z"), may1 + 45'296);
  EXPECT_EQ(parse_rfc3339("2024-05-01 12:34:56Z"), may1 + 45'296);
  EXPECT_EQ(parse_rfc3339("2024-05-01T12:34:56.999Z"), may1 + 45'296);
  EXPECT_EQ(parse_rfc3339("2024-05-01T02:00:00+02:00"), may1);
  EXPECT_EQ(parse_rfc3339("2024-04-30T19:30:00-04:30"), may1);
  EXPECT_EQ(parse_rfc3339("1970-01-01T00:00:00Z"), 0);
  EXPECT_EQ(parse_rfc3339("2024-02-29"), may1 - 62 * 86'400);  // a leap day
}

TEST(UsageTime, Rfc3339Refusals) {
  for (const char* bad : {"",
                          "2024",
                          "2024-05",
                          "2024-5-01",
                          "2024-05-01T",
                          "2024-05-01T12:34Z",
                          "2024-05-01T12:34:56",
                          "2024-05-01T24:00:00Z",
                          "2024-05-01T12:60:00Z",
                          "2024-05-01T12:00:60Z",
                          "2024-13-01",
                          "2023-02-29",
                          "2024-05-32",
                          "2024-05-01T1:00:00Z",
                          "2024-05-01T12:00:00.Z",
                          "2024-05-01T12:00:00+0200",
                          "2024-05-01T12:00:00+24:00",
                          "2024-05-01T12:00:00Zx",
                          "2024-05-01x",
                          "yesterday",
                          "2024-05-01T12:00:00 Z"}) {
    EXPECT_FALSE(parse_rfc3339(bad)) << bad;
  }
}

TEST(UsageTime, FormatAndRoundTrip) {
  EXPECT_EQ(format_utc(may1), "2024-05-01T00:00:00Z");
  EXPECT_EQ(format_utc(may1 + 45'296), "2024-05-01T12:34:56Z");
  EXPECT_EQ(format_utc(0), "1970-01-01T00:00:00Z");
  EXPECT_EQ(format_utc(-1), "1969-12-31T23:59:59Z");
  for (std::int64_t t : {std::int64_t{0}, may1, may1 + 86'399, std::int64_t{4'102'444'800}}) {
    EXPECT_EQ(parse_rfc3339(format_utc(t)), t) << t;
  }
}

TEST(UsageTime, HourAndDayStarts) {
  EXPECT_EQ(hour_start(may1 + 45'296), may1 + 12 * 3600);
  EXPECT_EQ(day_start(may1 + 45'296), may1);
  EXPECT_EQ(day_start(may1), may1);
  EXPECT_EQ(hour_start(-1), -3600);
  EXPECT_EQ(day_start(-1), -86'400);
}

}  // namespace
}  // namespace tokentap::ledger
