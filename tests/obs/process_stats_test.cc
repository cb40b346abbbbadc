// ProcessStats: the procfs parsers on fixed text, and a live read of this test process.
#include "tokentap/obs/process_stats.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <ctime>

namespace tokentap {
namespace {

// Fields 3..22 after the comm: state, ppid ... utime (14), stime (15) ... starttime (22).
constexpr std::string_view stat_tail =
    " S 1 2 3 4 5 6 7 8 9 10 111 222 13 14 15 16 17 18 987654 19 20\n";

TEST(ProcessStats, ParsesStatWhoseCommHoldsSpacesAndParens) {
  for (const std::string comm : {"(tokentap)", "(a) b (c))", "(x y z)"}) {
    const std::string text = "4242 " + comm + std::string(stat_tail);
    const auto stat = parse_proc_stat(text);
    ASSERT_TRUE(stat.has_value()) << text;
    EXPECT_EQ(stat->utime_ticks, 111u);
    EXPECT_EQ(stat->stime_ticks, 222u);
    EXPECT_EQ(stat->starttime_ticks, 987654u);
  }
}

TEST(ProcessStats, RejectsTruncatedOrGarbledStat) {
  EXPECT_FALSE(parse_proc_stat("4242 (x) S 1 2 3").has_value());
  EXPECT_FALSE(parse_proc_stat("no parenthesis at all").has_value());
  EXPECT_FALSE(
      parse_proc_stat("1 (x) S 1 2 3 4 5 6 7 8 9 10 abc 222 13 14 15 16 17 18 9 1").has_value());
}

TEST(ProcessStats, ParsesBootTimeAndStatm) {
  EXPECT_EQ(parse_boot_time("cpu  1 2 3\nintr 5 6 7\nbtime 1700000123\nprocesses 9\n"),
            1700000123u);
  EXPECT_FALSE(parse_boot_time("cpu 1 2\nprocesses 9\n").has_value());
  EXPECT_EQ(parse_statm_resident_pages("12345 678 90 1 0 2 0\n"), 678u);
  EXPECT_FALSE(parse_statm_resident_pages("12345\n").has_value());
}

TEST(ProcessStats, LiveReadOfThisProcess) {
  const ProcessStats before = read_process_stats();
  ASSERT_TRUE(before.cpu_seconds && before.resident_bytes && before.open_fds &&
              before.start_time_seconds);
  EXPECT_GE(*before.cpu_seconds, 0);
  EXPECT_GT(*before.resident_bytes, 1024u * 1024u);
  const double now = static_cast<double>(std::time(nullptr));
  EXPECT_LE(*before.start_time_seconds, now + 1);
  EXPECT_GT(*before.start_time_seconds, now - 3600);  // this test started moments ago
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  const ProcessStats after = read_process_stats();
  ::close(fds[0]);
  ::close(fds[1]);
  EXPECT_EQ(*after.open_fds, *before.open_fds + 2);
  EXPECT_EQ(*after.start_time_seconds, *before.start_time_seconds);
}

}  // namespace
}  // namespace tokentap
