// LedgerStore: one SQLite connection to DIR/usage.sqlite3 (Debian libsqlite3-dev), the schema
// and the statements of the ledger. Synchronous and single-threaded: the Ledger's writer thread
// owns the write connection; readers (`tokentap usage`, the /usage endpoint, the start-up seed of
// the day windows) each open their own read connection.
//
// Schema (docs/keys.md "Ledger"), version 1: `schema_version(version)` with one row, and
// `usage(key, model, backend, hour, requests, prompt_tokens, completion_tokens, errors)` with
// one row per key, model, backend and UTC hour (`hour` = Unix time of the hour's start), WITHOUT
// ROWID on that primary key, indexed by hour. A file whose version is higher than ours is
// refused: a newer tokentap's ledger is never misread or altered.
//
// Durability: WAL mode with synchronous=NORMAL. A committed transaction survives a crash of
// tokentap (the WAL is in the kernel's page cache); a power loss may take the last commits that
// were not checkpointed, which the ledger accepts (it is an account, not a bank). Readers never
// block the writer and see the last commit.
//
// Every SQLite failure is a value: false, with *error "DIR/usage.sqlite3: what: sqlite's message".
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

struct sqlite3;
struct sqlite3_stmt;

namespace tokentap::ledger {

constexpr int schema_version = 1;
inline constexpr std::string_view ledger_file_name = "usage.sqlite3";
// How long a statement waits for another connection's lock (a reader checkpointing) before it
// fails with SQLITE_BUSY; the writer retries its batch a second later anyway.
constexpr int busy_timeout_ms = 2000;

struct UsageTotals {
  std::uint64_t requests = 0;
  std::uint64_t prompt_tokens = 0;
  std::uint64_t completion_tokens = 0;
  std::uint64_t errors = 0;
};

// What one batch adds to one row.
struct UsageDelta {
  std::string key;
  std::string model;
  std::string backend;
  std::int64_t hour = 0;  // hour_start() of the requests' end
  UsageTotals add;
};

enum class UsageGroup { model, hour, backend };

struct UsageQuery {
  std::string key;                // "" = every key
  std::int64_t since_unix_s = 0;  // rounded down to its hour: rows are hourly
  UsageGroup by = UsageGroup::model;
};

struct UsageRow {
  std::string key;
  std::string group;      // the model, the backend, or the hour as format_utc() writes it
  std::int64_t hour = 0;  // by hour: the hour's Unix time; otherwise 0
  UsageTotals totals;
};

// A key's prompt + completion tokens in one UTC day (seeding tokens_per_day at start).
struct KeyDayTokens {
  std::string key;
  std::uint64_t tokens = 0;
};

class LedgerStore {
 public:
  enum class Mode {
    write,  // create DIR (mode 0700, not its parents) and the file when missing
    read,   // the file must exist; nothing is created or changed
  };
  [[nodiscard]] static std::unique_ptr<LedgerStore> open(const std::string& dir, Mode mode,
                                                         std::string* error);
  ~LedgerStore();
  LedgerStore(const LedgerStore&) = delete;
  LedgerStore& operator=(const LedgerStore&) = delete;

  // Adds every delta in one transaction; on failure nothing is changed (rolled back).
  [[nodiscard]] bool add(std::span<const UsageDelta> deltas, std::string* error);

  // Totals per key and group since query.since_unix_s, ordered by key then group.
  [[nodiscard]] bool totals(const UsageQuery& query, std::vector<UsageRow>* out,
                            std::string* error);

  // Every key's tokens in the UTC day starting at `day_start_unix_s`.
  [[nodiscard]] bool day_tokens(std::int64_t day_start_unix_s, std::vector<KeyDayTokens>* out,
                                std::string* error);

  [[nodiscard]] const std::string& path() const { return path_; }

 private:
  LedgerStore() = default;
  // Sets *error from SQLite's state; returns false, for `return fail(...)`.
  bool fail(std::string_view what, std::string* error) const;
  [[nodiscard]] bool exec(const char* sql, std::string_view what, std::string* error);
  [[nodiscard]] bool init_schema(std::string* error);
  [[nodiscard]] bool check_version(std::string* error);
  [[nodiscard]] bool add_one(const UsageDelta& d, std::string* error);

  std::string path_;
  sqlite3* db_ = nullptr;
  sqlite3_stmt* upsert_ = nullptr;  // prepared once, write mode only
};

}  // namespace tokentap::ledger
