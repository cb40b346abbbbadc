// LedgerStore: the SQLite calls behind ledger_store.h. Every sqlite3_* result is checked; a
// failure becomes one error line naming the file, what was being done and SQLite's message.
#include "tokentap/ledger/ledger_store.h"

#include <sqlite3.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>

#include "tokentap/ledger/usage_time.h"

namespace tokentap::ledger {
namespace {

constexpr const char* schema_sql =
    "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS usage ("
    " key TEXT NOT NULL, model TEXT NOT NULL, backend TEXT NOT NULL, hour INTEGER NOT NULL,"
    " requests INTEGER NOT NULL DEFAULT 0, prompt_tokens INTEGER NOT NULL DEFAULT 0,"
    " completion_tokens INTEGER NOT NULL DEFAULT 0, errors INTEGER NOT NULL DEFAULT 0,"
    " PRIMARY KEY (key, model, backend, hour)) WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS usage_by_hour ON usage (hour);";

constexpr const char* upsert_sql =
    "INSERT INTO usage (key, model, backend, hour, requests, prompt_tokens, completion_tokens,"
    " errors) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
    " ON CONFLICT (key, model, backend, hour) DO UPDATE SET"
    " requests = requests + excluded.requests,"
    " prompt_tokens = prompt_tokens + excluded.prompt_tokens,"
    " completion_tokens = completion_tokens + excluded.completion_tokens,"
    " errors = errors + excluded.errors";

constexpr const char* day_sql =
    "SELECT key, SUM(prompt_tokens + completion_tokens) FROM usage"
    " WHERE hour >= ?1 AND hour < ?2 GROUP BY key ORDER BY key";

// The grouping column and the query of each UsageGroup; ?1 since, ?2 key or NULL for all.
const char* totals_sql(UsageGroup by) {
  switch (by) {
    case UsageGroup::model:
      return "SELECT key, model, 0, SUM(requests), SUM(prompt_tokens), SUM(completion_tokens),"
             " SUM(errors) FROM usage WHERE hour >= ?1 AND (?2 IS NULL OR key = ?2)"
             " GROUP BY key, model ORDER BY key, model";
    case UsageGroup::backend:
      return "SELECT key, backend, 0, SUM(requests), SUM(prompt_tokens), SUM(completion_tokens),"
             " SUM(errors) FROM usage WHERE hour >= ?1 AND (?2 IS NULL OR key = ?2)"
             " GROUP BY key, backend ORDER BY key, backend";
    case UsageGroup::hour:
      return "SELECT key, '', hour, SUM(requests), SUM(prompt_tokens), SUM(completion_tokens),"
             " SUM(errors) FROM usage WHERE hour >= ?1 AND (?2 IS NULL OR key = ?2)"
             " GROUP BY key, hour ORDER BY key, hour";
  }
  return nullptr;
}

// A statement finalized when it goes out of scope, whatever path leaves.
struct Statement {
  sqlite3_stmt* stmt = nullptr;
  ~Statement() { sqlite3_finalize(stmt); }
};

std::string text_column(sqlite3_stmt* stmt, int i) {
  const unsigned char* text = sqlite3_column_text(stmt, i);
  return text == nullptr ? std::string() : reinterpret_cast<const char*>(text);
}

std::uint64_t count_column(sqlite3_stmt* stmt, int i) {
  const sqlite3_int64 v = sqlite3_column_int64(stmt, i);
  return v < 0 ? 0 : static_cast<std::uint64_t>(v);
}

// SQLite stores signed 64-bit integers; totals never come near 2^63.
sqlite3_int64 as_int(std::uint64_t v) {
  return v > static_cast<std::uint64_t>(INT64_MAX) ? INT64_MAX : static_cast<sqlite3_int64>(v);
}

bool make_dir(const std::string& dir, std::string* error) {
  struct stat st {};
  if (stat(dir.c_str(), &st) == 0) {
    if (S_ISDIR(st.st_mode)) return true;
    *error = "--state-dir " + dir + ": not a directory";
    return false;
  }
  if (errno == ENOENT && mkdir(dir.c_str(), 0700) == 0) return true;
  *error = "--state-dir " + dir + ": " + std::strerror(errno);
  return false;
}

}  // namespace

bool LedgerStore::fail(std::string_view what, std::string* error) const {
  const int sys = db_ != nullptr ? sqlite3_system_errno(db_) : 0;
  *error = path_ + ": " + std::string(what) + ": " +
           (db_ != nullptr ? sqlite3_errmsg(db_) : "out of memory");
  if (sys != 0) *error += std::string(" (") + std::strerror(sys) + ")";
  return false;
}

bool LedgerStore::exec(const char* sql, std::string_view what, std::string* error) {
  if (sqlite3_exec(db_, sql, nullptr, nullptr, nullptr) != SQLITE_OK) return fail(what, error);
  return true;
}

std::unique_ptr<LedgerStore> LedgerStore::open(const std::string& dir, Mode mode,
                                               std::string* error) {
  std::unique_ptr<LedgerStore> s(new LedgerStore());
  s->path_ = dir + "/" + std::string(ledger_file_name);
  if (mode == Mode::write && !make_dir(dir, error)) return nullptr;
  if (mode == Mode::read) {
    struct stat st {};
    if (stat(s->path_.c_str(), &st) != 0) {
      *error = s->path_ + ": no ledger here (" + std::strerror(errno) +
               "); tokentap writes one with --state-dir " + dir;
      return nullptr;
    }
  }
  const int flags =
      mode == Mode::write ? SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE : SQLITE_OPEN_READONLY;
  // NOMUTEX: each connection is used by one thread only (ledger_store.h).
  if (sqlite3_open_v2(s->path_.c_str(), &s->db_, flags | SQLITE_OPEN_NOMUTEX, nullptr) !=
      SQLITE_OK) {
    s->fail("cannot open", error);
    return nullptr;
  }
  sqlite3_extended_result_codes(s->db_, 1);
  if (sqlite3_busy_timeout(s->db_, busy_timeout_ms) != SQLITE_OK) {
    s->fail("busy timeout", error);
    return nullptr;
  }
  if (mode == Mode::write && !s->init_schema(error)) return nullptr;
  if (!s->check_version(error)) return nullptr;
  if (mode == Mode::write && sqlite3_prepare_v3(s->db_, upsert_sql, -1, SQLITE_PREPARE_PERSISTENT,
                                                &s->upsert_, nullptr) != SQLITE_OK) {
    s->fail("prepare", error);
    return nullptr;
  }
  return s;
}

LedgerStore::~LedgerStore() {
  sqlite3_finalize(upsert_);
  sqlite3_close(db_);  // every statement is finalized: this closes (and checkpoints the WAL)
}

bool LedgerStore::init_schema(std::string* error) {
  // journal_mode answers with the mode it is in: a file system without shared memory (some
  // network mounts) keeps "delete", which is refused rather than run slowly unnoticed.
  std::string journal_mode;
  {
    Statement wal;  // finalized before the schema's transaction, which it would hold open
    if (sqlite3_prepare_v2(db_, "PRAGMA journal_mode=WAL", -1, &wal.stmt, nullptr) != SQLITE_OK ||
        sqlite3_step(wal.stmt) != SQLITE_ROW) {
      return fail("WAL mode", error);
    }
    journal_mode = text_column(wal.stmt, 0);
  }
  if (journal_mode != "wal") {
    *error = path_ + ": WAL mode: the file system keeps journal mode '" + journal_mode + "'";
    return false;
  }
  return exec("PRAGMA synchronous=NORMAL", "synchronous", error) &&
         exec("BEGIN IMMEDIATE", "schema", error) && exec(schema_sql, "schema", error) &&
         exec(
             "INSERT INTO schema_version (version) SELECT 1"
             " WHERE NOT EXISTS (SELECT 1 FROM schema_version)",
             "schema version", error) &&
         exec("COMMIT", "schema", error);
}

bool LedgerStore::check_version(std::string* error) {
  Statement st;
  if (sqlite3_prepare_v2(db_, "SELECT MAX(version) FROM schema_version", -1, &st.stmt, nullptr) !=
      SQLITE_OK) {
    return fail("not a tokentap ledger (schema_version)", error);
  }
  if (sqlite3_step(st.stmt) != SQLITE_ROW) return fail("schema version", error);
  const sqlite3_int64 version = sqlite3_column_int64(st.stmt, 0);
  if (version != schema_version) {
    *error = path_ + ": ledger schema version " + std::to_string(version) + ", this tokentap " +
             "reads version " + std::to_string(schema_version) +
             (version > schema_version ? " (written by a newer tokentap)" : "");
    return false;
  }
  return true;
}

bool LedgerStore::add_one(const UsageDelta& d, std::string* error) {
  sqlite3_stmt* st = upsert_;
  const bool bound = sqlite3_bind_text(st, 1, d.key.data(), static_cast<int>(d.key.size()),
                                       SQLITE_STATIC) == SQLITE_OK &&
                     sqlite3_bind_text(st, 2, d.model.data(), static_cast<int>(d.model.size()),
                                       SQLITE_STATIC) == SQLITE_OK &&
                     sqlite3_bind_text(st, 3, d.backend.data(), static_cast<int>(d.backend.size()),
                                       SQLITE_STATIC) == SQLITE_OK &&
                     sqlite3_bind_int64(st, 4, d.hour) == SQLITE_OK &&
                     sqlite3_bind_int64(st, 5, as_int(d.add.requests)) == SQLITE_OK &&
                     sqlite3_bind_int64(st, 6, as_int(d.add.prompt_tokens)) == SQLITE_OK &&
                     sqlite3_bind_int64(st, 7, as_int(d.add.completion_tokens)) == SQLITE_OK &&
                     sqlite3_bind_int64(st, 8, as_int(d.add.errors)) == SQLITE_OK;
  const bool ok = bound && sqlite3_step(st) == SQLITE_DONE;
  if (!ok) fail("write", error);
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  return ok;
}

bool LedgerStore::add(std::span<const UsageDelta> deltas, std::string* error) {
  if (upsert_ == nullptr) {
    *error = path_ + ": write: opened for reading";
    return false;
  }
  if (!exec("BEGIN IMMEDIATE", "begin", error)) return false;
  for (const UsageDelta& d : deltas) {
    if (!add_one(d, error)) {
      sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);  // *error keeps the cause
      return false;
    }
  }
  if (!exec("COMMIT", "commit", error)) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    return false;
  }
  return true;
}

