// LedgerStore: the schema and WAL mode, upserts summing into rows, each grouping of totals with
// and without a key, `since` rounded to its hour, day totals, reopening keeps everything, and
// the errors: a bad directory, a missing ledger to read, a newer schema, a file that is no
// SQLite database.
#include "tokentap/ledger/ledger_store.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>

#include "ledger/temp_dir.h"
#include "tokentap/ledger/usage_time.h"

namespace tokentap::ledger {
namespace {

using test::TempDir;

constexpr std::int64_t may1 = 1'714'521'600;  // 2024-05-01T00:00:00Z
constexpr std::int64_t h = 3600;

std::unique_ptr<LedgerStore> open_store(const std::string& dir, LedgerStore::Mode mode) {
  std::string error;
  std::unique_ptr<LedgerStore> s = LedgerStore::open(dir, mode, &error);
  EXPECT_TRUE(s) << error;
  return s;
}

UsageDelta delta(std::string key, std::string model, std::string backend, std::int64_t hour,
                 UsageTotals add) {
  return UsageDelta{std::move(key), std::move(model), std::move(backend), hour, add};
}

// alice: llama3 on gpu0 at 00:00 and 01:00, qwen on gpu1 at 01:00; bob: llama3 on gpu1 the
// next day.
void fill(LedgerStore& s) {
  const std::vector<UsageDelta> batch = {
      delta("alice", "llama3", "gpu0", may1, {2, 10, 20, 0}),
      delta("alice", "llama3", "gpu0", may1 + h, {1, 5, 5, 1}),
      delta("alice", "qwen", "gpu1", may1 + h, {3, 30, 60, 0}),
      delta("bob", "llama3", "gpu1", may1 + 24 * h, {4, 40, 40, 2}),
  };
  std::string error;
  ASSERT_TRUE(s.add(batch, &error)) << error;
}

UsageTotals sum(const std::vector<UsageRow>& rows) {
  UsageTotals t;
  for (const UsageRow& r : rows) {
    t.requests += r.totals.requests;
    t.prompt_tokens += r.totals.prompt_tokens;
    t.completion_tokens += r.totals.completion_tokens;
    t.errors += r.totals.errors;
  }
  return t;
}

std::vector<UsageRow> query(LedgerStore& s, std::string key, std::int64_t since, UsageGroup by) {
  std::vector<UsageRow> rows;
  std::string error;
  EXPECT_TRUE(s.totals(UsageQuery{std::move(key), since, by}, &rows, &error)) << error;
  return rows;
}

TEST(LedgerStore, UpsertsSumIntoOneRowPerKeyModelBackendHour) {
  TempDir dir;
  auto s = open_store(dir.path, LedgerStore::Mode::write);
  fill(*s);
  std::string error;
  const std::vector<UsageDelta> again = {delta("alice", "llama3", "gpu0", may1, {1, 1, 1, 1})};
  ASSERT_TRUE(s->add(again, &error)) << error;
  const auto rows = query(*s, "alice", may1, UsageGroup::hour);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].group, "2024-05-01T00:00:00Z");
  EXPECT_EQ(rows[0].hour, may1);
  EXPECT_EQ(rows[0].totals.requests, 3u);
  EXPECT_EQ(rows[0].totals.prompt_tokens, 11u);
  EXPECT_EQ(rows[0].totals.completion_tokens, 21u);
  EXPECT_EQ(rows[0].totals.errors, 1u);
  EXPECT_EQ(rows[1].group, "2024-05-01T01:00:00Z");
  EXPECT_EQ(rows[1].totals.requests, 4u);
}

TEST(LedgerStore, GroupByModelBackendAndHour) {
  TempDir dir;
  auto s = open_store(dir.path, LedgerStore::Mode::write);
  fill(*s);
  auto rows = query(*s, "alice", 0, UsageGroup::model);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].group, "llama3");
  EXPECT_EQ(rows[0].totals.requests, 3u);
  EXPECT_EQ(rows[0].totals.prompt_tokens, 15u);
  EXPECT_EQ(rows[1].group, "qwen");
  EXPECT_EQ(rows[1].totals.completion_tokens, 60u);
  rows = query(*s, "alice", 0, UsageGroup::backend);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].group, "gpu0");
  EXPECT_EQ(rows[1].group, "gpu1");
  EXPECT_EQ(rows[1].totals.requests, 3u);
  // Every key: rows per key and group, ordered by key.
  rows = query(*s, "", 0, UsageGroup::model);
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[2].key, "bob");
  EXPECT_EQ(rows[2].group, "llama3");
  const UsageTotals all = sum(rows);
  EXPECT_EQ(all.requests, 10u);
  EXPECT_EQ(all.prompt_tokens, 85u);
  EXPECT_EQ(all.completion_tokens, 125u);
  EXPECT_EQ(all.errors, 3u);
  EXPECT_TRUE(query(*s, "carol", 0, UsageGroup::model).empty());
}

TEST(LedgerStore, SinceIsRoundedDownToItsHour) {
  TempDir dir;
  auto s = open_store(dir.path, LedgerStore::Mode::write);
  fill(*s);
  // 01:30 still includes the 01:00 row, not the 00:00 one.
  auto rows = query(*s, "alice", may1 + h + 1800, UsageGroup::hour);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].hour, may1 + h);
  EXPECT_EQ(sum(query(*s, "", may1 + 2 * h, UsageGroup::model)).requests, 4u);  // bob only
}

