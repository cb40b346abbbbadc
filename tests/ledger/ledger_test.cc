// Ledger: records from several producer threads summed into rows and written in batches, names
// resolved through LedgerLabels, a restart keeps the totals, stop() writes what is queued, a
// full queue drops and counts instead of blocking, and a write error is kept and retried.
#include "tokentap/ledger/ledger.h"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <thread>

#include "ledger/temp_dir.h"
#include "tokentap/ledger/usage_time.h"

namespace tokentap::ledger {
namespace {

using test::TempDir;

constexpr std::int64_t may1 = 1'714'521'600;  // 2024-05-01T00:00:00Z

class Labels : public LedgerLabels {
 public:
  std::string_view key_name(std::uint32_t key) const override { return keys[key]; }
  std::string_view model_name(std::uint32_t model) const override { return models[model]; }
  std::string_view backend_name(std::uint32_t b) const override { return backends[b]; }
  std::vector<std::string> keys = {"alice", "bob", "anonymous"};
  std::vector<std::string> models = {"unknown", "__overflow__", "llama3", "qwen"};
  std::vector<std::string> backends = {"gpu0", "gpu1"};
};

std::unique_ptr<Ledger> open_ledger(const std::string& dir, std::uint32_t producers,
                                    const Labels& labels) {
  std::string error;
  std::unique_ptr<Ledger> l = Ledger::open(dir, producers, &labels, &error);
  EXPECT_TRUE(l) << error;
  return l;
}

UsageRecord rec(std::uint32_t key, std::uint32_t model, std::uint32_t backend, std::uint32_t prompt,
                std::uint32_t completion, std::int64_t at = may1 + 60) {
  UsageRecord r;
  r.unix_s = static_cast<std::uint64_t>(at);
  r.key = key;
  r.model = model;
  r.backend = backend;
  r.prompt_tokens = prompt;
  r.completion_tokens = completion;
  return r;
}

std::vector<UsageRow> rows_of(const std::string& dir, std::string key, UsageGroup by) {
  std::string error;
  auto reader = LedgerStore::open(dir, LedgerStore::Mode::read, &error);
  EXPECT_TRUE(reader) << error;
  std::vector<UsageRow> rows;
  if (reader) {
    EXPECT_TRUE(reader->totals({std::move(key), 0, by}, &rows, &error)) << error;
  }
  return rows;
}

TEST(Ledger, ProducerThreadsBatchIntoRows) {
  TempDir dir;
  Labels labels;
  auto ledger = open_ledger(dir.path, 4, labels);
  constexpr int per_thread = 2500;
  std::vector<std::thread> shards;
  for (std::uint32_t p = 0; p < 4; ++p) {
    shards.emplace_back([&, p] {
      for (int i = 0; i < per_thread; ++i) {
        UsageRecord r = rec(p % 2, 2 + (i % 2), p % 2, 3, 7);
        r.errors = i % 10 == 0 ? 1 : 0;
        while (!ledger->record(p, r)) std::this_thread::yield();  // the test wants every one
      }
    });
  }
  for (auto& t : shards) t.join();
  std::string error;
  ASSERT_TRUE(ledger->flush(&error)) << error;
  const LedgerStats stats = ledger->stats();
  EXPECT_EQ(stats.recorded, 4u * per_thread);
  EXPECT_GE(stats.writes, 1u);
  EXPECT_LE(stats.writes, 10u);  // batches, not one transaction per record
  const auto rows = rows_of(dir.path, "", UsageGroup::model);
  ASSERT_EQ(rows.size(), 4u);  // alice and bob × llama3 and qwen
  std::uint64_t requests = 0, prompt = 0, completion = 0, errors = 0;
  for (const UsageRow& r : rows) {
    requests += r.totals.requests;
    prompt += r.totals.prompt_tokens;
    completion += r.totals.completion_tokens;
    errors += r.totals.errors;
    EXPECT_EQ(r.totals.requests, 2500u) << r.key << " " << r.group;
  }
  EXPECT_EQ(requests, 10'000u);
  EXPECT_EQ(prompt, 30'000u);
  EXPECT_EQ(completion, 70'000u);
  EXPECT_EQ(errors, 1000u);
  EXPECT_EQ(rows[0].key, "alice");
  EXPECT_EQ(rows[0].group, "llama3");
  const auto backends = rows_of(dir.path, "bob", UsageGroup::backend);
  ASSERT_EQ(backends.size(), 1u);
  EXPECT_EQ(backends[0].group, "gpu1");
}

TEST(Ledger, HoursAreSeparateRows) {
  TempDir dir;
  Labels labels;
  auto ledger = open_ledger(dir.path, 1, labels);
  EXPECT_TRUE(ledger->record(0, rec(2, 2, 0, 1, 1, may1 + 10)));
  EXPECT_TRUE(ledger->record(0, rec(2, 2, 0, 1, 1, may1 + 3599)));
  EXPECT_TRUE(ledger->record(0, rec(2, 2, 0, 1, 1, may1 + 3600)));
  std::string error;
  ASSERT_TRUE(ledger->flush(&error)) << error;
  const auto rows = rows_of(dir.path, "anonymous", UsageGroup::hour);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].group, "2024-05-01T00:00:00Z");
  EXPECT_EQ(rows[0].totals.requests, 2u);
  EXPECT_EQ(rows[1].group, "2024-05-01T01:00:00Z");
}

TEST(Ledger, ARestartKeepsTheTotalsAndStopWritesWhatIsQueued) {
  TempDir dir;
  Labels labels;
  {
    auto ledger = open_ledger(dir.path, 1, labels);
    for (int i = 0; i < 100; ++i) ASSERT_TRUE(ledger->record(0, rec(0, 2, 0, 10, 20)));
    // No flush: the destructor's stop() writes them.
  }
  {
    auto ledger = open_ledger(dir.path, 1, labels);
    for (int i = 0; i < 50; ++i) ASSERT_TRUE(ledger->record(0, rec(0, 2, 0, 10, 20)));
    ledger->stop();
    EXPECT_FALSE(ledger->record(0, rec(0, 2, 0, 1, 1)));  // after stop: dropped
    EXPECT_EQ(ledger->stats().dropped, 1u);
  }
  const auto rows = rows_of(dir.path, "alice", UsageGroup::model);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].totals.requests, 150u);
  EXPECT_EQ(rows[0].totals.prompt_tokens, 1500u);
  std::string error;
  auto reader = LedgerStore::open(dir.path, LedgerStore::Mode::read, &error);
  ASSERT_TRUE(reader) << error;
  std::vector<KeyDayTokens> day;
  ASSERT_TRUE(reader->day_tokens(day_start(may1 + 60), &day, &error)) << error;
  ASSERT_EQ(day.size(), 1u);
  EXPECT_EQ(day[0].tokens, 150u * 30);
}

TEST(Ledger, WritesOnItsOwnWithinAboutASecond) {
  TempDir dir;
  Labels labels;
  auto ledger = open_ledger(dir.path, 1, labels);
  ASSERT_TRUE(ledger->record(0, rec(1, 3, 1, 1, 2)));
  // Nothing asks for a write: the writer's interval does it (1 s, give it 5).
  bool written = false;
  for (int i = 0; i < 50 && !written; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    written = !rows_of(dir.path, "bob", UsageGroup::model).empty();
  }
  EXPECT_TRUE(written);
  EXPECT_EQ(ledger->last_error(), "");
}

TEST(Ledger, AFullQueueDropsAndCountsNeverBlocks) {
  TempDir dir;
  Labels labels;
  auto ledger = open_ledger(dir.path, 1, labels);
  // Far more than one queue holds, faster than a 50 ms drain can take them.
  std::uint64_t refused = 0;
  for (std::uint32_t i = 0; i < 4 * queue_records_max; ++i) {
    refused += !ledger->record(0, rec(0, 2, 0, 1, 1));
  }
  const LedgerStats stats = ledger->stats();
  EXPECT_EQ(stats.dropped, refused);
  EXPECT_EQ(stats.recorded + stats.dropped, 4u * queue_records_max);
  EXPECT_GT(refused, 0u);
  std::string error;
  ASSERT_TRUE(ledger->flush(&error)) << error;
  const auto rows = rows_of(dir.path, "alice", UsageGroup::model);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].totals.requests, stats.recorded);
}