bool LedgerStore::totals(const UsageQuery& query, std::vector<UsageRow>* out, std::string* error) {
  Statement st;
  if (sqlite3_prepare_v2(db_, totals_sql(query.by), -1, &st.stmt, nullptr) != SQLITE_OK ||
      sqlite3_bind_int64(st.stmt, 1, hour_start(query.since_unix_s)) != SQLITE_OK ||
      (query.key.empty()
           ? sqlite3_bind_null(st.stmt, 2)
           : sqlite3_bind_text(st.stmt, 2, query.key.data(), static_cast<int>(query.key.size()),
                               SQLITE_STATIC)) != SQLITE_OK) {
    return fail("query", error);
  }
  out->clear();
  int rc = 0;
  while ((rc = sqlite3_step(st.stmt)) == SQLITE_ROW) {
    UsageRow row;
    row.key = text_column(st.stmt, 0);
    row.hour = sqlite3_column_int64(st.stmt, 2);
    row.group = query.by == UsageGroup::hour ? format_utc(row.hour) : text_column(st.stmt, 1);
    row.totals = UsageTotals{count_column(st.stmt, 3), count_column(st.stmt, 4),
                             count_column(st.stmt, 5), count_column(st.stmt, 6)};
    out->push_back(std::move(row));
  }
  if (rc != SQLITE_DONE) return fail("query", error);
  return true;
}

bool LedgerStore::day_tokens(std::int64_t day_start_unix_s, std::vector<KeyDayTokens>* out,
                             std::string* error) {
  Statement st;
  if (sqlite3_prepare_v2(db_, day_sql, -1, &st.stmt, nullptr) != SQLITE_OK ||
      sqlite3_bind_int64(st.stmt, 1, day_start_unix_s) != SQLITE_OK ||
      sqlite3_bind_int64(st.stmt, 2, day_start_unix_s + seconds_per_day) != SQLITE_OK) {
    return fail("day totals", error);
  }
  out->clear();
  int rc = 0;
  while ((rc = sqlite3_step(st.stmt)) == SQLITE_ROW) {
    out->push_back(KeyDayTokens{text_column(st.stmt, 0), count_column(st.stmt, 1)});
  }
  if (rc != SQLITE_DONE) return fail("day totals", error);
  return true;
}

}  // namespace tokentap::ledger