TEST(LedgerStore, DayTokensPerKey) {
  TempDir dir;
  auto s = open_store(dir.path, LedgerStore::Mode::write);
  fill(*s);
  std::vector<KeyDayTokens> day;
  std::string error;
  ASSERT_TRUE(s->day_tokens(may1, &day, &error)) << error;
  ASSERT_EQ(day.size(), 1u);
  EXPECT_EQ(day[0].key, "alice");
  EXPECT_EQ(day[0].tokens, 10u + 20 + 5 + 5 + 30 + 60);
  ASSERT_TRUE(s->day_tokens(may1 + 24 * h, &day, &error)) << error;
  ASSERT_EQ(day.size(), 1u);
  EXPECT_EQ(day[0].key, "bob");
  EXPECT_EQ(day[0].tokens, 80u);
  ASSERT_TRUE(s->day_tokens(may1 - 24 * h, &day, &error)) << error;
  EXPECT_TRUE(day.empty());
}

TEST(LedgerStore, ReopeningKeepsTotalsAndReadersSeeThem) {
  TempDir dir;
  {
    auto s = open_store(dir.path, LedgerStore::Mode::write);
    fill(*s);
  }
  auto reader = open_store(dir.path, LedgerStore::Mode::read);
  ASSERT_TRUE(reader);
  EXPECT_EQ(sum(query(*reader, "", 0, UsageGroup::model)).requests, 10u);
  std::string error;
  EXPECT_FALSE(reader->add({}, &error));  // a reader never writes
  EXPECT_NE(error.find("opened for reading"), std::string::npos) << error;
  // A writer again, beside the reader: the totals go on from where they were.
  auto writer = open_store(dir.path, LedgerStore::Mode::write);
  const std::vector<UsageDelta> more = {
      delta("bob", "llama3", "gpu1", may1 + 24 * h, {1, 0, 0, 0})};
  ASSERT_TRUE(writer->add(more, &error)) << error;
  EXPECT_EQ(sum(query(*reader, "bob", 0, UsageGroup::model)).requests, 5u);
}

TEST(LedgerStore, WalModeAndSchemaVersion) {
  TempDir dir;
  auto s = open_store(dir.path, LedgerStore::Mode::write);
  fill(*s);
  // WAL: the -wal file exists beside the database while a writer is open.
  struct stat st {};
  EXPECT_EQ(stat((dir.path + "/usage.sqlite3-wal").c_str(), &st), 0);
  EXPECT_EQ(s->path(), dir.path + "/usage.sqlite3");
}

TEST(LedgerStore, ClearErrors) {
  std::string error;
  EXPECT_FALSE(LedgerStore::open("/nonexistent/a/b", LedgerStore::Mode::write, &error));
  EXPECT_EQ(error, "--state-dir /nonexistent/a/b: No such file or directory");
  TempDir dir;
  const std::string file = dir.path + "/plain";
  std::ofstream(file) << "x";
  EXPECT_FALSE(LedgerStore::open(file, LedgerStore::Mode::write, &error));
  EXPECT_EQ(error, "--state-dir " + file + ": not a directory");
  EXPECT_FALSE(LedgerStore::open(dir.path, LedgerStore::Mode::read, &error));
  EXPECT_EQ(error.rfind(dir.path + "/usage.sqlite3: no ledger here", 0), 0u) << error;
  // A missing directory one level down is created (mode 0700).
  const std::string fresh = dir.path + "/state";
  EXPECT_TRUE(open_store(fresh, LedgerStore::Mode::write));
  struct stat st {};
  ASSERT_EQ(stat(fresh.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  if (geteuid() != 0) {  // root writes anywhere
    const std::string locked = dir.path + "/locked";
    ASSERT_EQ(mkdir(locked.c_str(), 0500), 0);
    EXPECT_FALSE(LedgerStore::open(locked, LedgerStore::Mode::write, &error));
    EXPECT_EQ(error.rfind(locked + "/usage.sqlite3: cannot open: ", 0), 0u) << error;
  }
}

TEST(LedgerStore, NotALedgerOrANewerOne) {
  TempDir dir;
  std::ofstream(dir.path + "/usage.sqlite3") << "this is not a database, just some text\n";
  std::string error;
  EXPECT_FALSE(LedgerStore::open(dir.path, LedgerStore::Mode::write, &error));
  EXPECT_EQ(error.rfind(dir.path + "/usage.sqlite3: ", 0), 0u) << error;
  EXPECT_NE(error.find("not a database"), std::string::npos) << error;
  TempDir newer;
  open_store(newer.path, LedgerStore::Mode::write);
  // Bump the version as a future tokentap would (the test may use SQLite directly).
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((newer.path + "/usage.sqlite3").c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "UPDATE schema_version SET version = 2", nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(db);
  for (const auto mode : {LedgerStore::Mode::write, LedgerStore::Mode::read}) {
    EXPECT_FALSE(LedgerStore::open(newer.path, mode, &error));
    EXPECT_EQ(error, newer.path +
                         "/usage.sqlite3: ledger schema version 2, this tokentap reads version 1 "
                         "(written by a newer tokentap)");
  }
}

}  // namespace
}  // namespace tokentap::ledger