TEST(Ledger, AFailedWriteIsKeptReportedAndRetried) {
  TempDir dir;
  Labels labels;
  auto ledger = open_ledger(dir.path, 1, labels);
  std::string error;
  ASSERT_TRUE(ledger->record(0, rec(0, 2, 0, 5, 5)));
  ASSERT_TRUE(ledger->flush(&error)) << error;
  // Another connection holds the write lock past the busy timeout: the next write fails.
  sqlite3* other = nullptr;
  ASSERT_EQ(sqlite3_open((dir.path + "/usage.sqlite3").c_str(), &other), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(other, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), SQLITE_OK);
  ASSERT_TRUE(ledger->record(0, rec(0, 2, 0, 5, 5)));
  EXPECT_FALSE(ledger->flush(&error));
  EXPECT_EQ(error, dir.path + "/usage.sqlite3: begin: database is locked");
  EXPECT_EQ(ledger->last_error(), error);
  EXPECT_EQ(ledger->stats().write_errors, 1u);
  ASSERT_EQ(sqlite3_exec(other, "COMMIT", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(other);
  // The kept sum goes in with the next write, once.
  ASSERT_TRUE(ledger->record(0, rec(0, 2, 0, 5, 5)));
  ASSERT_TRUE(ledger->flush(&error)) << error;
  EXPECT_EQ(ledger->last_error(), "");
  const auto rows = rows_of(dir.path, "alice", UsageGroup::model);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].totals.requests, 3u);
  EXPECT_EQ(rows[0].totals.prompt_tokens, 15u);
}

}  // namespace
}  // namespace tokentap::ledger
